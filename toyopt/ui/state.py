"""The app's whole state as flat, validated values, and its URL form (``st.query_params``).

Every control of every view has one entry here: a :class:`Field` that parses and formats its URL
parameter. A link therefore reproduces a view. Parsing never raises: each invalid or out-of-range
parameter becomes one error message naming it and keeps its default, so the rest of the page works.
Work requested through a link is capped (steps, starting points, methods) below the core's own caps.

Defaults depend on the setup preset: its methods (those registered), starting points, problem
variant, noise and per-method conventions, and its published learning rate and step count.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..config import short_names, short_repr
from ..geometry import conflict_point
from ..methods import METHODS, ParamSpec
from ..outcomes import APP_MAX_GRID, APP_MAX_RANDOM
from ..problems import get_problem
from ..setups import DEFAULT_SETUP, SETUPS, get_setup
from ..validation import check_number

#: Caps on the work a link may request (the core's own caps are far higher).
URL_MAX_STEPS = 100_000
URL_MAX_POINTS = 12
URL_MAX_METHODS = 8
COORD_LIMIT = 20.0

VIEWS = {
    "landscape": "Landscape",
    "trajectories": "Trajectories",
    "regions": "Cone vs ball",
    "teaching": "Teaching",
    "basins": "Basins",
}
#: The basins view's default layout of starts: a grid side, or a number of random starts.
BASIN_GRID = 30
BASIN_RANDOM = 1000
FALLBACK_METHODS = ("ls", "mgda")


@dataclass(frozen=True)
class Field:
    """One URL parameter: kind in int | float | choice | bool | points | point | names."""

    name: str
    kind: str
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] = ()
    max_items: int = 0

    def parse(self, raw: Any) -> Any:
        text = raw[-1] if isinstance(raw, (list, tuple)) else raw
        if not isinstance(text, str):
            raise ValueError(f"{self.name}: expected text, got {short_repr(text)}")
        text = text.strip()
        if self.kind == "choice":
            if text not in self.choices:
                raise ValueError(f"{self.name} must be one of {list(self.choices)}, got {short_repr(text)}")
            return text
        if self.kind == "bool":
            if text not in ("0", "1", "true", "false"):
                raise ValueError(f"{self.name} must be 0 or 1, got {short_repr(text)}")
            return text in ("1", "true")
        if self.kind in ("int", "float"):
            return self._number(text, self.name)
        if self.kind == "names":
            names = tuple(n.strip() for n in text.split(",") if n.strip())
            unknown = [n for n in names if n not in self.choices]
            if unknown:
                raise ValueError(
                    f"{self.name}: unknown {short_names(unknown)}; allowed: {sorted(self.choices)}"
                )
            if not 1 <= len(names) <= self.max_items:
                raise ValueError(f"{self.name} must list 1 to {self.max_items} names, got {len(names)}")
            return tuple(dict.fromkeys(names))
        points = tuple(
            self._point(chunk, i) for i, chunk in enumerate(c for c in text.split(";") if c.strip())
        )
        if self.kind == "point":
            if len(points) != 1:
                raise ValueError(f"{self.name} must be one point 'x1,x2', got {short_repr(text)}")
            return points[0]
        if not 1 <= len(points) <= self.max_items:
            raise ValueError(
                f"{self.name} must hold 1 to {self.max_items} points 'x1,x2;x1,x2', got {len(points)}"
            )
        return points

    def _number(self, text: str, where: str) -> float | int:
        try:
            value: Any = float(text)
        except ValueError:
            value = text  # not a number: the validator rejects it
        return check_number(value, where, self.low, self.high, integer=self.kind == "int", written=text)

    def _point(self, chunk: str, i: int) -> tuple[float, float]:
        parts = chunk.split(",")
        if len(parts) != 2:
            raise ValueError(f"{self.name}: point {i} must be 'x1,x2', got {short_repr(chunk)}")
        coords = []
        for part in parts:
            try:
                v = float(part)
            except ValueError:
                v = math.nan
            if not (math.isfinite(v) and -COORD_LIMIT <= v <= COORD_LIMIT):
                raise ValueError(
                    f"{self.name}: point {i} needs numbers in [-{COORD_LIMIT:g}, {COORD_LIMIT:g}], "
                    f"got {short_repr(chunk)}"
                )
            coords.append(v)
        return (coords[0], coords[1])

    def format(self, value: Any) -> str:
        if self.kind == "bool":
            return "1" if value else "0"
        if self.kind == "names":
            return ",".join(value)
        if self.kind == "point":
            return f"{value[0]!r},{value[1]!r}"
        if self.kind == "points":
            return ";".join(f"{p[0]!r},{p[1]!r}" for p in value)
        return repr(value) if isinstance(value, float) else str(value)


def param_field(key: str, p: ParamSpec) -> Field:
    """The URL field of a method or problem parameter, from its ParamSpec."""
    if p.kind == "choice":
        return Field(key, "choice", choices=p.choices)
    low = -1e12 if p.low is None else p.low
    high = 1e12 if p.high is None else p.high
    return Field(key, p.kind, low=low, high=high)


def story_names() -> tuple[str, ...]:
    from .stories import STORIES

    return tuple(STORIES)


def fields() -> dict[str, Field]:
    """Every URL parameter the app understands (methods from the registry)."""
    problem = get_problem("liu2021")
    out = [
        Field("view", "choice", choices=tuple(VIEWS)),
        Field("setup", "choice", choices=tuple(SETUPS)),
        Field("methods", "names", choices=tuple(METHODS), max_items=URL_MAX_METHODS),
        Field("steps", "int", low=1, high=URL_MAX_STEPS),
        Field("lr", "float", low=1e-6, high=1.0),
        Field("optimizer", "choice", choices=("adam", "sgd")),
        Field("seed", "int", low=0, high=2**31 - 1),
        Field("noise", "float", low=0.0, high=5.0),
        Field("inits", "points", max_items=URL_MAX_POINTS),
        Field("layout", "choice", choices=("panels", "overlay")),
        Field("surface", "choice", choices=("mean", "f1", "f2")),
        Field("surface3d", "bool"),
        Field("source", "choice", choices=("point", "trajectory", "synthetic")),
        Field("point", "point"),
        Field("traj_method", "choice", choices=tuple(METHODS)),
        Field("traj_start", "int", low=0, high=URL_MAX_POINTS - 1),
        Field("at_step", "int", low=0, high=URL_MAX_STEPS),
        Field("cone_c", "float", low=-1.0, high=1.0),
        Field("ball_c", "float", low=0.0, high=2.0),
        Field("angle", "float", low=0.0, high=180.0),
        Field("g1_norm", "float", low=1e-3, high=1e3),
        Field("g2_norm", "float", low=1e-3, high=1e3),
        Field("story", "choice", choices=story_names()),
        Field("teach_step", "int", low=0, high=URL_MAX_STEPS),
        Field("basin_starts", "choice", choices=("grid", "random")),
        Field("basin_grid", "int", low=2, high=APP_MAX_GRID),
        Field("basin_random", "int", low=1, high=APP_MAX_RANDOM),
        Field("basin_sweep", "bool"),
    ]
    for p in problem.params:
        out.append(param_field(f"problem.{p.name}", p))
    for name, spec in METHODS.items():
        for p in spec.params:
            out.append(param_field(f"{name}.{p.name}", p))
    return {f.name: f for f in out}


def setup_methods(setup_name: str) -> tuple[str, ...]:
    """The setup's methods that are registered (a method module may not exist yet)."""
    found = tuple(m for m in get_setup(setup_name).methods if m in METHODS)
    return found or tuple(m for m in FALLBACK_METHODS if m in METHODS) or (next(iter(METHODS)),)


