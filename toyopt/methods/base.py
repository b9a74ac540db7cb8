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

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import torch

from ..validation import check_choice, check_number, range_text, short_repr

Tensor = torch.Tensor

#: Numerical guard used where the spec says epsilon without a value.
EPS = 1e-8

#: The values a basin-map sweep runs for a trade-off parameter in [0, 1] (``ParamSpec.sweep``).
UNIT_SWEEP = tuple(round(0.05 * k, 2) for k in range(1, 20))


@dataclass(frozen=True)
class ParamSpec:
    """One tunable parameter of a method (or problem) with its allowed range.

    ``kind`` is ``"float"``, ``"int"`` or ``"choice"``. ``low``/``high`` are inclusive bounds for
    numbers; ``choices`` lists the allowed strings. ``high_for_tasks(K)``, when given, tightens the
    upper bound for a problem with K tasks (e.g. a task index < K); ``high`` then bounds every K.
    ``sweep`` marks the method's trade-off parameter (float only): the values a basin-map sweep
    runs, and the app's slider carries a whole grid of it in one run. ``unverified`` marks a value
    or option that our specification reconstructs rather than reads in the paper (shown as [U]).
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
    sweep: tuple[float, ...] = ()
    high_for_tasks: Callable[[int], float] | None = None

    def __post_init__(self) -> None:
        if self.kind not in ("float", "int", "choice"):
            raise ValueError(f"ParamSpec {self.name}: kind must be float, int or choice")
        if self.sweep and self.kind != "float":
            raise ValueError(f"ParamSpec {self.name}: only a float parameter can be swept")
        self.validate(self.default, owner="default")
        for value in self.sweep:
            self.validate(value, owner="sweep")

    def upper(self, n_tasks: int | None = None) -> float | None:
        """The upper bound for a problem with ``n_tasks`` tasks (None: the bound for every K)."""
        if n_tasks is None or self.high_for_tasks is None:
            return self.high
        bound = self.high_for_tasks(n_tasks)
        return bound if self.high is None else min(self.high, bound)

    def validate(self, value: Any, owner: str = "", n_tasks: int | None = None) -> Any:
        """Return ``value`` converted to this parameter's type, or raise a ValueError that
        names the field and the allowed range (for ``n_tasks`` tasks, when given)."""
        where = f"{owner}.{self.name}" if owner else self.name
        if self.kind == "choice":
            return check_choice(value, where, self.choices)
        return check_number(value, where, self.low, self.upper(n_tasks), integer=self.kind == "int")

    def range_text(self, n_tasks: int | None = None) -> str:
        if self.kind == "choice":
            return "{" + ", ".join(self.choices) + "}"
        return range_text(self.low, self.upper(n_tasks), integer=self.kind == "int")

    def to_json(self) -> dict:
        out = {"name": self.name, "kind": self.kind, "default": self.default, "help": self.help}
        if self.kind == "choice":
            out["choices"] = list(self.choices)
        else:
            out.update(low=self.low, high=self.high, step=self.step)
        if self.unverified:
            out["unverified"] = True
        if self.sweep:
            out["sweep"] = list(self.sweep)
        if self.high_for_tasks is not None:
            out["high_for_tasks"] = {str(K): self.upper(K) for K in (2, 3, 4)}
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
    weights: Tensor  # (B, K): beta with direction = sum_i beta_i g_i (see MethodSpec.weights_exact)
    state: Any  # the method's next state (a NamedTuple of (B, ...) tensors, or EMPTY)
    flags: dict[str, Tensor]  # name -> (B,) bool: which guard or solver event fired


def plain_cost(params: dict) -> float:
    """The cost of a method without an inner solver: one plain step (see ``MethodSpec.cost``)."""
    return 1.0


@dataclass(frozen=True)
class ReferenceCase:
    """A worked example of a method: from given inputs, the direction and weights it must return,
    derived independently of its code (a closed form, a brute-force search, or the reference
    implementation's algorithm). ``derivation`` says how; tests/methods/independent.py recomputes
    each built-in method's cases that way, and the shared suite checks ``step`` against them.

    ``grads`` (K rows of D numbers) are the gradients at every step. The method runs ``steps`` steps
    from its initial state and the expected values are the last step's; ``losses`` holds one loss
    vector per step (empty for methods that never read losses), ``lower_bounds`` one vector for all
    steps, ``random`` the numbers the engine would draw (the same at every step). ``tolerance`` is
    the largest absolute error allowed on any entry of the direction and of the weights.
    """

    grads: tuple[tuple[float, ...], ...]
    direction: tuple[float, ...]
    weights: tuple[float, ...]
    derivation: str
    params: dict[str, Any] = field(default_factory=dict)
    steps: int = 1
    losses: tuple[tuple[float, ...], ...] = ()
    lower_bounds: tuple[float, ...] | None = None
    random: tuple[float, ...] | None = None
    tolerance: float = 1e-12

    def __post_init__(self) -> None:
        K, D = len(self.grads), len(self.grads[0])
        if len(self.direction) != D or len(self.weights) != K or not self.derivation:
            raise ValueError("ReferenceCase: direction needs D entries, weights K, and a derivation")
        if self.losses and (len(self.losses) != self.steps or self.lower_bounds is None):
            raise ValueError("ReferenceCase: losses needs one vector per step and lower_bounds")

    def to_json(self) -> dict:
        return {
            "grads": [list(g) for g in self.grads],
            "params": dict(self.params),
            "steps": self.steps,
            "losses": [list(loss) for loss in self.losses],
            "lower_bounds": None if self.lower_bounds is None else list(self.lower_bounds),
            "random": None if self.random is None else list(self.random),
            "direction": list(self.direction),
            "weights": list(self.weights),
            "tolerance": self.tolerance,
            "derivation": self.derivation,
        }


class Empty(NamedTuple):
    """State of a stateless method."""


EMPTY = Empty()


@dataclass(frozen=True)
class MethodSpec:
    """Declarative description of one aggregation method.

    ``reads_losses``: the step reads ``inp.losses`` and ``inp.lower_bounds`` (the others get None
    from the shared suite, which also checks that a declared reader's output depends on them).
    ``weights_exact``: direction = sum_i weights_i g_i on every lane (to rounding); when False,
    ``weights_note`` says what the weights are instead.
    ``flags`` maps every flag name the method can raise to a one-line explanation.
    ``guarantees`` names properties the shared test suite checks for this method:
    "non_conflicting" (<g_i, d> >= 0 for every i), "in_ball", "in_cone", "min_norm",
    "permutation_invariant", "norm_g0" (||d|| = ||g0||).
    ``cost(params)`` is the work of one lane-step in units of a plain step (LS = 1), inner-solver
    iterations included: ``toyopt.budget`` caps a run's work with it before the run starts.
    ``references`` are the method's worked examples (at least one; see :class:`ReferenceCase`).
    """

    name: str
    label: str
    paper: str
    step: Callable[..., MethodOutput]
    params: tuple[ParamSpec, ...] = ()
    reads_losses: bool = False
    init: Callable[..., Any] | None = None  # init(B, K, D, params, dtype) -> state
    random: RandomNeed | None = None
    flags: dict[str, str] = field(default_factory=dict)
    guarantees: frozenset[str] = frozenset()
    weights_exact: bool = True
    weights_note: str = ""
    summary: str = ""
    cost: Callable[[dict], float] = plain_cost
    references: tuple[ReferenceCase, ...] = ()

    def __post_init__(self) -> None:
        if not self.weights_exact and not self.weights_note:
            raise ValueError(f"method {self.name}: weights_exact=False needs a weights_note")
        for case in self.references:
            self.validate_params(case.params, n_tasks=len(case.grads))

    @property
    def stateful(self) -> bool:
        return self.init is not None

    def param(self, name: str) -> ParamSpec:
        for p in self.params:
            if p.name == name:
                return p
        allowed = [p.name for p in self.params]
        raise ValueError(f"unknown parameter {short_repr(name)} for method {self.name!r}; allowed: {allowed}")

    def defaults(self) -> dict[str, Any]:
        return {p.name: p.default for p in self.params}

    def validate_params(self, values: dict[str, Any], n_tasks: int | None = None) -> dict[str, Any]:
        """Defaults overlaid with ``values``, every value checked against its ParamSpec (for a
        problem with ``n_tasks`` tasks, when given)."""
        out = self.defaults()
        for key, value in values.items():
            out[key] = self.param(key).validate(value, owner=self.name, n_tasks=n_tasks)
        return out

    def swept(self) -> ParamSpec | None:
        """The parameter a sweep or the app's slider grid runs (``ParamSpec.sweep``), if any."""
        return next((p for p in self.params if p.sweep), None)

    def init_state(self, B: int, K: int, D: int, params: dict, dtype: torch.dtype) -> Any:
        return EMPTY if self.init is None else self.init(B, K, D, params, dtype)

    def to_json(self) -> dict:
        return {
            "name": self.name,
            "label": self.label,
            "paper": self.paper,
            "summary": self.summary,
            "reads_losses": self.reads_losses,
            "weights_exact": self.weights_exact,
            "weights_note": self.weights_note,
            "stateful": self.stateful,
            "random": None if self.random is None else self.random.distribution,
            "params": [p.to_json() for p in self.params],
            "flags": dict(self.flags),
            "guarantees": sorted(self.guarantees),
            "references": [case.to_json() for case in self.references],
        }
