"""The problem registry: each module here that defines ``SPEC`` is one problem."""

from __future__ import annotations

import importlib
import pkgutil

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
    try:
        return PROBLEMS[name]
    except KeyError:
        raise ValueError(f"unknown problem {name!r}; allowed: {sorted(PROBLEMS)}") from None


__all__ = ["PROBLEMS", "ProblemSpec", "get_problem"]
