"""From the app's values to one cached engine run, and from a Result back to what a view shows.

One run carries every lane a view may show next: all selected methods, all starting points and,
for every method with a float parameter named ``c`` (ConicGrad, CAGrad, ...), the whole grid of c
values its slider offers. The slider then only picks lanes of the cached Result (the cache key, the
config's JSON, does not change), so moving it needs no engine call.

Also here: a method's update at a single point (``methods.step_once``), for the
feasible-regions view.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import streamlit as st
import torch
from streamlit.runtime.scriptrunner_utils.exceptions import StopException

from .. import budget
from ..compiled import compiler_missing, missing
from ..config import MAX_GRID, Config
from ..engine import Result, Series, run
from ..methods import METHODS, ParamSpec, step_once
from ..problems import get_problem
from ..setups import get_setup
from . import cache

#: At most this many grid values per slider (the core allows MAX_GRID).
GRID_VALUES = min(21, MAX_GRID)
#: Recorded states per lane (record_every is chosen to stay near this).
RECORD_TARGET = 500
PROGRESS_CHUNK = 128
#: Estimated seconds between two progress callbacks (where a closed session stops the run).
PROGRESS_SECONDS = 0.5
#: Runs estimated longer than this (``toyopt.budget.estimated_seconds``) wait for a click.
SLOW_SECONDS = 15.0


def grid_spec(method: str) -> ParamSpec | None:
    """The float parameter of ``method`` that the app runs as a whole grid (its swept one), if any."""
    p = METHODS[method].swept()
    return p if p is not None and p.low is not None and p.high is not None else None


def grid_values(p: ParamSpec, include: tuple[float, ...] = ()) -> list[float]:
    """The slider's values: from low over a span of max(1, 4 |default|) (at most to high), by the
    spec's step coarsened to at most GRID_VALUES values, plus the values in ``include`` (the
    setup's) that lie in [low, high] and off that lattice."""
    top = min(p.high, p.low + max(1.0, 4 * abs(p.default)))
    span = top - p.low
    step = p.step if p.step else span / (GRID_VALUES - 1)
    count = int(math.floor(span / step + 1e-9)) + 1
    if count > GRID_VALUES:
        step *= math.ceil((count - 1) / (GRID_VALUES - 1))
        count = int(math.floor(span / step + 1e-9)) + 1
    values = [round(p.low + i * step, 10) for i in range(count)]
    for v in include:
        if all(abs(v - w) > 1e-9 for w in values) and p.low <= v <= p.high:
            values.append(float(v))
    return sorted(values)


def slider_grid(setup_name: str, method: str) -> list[float]:
    """The grid a method's slider offers and its run carries: the lattice plus the setup's value."""
    p = grid_spec(method)
    return grid_values(p, (get_setup(setup_name).entry(method).params.get(p.name, p.default),))


def nearest_index(values: list[float], value: float) -> int:
    return int(np.argmin([abs(v - value) for v in values]))


def record_every(steps: int) -> int:
    return max(1, math.ceil(steps / RECORD_TARGET))


def build_config(values: dict[str, Any], grids: bool = True) -> Config:
    """The one Config behind every view: the selected methods with their slider grids (or, with
    ``grids=False``, at their chosen values only)."""
    setup = get_setup(values["setup"])
    problem = get_problem("liu2021")
    params: dict[str, dict] = {}
    for name in values["methods"]:
        spec = METHODS[name]
        chosen = {p.name: values[f"{name}.{p.name}"] for p in spec.params}
        gp = grid_spec(name)
        if gp is not None and grids:
            chosen[gp.name] = slider_grid(values["setup"], name)
        params[name] = chosen
    return setup.config(
        methods=list(values["methods"]),
        params=params,
        problem_params={p.name: values[f"problem.{p.name}"] for p in problem.params},
        inits=tuple(values["inits"]),
        optimizer=values["optimizer"],
        lr=values["lr"],
        steps=values["steps"],
        seed=values["seed"],
        noise=values["noise"],
        record_every=record_every(values["steps"]),
    )


def _progress_text(config: Config) -> str:
    lanes = sum(len(m.grid()) for m in config.methods) * len(config.inits)
    return f"Running {len(config.methods)} method(s), {lanes} lanes, {config.steps} steps"


def progress_chunk(config: Config) -> int:
    """Steps per engine chunk: about PROGRESS_SECONDS of estimated work (at most PROGRESS_CHUNK),
    so the progress callback, where a closed session stops the run, comes often."""
    per_step = budget.estimated_seconds(config) / config.steps
    return max(1, min(PROGRESS_CHUNK, int(PROGRESS_SECONDS / max(per_step, 1e-12))))


def progress_reporter(bar, text: str):
    """The engine's progress callback: stops the run (StopException, Streamlit's own way of
    ending a script run) when the session has gone, else moves the bar every 4 %."""
    shown = [0.0]

    def report(fraction: float) -> None:
        if not cache.session_active():
            raise StopException()
        if fraction - shown[0] >= 0.04 or fraction >= 1.0:
            shown[0] = fraction
            bar.progress(min(fraction, 1.0), text=text)

    return report


def cached_run(config_json: str) -> Result:
    """engine.run for one config, kept in the app's shared cache (``cache.cached``) by its JSON:
    every session gets the same Result, its arrays read-only. The progress bar's slot is made on
    every call (a cached call leaves it empty). Short chunks keep the bar moving, let a widget
    change interrupt a long run quickly and stop it when the session goes away."""
    return _shared_run(config_json, st.empty())


