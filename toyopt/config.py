"""``Config``: everything needed to reproduce a run, as plain validated data.

One Config is the single source of truth: it round-trips through JSON (``to_json``/``from_json``),
URL query parameters (``to_query``/``from_query``) and CLI flags, and is embedded in every
exported figure and data file. Validation errors are ``ValueError``s that name the field and the
allowed range. Only plain data is read (JSON); nothing is evaluated or unpickled.
"""

from __future__ import annotations

import itertools
import json
import math
from dataclasses import dataclass, field, replace
from typing import Any

from .methods import get_method
from .problems import get_problem

#: Work caps: a crafted config, link or CLI call cannot ask for more than this.
MAX_STEPS = 200_000
MAX_INITS = 40_000
MAX_LANES = 200_000
MAX_METHODS = 32
MAX_GRID = 101
MAX_COORD = 1e6
MAX_JSON_BYTES = 1_000_000
DTYPES = ("float64", "float32")
BACKENDS = ("eager", "compiled")
OPTIMIZERS = ("adam", "sgd")

STANDARD5 = ((-8.5, 7.5), (0.0, 0.0), (9.0, 9.0), (-7.5, -0.5), (9.0, -1.0))
CAGRAD3 = ((-8.5, 7.5), (-8.5, -5.0), (9.0, 9.0))
INIT_PRESETS = {"standard5": STANDARD5, "cagrad3": CAGRAD3}


def _number(value: Any, where: str, low: float, high: float, integer: bool = False) -> float | int:
    kind = "an integer" if integer else "a number"
    bad = ValueError(f"{where} must be {kind} in [{low:g}, {high:g}], got {_short(value)}")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise bad
    try:
        as_float = float(value)
    except OverflowError:  # an int too large for a float
        raise bad from None
    if (
        not math.isfinite(as_float)
        or as_float < low
        or as_float > high
        or (integer and as_float != int(as_float))
    ):
        raise bad
    return int(as_float) if integer else as_float


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


@dataclass(frozen=True)
class MethodEntry:
    """One method of a run: its parameters and the framework conventions it runs under.

    A float parameter may be a list of values: the run then carries one lane per value (a grid,
    e.g. every c a slider offers). ``output_scale`` multiplies the aggregated direction (K in the
    Nash-MTL and FAMO code bases, which match the sum of the losses); ``clip_norm`` is the
    ``clip_grad_norm_`` max_norm applied to it afterwards (None: no clipping).
    """

    name: str
    params: dict = field(default_factory=dict)
    output_scale: float = 1.0
    clip_norm: float | None = None

    def validated(self, where: str) -> MethodEntry:
        spec = get_method(self.name)
        if not isinstance(self.params, dict):
            raise ValueError(f"{where}.params must be an object, got {type(self.params).__name__}")
        params = {}
        for key, value in self.params.items():
            p = spec.param(key)
            if isinstance(value, (list, tuple)):
                if p.kind != "float":
                    raise ValueError(f"{where}.params.{key}: only float parameters take a list of values")
                if not 1 <= len(value) <= MAX_GRID:
                    raise ValueError(f"{where}.params.{key}: a grid needs 1 to {MAX_GRID} values")
                params[key] = [p.validate(v, owner=f"{where}.params") for v in value]
            else:
                params[key] = p.validate(value, owner=f"{where}.params")
        scale = _number(self.output_scale, f"{where}.output_scale", 0.0, 1e6)
        clip = None if self.clip_norm is None else _number(self.clip_norm, f"{where}.clip_norm", 1e-12, 1e12)
        return MethodEntry(self.name, params, scale, clip)

    def grid(self) -> list[dict]:
        """Every parameter combination of this entry (defaults filled in), grid order."""
        spec = get_method(self.name)
        base = spec.defaults()
        base.update({k: v for k, v in self.params.items() if not isinstance(v, list)})
        axes = [(k, v) for k, v in self.params.items() if isinstance(v, list)]
        combos = []
        for values in itertools.product(*[v for _, v in axes]):
            combo = dict(base)
            combo.update(dict(zip([k for k, _ in axes], values)))
            combos.append(combo)
        return combos

    def to_dict(self) -> dict:
        out: dict[str, Any] = {"name": self.name, "params": dict(self.params)}
        if self.output_scale != 1.0:
            out["output_scale"] = self.output_scale
        if self.clip_norm is not None:
            out["clip_norm"] = self.clip_norm
        return out


