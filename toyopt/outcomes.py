"""Outcomes of many starts: basin-of-attraction maps, success rates, where failed runs end.

A basin run is an ordinary engine run whose starts are a grid over the problem's plotting box (or
N seeded random starts) and whose recording keeps only three states per lane: the start, the state
``window`` steps before the end, and the end. Every lane is then put in exactly one category:

* ``global_min``: the final point is within ``config.tolerance`` of the minimiser of the mean loss;
* ``pareto``: within the tolerance of the Pareto set but not of the minimum; its position on the
  set is reported as the Pareto weight l on task 1 (the l whose stationary point of
  l f1 + (1 - l) f2 is nearest) and as x1;
* ``stalled``: elsewhere, and it moved less than ``stall_tol`` over the last ``window`` steps:
  the run is stuck (a sharp valley of one task, a Pareto-stationary point off the Pareto set, a
  plateau). Stalled final points are grouped into regions (see :func:`cluster_cells`) shared by
  every method of the run, so one region has one name on every map;
* ``moving``: elsewhere, and still travelling at the end: the step budget ran out before it
  arrived anywhere (a slow slide along a valley, say);
* ``diverged``: the engine stopped the lane on a non-finite loss or direction, or its final point
  lies farther than ``escape`` from the box (it left the picture for good).

Each point off the Pareto set also gets a ``kind`` computed from the task gradients g_i at the
final point (``point_kinds``): ``pareto_stationary`` (the min-norm point of conv{g_i} is ~0: the
gradients cancel, as MGDA-like methods stop there), ``valley_f<i>`` (the point is at the bottom of
task i's loss along task i's gradient: a sharp valley or a minimum of task i, like the log
valleys of the Liu et al. toy near x1 = -5 / +5 for x2 > 0), ``plateau`` (every gradient is tiny) or
``slope``. These are what "stuck where" means, computed at the point rather than assumed.

The table (:func:`success_table`) has one row per series (a method entry and one of its grid
values, e.g. CAGrad with c = 0.3): the fractions of each category, the fraction ending on the
Pareto set (the minimum included), and the median number of steps to first come within the
tolerance of the minimum / the Pareto set, over the lanes that ended there.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch

from . import geometry
from .config import MAX_INITS, Config
from .engine import Result, Series, run
from .methods.base import UNIT_SWEEP
from .problems import get_problem

CATEGORIES = ("global_min", "pareto", "stalled", "moving", "diverged")
CATEGORY_HELP = {
    "global_min": "ended within the tolerance of the minimum of the mean loss",
    "pareto": "ended on the Pareto set (within the tolerance), away from the minimum",
    "stalled": "ended elsewhere and moved less than stall_tol over the last window steps",
    "moving": "ended elsewhere but was still moving: the step budget ran out",
    "diverged": "non-finite loss or direction, or ended farther than `escape` from the box",
}

#: Grid side and random-start caps. The CLI may ask for up to MAX_BASIN_GRID^2 = MAX_INITS starts;
#: the app and URL are held to APP_MAX_GRID^2 starts and APP_MAX_LANES lanes per run.
MAX_BASIN_GRID = int(math.isqrt(MAX_INITS))
APP_MAX_GRID = 100
APP_MAX_RANDOM = 10_000
APP_MAX_LANES = 40_000
APP_MAX_STEPS = 100_000

#: The c sweep of CAGrad and ConicGrad, 0.05..0.95 (their ``ParamSpec.sweep``; for labels).
C_SWEEP = UNIT_SWEEP

FORMAT_VERSION = 1


# -- starts --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Starts:
    """Where the lanes start: ``grid`` (n x n cell centres of the box, row-major: x1 varies fastest,
    x2 increases with the row) or ``random`` (n points uniform in the box from numpy's
    ``default_rng(seed)``)."""

    kind: str
    n: int
    box: tuple[tuple[float, float], tuple[float, float]]
    seed: int = 0

    def validated(self, max_grid: int = MAX_BASIN_GRID, max_random: int = MAX_INITS) -> Starts:
        if self.kind not in ("grid", "random"):
            raise ValueError(f"starts kind must be 'grid' or 'random', got {self.kind!r}")
        low, high = (2, max_grid) if self.kind == "grid" else (1, max_random)
        if isinstance(self.n, bool) or not isinstance(self.n, int) or not low <= self.n <= high:
            raise ValueError(
                f"{'--grid' if self.kind == 'grid' else '--random'} must be an integer in "
                f"[{low}, {high}], got {self.n!r}"
            )
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {self.seed!r}")
        (a, b), (c, d) = self.box
        if not (a < b and c < d) or not all(math.isfinite(v) for v in (a, b, c, d)):
            raise ValueError(
                f"box must be ((x1_min, x1_max), (x2_min, x2_max)) with min < max, got {self.box!r}"
            )
        return self

    def points(self) -> tuple[tuple[float, float], ...]:
        (a, b), (c, d) = self.box
        if self.kind == "grid":
            x1 = a + (np.arange(self.n) + 0.5) * (b - a) / self.n
            x2 = c + (np.arange(self.n) + 0.5) * (d - c) / self.n
            g1, g2 = np.meshgrid(x1, x2)  # rows: x2, columns: x1
            pts = np.stack([g1.ravel(), g2.ravel()], axis=-1)
        else:
            rng = np.random.default_rng(self.seed)
            pts = np.stack([rng.uniform(a, b, self.n), rng.uniform(c, d, self.n)], axis=-1)
        # Rounded so that the config (which lists every start) stays short: -9.7, not -9.700000000000001.
        return tuple((round(float(p), 10), round(float(q), 10)) for p, q in pts)

    @property
    def count(self) -> int:
        return self.n * self.n if self.kind == "grid" else self.n

    def to_dict(self) -> dict:
        return {"kind": self.kind, "n": self.n, "box": [list(r) for r in self.box], "seed": self.seed}


def stall_window(steps: int) -> int:
    """Steps over which 'still moving' is judged: the last 10% of the run (at least 1)."""
    return max(1, steps // 10)


def basin_config(base: Config, starts: Starts) -> Config:
    """``base`` with ``starts`` as its inits and recording cut to start, end - window, end."""
    starts = starts.validated()
    steps = base.steps
    window = stall_window(steps)
    record_every = steps - window if steps >= 2 else steps
    return replace(base, inits=starts.points(), record_every=record_every).validated()


def with_param_sweep(config: Config, name: str | None = None, values=None) -> Config:
    """Every method entry with a swept parameter (``ParamSpec.sweep``; only if it is called
    ``name``, when given) runs it at ``values`` (default: its own sweep values), one lane per value
    and start; the others are unchanged. Raises if no entry has such a parameter."""
    from .methods import get_method

    entries, touched = [], False
    for entry in config.methods:
        p = get_method(entry.name).swept()
        if p is not None and name in (None, p.name):
            swept = list(p.sweep if values is None else values)
            entries.append(replace(entry, params={**entry.params, p.name: swept}))
            touched = True
        else:
            entries.append(entry)
    if not touched:
        raise ValueError(f"no method in the run has a swept parameter{f' {name!r}' if name else ''}")
    return replace(config, methods=tuple(entries)).validated()


# -- classification ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Region:
    """A group of stalled final points (see ``cluster_cells``)."""

    id: int
    count: int
    center: tuple[float, float]  # median of the members' final points
    low: tuple[float, float]
    high: tuple[float, float]
    kind: str  # the most common point kind of its members

    @property
    def name(self) -> str:
        return f"R{self.id + 1}"

    def describe(self) -> str:
        return (
            f"{self.name} {self.kind} near ({self.center[0]:.2f}, {self.center[1]:.2f}), {self.count} starts"
        )


@dataclass
class Outcomes:
    """The classification of every lane of a basin run (arrays indexed by lane)."""

    config: Config
    starts: Starts | None
    series: list[Series]
    category: np.ndarray  # (B,) str
    kind: np.ndarray  # (B,) str ('' on the Pareto set / minimum / diverged)
    region: np.ndarray  # (B,) int, -1 unless stalled
    regions: list[Region]
    init: np.ndarray  # (B, 2)
    final: np.ndarray  # (B, 2), NaN when non-finite
    final_losses: np.ndarray  # (B, K)
    pareto_l: np.ndarray  # (B,) l of the nearest Pareto point (NaN unless global_min / pareto)
    pareto_x1: np.ndarray  # (B,)
    steps_to_min: np.ndarray  # (B,) first step within tolerance of the minimum, -1 unless global_min
    steps_to_pareto: np.ndarray  # (B,) first step within tolerance of the Pareto set, -1 unless on it
    moved_last: np.ndarray  # (B,) |x_end - x_(end - window)|
    stop_reason: list[str]
    window: int
    stall_tol: float
    escape: float
    seconds: float
    global_min: np.ndarray
    params: dict = field(default_factory=dict)

    def map(self, series: int) -> np.ndarray:
        """(n, n) category names of a grid run's series: row i is the i-th x2 (increasing)."""
        if self.starts is None or self.starts.kind != "grid":
            raise ValueError("a map needs grid starts")
        n = self.starts.n
        return self.category[self.series[series].lanes].reshape(n, n)

    def codes(self, series: int) -> np.ndarray:
        """The map as integer codes (index into CATEGORIES)."""
        lookup = {c: i for i, c in enumerate(CATEGORIES)}
        return np.vectorize(lookup.__getitem__)(self.map(series))

    def lane_at(self, series: int, row: int, col: int) -> int:
        """The lane of a grid cell (row: x2 index, col: x1 index)."""
        return int(self.series[series].lanes[row * self.starts.n + col])


