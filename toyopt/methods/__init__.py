"""The method registry: every module in this package that defines ``SPEC`` is one method.

Adding a method means adding a module; nothing else (app, CLI, tests) changes.
"""

from __future__ import annotations

import importlib
import pkgutil

import torch

from ..validation import short_repr
from .base import EMPTY, MethodOutput, MethodSpec, ParamSpec, RandomNeed, ReferenceCase, StepInput


def _discover() -> dict[str, MethodSpec]:
    found: dict[str, MethodSpec] = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_") or info.name == "base":
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        spec = getattr(module, "SPEC", None)
        if isinstance(spec, MethodSpec):
            if spec.name in found:
                raise RuntimeError(f"two methods are registered as {spec.name!r}")
            found[spec.name] = spec
    return found


METHODS: dict[str, MethodSpec] = _discover()


def lane_params(spec: MethodSpec, values: dict, B: int, dtype: torch.dtype) -> dict:
    """Validated parameters in the form ``step`` takes: each float parameter as a (B,) tensor
    (``values[name]`` may be one number or a sequence of B numbers, one per lane); int and
    choice parameters as Python values shared by every lane."""
    out = {}
    checked = spec.validate_params({k: v for k, v in values.items() if not _is_seq(v)})
    for p in spec.params:
        value = values.get(p.name, checked[p.name])
        if p.kind != "float":
            if _is_seq(value):
                raise ValueError(f"{spec.name}.{p.name} is a {p.kind} parameter: one value for all lanes")
            out[p.name] = checked[p.name]
            continue
        seq = list(value) if _is_seq(value) else [value] * B
        if len(seq) != B:
            raise ValueError(f"{spec.name}.{p.name}: got {len(seq)} values for {B} lanes")
        out[p.name] = torch.tensor([p.validate(v, owner=spec.name) for v in seq], dtype=dtype)
    return out


def draw_random(spec: MethodSpec, B: int, K: int, D: int, generator: torch.Generator, dtype: torch.dtype):
    """The random numbers ``spec`` consumes in one step, (B, n), or None."""
    if spec.random is None:
        return None
    n = spec.random.size(K, D)
    if spec.random.distribution == "normal":
        return torch.randn((B, n), generator=generator, dtype=dtype)
    return torch.rand((B, n), generator=generator, dtype=dtype)


def step_once(
    spec: MethodSpec,
    values: dict,
    grads: torch.Tensor,
    losses: torch.Tensor | None = None,
    lower_bounds: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    state=None,
    random: torch.Tensor | None = None,
) -> MethodOutput:
    """One step of ``spec`` outside the engine: parameters ``values`` (as for ``lane_params``),
    grads (B, K, D), losses and lower bounds (B, K) or None, progress 0, from ``state`` (default
    the initial state), with ``random`` or, if the method takes random numbers, draws from
    ``generator`` (default seeded with 0). The per-point directions of the app and the figures."""
    B, K, D = grads.shape
    dtype = grads.dtype
    params = lane_params(spec, values, B, dtype)
    if random is None and spec.random is not None:
        random = draw_random(spec, B, K, D, generator or torch.Generator().manual_seed(0), dtype)
    if state is None:
        state = spec.init_state(B, K, D, params, dtype)
    return spec.step(
        StepInput(grads, losses, lower_bounds, random, torch.tensor(0.0, dtype=dtype)), state, params
    )


def _is_seq(value) -> bool:
    return isinstance(value, (list, tuple)) or (isinstance(value, torch.Tensor) and value.ndim > 0)


def get_method(name: str) -> MethodSpec:
    if not isinstance(name, str) or name not in METHODS:
        raise ValueError(f"unknown method {short_repr(name)}; allowed: {sorted(METHODS)}")
    return METHODS[name]


__all__ = [
    "EMPTY",
    "METHODS",
    "draw_random",
    "lane_params",
    "MethodOutput",
    "MethodSpec",
    "ParamSpec",
    "RandomNeed",
    "ReferenceCase",
    "StepInput",
    "get_method",
    "step_once",
]