def defaults(setup_name: str = DEFAULT_SETUP) -> dict[str, Any]:
    setup = get_setup(setup_name)
    problem = get_problem("liu2021")
    methods = setup_methods(setup_name)
    out: dict[str, Any] = {
        "view": "landscape",
        "setup": setup.name,
        "methods": methods,
        "steps": setup.steps,
        "lr": setup.lr,
        "optimizer": "adam",
        "seed": 0,
        "noise": float(setup.noise),
        "inits": tuple(tuple(float(v) for v in p) for p in setup.inits[:URL_MAX_POINTS]),
        "layout": "panels",
        "surface": "mean",
        "surface3d": False,
        "source": "point",
        "point": conflict_point(problem, problem.validate_params(setup.problem_params), setup.inits),
        "traj_method": methods[0],
        "traj_start": 0,
        "at_step": 0,
        "cone_c": 0.5,
        "ball_c": 0.5,
        "angle": 120.0,
        "g1_norm": 1.0,
        "g2_norm": 1.0,
        "story": story_names()[0],
        "teach_step": 0,
        "basin_starts": "grid",
        "basin_grid": BASIN_GRID,
        "basin_random": BASIN_RANDOM,
        "basin_sweep": False,
    }
    problem_params = problem.validate_params(setup.problem_params)
    for p in problem.params:
        out[f"problem.{p.name}"] = problem_params[p.name]
    for name, spec in METHODS.items():
        entry_params = setup.entry(name).params
        for p in spec.params:
            out[f"{name}.{p.name}"] = entry_params.get(p.name, p.default)
    return out