def _project_on_polyline(points: np.ndarray, poly: np.ndarray, lmbda: np.ndarray, chunk: int = 2048):
    """Nearest point of the polyline ``poly`` (M, 2) to each row of ``points`` (B, 2): returns the
    interpolated parameter l (lmbda (M,) along the polyline) and the nearest point's x1."""
    a, b = poly[:-1], poly[1:]
    ab = b - a
    ab2 = np.maximum((ab * ab).sum(-1), 1e-300)
    out_l = np.full(len(points), np.nan)
    out_x1 = np.full(len(points), np.nan)
    for s in range(0, len(points), chunk):
        p = points[s : s + chunk]
        ap = p[:, None, :] - a[None]
        t = np.clip((ap * ab[None]).sum(-1) / ab2, 0.0, 1.0)
        near = a[None] + t[..., None] * ab[None]
        dist = np.linalg.norm(p[:, None, :] - near, axis=-1)
        j = np.argmin(dist, axis=-1)
        rows = np.arange(len(p))
        tj = t[rows, j]
        out_l[s : s + chunk] = lmbda[j] + tj * (lmbda[j + 1] - lmbda[j])
        out_x1[s : s + chunk] = near[rows, j, 0]
    return out_l, out_x1


def point_kinds(
    problem, params: dict, x: np.ndarray, h: float, stationary_rel: float = 1e-3, plateau_abs: float = 1e-4
) -> np.ndarray:
    """What each point of x (B, D) off the Pareto set is, from the task losses f_i and gradients
    g_i there:

    * ``plateau``: max_i ||g_i|| <= plateau_abs;
    * ``valley_f<i>``: f_i(x) <= f_i(x +- h g_i/||g_i||): x lies within about h of the bottom of
      task i's loss along its own gradient (a sharp valley or a minimum of task i; scale-free,
      unlike comparing gradient norms); several tasks: ``valley_f1_f2``;
    * ``pareto_stationary``: the min-norm point of conv{g_i} is <= stationary_rel max_i ||g_i||
      (the gradients cancel; MGDA-like methods stop there);
    * ``slope``: anything else.
    The first that applies wins."""
    from .methods.mgda import min_norm_weights

    xt = torch.as_tensor(x, dtype=torch.float64)
    losses, grads = problem.losses_and_grads(xt, params)
    gram = grads @ grads.transpose(-1, -2)
    w, _ = min_norm_weights(gram, 200)
    min_norm = (w.unsqueeze(-1) * grads).sum(-2).norm(dim=-1).numpy()
    norms = grads.norm(dim=-1)  # (B, K)
    biggest = norms.amax(-1).numpy()
    K = grads.shape[1]
    valley = np.zeros((len(x), K), dtype=bool)
    for i in range(K):
        u = grads[:, i] / norms[:, i : i + 1].clamp_min(1e-300)
        up = problem.losses(xt + h * u, params)[:, i]
        down = problem.losses(xt - h * u, params)[:, i]
        valley[:, i] = ((losses[:, i] <= up) & (losses[:, i] <= down) & (norms[:, i] > 0)).numpy()
    kinds = np.full(len(x), "slope", dtype=object)
    kinds[min_norm <= stationary_rel * np.maximum(biggest, 1e-300)] = "pareto_stationary"
    for row in np.nonzero(valley.any(-1))[0]:
        kinds[row] = "valley_" + "_".join(f"f{i + 1}" for i in np.nonzero(valley[row])[0])
    kinds[biggest <= plateau_abs] = "plateau"
    return kinds.astype(str)


