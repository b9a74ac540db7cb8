"""The problem interface: a 2-task objective over a low-dimensional x, batched over lanes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from ..methods.base import ParamSpec
from ..validation import short_repr

Tensor = torch.Tensor


@dataclass(frozen=True)
class ProblemSpec:
    """One multi-task toy problem.

    ``losses(x, params) -> (B, K)`` and ``losses_and_grads(x, params) -> ((B, K), (B, K, D))`` take
    x of shape (B, D). ``losses`` must be written with differentiable torch operations so that tests
    can check ``losses_and_grads`` against autograd. ``default_lower_bounds(params)`` gives l*_i
    for methods that take logs or ratios of losses. ``pareto_guess(lmbda, params)`` gives, for
    weights lmbda in [0, 1] on task 1 (shape (M,)), a starting point (M, D) for Newton's method on
    stationarity of lmbda f1 + (1 - lmbda) f2 (used by ``toyopt.geometry``).
    """

    name: str
    label: str
    paper: str
    n_tasks: int
    dim: int
    box: tuple[tuple[float, float], ...]
    losses: Callable[[Tensor, dict], Tensor]
    losses_and_grads: Callable[[Tensor, dict], tuple[Tensor, Tensor]]
    default_lower_bounds: Callable[[dict], tuple[float, ...]]
    pareto_guess: Callable[[Tensor, dict], Tensor]
    params: tuple[ParamSpec, ...] = field(default_factory=tuple)
    summary: str = ""

    def param(self, name: str) -> ParamSpec:
        for p in self.params:
            if p.name == name:
                return p
        allowed = [p.name for p in self.params]
        raise ValueError(
            f"unknown parameter {short_repr(name)} for problem {self.name!r}; allowed: {allowed}"
        )

    def validate_params(self, values: dict[str, Any]) -> dict[str, Any]:
        out = {p.name: p.default for p in self.params}
        for key, value in values.items():
            out[key] = self.param(key).validate(value, owner="problem_params")
        return out

    def to_json(self) -> dict:
        return {
            "name": self.name,
            "label": self.label,
            "paper": self.paper,
            "tasks": self.n_tasks,
            "dim": self.dim,
            "box": [list(b) for b in self.box],
            "params": [p.to_json() for p in self.params],
        }