def parse_query(query: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Values for ``query`` (defaults where a parameter is missing or invalid) and the list of
    error messages, one per rejected parameter."""
    errors: list[str] = []
    table = fields()
    setup = DEFAULT_SETUP
    if "setup" in query:
        try:
            setup = table["setup"].parse(query["setup"])
        except ValueError as exc:
            errors.append(str(exc))
    values = defaults(setup)
    accepted: list[str] = []
    for key in query:
        if key == "setup":
            continue
        field = table.get(key)
        if field is None:
            shown = key if len(key) <= 40 else key[:37] + "..."
            errors.append(f"{shown}: unknown parameter")
            continue
        try:
            values[key] = field.parse(query[key])
            accepted.append(key)
        except ValueError as exc:
            errors.append(str(exc))
    return values, errors + _link_changes(values, accepted, defaults(setup))


def _link_changes(values: dict[str, Any], accepted: list[str], base: dict[str, Any]) -> list[str]:
    """What the ``accepted`` (valid) link parameters ask that the page cannot show as asked, each
    said in words, with the value used instead set in ``values``: parameters of methods that are
    not selected (back to ``base``), a trajectory method that is not selected, a recorded step
    (at_step) beyond the run."""
    from .runs import record_every

    notes = []
    selected = values["methods"]
    for key in accepted:
        method = key.split(".", 1)[0]
        if "." in key and method in METHODS and method not in selected:
            notes.append(f"{key} is ignored: {method} is not among the selected methods")
            values[key] = base[key]
    if "traj_method" in accepted and values["traj_method"] not in selected:
        notes.append(f"traj_method {values['traj_method']} is not selected; {selected[0]} is used")
        values["traj_method"] = selected[0]
    last = (values["steps"] - 1) // record_every(values["steps"]) + 1  # the run's last recorded index
    # (teach_step counts optimizer steps of the story's own run: the Teaching view takes the nearest.)
    if "at_step" in accepted and values["at_step"] > last:
        notes.append(
            f"at_step {values['at_step']} is beyond the run's last recorded step {last}, used instead"
        )
        values["at_step"] = last
    return notes


#: Characters that start inline markdown in Streamlit: links and images ([ ] !), autolinks and
#: HTML (< >), emphasis and code (* _ ~ `), math ($), entities (&), colour and icon directives (:),
#: tables (|). Block syntax (headings, lists) needs a line start, and the escaped text has none.
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]<>!$&~:|])")


def escape_markdown(text: str) -> str:
    """``text`` shown as itself in st.error/st.warning/st.markdown: every markdown character is
    backslash-escaped and line breaks become spaces (no heading or block can start)."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", " ".join(text.split()))


def link_banner(errors: list[str]) -> str:
    """The one error banner of a link's rejected or changed parameters; the messages quote the
    link's text, so all of it is escaped."""
    return "Ignored invalid link parameters (their defaults are used instead): " + escape_markdown(
        "; ".join(errors)
    )


def encode(values: Mapping[str, Any]) -> dict[str, str]:
    """The URL parameters of ``values``: view and setup always, everything else where it differs
    from the setup's default (method parameters only for the selected methods)."""
    table = fields()
    base = defaults(values["setup"])
    selected = set(values["methods"])
    out = {"view": values["view"], "setup": values["setup"]}
    for key, field in table.items():
        if key in out or key not in values or values[key] == base.get(key):
            continue
        method = key.split(".", 1)[0]
        if "." in key and method in METHODS and method not in selected:
            continue
        out[key] = field.format(values[key])
    return out
