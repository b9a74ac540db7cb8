"""Streamlit view: basin-of-attraction maps (small multiples per method, or per c of a sweep), the
success table, the stalled regions, and the trajectory of a clicked start.

``basins_view()`` draws the whole page; the app wires it into its navigation. Runs are cached
(per process, the last CACHE_SIZE runs) by their Config and starts; the grid size, the number of
random starts, the step count and the number of lanes reachable from the page or the URL are
capped (``toyopt.outcomes.APP_MAX_*``). URL parameters (all optional): ``basins.setup``,
``basins.methods`` (comma list), ``basins.grid`` or ``basins.random`` (+ ``basins.seed``),
``basins.steps``, ``basins.sweep`` (1: sweep c); an invalid one keeps its default and is listed
in an error (``request_from_query``). A Run estimated above SLOW_SECONDS waits for "Run anyway".
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass, replace

import numpy as np

from .. import budget
from ..config import Config, short_names, short_repr
from ..engine import Result, run
from ..methods import METHODS
from ..outcomes import (
    APP_MAX_GRID,
    APP_MAX_LANES,
    APP_MAX_RANDOM,
    APP_MAX_STEPS,
    C_SWEEP,
    CATEGORIES,
    CATEGORY_HELP,
    Outcomes,
    Starts,
    basin_config,
    outcomes_csv,
    outcomes_json,
    run_basins,
    success_table,
    with_param_sweep,
)
from ..problems import get_problem
from ..setups import DEFAULT_SETUP, SETUPS, get_setup
from . import runs
from .state import BASINS_PREFIX, escape_markdown

CACHE_SIZE = 6
TRAJECTORY_POINTS = 1500
#: The page's default grid side (the core's is 100): 40^2 starts run in about a minute.
DEFAULT_GRID = 40
DEFAULT_RANDOM = 1000
#: A Run estimated longer than this waits for a second click ("Run anyway").
SLOW_SECONDS = 30.0


@dataclass(frozen=True)
class BasinRequest:
    """What the page asks for, as plain values (from the widgets or the URL)."""

    setup: str = DEFAULT_SETUP
    methods: tuple[str, ...] = ()
    kind: str = "grid"
    n: int = DEFAULT_GRID
    seed: int = 0
    steps: int | None = None
    sweep_c: bool = False

    def validated(self) -> BasinRequest:
        setup = get_setup(self.setup)
        methods = tuple(self.methods) or tuple(m for m in setup.methods if m in METHODS)
        unknown = [m for m in methods if m not in METHODS]
        if unknown:
            raise ValueError(f"unknown method(s) {unknown}; allowed: {sorted(METHODS)}")
        if self.kind not in ("grid", "random"):
            raise ValueError("starts must be 'grid' or 'random'")
        cap = APP_MAX_GRID if self.kind == "grid" else APP_MAX_RANDOM
        if not (2 if self.kind == "grid" else 1) <= self.n <= cap:
            raise ValueError(
                f"the {'grid side' if self.kind == 'grid' else 'number of starts'} is capped at {cap}"
            )
        steps = setup.steps if self.steps is None else self.steps
        if not 1 <= steps <= APP_MAX_STEPS:
            raise ValueError(f"steps must be in [1, {APP_MAX_STEPS}]")
        return replace(self, methods=methods, steps=steps)

    def build(self) -> tuple[Config, Starts]:
        """The basin Config and starts; raises ValueError above the page's lane cap."""
        req = self.validated()
        setup = get_setup(req.setup)
        config = setup.config(list(req.methods), steps=req.steps, seed=req.seed, inits=((0.0, 0.0),))
        if req.sweep_c:
            config = with_param_sweep(config, "c", C_SWEEP)
        box = tuple(tuple(r) for r in get_problem(config.problem).box)
        starts = Starts(req.kind, req.n, box, req.seed).validated(APP_MAX_GRID, APP_MAX_RANDOM)
        lanes = starts.count * sum(len(m.grid()) for m in config.methods)
        if lanes > APP_MAX_LANES:
            raise ValueError(
                f"{lanes} lanes (starts x methods x swept values); the page runs at most {APP_MAX_LANES}: "
                "use a smaller grid, fewer methods or the CLI"
            )
        config = basin_config(config, starts)
        budget.check(config)
        return config, starts

    def to_query(self) -> dict[str, str]:
        q = {
            "basins.setup": self.setup,
            "basins.methods": ",".join(self.methods),
            "basins.seed": str(self.seed),
        }
        q["basins.grid" if self.kind == "grid" else "basins.random"] = str(self.n)
        if self.steps is not None:
            q["basins.steps"] = str(self.steps)
        if self.sweep_c:
            q["basins.sweep"] = "1"
        return q