@dataclass(frozen=True)
class Config:
    """A run: problem and variant, starts, methods, optimizer, steps, seed, recording."""

    methods: tuple[MethodEntry, ...] = (MethodEntry("ls"),)
    problem: str = "liu2021"
    problem_params: dict = field(default_factory=dict)
    inits: tuple[tuple[float, float], ...] = STANDARD5
    optimizer: str = "adam"
    lr: float = 1e-3
    momentum: float = 0.0
    steps: int = 35_000
    seed: int = 0
    noise: float = 0.0
    lower_bounds: tuple[float, ...] | None = None
    record_every: int = 1
    early_stop_tol: float = 0.0
    tolerance: float = 0.05
    dtype: str = "float64"
    backend: str = "eager"
    setup: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "inits", tuple(tuple(p) for p in self.inits))
        object.__setattr__(self, "methods", tuple(self.methods))
        if self.lower_bounds is not None:
            object.__setattr__(self, "lower_bounds", tuple(self.lower_bounds))

    # -- validation -------------------------------------------------------------------------
    def validated(self) -> Config:
        """This config with every field checked and normalised; raises ValueError naming the
        first bad field and its allowed range."""
        problem = get_problem(_text(self.problem, "problem"))
        if not isinstance(self.problem_params, dict):
            raise ValueError("problem_params must be an object")
        problem_params = problem.validate_params(self.problem_params)
        if not isinstance(self.inits, tuple) or not 1 <= len(self.inits) <= MAX_INITS:
            raise ValueError(f"inits must hold 1 to {MAX_INITS} points")
        inits = []
        for i, point in enumerate(self.inits):
            if len(point) != problem.dim:
                raise ValueError(f"inits[{i}] must have {problem.dim} coordinates, got {len(point)}")
            inits.append(
                tuple(_number(v, f"inits[{i}][{j}]", -MAX_COORD, MAX_COORD) for j, v in enumerate(point))
            )
        if not 1 <= len(self.methods) <= MAX_METHODS:
            raise ValueError(f"methods must list 1 to {MAX_METHODS} entries")
        methods = []
        for i, entry in enumerate(self.methods):
            if not isinstance(entry, MethodEntry):
                raise ValueError(f"methods[{i}] must be a method entry")
            methods.append(entry.validated(f"methods[{i}]({entry.name})"))
        for entry in methods:
            if entry.name == "stl" and entry.params.get("task", 0) >= problem.n_tasks:
                raise ValueError(f"stl.task must be in [0, {problem.n_tasks - 1}] for problem {problem.name}")
        lanes = sum(len(m.grid()) for m in methods) * len(inits)
        if lanes > MAX_LANES:
            raise ValueError(f"methods x grid values x inits = {lanes} lanes; the cap is {MAX_LANES}")
        optimizer = _text(self.optimizer, "optimizer")
        if optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {list(OPTIMIZERS)}, got {optimizer!r}")
        lower_bounds = None
        if self.lower_bounds is not None:
            if len(self.lower_bounds) != problem.n_tasks:
                raise ValueError(f"lower_bounds must have {problem.n_tasks} values")
            lower_bounds = tuple(
                _number(v, f"lower_bounds[{i}]", -1e12, 1e12) for i, v in enumerate(self.lower_bounds)
            )
        dtype = _text(self.dtype, "dtype")
        if dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {list(DTYPES)}, got {dtype!r}")
        backend = _text(self.backend, "backend")
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {list(BACKENDS)}, got {backend!r}")
        if self.setup is not None:
            _text(self.setup, "setup")
        return replace(
            self,
            problem=problem.name,
            problem_params=problem_params,
            inits=tuple(inits),
            methods=tuple(methods),
            optimizer=optimizer,
            lr=_number(self.lr, "lr", 1e-9, 100.0),
            momentum=_number(self.momentum, "momentum", 0.0, 0.999),
            steps=_number(self.steps, "steps", 1, MAX_STEPS, integer=True),
            seed=_number(self.seed, "seed", 0, 2**63 - 1, integer=True),
            noise=_number(self.noise, "noise", 0.0, 1e3),
            lower_bounds=lower_bounds,
            record_every=_number(self.record_every, "record_every", 1, MAX_STEPS, integer=True),
            early_stop_tol=_number(self.early_stop_tol, "early_stop_tol", 0.0, 1.0),
            tolerance=_number(self.tolerance, "tolerance", 1e-6, 0.5),
            dtype=dtype,
            backend=backend,
        )

    def resolved_lower_bounds(self) -> tuple[float, ...]:
        if self.lower_bounds is not None:
            return self.lower_bounds
        problem = get_problem(self.problem)
        return tuple(problem.default_lower_bounds(problem.validate_params(self.problem_params)))

    # -- JSON --------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {
            "problem": self.problem,
            "problem_params": dict(self.problem_params),
            "inits": [list(p) for p in self.inits],
            "methods": [m.to_dict() for m in self.methods],
            "optimizer": self.optimizer,
            "lr": self.lr,
            "momentum": self.momentum,
            "steps": self.steps,
            "seed": self.seed,
            "noise": self.noise,
            "lower_bounds": None if self.lower_bounds is None else list(self.lower_bounds),
            "record_every": self.record_every,
            "early_stop_tol": self.early_stop_tol,
            "tolerance": self.tolerance,
            "dtype": self.dtype,
            "backend": self.backend,
            "setup": self.setup,
        }

    def to_json(self, indent: int | None = None) -> str:
        return json.dumps(self.to_dict(), indent=indent, sort_keys=True)

    @classmethod
    def from_dict(cls, data: Any) -> Config:
        if not isinstance(data, dict):
            raise ValueError("config must be a JSON object")
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown config key(s) {unknown}; allowed: {sorted(known)}")
        kwargs = dict(data)
        if "methods" in kwargs:
            methods = kwargs["methods"]
            if not isinstance(methods, list):
                raise ValueError("methods must be a list of {name, params} objects")
            kwargs["methods"] = tuple(_entry_from_dict(m, i) for i, m in enumerate(methods))
        if "inits" in kwargs:
            inits = kwargs["inits"]
            if not isinstance(inits, list) or not all(isinstance(p, list) for p in inits):
                raise ValueError("inits must be a list of [x1, x2] points")
            kwargs["inits"] = tuple(tuple(p) for p in inits)
        if kwargs.get("lower_bounds") is not None:
            if not isinstance(kwargs["lower_bounds"], list):
                raise ValueError("lower_bounds must be a list of numbers or null")
            kwargs["lower_bounds"] = tuple(kwargs["lower_bounds"])
        return cls(**kwargs).validated()

    @classmethod
    def from_json(cls, text: str | bytes) -> Config:
        if len(text) > MAX_JSON_BYTES:
            raise ValueError(f"config is larger than {MAX_JSON_BYTES} bytes")
        try:
            data = json.loads(text)
        except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
            raise ValueError(f"config is not valid JSON: {exc}") from None
        return cls.from_dict(data)

    # -- URL query parameters ----------------------------------------------------------------
    def to_query(self) -> dict[str, str]:
        """Flat string parameters for a URL: only what differs from the setup's defaults."""
        q = {"problem": self.problem, "steps": str(self.steps), "lr": _fmt(self.lr)}
        if self.setup:
            q["setup"] = self.setup
        q["optimizer"] = self.optimizer
        for key, value in self.problem_params.items():
            q[f"problem.{key}"] = _fmt(value)
        q["inits"] = ";".join(",".join(_fmt(v) for v in p) for p in self.inits)
        q["methods"] = ",".join(m.name for m in self.methods)
        for m in self.methods:
            for key, value in m.params.items():
                q[f"{m.name}.{key}"] = (
                    "|".join(_fmt(v) for v in value) if isinstance(value, list) else _fmt(value)
                )
        for key in ("seed", "noise"):
            q[key] = _fmt(getattr(self, key))
        return q


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value or len(value) > 200:
        raise ValueError(f"{where} must be a non-empty string, got {value!r}")
    return value