def cluster_cells(points: np.ndarray, cell: float) -> np.ndarray:
    """Region labels (B,) for points (B, 2): the plane is cut into square cells of side ``cell``;
    two points share a region when a chain of occupied cells, each touching the next (sides or
    corners), joins them. Labels are numbered by decreasing size (ties: lower-left first)."""
    if len(points) == 0:
        return np.zeros(0, dtype=int)
    keys = np.floor(points / cell).astype(np.int64)
    cells, inverse = np.unique(keys, axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    index = {tuple(c): i for i, c in enumerate(cells.tolist())}
    comp = np.full(len(cells), -1)
    n_comp = 0
    for start in range(len(cells)):
        if comp[start] >= 0:
            continue
        comp[start] = n_comp
        queue = deque([start])
        while queue:
            cx, cy = cells[queue.popleft()]
            for dx in (-1, 0, 1):
                for dy in (-1, 0, 1):
                    j = index.get((int(cx + dx), int(cy + dy)))
                    if j is not None and comp[j] < 0:
                        comp[j] = n_comp
                        queue.append(j)
        n_comp += 1
    labels = comp[inverse]
    sizes = np.bincount(labels, minlength=n_comp)
    corner = np.array([points[labels == k].min(0).tolist() for k in range(n_comp)])
    order = sorted(range(n_comp), key=lambda k: (-sizes[k], corner[k][0], corner[k][1]))
    rank = np.empty(n_comp, dtype=int)
    rank[order] = np.arange(n_comp)
    return rank[labels]


def classify(
    result: Result,
    starts: Starts | None = None,
    stall_tol: float | None = None,
    stall_fraction: float = 0.1,
    escape: float | None = None,
    region_cell: float = 0.5,
    valley_h: float | None = None,
) -> Outcomes:
    """Put every lane of ``result`` in one of CATEGORIES (see the module docstring).

    ``stall_tol`` defaults to stall_fraction * lr * window: a lane counts as moving when it covered
    at least that fraction of Adam's nominal distance (lr per step) over the window; with SGD the
    same number reads as lr per unit of direction norm. ``escape`` defaults to the box's larger
    side: a final point farther than that from the box has diverged. ``region_cell`` is the cell
    side of the region clustering of stalled points; ``valley_h`` (default: the tolerance) the
    probe distance of ``point_kinds``."""
    config = result.config
    problem = get_problem(config.problem)
    pparams = dict(config.problem_params)
    B = len(result.lanes)
    steps_run = int(result.steps_run)
    rec = np.asarray(result.recorded_steps)
    # The row `window` steps before the end (basin_config records it); otherwise the closest.
    window = stall_window(config.steps)
    target = steps_run - window
    before = int(np.argmin(np.abs(rec[:-1] - target))) if len(rec) > 1 else 0
    window_used = int(rec[-1] - rec[before]) if len(rec) > 1 else 0
    if stall_tol is None:
        stall_tol = stall_fraction * config.lr * max(window_used, 1)

    if escape is None:
        escape = geometry.default_escape(problem.box)
    final = np.asarray(result.final_x, dtype=float)
    init = np.asarray([lane.init for lane in result.lanes], dtype=float)
    finite = np.isfinite(final).all(-1) & np.isfinite(np.asarray(result.final_losses)).all(-1)
    stopped = np.array([r not in ("completed", "early_stop") for r in result.stop_reason])
    escaped = finite & geometry.escaped(problem.box, final, escape)
    moved = np.linalg.norm(final - np.asarray(result.x[before], dtype=float), axis=-1)

    engine_class = np.array([result.outcome(i) for i in range(B)], dtype=object)
    category = np.empty(B, dtype=object)
    category[:] = np.where(moved < stall_tol, "stalled", "moving")
    category[engine_class == "global_min"] = "global_min"
    category[engine_class == "pareto"] = "pareto"
    category[stopped | ~finite | escaped | (engine_class == "diverged")] = "diverged"
    category = category.astype(str)

    pareto = geometry.pareto_set(problem, pparams)
    on_set = (category == "global_min") | (category == "pareto")
    pareto_l = np.full(B, np.nan)
    pareto_x1 = np.full(B, np.nan)
    if on_set.any():
        l_, x1_ = _project_on_polyline(
            final[on_set], pareto.points.to(torch.float64).numpy(), pareto.lmbda.to(torch.float64).numpy()
        )
        pareto_l[on_set], pareto_x1[on_set] = l_, x1_

    kind = np.full(B, "", dtype=object)
    off = (category == "stalled") | (category == "moving")
    if off.any():
        kind[off] = point_kinds(
            problem, pparams, final[off], valley_h if valley_h is not None else config.tolerance
        )
    kind = kind.astype(str)

    region = np.full(B, -1)
    regions: list[Region] = []
    stalled = category == "stalled"
    if stalled.any():
        labels = cluster_cells(final[stalled], region_cell)
        region[stalled] = labels
        for k in range(int(labels.max()) + 1):
            members = final[stalled][labels == k]
            kinds = Counter(kind[stalled][labels == k].tolist())
            regions.append(
                Region(
                    k,
                    len(members),
                    tuple(np.median(members, 0).tolist()),
                    tuple(members.min(0).tolist()),
                    tuple(members.max(0).tolist()),
                    kinds.most_common(1)[0][0],
                )
            )

    first_min = np.asarray(result.first_global_min)
    first_par = np.asarray(result.first_pareto)
    steps_to_min = np.where(category == "global_min", first_min, -1)
    steps_to_pareto = np.where(on_set, first_par, -1)
    return Outcomes(
        config=config,
        starts=starts,
        series=result.series(),
        category=category,
        kind=kind,
        region=region,
        regions=regions,
        init=init,
        final=np.where(np.isfinite(final), final, np.nan),
        final_losses=np.asarray(result.final_losses, dtype=float),
        pareto_l=pareto_l,
        pareto_x1=pareto_x1,
        steps_to_min=steps_to_min,
        steps_to_pareto=steps_to_pareto,
        moved_last=moved,
        stop_reason=list(result.stop_reason),
        window=window_used,
        stall_tol=float(stall_tol),
        escape=float(escape),
        seconds=float(result.seconds),
        global_min=np.asarray(result.global_min, dtype=float),
        params={
            "region_cell": region_cell,
            "valley_h": config.tolerance if valley_h is None else valley_h,
            "stall_fraction": stall_fraction,
        },
    )


def run_basins(
    base: Config, starts: Starts, progress: Callable[[float], Any] | None = None, **classify_options
) -> tuple[Outcomes, Result]:
    """One engine run over every start (one batch of lanes), classified."""
    config = basin_config(base, starts)
    result = run(config, progress=progress)
    return classify(result, starts, **classify_options), result


# -- tables and exports -------------------------------------------------------------------------


def wilson_interval(successes: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """The Wilson score interval of a binomial proportion (95% by default)."""
    if n == 0:
        return (float("nan"), float("nan"))
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def _median(values: np.ndarray) -> float | None:
    return float(np.median(values)) if len(values) else None


def success_table(outcomes: Outcomes) -> list[dict]:
    """One row per series: counts and fractions per category, the fraction ending on the Pareto
    set (minimum included), median steps to the minimum / the Pareto set over the lanes that
    ended there, the three largest stalled regions, and for random starts 95% Wilson intervals."""
    rows = []
    for s in outcomes.series:
        cat = outcomes.category[s.lanes]
        n = len(cat)
        counts = {c: int((cat == c).sum()) for c in CATEGORIES}
        on_set = counts["global_min"] + counts["pareto"]
        row: dict[str, Any] = {"series": s.title, "method": s.method, "params": s.params, "starts": n}
        for c in CATEGORIES:
            row[c] = counts[c] / n
        row["pareto_set"] = on_set / n
        to_min = outcomes.steps_to_min[s.lanes]
        to_par = outcomes.steps_to_pareto[s.lanes]
        row["median_steps_global_min"] = _median(to_min[to_min >= 0])
        row["median_steps_pareto_set"] = _median(to_par[to_par >= 0])
        reg = Counter(int(r) for r in outcomes.region[s.lanes] if r >= 0)
        row["stalled_regions"] = "; ".join(
            f"{outcomes.regions[k].name} {v / n:.1%}"
            for k, v in sorted(reg.items(), key=lambda kv: -kv[1])[:3]
        )
        if outcomes.starts is not None and outcomes.starts.kind == "random":
            row["global_min_ci95"] = list(wilson_interval(counts["global_min"], n))
            row["pareto_set_ci95"] = list(wilson_interval(on_set, n))
        rows.append(row)
    return rows


def format_table(rows: list[dict]) -> str:
    """The success table as aligned text (for the CLI)."""
    head = (
        f"{'series':24s} {'starts':>6s} {'min':>6s} {'pareto':>6s} {'on set':>6s} {'stall':>6s} "
        f"{'moving':>6s} {'diverg':>6s} {'med->min':>9s} {'med->set':>9s}  stalled regions"
    )
    lines = [head]
    for r in rows:
        med_min = "-" if r["median_steps_global_min"] is None else f"{r['median_steps_global_min']:.0f}"
        med_set = "-" if r["median_steps_pareto_set"] is None else f"{r['median_steps_pareto_set']:.0f}"
        lines.append(
            f"{r['series'][:24]:24s} {r['starts']:6d} {r['global_min']:6.1%} {r['pareto']:6.1%} "
            f"{r['pareto_set']:6.1%} {r['stalled']:6.1%} {r['moving']:6.1%} {r['diverged']:6.1%} "
            f"{med_min:>9s} {med_set:>9s}  {r['stalled_regions']}"
        )
    return "\n".join(lines)


CSV_COLUMNS = [
    "lane",
    "series",
    "method",
    "params",
    "init_x1",
    "init_x2",
    "final_x1",
    "final_x2",
    "loss1",
    "loss2",
    "outcome",
    "pareto_l",
    "pareto_x1",
    "kind",
    "region",
    "steps_to_min",
    "steps_to_pareto",
    "moved_last_window",
    "stop_reason",
]


def _cell(v) -> str:
    v = float(v)
    return repr(v) if math.isfinite(v) else ""


def outcomes_csv(outcomes: Outcomes) -> str:
    """One row per start (lane), with '#' lines first: the config, the starts, the classification
    settings and the regions. ``outcome`` is the category; ``pareto_l``/``pareto_x1`` are empty
    off the Pareto set; ``region`` is empty unless stalled; step counts are empty when never."""
    buf = io.StringIO()
    buf.write("# toyopt config: " + outcomes.config.to_json() + "\n")
    buf.write("# toyopt basins: " + json.dumps(_meta(outcomes), sort_keys=True) + "\n")
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    label_of = {}
    for s in outcomes.series:
        for i in s.lanes:
            label_of[int(i)] = s
    for i in range(len(outcomes.category)):
        s = label_of[i]
        writer.writerow(
            [
                i,
                s.title,
                s.method,
                json.dumps(s.params, sort_keys=True),
                *(_cell(v) for v in outcomes.init[i]),
                *(_cell(v) for v in outcomes.final[i]),
                *(_cell(v) for v in outcomes.final_losses[i][:2]),
                outcomes.category[i],
                _cell(outcomes.pareto_l[i]),
                _cell(outcomes.pareto_x1[i]),
                outcomes.kind[i],
                outcomes.regions[outcomes.region[i]].name if outcomes.region[i] >= 0 else "",
                int(outcomes.steps_to_min[i]) if outcomes.steps_to_min[i] >= 0 else "",
                int(outcomes.steps_to_pareto[i]) if outcomes.steps_to_pareto[i] >= 0 else "",
                _cell(outcomes.moved_last[i]),
                outcomes.stop_reason[i],
            ]
        )
    return buf.getvalue()


def _meta(outcomes: Outcomes) -> dict:
    return {
        "starts": None if outcomes.starts is None else outcomes.starts.to_dict(),
        "window": outcomes.window,
        "stall_tol": outcomes.stall_tol,
        "escape": outcomes.escape,
        **outcomes.params,
        "global_min": outcomes.global_min.tolist(),
        "categories": CATEGORY_HELP,
        "regions": [
            {
                "name": r.name,
                "count": r.count,
                "center": list(r.center),
                "low": list(r.low),
                "high": list(r.high),
                "kind": r.kind,
            }
            for r in outcomes.regions
        ],
    }


def _json_num(v):
    v = float(v)
    return v if math.isfinite(v) else None


def outcomes_dict(outcomes: Outcomes) -> dict:
    """The classification as plain data: config, settings, regions, the table, and per series the
    lanes' categories (and, for grid starts, the n x n map rows, x2 increasing)."""
    series = []
    for k, s in enumerate(outcomes.series):
        item = {"label": s.title, "method": s.method, "params": s.params, "lanes": s.lanes.tolist()}
        if outcomes.starts is not None and outcomes.starts.kind == "grid":
            item["map"] = outcomes.map(k).tolist()
        series.append(item)
    return {
        "format": "toyopt-basins",
        "version": FORMAT_VERSION,
        "config": outcomes.config.to_dict(),
        **_meta(outcomes),
        "table": success_table(outcomes),
        "series": series,
        "lanes": {
            "init": outcomes.init.tolist(),
            "final": [[_json_num(v) for v in p] for p in outcomes.final],
            "outcome": outcomes.category.tolist(),
            "pareto_l": [_json_num(v) for v in outcomes.pareto_l],
            "kind": outcomes.kind.tolist(),
            "region": outcomes.region.tolist(),
            "steps_to_min": outcomes.steps_to_min.tolist(),
            "steps_to_pareto": outcomes.steps_to_pareto.tolist(),
            "stop_reason": outcomes.stop_reason,
        },
    }


def outcomes_json(outcomes: Outcomes) -> str:
    return json.dumps(outcomes_dict(outcomes), indent=1, allow_nan=False)