@cache.cached("run")
def _shared_run(config_json: str, _slot) -> Result:
    config = Config.from_json(config_json)
    text = _progress_text(config)
    bar = _slot.progress(0.0, text=text)
    result = run(config, progress=progress_reporter(bar, text), chunk=progress_chunk(config))
    _slot.empty()
    return result


def get_result(values: dict[str, Any], grids: bool = True) -> Result | None:
    """The run for ``values`` (through ``gated_run``)."""
    return gated_run(build_config(values, grids))


def gated_run(config: Config) -> Result | None:
    """The cached run of ``config``, every view's one way to the engine: a run above the work or
    memory caps (``toyopt.budget``) is refused with an error, and one estimated above SLOW_SECONDS
    waits for a click: None meanwhile. It runs compiled where it can (``choose_backend``), and
    says so where it cannot."""
    try:
        budget.check(config)
    except ValueError as exc:
        st.error(f"This run is too large: {exc}", icon=None)
        return None
    config, notice = choose_backend(config)
    if notice:
        st.info(notice, icon=None)
    config_json = config.to_json()
    approved = st.session_state.setdefault("approved_runs", set())
    if config_json not in approved:
        seconds = budget.estimated_seconds(config)
        if seconds > SLOW_SECONDS:
            gate = st.empty()  # emptied once approved: the warning must not stay above the plots
            with gate.container():
                lanes = sum(len(m.grid()) for m in config.methods) * len(config.inits)
                st.warning(
                    f"This run would take roughly {seconds:.0f} s ({config.steps} steps of "
                    f"{', '.join(METHODS[m.name].label for m in config.methods)}, {lanes} lanes). Lower "
                    "the steps in the sidebar, or run it anyway."
                )
                if not st.button(f"Run anyway (~{seconds:.0f} s)", key=f"approve_{hash(config_json)}"):
                    return None
            gate.empty()
        approved.add(config_json)
    return cached_run(config_json)


def choose_backend(config: Config) -> tuple[Config, str | None]:
    """``config`` on the compiled backend when it is the faster one (``budget.faster_backend``: a
    basin map's many lanes run faster eagerly) and every method's compiled step is ready in this
    process (``toyopt.compiled.missing``; the server's warm-up fills the cache), else on the eager
    one, with the notice the page shows when compiled would have been faster."""
    if budget.faster_backend(config) == "eager":
        return replace(config, backend="eager"), None
    reason = compiler_missing()
    if reason:
        return replace(config, backend="eager"), "No C++ compiler found: runs eager (slower)."
    not_ready = missing(config)
    if not_ready:
        labels = ", ".join(METHODS[name].label for name in not_ready)
        notice = f"Compiled step of {labels} not ready (warming up): runs eager."
        return replace(config, backend="eager"), notice
    return replace(config, backend="compiled"), None


def shown_series(result: Result, values: dict[str, Any]) -> list[Series]:
    """Per method entry, the series (``Result.series``) at the currently selected slider value."""
    out = []
    for s in result.series():
        entry = result.config.methods[s.entry]
        gp = grid_spec(entry.name)
        gi = 0
        if gp is not None and isinstance(entry.params.get(gp.name), list):
            gi = nearest_index(entry.params[gp.name], values[f"{entry.name}.{gp.name}"])
        if s.grid_index == gi:
            out.append(s)
    return out


# -- a method's update at one point ------------------------------------------------------------


@dataclass(frozen=True)
class PointUpdate:
    method: str
    direction: np.ndarray  # (D,)
    weights: np.ndarray  # (K,)
    flags: tuple[str, ...]  # flags that fired


def method_update(
    method: str, params: dict, grads: np.ndarray, losses: np.ndarray, lower: np.ndarray, seed: int = 0
) -> PointUpdate:
    """The update d of ``method`` at one point with task gradients ``grads`` (K, D): the method's
    own step (before a framework's output scale or clipping), from a fresh state, with random draws
    (if the method takes any) from a generator seeded with ``seed``."""
    out = step_once(
        METHODS[method],
        params,
        torch.as_tensor(np.asarray(grads, dtype=np.float64))[None],
        torch.as_tensor(np.asarray(losses, dtype=np.float64))[None],
        torch.as_tensor(np.asarray(lower, dtype=np.float64))[None],
        torch.Generator().manual_seed(seed),
    )
    fired = tuple(name for name, f in out.flags.items() if bool(f[0]))
    return PointUpdate(method, out.direction[0].numpy(), out.weights[0].numpy(), fired)


def toy_point(values: dict[str, Any], x: tuple[float, float]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Losses (K,), gradients (K, D) and lower bounds (K,) of the toy at x."""
    problem = get_problem("liu2021")
    params = problem.validate_params({p.name: values[f"problem.{p.name}"] for p in problem.params})
    losses, grads = problem.losses_and_grads(torch.tensor([x], dtype=torch.float64), params)
    lower = np.asarray(problem.default_lower_bounds(params), dtype=np.float64)
    return losses[0].numpy(), grads[0].numpy(), lower


def synthetic_gradients(angle_deg: float, norm1: float, norm2: float) -> np.ndarray:
    """g1 and g2 symmetric about the vertical axis with the given angle between them, (2, 2)."""
    half = math.radians(angle_deg) / 2
    up = math.pi / 2
    return np.array(
        [
            [norm1 * math.cos(up + half), norm1 * math.sin(up + half)],
            [norm2 * math.cos(up - half), norm2 * math.sin(up - half)],
        ]
    )