def _fmt(value: Any) -> str:
    return repr(value) if isinstance(value, float) else str(value)


def _entry_from_dict(data: Any, i: int) -> MethodEntry:
    if isinstance(data, str):
        return MethodEntry(data)
    if not isinstance(data, dict) or not isinstance(data.get("name"), str):
        raise ValueError(f"methods[{i}] must be an object with a string 'name'")
    unknown = sorted(set(data) - {"name", "params", "output_scale", "clip_norm"})
    if unknown:
        raise ValueError(f"methods[{i}]: unknown key(s) {unknown}")
    return MethodEntry(
        data["name"], data.get("params") or {}, data.get("output_scale", 1.0), data.get("clip_norm")
    )


def parse_inits(text: str, where: str = "inits") -> tuple[tuple[float, float], ...]:
    """'x,y;x,y' or a preset name ('standard5', 'cagrad3') to a tuple of points."""
    if text in INIT_PRESETS:
        return INIT_PRESETS[text]
    points = []
    for i, chunk in enumerate(p for p in text.split(";") if p.strip()):
        parts = chunk.split(",")
        if len(parts) != 2:
            raise ValueError(f"{where}: point {i} must be 'x,y', got {chunk!r}")
        try:
            point = tuple(float(v) for v in parts)
        except ValueError:
            raise ValueError(f"{where}: point {i} must be two numbers, got {chunk!r}") from None
        for j, v in enumerate(point):
            _number(v, f"{where}[{i}][{j}]", -MAX_COORD, MAX_COORD)
        points.append(point)
    if not points:
        raise ValueError(f"{where} must name at least one point 'x,y;x,y'")
    return tuple(points)


def parse_value(text: str) -> Any:
    """A CLI/URL value: a number, a '|'-separated grid of numbers, or a string."""
    if "|" in text:
        return [parse_value(t) for t in text.split("|")]
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text
