"""Types shared by every aggregation method.

A method is declared by one :class:`MethodSpec` in its own module. Its ``step`` is a pure
function of batched tensors: ``B`` lanes, ``K`` tasks, ``D`` parameters.

    step(inp: StepInput, state, params: dict) -> MethodOutput

* ``inp.grads``  (B, K, D) per-task gradients g_i.
* ``inp.losses`` (B, K) per-task losses l_i.
* ``inp.lower_bounds`` (B, K) per-task lower bounds l*_i (methods that take logs or ratios of
  losses use ``l_i - l*_i``).
* ``inp.random`` (B, n) random numbers the engine drew for this step (see ``RandomNeed``), so
  the method itself stays a deterministic function of its inputs.
* ``inp.progress`` () the run's progress in [0, 1] (step index / (steps - 1)), for schedules.
* ``params`` maps every declared parameter name to a value. ``float`` parameters arrive as
  (B,) tensors (lanes of one run may hold different values, e.g. a grid of c); ``int`` and
  ``choice`` parameters arrive as Python values shared by all lanes.

Methods are written without Python branches on tensor values (``torch.where`` instead), so the
engine can batch lanes and compile a step.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import torch

Tensor = torch.Tensor

#: Numerical guard used where the spec says epsilon without a value.
EPS = 1e-8


@dataclass(frozen=True)
class ParamSpec:
    """One tunable parameter of a method (or problem) with its allowed range.

    ``kind`` is ``"float"``, ``"int"`` or ``"choice"``. ``low``/``high`` are inclusive bounds for
    numbers; ``choices`` lists the allowed strings. ``unverified`` marks a value or option that
    our specification reconstructs rather than reads in the paper ([U] in docs/methods.md).
    """

    name: str
    default: Any
    help: str
    kind: str = "float"
    low: float | None = None
    high: float | None = None
    step: float | None = None
    choices: tuple[str, ...] = ()
    unverified: bool = False

    def __post_init__(self) -> None:
        if self.kind not in ("float", "int", "choice"):
            raise ValueError(f"ParamSpec {self.name}: kind must be float, int or choice")
        self.validate(self.default, owner="default")

    def validate(self, value: Any, owner: str = "") -> Any:
        """Return ``value`` converted to this parameter's type, or raise a ValueError that
        names the field and the allowed range."""
        where = f"{owner}.{self.name}" if owner else self.name
        if self.kind == "choice":
            if not isinstance(value, str) or value not in self.choices:
                raise ValueError(f"{where} must be one of {list(self.choices)}, got {value!r}")
            return value
        shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{where} must be a number in {self.range_text()}, got {shown}")
        try:
            number = float(value)
        except OverflowError:  # an int too large for a float
            raise ValueError(f"{where} must be in {self.range_text()}, got {shown}") from None
        if (
            not math.isfinite(number)
            or (self.low is not None and number < self.low)
            or (self.high is not None and number > self.high)
        ):
            raise ValueError(f"{where} must be in {self.range_text()}, got {shown}")
        if self.kind == "int":
            if number != int(number):
                raise ValueError(f"{where} must be an integer in {self.range_text()}, got {shown}")
            return int(number)
        return number

    def range_text(self) -> str:
        if self.kind == "choice":
            return "{" + ", ".join(self.choices) + "}"
        low = "-inf" if self.low is None else f"{self.low:g}"
        high = "inf" if self.high is None else f"{self.high:g}"
        return f"[{low}, {high}]"

    def to_json(self) -> dict:
        out = {"name": self.name, "kind": self.kind, "default": self.default, "help": self.help}
        if self.kind == "choice":
            out["choices"] = list(self.choices)
        else:
            out.update(low=self.low, high=self.high, step=self.step)
        if self.unverified:
            out["unverified"] = True
        return out


@dataclass(frozen=True)
class RandomNeed:
    """Random numbers a method consumes each step: ``size(K, D)`` draws per lane from
    ``distribution`` ("normal" or "uniform" on [0, 1))."""

    distribution: str
    size: Callable[[int, int], int]


class StepInput(NamedTuple):
    grads: Tensor  # (B, K, D)
    losses: Tensor | None = None  # (B, K)
    lower_bounds: Tensor | None = None  # (B, K)
    random: Tensor | None = None  # (B, n)
    progress: Tensor | None = None  # () in [0, 1]: step index / (steps - 1), for schedules


class MethodOutput(NamedTuple):
    direction: Tensor  # (B, D): used like a gradient (x <- x - lr * direction)
    weights: Tensor  # (B, K): beta with direction = sum_i beta_i g_i (see MethodSpec.weights_note)
    state: Any  # the method's next state (a NamedTuple of (B, ...) tensors, or EMPTY)
    flags: dict[str, Tensor]  # name -> (B,) bool: which guard or solver event fired


def plain_cost(params: dict) -> float:
    """The cost of a method without an inner solver: one plain step (see ``MethodSpec.cost``)."""
    return 1.0


class Empty(NamedTuple):
    """State of a stateless method."""


EMPTY = Empty()


@dataclass(frozen=True)
class MethodSpec:
    """Declarative description of one aggregation method.

    ``needs`` is a subset of {"gram", "losses", "gradients", "random"}: what the method reads.
    ``flags`` maps every flag name the method can raise to a one-line explanation.
    ``guarantees`` names properties the shared test suite checks for this method:
    "non_conflicting" (<g_i, d> >= 0 for every i), "in_ball", "in_cone", "min_norm",
    "permutation_invariant", "norm_g0" (||d|| = ||g0||).
    ``cost(params)`` is the work of one lane-step in units of a plain step (LS = 1), inner-solver
    iterations included: ``toyopt.budget`` caps a run's work with it before the run starts.
    """

    name: str
    label: str
    paper: str
    step: Callable[..., MethodOutput]
    params: tuple[ParamSpec, ...] = ()
    needs: frozenset[str] = frozenset({"gram"})
    init: Callable[..., Any] | None = None  # init(B, K, D, params, dtype) -> state
    random: RandomNeed | None = None
    flags: dict[str, str] = field(default_factory=dict)
    guarantees: frozenset[str] = frozenset()
    weights_note: str = "direction = sum_i weights_i * g_i"
    summary: str = ""
    cost: Callable[[dict], float] = plain_cost

    @property
    def stateful(self) -> bool:
        return self.init is not None

    def param(self, name: str) -> ParamSpec:
        for p in self.params:
            if p.name == name:
                return p
        raise ValueError(
            f"unknown parameter {name!r} for method {self.name!r}; allowed: {[p.name for p in self.params]}"
        )

    def defaults(self) -> dict[str, Any]:
        return {p.name: p.default for p in self.params}

    def validate_params(self, values: dict[str, Any]) -> dict[str, Any]:
        """Defaults overlaid with ``values``, every value checked against its ParamSpec."""
        out = self.defaults()
        for key, value in values.items():
            out[key] = self.param(key).validate(value, owner=self.name)
        return out

    def init_state(self, B: int, K: int, D: int, params: dict, dtype: torch.dtype) -> Any:
        return EMPTY if self.init is None else self.init(B, K, D, params, dtype)

    def to_json(self) -> dict:
        return {
            "name": self.name,
            "label": self.label,
            "paper": self.paper,
            "summary": self.summary,
            "needs": sorted(self.needs),
            "stateful": self.stateful,
            "random": None if self.random is None else self.random.distribution,
            "params": [p.to_json() for p in self.params],
            "flags": dict(self.flags),
            "guarantees": sorted(self.guarantees),
        }
