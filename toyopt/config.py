"""``Config``: everything needed to reproduce a run, as plain validated data.

One Config is the single source of truth: it round-trips through JSON (``to_json``/``from_json``)
and is embedded in every exported figure and data file; ``to_query`` writes it as flat URL
parameters, and the CLI builds one from its flags (``toyopt.cli._common.config_from_args``).
Validation errors are ``ValueError``s that name the field and the allowed range; a bad value is
shown shortened (``short_repr``). Only plain data is read (JSON, ``loads_json``); nothing is
evaluated or unpickled.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field, replace
from typing import Any

from .methods import get_method
from .problems import get_problem
from .validation import check_choice, check_number, short_repr

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


#: Integers with more digits than this are not converted (Python's own int/str limit is 4300).
MAX_INT_DIGITS = 4300


class _LongInteger:
    """What ``loads_json`` reads for an integer literal of more than MAX_INT_DIGITS digits: not a
    number, so the field's own validation rejects it and names the field."""

    __slots__ = ("digits",)

    def __init__(self, digits: int) -> None:
        self.digits = digits

    def __repr__(self) -> str:
        return f"an integer of {self.digits} digits"


def _parse_int(text: str) -> int | _LongInteger:
    digits = len(text.lstrip("-"))
    if digits > MAX_INT_DIGITS:
        return _LongInteger(digits)
    try:
        return int(text)
    except ValueError:  # a lower limit set through sys.set_int_max_str_digits / PYTHONINTMAXSTRDIGITS
        return _LongInteger(digits)


def loads_json(text: str | bytes, what: str = "config") -> Any:
    """``json.loads`` for untrusted text: a ValueError starting with ``what`` for invalid JSON; an
    integer literal too long for Python (more than MAX_INT_DIGITS digits) is read as a placeholder
    that every field rejects by name ("steps must be an integer in [1, 200000], got an integer of
    5000 digits")."""
    try:
        return json.loads(text, parse_int=_parse_int)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise ValueError(f"{what} is not valid JSON: {exc}") from None
    except ValueError as exc:  # e.g. bytes in no JSON encoding
        raise ValueError(f"{what} is not valid JSON: {short_repr(str(exc), 80)}") from None


