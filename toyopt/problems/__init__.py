"""The problem registry: each module here that defines ``SPEC`` is one problem."""

from __future__ import annotations

import importlib
import pkgutil

from ..validation import short_repr
from .base import ProblemSpec


def _discover() -> dict[str, ProblemSpec]:
    found: dict[str, ProblemSpec] = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_") or info.name == "base":
            continue
        spec = getattr(importlib.import_module(f"{__name__}.{info.name}"), "SPEC", None)
        if isinstance(spec, ProblemSpec):
            found[spec.name] = spec
    return found


PROBLEMS: dict[str, ProblemSpec] = _discover()


def get_problem(name: str) -> ProblemSpec:
    if not isinstance(name, str) or name not in PROBLEMS:
        raise ValueError(f"unknown problem {short_repr(name)}; allowed: {sorted(PROBLEMS)}")
    return PROBLEMS[name]


__all__ = ["PROBLEMS", "ProblemSpec", "get_problem"]