#: The basins.* URL parameters request_from_query understands.
QUERY_KEYS = (
    "basins.setup",
    "basins.methods",
    "basins.grid",
    "basins.random",
    "basins.seed",
    "basins.steps",
    "basins.sweep",
)
MAX_SEED = 2**31 - 1


def request_from_query(query) -> tuple[BasinRequest, list[str]]:
    """A request from URL parameters, and the list of problems found: every malformed or
    out-of-range parameter (and every unknown ``basins.*`` one) keeps its default and gives one
    message naming it and its allowed values, so a link never fails to open the page. Other
    parameters (the rest of the app's) are ignored."""
    errors: list[str] = []

    def text(key: str) -> str:
        raw = query[key]
        raw = raw[-1] if isinstance(raw, (list, tuple)) and raw else raw
        return raw.strip() if isinstance(raw, str) else repr(raw)

    def integer(key: str, low: int, high: int, default):
        if key not in query:
            return default
        raw = text(key)
        if raw.isascii() and raw.isdigit() and len(raw) <= 19 and low <= int(raw) <= high:
            return int(raw)
        errors.append(f"{key} must be an integer in [{low}, {high}], got {short_repr(raw)}")
        return default

    for key in query:
        if isinstance(key, str) and key.startswith(BASINS_PREFIX) and key not in QUERY_KEYS:
            errors.append(f"{key if len(key) <= 40 else key[:37] + '...'}: unknown parameter")
    setup = DEFAULT_SETUP
    if "basins.setup" in query:
        if text("basins.setup") in SETUPS:
            setup = text("basins.setup")
        else:
            errors.append(
                f"basins.setup must be one of {sorted(SETUPS)}, got {short_repr(text('basins.setup'))}"
            )
    methods: tuple[str, ...] = ()
    if "basins.methods" in query:
        names = tuple(dict.fromkeys(n.strip() for n in text("basins.methods").split(",") if n.strip()))
        unknown = [n for n in names if n not in METHODS]
        if unknown:
            errors.append(f"basins.methods: unknown {short_names(unknown)}; allowed: {sorted(METHODS)}")
        else:
            methods = names  # empty: the setup's methods
    kind = "random" if "basins.random" in query and "basins.grid" not in query else "grid"
    if "basins.random" in query and "basins.grid" in query:
        errors.append("basins.random: give basins.grid or basins.random, not both (the grid is used)")
    if kind == "grid":
        n = integer("basins.grid", 2, APP_MAX_GRID, DEFAULT_GRID)
    else:
        n = integer("basins.random", 1, APP_MAX_RANDOM, DEFAULT_RANDOM)
    steps = integer("basins.steps", 1, APP_MAX_STEPS, None)
    seed = integer("basins.seed", 0, MAX_SEED, 0)
    sweep = False
    if "basins.sweep" in query:
        if text("basins.sweep") in ("0", "1"):
            sweep = text("basins.sweep") == "1"
        else:
            errors.append(f"basins.sweep must be 0 or 1, got {short_repr(text('basins.sweep'))}")
    return BasinRequest(setup, methods, kind, n, seed, steps, sweep), errors


# -- cached runs ---------------------------------------------------------------------------------