def short_names(keys: Any, limit: int = 5) -> str:
    """A short list of (possibly long, possibly many) keys for an error message."""
    keys = sorted(str(k) for k in keys)
    shown = ", ".join(short_repr(k) for k in keys[:limit])
    return f"[{shown}{f', ... ({len(keys)} in all)' if len(keys) > limit else ''}]"


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

    def validated(self, where: str, n_tasks: int | None = None) -> MethodEntry:
        """This entry checked (parameters for a problem with ``n_tasks`` tasks, when given)."""
        spec = get_method(self.name)
        if not isinstance(self.params, dict):
            raise ValueError(f"{where}.params must be an object, got {_json_type(self.params)}")
        params = {}
        for key, value in self.params.items():
            p = spec.param(key)
            if isinstance(value, (list, tuple)):
                if p.kind != "float":
                    raise ValueError(f"{where}.params.{key}: only float parameters take a list of values")
                if not 1 <= len(value) <= MAX_GRID:
                    raise ValueError(f"{where}.params.{key}: a grid needs 1 to {MAX_GRID} values")
                params[key] = [p.validate(v, f"{where}.params", n_tasks) for v in value]
            else:
                params[key] = p.validate(value, f"{where}.params", n_tasks)
        scale = check_number(self.output_scale, f"{where}.output_scale", 0.0, 1e6)
        clip = self.clip_norm
        if clip is not None:
            clip = check_number(clip, f"{where}.clip_norm", 1e-12, 1e12)
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
            raise ValueError(f"problem_params must be an object, got {_json_type(self.problem_params)}")
        problem_params = problem.validate_params(self.problem_params)
        if not isinstance(self.inits, tuple) or not 1 <= len(self.inits) <= MAX_INITS:
            raise ValueError(f"inits must hold 1 to {MAX_INITS} points")
        inits = []
        for i, point in enumerate(self.inits):
            if len(point) != problem.dim:
                raise ValueError(f"inits[{i}] must have {problem.dim} coordinates, got {len(point)}")
            inits.append(
                tuple(check_number(v, f"inits[{i}][{j}]", -MAX_COORD, MAX_COORD) for j, v in enumerate(point))
            )
        if not 1 <= len(self.methods) <= MAX_METHODS:
            raise ValueError(f"methods must list 1 to {MAX_METHODS} entries")
        methods = []
        for i, entry in enumerate(self.methods):
            if not isinstance(entry, MethodEntry):
                raise ValueError(f"methods[{i}] must be a method entry")
            methods.append(entry.validated(f"methods[{i}]({entry.name})", problem.n_tasks))
        lanes = sum(len(m.grid()) for m in methods) * len(inits)
        if lanes > MAX_LANES:
            raise ValueError(f"methods x grid values x inits = {lanes} lanes; the cap is {MAX_LANES}")
        optimizer = check_choice(_text(self.optimizer, "optimizer"), "optimizer", OPTIMIZERS)
        lower_bounds = None
        if self.lower_bounds is not None:
            if len(self.lower_bounds) != problem.n_tasks:
                raise ValueError(f"lower_bounds must have {problem.n_tasks} values")
            lower_bounds = tuple(
                check_number(v, f"lower_bounds[{i}]", -1e12, 1e12) for i, v in enumerate(self.lower_bounds)
            )
        dtype = check_choice(_text(self.dtype, "dtype"), "dtype", DTYPES)
        backend = check_choice(_text(self.backend, "backend"), "backend", BACKENDS)
        if self.setup is not None:
            _text(self.setup, "setup")
        return replace(
            self,
            problem=problem.name,
            problem_params=problem_params,
            inits=tuple(inits),
            methods=tuple(methods),
            optimizer=optimizer,
            lr=check_number(self.lr, "lr", 1e-9, 100.0),
            momentum=check_number(self.momentum, "momentum", 0.0, 0.999),
            steps=check_number(self.steps, "steps", 1, MAX_STEPS, integer=True),
            seed=check_number(self.seed, "seed", 0, 2**63 - 1, integer=True),
            noise=check_number(self.noise, "noise", 0.0, 1e3),
            lower_bounds=lower_bounds,
            record_every=check_number(self.record_every, "record_every", 1, MAX_STEPS, integer=True),
            early_stop_tol=check_number(self.early_stop_tol, "early_stop_tol", 0.0, 1.0),
            tolerance=check_number(self.tolerance, "tolerance", 1e-6, 0.5),
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
            raise ValueError(f"unknown config key(s) {short_names(unknown)}; allowed: {sorted(known)}")
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
        return cls.from_dict(loads_json(text, "config"))

    # -- URL query parameters ----------------------------------------------------------------
    def to_query(self) -> dict[str, str]:
        """Flat string parameters for a URL, only what differs from ``Config()``'s defaults (a
        method's parameters: from its ParamSpec defaults; the method list is always written). An
        absent key means that default."""
        default = Config()
        q = {"methods": ",".join(m.name for m in self.methods)}
        for key in ("setup", "problem", "optimizer", "steps", "lr", "seed", "noise"):
            value = getattr(self, key)
            if value != getattr(default, key):
                q[key] = _fmt(value)
        problem_defaults = {p.name: p.default for p in get_problem(self.problem).params}
        for key, value in self.problem_params.items():
            if value != problem_defaults.get(key):
                q[f"problem.{key}"] = _fmt(value)
        if self.inits != default.inits:
            q["inits"] = ";".join(",".join(_fmt(v) for v in p) for p in self.inits)
        for m in self.methods:
            defaults = get_method(m.name).defaults()
            for key, value in m.params.items():
                if isinstance(value, list):
                    q[f"{m.name}.{key}"] = "|".join(_fmt(v) for v in value)
                elif value != defaults[key]:
                    q[f"{m.name}.{key}"] = _fmt(value)
        return q


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value or len(value) > 200:
        raise ValueError(
            f"{where} must be a non-empty string of at most 200 characters, got {short_repr(value)}"
        )
    return value


def _json_type(value: Any) -> str:
    """The JSON name of ``value``'s type, for messages ("got an array")."""
    names = {type(None): "null", bool: "a boolean", str: "a string", list: "an array", tuple: "an array"}
    if type(value) in names:
        return names[type(value)]
    return "a number" if isinstance(value, (int, float)) else type(value).__name__


def _fmt(value: Any) -> str:
    return repr(value) if isinstance(value, float) else str(value)


def _entry_from_dict(data: Any, i: int) -> MethodEntry:
    if isinstance(data, str):
        return MethodEntry(data)
    if not isinstance(data, dict) or not isinstance(data.get("name"), str):
        raise ValueError(f"methods[{i}] must be an object with a string 'name'")
    unknown = sorted(set(data) - {"name", "params", "output_scale", "clip_norm"})
    if unknown:
        raise ValueError(f"methods[{i}]: unknown key(s) {short_names(unknown)}")
    # "params" absent means {}; anything but an object ([], 0, "", null) is rejected in validated().
    return MethodEntry(
        data["name"], data.get("params", {}), data.get("output_scale", 1.0), data.get("clip_norm")
    )


def parse_inits(text: str, where: str = "inits") -> tuple[tuple[float, float], ...]:
    """'x,y;x,y' or a preset name ('standard5', 'cagrad3') to a tuple of points."""
    if text in INIT_PRESETS:
        return INIT_PRESETS[text]
    points = []
    for i, chunk in enumerate(p for p in text.split(";") if p.strip()):
        parts = chunk.split(",")
        if len(parts) != 2:
            raise ValueError(f"{where}: point {i} must be 'x,y', got {short_repr(chunk)}")
        try:
            point = tuple(float(v) for v in parts)
        except ValueError:
            raise ValueError(f"{where}: point {i} must be two numbers, got {short_repr(chunk)}") from None
        for j, v in enumerate(point):
            check_number(v, f"{where}[{i}][{j}]", -MAX_COORD, MAX_COORD)
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