def _cache() -> OrderedDict:
    import streamlit as st

    @st.cache_resource
    def store() -> OrderedDict:
        return OrderedDict()

    return store()


def _remember(key: str, compute):
    cache = _cache()
    if key in cache:
        cache.move_to_end(key)
        return cache[key]
    value = compute()
    cache[key] = value
    while len(cache) > CACHE_SIZE:
        cache.popitem(last=False)
    return value


def cached_basins(config: Config, starts: Starts, progress=None) -> Outcomes:
    return _remember(_key(config, starts), lambda: run_basins(config, starts, progress=progress)[0])


def trajectory(outcomes: Outcomes, lane: int) -> Result:
    """The full path of one lane of a basin run (same method values, the start alone)."""
    series = next(s for s in outcomes.series if lane in set(s.lanes.tolist()))
    entry = outcomes.config.methods[series.entry]
    fixed = replace(entry, params={k: series.params[k] for k in entry.params})
    config = replace(
        outcomes.config,
        methods=(fixed,),
        inits=(tuple(outcomes.init[lane]),),
        record_every=max(1, outcomes.config.steps // TRAJECTORY_POINTS),
    ).validated()
    return _remember("trajectory:" + config.to_json(), lambda: run(config))


# -- plotly builders ----------------------------------------------------------------------------

COLORS = {
    "global_min": "#009E73",
    "pareto": "#0072B2",
    "stalled": "#D55E00",
    "moving": "#E69F00",
    "diverged": "#000000",
}


def _contour_trace(config: Config, n: int = 120):
    import plotly.graph_objects as go
    import torch

    problem = get_problem(config.problem)
    (a, b), (c, d) = problem.box
    x1, x2 = np.linspace(a, b, n), np.linspace(c, d, n)
    g1, g2 = np.meshgrid(x1, x2)
    pts = torch.as_tensor(np.stack([g1.ravel(), g2.ravel()], -1), dtype=torch.float64)
    mean = problem.losses(pts, dict(config.problem_params)).numpy().mean(-1).reshape(n, n)
    return go.Contour(
        x=x1,
        y=x2,
        z=mean,
        ncontours=18,
        showscale=False,
        hoverinfo="skip",
        contours={"coloring": "none"},
        line={"color": "rgba(255,255,255,0.45)", "width": 0.7},
        name="mean loss",
        showlegend=False,
    )


def map_figure(outcomes: Outcomes, series: int, size: int = 300, trajectory_xy: np.ndarray | None = None):
    """One series' map: a square marker per start coloured by outcome (customdata: the lane), the
    faint mean-loss contours, the Pareto set and the minimum."""
    import plotly.graph_objects as go

    from .. import geometry

    problem = get_problem(outcomes.config.problem)
    (a, b), (c, d) = problem.box
    s = outcomes.series[series]
    cat = outcomes.category[s.lanes]
    n = outcomes.starts.n if outcomes.starts is not None and outcomes.starts.kind == "grid" else 0
    marker_px = max(2.0, (size - 40) / n) if n else 5.0
    fig = go.Figure()
    for k in CATEGORIES:
        sel = cat == k
        if not sel.any():
            continue
        lanes = s.lanes[sel]
        fig.add_trace(
            go.Scattergl(
                x=outcomes.init[lanes, 0],
                y=outcomes.init[lanes, 1],
                mode="markers",
                name=k,
                customdata=lanes,
                showlegend=False,
                marker={"symbol": "square", "size": marker_px, "color": COLORS[k], "line": {"width": 0}},
                hovertemplate=f"{k}<br>start (%{{x:.2f}}, %{{y:.2f}})<br>lane %{{customdata}}<extra></extra>",
            )
        )
    fig.add_trace(_contour_trace(outcomes.config))
    pareto = geometry.pareto_set(problem, dict(outcomes.config.problem_params)).points.numpy()
    fig.add_trace(
        go.Scatter(
            x=pareto[:, 0],
            y=pareto[:, 1],
            mode="lines",
            line={"color": "#cccccc"},
            hoverinfo="skip",
            showlegend=False,
        )
    )
    fig.add_trace(
        go.Scatter(
            x=[outcomes.global_min[0]],
            y=[outcomes.global_min[1]],
            mode="markers",
            marker={"symbol": "star", "size": 12, "color": "white", "line": {"width": 1}},
            hoverinfo="skip",
            showlegend=False,
        )
    )
    if trajectory_xy is not None:
        fig.add_trace(
            go.Scatter(
                x=trajectory_xy[:, 0],
                y=trajectory_xy[:, 1],
                mode="lines",
                line={"color": "white", "width": 2},
                hoverinfo="skip",
                showlegend=False,
            )
        )
    fig.update_layout(
        width=size,
        height=size,
        margin={"l": 30, "r": 5, "t": 30, "b": 25},
        title={"text": s.label, "font": {"size": 12}},
        xaxis={"range": [a, b], "constrain": "domain"},
        yaxis={"range": [c, d], "scaleanchor": "x"},
        clickmode="event+select",
        dragmode="select",
        showlegend=False,
    )
    return fig


def table_rows(outcomes: Outcomes) -> list[dict]:
    """The success table formatted for display (percentages, medians)."""
    rows = []
    for r in success_table(outcomes):
        row = {"series": r["series"], "starts": r["starts"]}
        for k in (*CATEGORIES, "pareto_set"):
            row[k] = f"{r[k]:.1%}"
        if "global_min_ci95" in r:
            lo, hi = r["global_min_ci95"]
            row["global_min 95% CI"] = f"{lo:.1%}-{hi:.1%}"
        for k in ("median_steps_global_min", "median_steps_pareto_set"):
            row[k] = "-" if r[k] is None else int(r[k])
        row["stalled regions"] = r["stalled_regions"]
        rows.append(row)
    return rows


# -- the page ------------------------------------------------------------------------------------


def _controls(st, initial: BasinRequest) -> tuple[BasinRequest, bool]:
    setups = sorted(SETUPS)
    cols = st.columns(4)
    setup = cols[0].selectbox("Setup", setups, index=setups.index(initial.setup), key="basins_setup")
    available = sorted(METHODS)
    default = [m for m in (initial.methods or get_setup(setup).methods) if m in METHODS]
    methods = cols[1].multiselect("Methods", available, default=default, key="basins_methods")
    kind = cols[2].radio(
        "Starts",
        ["grid", "random"],
        index=0 if initial.kind == "grid" else 1,
        horizontal=True,
        key="basins_kind",
    )
    if kind == "grid":
        n = cols[3].number_input(
            f"Grid side (max {APP_MAX_GRID})",
            2,
            APP_MAX_GRID,
            initial.n if initial.kind == "grid" else DEFAULT_GRID,
            key="basins_grid",
        )
        seed = initial.seed
    else:
        n = cols[3].number_input(
            f"Random starts (max {APP_MAX_RANDOM})",
            1,
            APP_MAX_RANDOM,
            initial.n if initial.kind == "random" else DEFAULT_RANDOM,
            key="basins_random",
        )
        seed = cols[3].number_input("Seed", 0, MAX_SEED, initial.seed, key="basins_seed")
    cols = st.columns(3)
    steps = cols[0].number_input(
        f"Steps (max {APP_MAX_STEPS})",
        1,
        APP_MAX_STEPS,
        initial.steps or get_setup(setup).steps,
        key="basins_steps",
    )
    sweepable = [m for m in methods if any(p.name == "c" and p.kind == "float" for p in METHODS[m].params)]
    sweep = cols[1].checkbox(
        f"Sweep c = {C_SWEEP[0]}..{C_SWEEP[-1]} for {', '.join(sweepable) or '(none)'}",
        value=initial.sweep_c and bool(sweepable),
        disabled=not sweepable,
        key="basins_sweep",
    )
    go = cols[2].button("Run", type="primary", key="basins_run")
    req = BasinRequest(setup, tuple(methods), kind, int(n), int(seed), int(steps), bool(sweep and sweepable))
    return req, go


def basins_view(slow_seconds: float = SLOW_SECONDS) -> None:
    """The basins page: controls, progress bar, maps (click a start for its path), table, exports.

    Invalid ``basins.*`` link parameters are listed in one error (their defaults are used). A Run
    is first estimated (``toyopt.budget.estimated_seconds``, from the config alone); one estimated
    above ``slow_seconds`` waits for a second click ("Run anyway")."""
    import streamlit as st

    st.header("Basins of attraction")
    st.caption(
        "Every start of a grid over the box runs the method; its cell is coloured by where it ends. "
        + "; ".join(f"**{k}**: {v}" for k, v in CATEGORY_HELP.items())
    )
    from_url, url_errors = request_from_query(st.query_params.to_dict())
    url_box = st.empty()
    if url_errors:
        url_box.error(
            "Ignored invalid basins link parameters (their defaults are used instead): "
            + escape_markdown("; ".join(url_errors))
        )
    initial = st.session_state.get("basins_request") or from_url
    req, go = _controls(st, initial)
    pending = st.session_state.get("basins_pending")
    if pending is not None and pending[0] != req:  # the controls changed since the estimate
        st.session_state.pop("basins_pending", None)
        pending = None
    if go or pending is not None:
        if not req.methods:
            st.error("choose at least one method")
            return
        try:
            config, starts = req.build()
        except ValueError as exc:
            st.error(str(exc))
            return
        if go:
            seconds = 0.0 if _is_cached(config, starts) else _estimate(st, config)
            pending = (req, seconds) if seconds > slow_seconds else None
            st.session_state["basins_pending"] = pending
        if pending is None or _confirmed(st, config, pending[1]):
            st.session_state.pop("basins_pending", None)
            _run(st, req, config, starts)
            url_box.empty()  # the link now holds this run's request only
    outcomes: Outcomes | None = st.session_state.get("basins_outcomes")
    if outcomes is None:
        if st.session_state.get("basins_pending") is None:
            st.info("Choose methods and a grid, then press Run.")
        return
    _show(st, outcomes)


def _is_cached(config: Config, starts: Starts) -> bool:
    return _key(config, starts) in _cache()


def _key(config: Config, starts: Starts) -> str:
    return "basins:" + config.to_json() + repr(starts.to_dict())


def _estimate(st, config: Config) -> float:
    estimates = st.session_state.setdefault("basins_estimates", {})
    key = config.to_json()
    if key not in estimates:
        estimates[key] = budget.estimated_seconds(config)
    return estimates[key]


def _confirmed(st, config: Config, seconds: float) -> bool:
    lanes = len(config.inits) * sum(len(m.grid()) for m in config.methods)
    box = st.empty()
    with box.container():
        st.warning(
            f"This run would take roughly {seconds:.0f} s ({lanes} lanes x {config.steps} steps). "
            "Use a smaller grid, fewer steps or fewer methods, or run it anyway."
        )
        clicked = st.button(f"Run anyway (~{seconds:.0f} s)", key="basins_run_anyway")
    if clicked:
        box.empty()
    return clicked


def _run(st, req: BasinRequest, config: Config, starts: Starts) -> None:
    bar = st.progress(0.0, text="running the grid")
    outcomes = cached_basins(config, starts, progress=runs.progress_reporter(bar, "running the grid"))
    bar.empty()
    st.session_state["basins_request"] = req
    st.session_state["basins_key"] = (config.to_json(), repr(starts.to_dict()))
    st.session_state["basins_outcomes"] = outcomes
    st.session_state.pop("basins_clicked", None)
    st.session_state.pop("basins_figs", None)
    for key in [k for k in st.query_params if k.startswith(BASINS_PREFIX)]:
        del st.query_params[key]  # stale ones (e.g. basins.random after a grid run) included
    for key, value in req.to_query().items():
        st.query_params[key] = value


def _show(st, outcomes: Outcomes) -> None:
    st.subheader("Success rates")
    st.dataframe(table_rows(outcomes), use_container_width=True, hide_index=True)
    if outcomes.regions:
        st.caption(
            "Stalled regions (shared by all maps): " + "; ".join(r.describe() for r in outcomes.regions[:8])
        )
    st.caption(
        f"{len(outcomes.category)} lanes, {outcomes.config.steps} steps, {outcomes.seconds:.1f} s; "
        f"moving = moved at least {outcomes.stall_tol:.3g} over the last {outcomes.window} steps"
    )
    if outcomes.starts is None or outcomes.starts.kind != "grid":
        return
    labels = [s.label for s in outcomes.series]
    shown = st.multiselect("Maps", labels, default=labels[:8], key="basins_shown")
    st.markdown(
        "Colours: "
        + " ".join(f"<span style='color:{COLORS[k]}'>&#9632;</span> {k}" for k in CATEGORIES)
        + "; white star: the global minimum; grey line: the Pareto set. Click a cell for its path.",
        unsafe_allow_html=True,
    )
    clicked = st.session_state.get("basins_clicked")
    per_row = 4
    chosen = [labels.index(x) for x in shown]
    for start in range(0, len(chosen), per_row):
        cols = st.columns(per_row)
        for col, k in zip(cols, chosen[start : start + per_row]):
            path = None
            if clicked is not None and clicked[0] == k:
                path = trajectory(outcomes, clicked[1]).x[:, 0, :2]
            event = col.plotly_chart(
                map_figure(outcomes, k, trajectory_xy=path),
                on_select="rerun",
                selection_mode=("points",),
                key=f"basins_map_{k}",
            )
            points = (event or {}).get("selection", {}).get("points", []) if event else []
            lanes = [p.get("customdata") for p in points if p.get("customdata") is not None]
            if lanes:
                lane = int(lanes[0][0] if isinstance(lanes[0], list) else lanes[0])
                if clicked != (k, lane):
                    st.session_state["basins_clicked"] = (k, lane)
                    st.rerun()
    if clicked is not None:
        k, lane = clicked
        st.markdown(
            f"**Start ({outcomes.init[lane][0]:.2f}, {outcomes.init[lane][1]:.2f})**, "
            f"{outcomes.series[k].label}: {outcomes.category[lane]}"
            + (f" (l = {outcomes.pareto_l[lane]:.3f})" if not math.isnan(outcomes.pareto_l[lane]) else "")
            + (f", {outcomes.kind[lane]}" if outcomes.kind[lane] else "")
            + f"; ends at ({outcomes.final[lane][0]:.3f}, {outcomes.final[lane][1]:.3f})"
        )
    _downloads(st, outcomes)


def _downloads(st, outcomes: Outcomes) -> None:
    from ..figures.basins import basin_maps_figure, save_basin_figure

    cols = st.columns(5)
    cols[0].download_button("CSV", outcomes_csv(outcomes), "basins.csv", "text/csv", key="basins_csv")
    cols[1].download_button(
        "JSON", outcomes_json(outcomes), "basins.json", "application/json", key="basins_json"
    )
    if cols[2].button("Prepare figure", key="basins_fig"):
        fig = basin_maps_figure(outcomes)
        st.session_state["basins_figs"] = {
            s: save_basin_figure(fig, f"basins{s}", outcomes) for s in (".pdf", ".svg", ".png")
        }
    figs = st.session_state.get("basins_figs")
    if figs:
        cols[3].download_button("PDF", figs[".pdf"], "basins.pdf", "application/pdf", key="basins_pdf")
        cols[4].download_button("PNG", figs[".png"], "basins.png", "image/png", key="basins_png")
        st.download_button("SVG", figs[".svg"], "basins.svg", "image/svg+xml", key="basins_svg")
