"""The trajectory engine: a Config in, a Result out.

Lanes are (method entry x grid value x starting point). Every lane's x lives in one (B, D)
tensor: the problem's losses and gradients, the optimizer step and the outcome checks run once per
step for all lanes together; each method entry then computes the directions of its own lanes in
one batched call. Per-lane parameter values (a grid of c, say) are tensors, so a whole grid costs
one call.

Random numbers (gradient noise, a method's own draws) come from one torch.Generator per method
entry, seeded from the config's seed, the method's name and its occurrence among entries of the
same method, so a run is bit-for-bit reproducible and an entry's lanes do not depend on which
other methods share the run.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from . import budget, geometry
from .config import Config, MethodEntry
from .methods import draw_random, get_method, lane_params
from .methods.base import StepInput
from .optim import make_optimizer
from .problems import get_problem

Tensor = torch.Tensor

#: Engine-level guards (recorded like a method's own flags).
ENGINE_FLAGS = {
    "nonfinite_direction": (
        "the method returned a non-finite direction; the lane stopped at its last finite point"
    ),
    "nonfinite_loss": "the loss or gradient at x was non-finite; the lane stopped there",
    "clipped": "the framework's clip_grad_norm_ shortened the direction (max_norm = clip_norm)",
}

OUTCOMES = ("global_min", "pareto", "other", "diverged")


@dataclass(frozen=True)
class Lane:
    index: int
    entry: int  # index into config.methods
    method: str
    params: dict
    init: tuple[float, ...]
    grid_index: int


@dataclass
class Result:
    """Everything a view, figure or export needs; nothing here steps anything.

    Arrays are numpy, lane-major where noted. ``recorded_steps`` (T,) are the step indices t at
    which x_t was recorded (0, r, 2r, ... and the last step); ``x`` (T, B, D) and ``losses``
    (T, B, K) are the states there; ``directions`` (T, B, D) and ``weights`` (T, B, K) the update
    computed at x_t (NaN at the final state, where no update is computed). ``flags[name]`` (T, B)
    says whether that flag fired at the recorded step; ``flag_counts[name]`` (B,) counts every step
    and ``flag_first[name]`` (B,) is the first step it fired (-1: never).
    """

    config: Config
    lanes: list[Lane]
    recorded_steps: np.ndarray
    x: np.ndarray
    losses: np.ndarray
    directions: np.ndarray
    weights: np.ndarray
    flags: dict[str, np.ndarray]
    flag_counts: dict[str, np.ndarray]
    flag_first: dict[str, np.ndarray]
    first_global_min: np.ndarray  # (B,) first step within tolerance of the global minimum, -1 never
    first_pareto: np.ndarray  # (B,) first step within tolerance of the Pareto set, -1 never
    stop_step: np.ndarray  # (B,) step at which the lane stopped (= steps when it ran to the end)
    stop_reason: list[str]
    global_min: np.ndarray  # (D,)
    steps_run: int
    seconds: float
    flag_help: dict[str, str] = field(default_factory=dict)
    final_class: list[str] = field(default_factory=list)  # global_min | pareto | other at the final x
    backend: str = "eager"  # the backend that ran (compiled can fall back: see ``notices``)
    notices: tuple[str, ...] = ()  # what a reader must be told (e.g. eager ran where compiled was asked)

    @property
    def final_x(self) -> np.ndarray:
        return self.x[-1]

    @property
    def final_losses(self) -> np.ndarray:
        return self.losses[-1]

    def outcome(self, lane: int) -> str:
        """global_min | pareto | other | diverged, judged at the final state with the config's
        tolerance (a run that reaches the minimum is also on the Pareto set: it counts as the
        minimum). Diverged: stopped on a non-finite value, or ended far outside the problem's box
        (``geometry.escaped``)."""
        if self.stop_reason[lane] not in ("completed", "early_stop"):
            return "diverged"
        return self.final_class[lane]

    def nearest_recorded(self, step: int) -> int:
        """The index of the recorded state nearest optimizer step ``step`` (the earlier on a tie)."""
        return int(np.argmin(np.abs(self.recorded_steps - step)))

    def lanes_of(self, entry: int) -> list[Lane]:
        return [lane for lane in self.lanes if lane.entry == entry]

    def series(self) -> list[Series]:
        """The lanes regrouped by method entry and grid value (see ``series``)."""
        return series(self.config, self.lanes)


@dataclass(frozen=True, eq=False)
class Series:
    """The lanes of one method entry at one grid value, in start order: what one panel, curve
    group, basin map or table row shows."""

    entry: int  # index into config.methods
    grid_index: int
    method: str
    params: dict  # the entry's parameter values at this grid value
    title: str
    lanes: np.ndarray  # (starts,) int lane indices


def series(config: Config, lanes: list[Lane] | None = None) -> list[Series]:
    """One Series per method entry and grid value, in entry then grid order (the lanes of a run
    of ``config``: ``build_lanes`` unless given). Titled by the method's label, with its swept
    parameter (CAGrad's or ConicGrad's c) and the grid's values when the entry has more than one;
    when the method appears twice, with every parameter and the entry's index (so titles stay
    distinct)."""
    lanes = build_lanes(config) if lanes is None else lanes
    members: dict[tuple[int, int], list[int]] = {}
    for lane in lanes:
        members.setdefault((lane.entry, lane.grid_index), []).append(lane.index)
    names = [entry.name for entry in config.methods]
    out = []
    for e, entry in enumerate(config.methods):
        combos = entry.grid()
        repeated = names.count(entry.name) > 1
        shown = sorted(entry.params) if repeated else _title_params(entry, len(combos))
        for gi, combo in enumerate(combos):
            title = get_method(entry.name).label
            if shown:
                title += " (" + ", ".join(f"{k} = {_short(combo[k])}" for k in shown) + ")"
            if repeated:
                title += f" #{e}"
            idx = np.asarray(members.get((e, gi), []), dtype=np.int64)
            out.append(Series(e, gi, entry.name, dict(combo), title, idx))
    return out


def _title_params(entry: MethodEntry, combos: int) -> list[str]:
    """The parameters a single entry's title names: its swept one (the c every panel of the app
    shows), then the grid's when it has more than one value."""
    grid_keys = [k for k, v in entry.params.items() if isinstance(v, list)] if combos > 1 else []
    swept = get_method(entry.name).swept()
    return [swept.name] + [k for k in grid_keys if k != swept.name] if swept is not None else grid_keys


def _short(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def build_lanes(config: Config) -> list[Lane]:
    lanes: list[Lane] = []
    for e, entry in enumerate(config.methods):
        for gi, combo in enumerate(entry.grid()):
            for init in config.inits:
                lanes.append(Lane(len(lanes), e, entry.name, combo, tuple(init), gi))
    return lanes


def _seed_for(seed: int, name: str, occurrence: int) -> int:
    """The generator seed of a method entry: from the run's seed, the method's name (a stable
    CRC, not Python's salted hash) and how many entries of the same method come before it, so
    adding or reordering other methods does not change this entry's random draws."""
    return (seed * 1_000_003 + zlib.crc32(name.encode()) * 7919 + occurrence * 104_729 + 12345) % (2**63 - 1)


class _Draws:
    """The random numbers of one method entry, drawn from its generator in fixed blocks of steps
    (gradient noise for the block, then the method's own draws), so every backend and every way of
    cutting the run into chunks or segments sees the same numbers."""

    def __init__(self, spec, size: int, K: int, D: int, noise: bool, gen: torch.Generator, dtype, steps: int):
        self.spec, self.size, self.K, self.D, self.noise, self.gen, self.dtype = (
            spec,
            size,
            K,
            D,
            noise,
            gen,
            dtype,
        )
        self.steps = steps
        # Blocks bound the memory of a block's draws for many lanes.
        self.block = max(16, min(512, 1_000_000 // size))
        self.start = self.end = 0
        self.noises = self.randoms = None
        self.needed = noise or spec.random is not None

    def _draw(self, start: int) -> None:
        n = min(self.block, self.steps - start)
        self.start, self.end = start, start + n
        self.noises = (
            torch.randn((n, self.size, self.K, self.D), generator=self.gen, dtype=self.dtype)
            if self.noise
            else None
        )
        self.randoms = (
            None
            if self.spec.random is None
            else draw_random(self.spec, n * self.size, self.K, self.D, self.gen, self.dtype).view(
                n, self.size, -1
            )
        )

    def take(self, t0: int, n: int) -> tuple[Tensor | None, Tensor | None]:
        """(noises (n, lanes, K, D) or None, randoms (n, lanes, r) or None) of steps t0 .. t0 + n - 1
        (called with consecutive ranges)."""
        if not self.needed:
            return None, None
        parts = []
        t = t0
        while t < t0 + n:
            if t >= self.end:
                self._draw(self.end)
            end = min(t0 + n, self.end)
            sl = slice(t - self.start, end - self.start)
            parts.append(tuple(None if z is None else z[sl] for z in (self.noises, self.randoms)))
            t = end
        if len(parts) == 1:
            return parts[0]
        return tuple(None if parts[0][i] is None else torch.cat([p[i] for p in parts]) for i in (0, 1))


class _Group:
    """The lanes of one method entry: a contiguous slice of the batch."""

    def __init__(self, spec, entry, sl, params, draws, state):
        self.spec, self.entry, self.sl, self.params, self.draws, self.state = (
            spec,
            entry,
            sl,
            params,
            draws,
            state,
        )
        self.flag_names = list(spec.flags)  # the spec's declared flags, in a fixed order
        self.size = sl.stop - sl.start


def _make_step(problem, pparams, groups, optimizer, lower, noise_std):
    """One step for every lane as a pure function of tensors (so it can be compiled):
    (x, optimizer state, method states, progress, random draws) -> next of each + records."""

    def step(x, opt_state, states, progress_t, noises, randoms):
        losses, grads = problem.losses_and_grads(x, pparams)
        directions, weights, flags, new_states = [], [], [], []
        for gi, group in enumerate(groups):
            g = grads[group.sl]
            if noise_std > 0:
                g = g + noise_std * noises[gi]
            inp = StepInput(g, losses[group.sl], lower[group.sl], randoms[gi], progress_t)
            out = group.spec.step(inp, states[gi], group.params)
            d = out.direction
            if group.entry.output_scale != 1.0:
                d = d * group.entry.output_scale
            group_flags = [
                out.flags[n] if n in out.flags else torch.zeros(group.size, dtype=torch.bool)
                for n in group.flag_names
            ]
            if group.entry.clip_norm is not None:
                # torch.nn.utils.clip_grad_norm_: scale by max_norm / (norm + 1e-6) when that is < 1.
                coef = group.entry.clip_norm / (d.norm(dim=-1, keepdim=True) + 1e-6)
                group_flags.append(coef.squeeze(-1) < 1)
                d = d * coef.clamp(max=1.0)
            directions.append(d)
            weights.append(out.weights)
            flags.append(
                torch.stack(group_flags) if group_flags else torch.zeros((0, group.size), dtype=torch.bool)
            )
            new_states.append(out.state)
        d = torch.cat(directions)
        x_new, opt_state = optimizer.update(d, opt_state, x)
        return x_new, opt_state, new_states, losses, d, torch.cat(weights), flags

    return step


def _near_point(point: Tensor, tol: float) -> Callable[[Tensor], Tensor]:
    return lambda x: (x - point).norm(dim=-1) <= tol


def _near_set(distance: geometry.FastParetoDistance, tol: float) -> Callable[[Tensor], Tensor]:
    return lambda x: distance.within(x, tol)


@dataclass
class _Run:
    """A run as built from its config: lanes, method groups and the problem's geometry."""

    config: Config
    dtype: torch.dtype
    problem: Any
    pparams: dict
    lanes: list[Lane]
    x0: Tensor  # (B, D)
    lower: Tensor  # (B, K)
    optimizer: Any
    groups: list[_Group]
    names: list[str]  # the run's flag names: ENGINE_FLAGS, then each method's in order
    flag_help: dict[str, str]
    gmin: Tensor  # (D,)
    pareto_distance: geometry.FastParetoDistance

    @property
    def shape(self) -> tuple[int, int, int]:
        return len(self.lanes), self.problem.n_tasks, self.problem.dim


@dataclass
class _Book:
    """Per-lane bookkeeping filled by a backend: guards, flags, first hits and the records."""

    counts: Tensor  # (F, B) long
    first: Tensor  # (F, B) long, -1 never
    first_min: Tensor  # (B,) long
    first_par: Tensor  # (B,) long
    stop_step: Tensor  # (B,) long, -1 still running
    stop_code: Tensor  # (B,) long: 1 nonfinite_loss, 2 nonfinite_direction
    frozen_x: Tensor  # (B, D)
    frozen_l: Tensor  # (B, K)
    x: Tensor | None = None  # (B, D) the state after the last step
    steps_run: int = 0
    early: bool = False
    records: list[tuple[Tensor, ...]] = field(default_factory=list)  # (t, x, l, d, w, flags) blocks

    @staticmethod
    def empty(B: int, K: int, D: int, F: int, dtype: torch.dtype) -> _Book:
        never = torch.full((B,), -1, dtype=torch.long)
        return _Book(
            counts=torch.zeros((F, B), dtype=torch.long),
            first=torch.full((F, B), -1, dtype=torch.long),
            first_min=never.clone(),
            first_par=never.clone(),
            stop_step=never.clone(),
            stop_code=torch.zeros(B, dtype=torch.long),
            frozen_x=torch.zeros((B, D), dtype=dtype),
            frozen_l=torch.zeros((B, K), dtype=dtype),
        )


def _build(config: Config) -> _Run:
    """Lanes, one group per method entry (parameters as tensors, random draws, initial state),
    the run's flag table and the geometry the outcome checks need."""
    dtype = getattr(torch, config.dtype)
    problem = get_problem(config.problem)
    pparams = dict(config.problem_params)
    lanes = build_lanes(config)
    B, K, D = len(lanes), problem.n_tasks, problem.dim
    x0 = torch.tensor([lane.init for lane in lanes], dtype=dtype).reshape(B, D)
    lower = torch.tensor(config.resolved_lower_bounds(), dtype=dtype).expand(B, K)
    groups: list[_Group] = []
    names: list[str] = list(ENGINE_FLAGS)
    flag_help = dict(ENGINE_FLAGS)
    for e, entry in enumerate(config.methods):
        idx = [lane.index for lane in lanes if lane.entry == e]
        spec = get_method(entry.name)
        combos = [lanes[i].params for i in idx]
        per_lane = {p.name: [c[p.name] for c in combos] for p in spec.params if p.kind == "float"}
        shared = {p.name: combos[0][p.name] for p in spec.params if p.kind != "float"}
        params = lane_params(spec, {**per_lane, **shared}, len(idx), dtype)
        occurrence = sum(1 for other in config.methods[:e] if other.name == entry.name)
        gen = torch.Generator().manual_seed(_seed_for(config.seed, entry.name, occurrence))
        draws = _Draws(spec, len(idx), K, D, config.noise > 0, gen, dtype, config.steps)
        state = spec.init_state(len(idx), K, D, params, dtype)
        groups.append(_Group(spec, entry, slice(idx[0], idx[-1] + 1), params, draws, state))
        flag_help.update(spec.flags)
        names += [n for n in spec.flags if n not in names]
    pareto = geometry.pareto_set(problem, pparams)
    return _Run(
        config=config,
        dtype=dtype,
        problem=problem,
        pparams=pparams,
        lanes=lanes,
        x0=x0,
        lower=lower,
        optimizer=make_optimizer(config.optimizer, config.lr, config.momentum),
        groups=groups,
        names=names,
        flag_help=flag_help,
        gmin=geometry.global_minimum(problem, pparams).to(dtype),
        pareto_distance=geometry.FastParetoDistance(pareto, dtype, exact_within=config.tolerance),
    )


def run(config: Config, progress: Callable[[float], Any] | None = None, chunk: int | None = None) -> Result:
    """Run every lane of ``config`` for ``config.steps`` steps (or until early stop).

    Backend "eager" steps all lanes together in Python (the reference, ``chunk`` steps at a time);
    "compiled" runs each method entry's lanes in compiled segments from one record to the next
    (segment.py). Compiled falls back to eager, with a notice in ``Result.notices``, where it
    cannot run: no C++ compiler, an early-stop tolerance (a test across all entries' lanes at
    every step), or a segment whose package fails to build.
    """
    config = config.validated()
    budget.check(config)
    started = time.perf_counter()
    built = _build(config)
    notices: list[str] = []
    backend = config.backend
    if backend == "compiled":
        from .compiled import compiler_missing

        reason = compiler_missing() or (
            "early stop (early_stop_tol > 0) runs eagerly: the compiled backend ran eagerly"
            if config.early_stop_tol > 0
            else None
        )
        if reason:
            notices.append(reason)
            backend = "eager"
    book = None
    if backend == "compiled":
        from .compiled import BuildFailed

        try:
            book = _run_compiled(built, progress)
        except BuildFailed as failed:  # raised before any step: the run starts again eagerly
            notices.append(str(failed))
            backend, built = "eager", _build(config)
    if book is None:
        book = _run_eager(built, progress, chunk)
    return _assemble(built, book, time.perf_counter() - started, backend, tuple(notices))


def _group_rows(built: _Run, group: _Group, rows: tuple[str, ...]) -> Tensor:
    return torch.tensor([built.names.index(n) for n in rows], dtype=torch.long)


def _run_compiled(built: _Run, progress) -> _Book:
    """Each method entry in compiled segments of at most the recording interval: the segment's
    first step is the record (segment.py keeps guards, flags and first hits inside the loop)."""
    from .compiled import GroupLanes

    config, dtype = built.config, built.dtype
    B, K, D = built.shape
    book = _Book.empty(B, K, D, len(built.names), dtype)
    steps, every = config.steps, config.record_every
    pts = built.pareto_distance.pts
    cell_first, cell_low, cell_width, window = _pareto_cells(pts, config.tolerance)
    problem_floats = [
        float(v)
        for p, v in zip(built.problem.params, built.problem.validate_params(built.pparams).values())
        if p.kind == "float"
    ]
    run_scalars = {
        "lr": config.lr,
        "momentum": config.momentum,
        "noise_std": config.noise,
        "tol": config.tolerance,
        "cell_low": cell_low,
        "cell_width": cell_width,
        "progress_denominator": max(steps - 1, 1),
    }
    geometry_ = (pts, cell_first, torch.arange(window))
    lanes = []
    for g in built.groups:
        entry = g.entry
        scalars = {**run_scalars, "output_scale": entry.output_scale, "clip_norm": entry.clip_norm or 0.0}
        lanes.append(
            GroupLanes(
                built.problem,
                g,
                config,
                built.x0[g.sl],
                built.lower[g.sl],
                scalars,
                [*built.gmin.tolist(), *problem_floats],
                geometry_,
                _group_rows(built, g, GroupLanes.guard_rows + tuple(g.flag_names)),
            )
        )
    # Segments end at the next record (and their first step is one); long unrecorded stretches
    # are cut so that their pre-drawn random numbers stay bounded.
    cap = max(16, min(4096, 1_000_000 // max(g.size for g in built.groups)))
    t0, recorded_steps = 0, []
    while t0 < steps:
        n = min(every - t0 % every, steps - t0)
        if any(g.draws.needed for g in built.groups):
            n = min(n, cap)
        recorded = t0 % every == 0
        if recorded:
            recorded_steps.append(t0)
        for group_lanes in lanes:
            g = group_lanes.group
            group_lanes.advance(t0, n, *g.draws.take(t0, n), keep=recorded)
        t0 += n
        if progress is not None:
            progress(min(t0 / steps, 1.0))
    # The records, assembled once: one call per segment does no more than keep its first step.
    T = len(recorded_steps)
    block = [torch.empty((T, B, w), dtype=dtype) for w in (D, K, D, K)]
    flags = torch.zeros((T, len(built.names), B), dtype=torch.bool)
    for group_lanes in lanes:
        sl = group_lanes.group.sl
        *values, group_flags = group_lanes.records(recorded_steps)
        for whole, part in zip(block, values):
            whole[:, sl] = part
        flags[:, group_lanes.rows, sl] = group_flags
    book.records.append((torch.tensor(recorded_steps), *block, flags))
    book.x = torch.empty((B, D), dtype=dtype)
    for group_lanes in lanes:
        group_lanes.finish(book)
    book.steps_run = steps
    return book


def _pareto_cells(pts: Tensor, tol: float) -> tuple[Tensor, float, float, int]:
    """segment.pareto_distance's lookup for the polyline ``pts`` (sorted by x1): uniform cells of
    width tol over its x1 range, each cell's first segment (taken from the cell before, against
    rounding in the cell index) and the window length W that reaches every segment meeting
    [x1 - tol, x1 + tol] from any point of any cell. Returns (cell_first, low, width, W)."""
    x1 = pts[:, 0].double().contiguous()
    n = x1.shape[0]
    low, width = float(x1[0]) - 2 * tol, tol
    cells = int((float(x1[-1]) - low) / width) + 3
    edges = low + width * torch.arange(-1, cells + 2, dtype=torch.float64)
    first = (torch.searchsorted(x1, edges[:cells].contiguous()) - 1).clamp(0, n - 2)
    reach = torch.searchsorted(x1, (edges[3 : cells + 3] + 2 * tol).contiguous()).clamp(max=n - 2)
    return first, low, width, int((reach - first).max()) + 2


def _run_eager(built: _Run, progress, chunk: int | None) -> _Book:
    """The reference loop: every lane stepped together, ``chunk`` steps at a time; guards, first
    hits, flag counts and records are decided after each chunk, vectorised over its steps."""
    config, dtype = built.config, built.dtype
    B, K, D = built.shape
    groups, names = built.groups, built.names
    # Chunk buffers hold chunk x B states: bound their memory for large runs (basin maps).
    chunk = chunk or max(16, min(512, 1_000_000 // B))
    # Row of each group's flag (and its clip flag) in the run-wide flag table.
    group_rows = [
        _group_rows(built, g, tuple(g.flag_names) + (("clipped",) if g.entry.clip_norm else ()))
        for g in groups
    ]
    step_fn = _make_step(built.problem, built.pparams, groups, built.optimizer, built.lower, config.noise)
    book = _Book.empty(B, K, D, len(names), dtype)
    x = built.x0
    opt_state = built.optimizer.init(x)
    states = [g.state for g in groups]
    steps, every = config.steps, config.record_every
    book.steps_run = steps
    t0 = 0
    # The last state x_t and its losses before the current chunk (where a lane whose x goes
    # non-finite right at a chunk boundary is frozen).
    prev = None
    while t0 < steps and not book.early:
        C = min(chunk, steps - t0)
        draws = [g.draws.take(t0, C) for g in groups]
        parts, part_flags = [], []
        x_start = x
        for c in range(C):
            progress_t = torch.tensor((t0 + c) / max(steps - 1, 1), dtype=dtype)
            x, opt_state, states, losses, d, w, flags = step_fn(
                x,
                opt_state,
                states,
                progress_t,
                [None if n is None else n[c] for n, _ in draws],
                [None if r is None else r[c] for _, r in draws],
            )
            parts.append((x, losses, d, w))
            part_flags.append(flags)
        buf_x = torch.stack([x_start, *(p[0] for p in parts)])  # (C + 1, B, D): x_t0 ... x_t0+C
        ts = torch.arange(t0, t0 + C)
        if config.early_stop_tol > 0:
            C, ts = _early_stop(book, buf_x, ts, t0, config.early_stop_tol)
        xs = buf_x[:C]
        ls, ds, ws = (torch.stack([p[i] for p in parts[:C]]) for i in (1, 2, 3))
        fs = torch.zeros((C, len(names), B), dtype=torch.bool)
        for gi, (g, rows) in enumerate(zip(groups, group_rows)):
            if len(rows):
                fs[:, rows, g.sl] = torch.stack([pf[gi] for pf in part_flags[:C]])
        after = _guards(book, names, ts, xs, ls, ds, fs, prev, buf_x[0])
        prev = xs[-1], ls[-1]
        if bool((book.stop_step >= 0).any()):  # (the common case, no stopped lane, skips the copies)
            at_or_after = (book.stop_step >= 0)[None, :] & (ts[:, None] >= book.stop_step[None, :])
            xs = torch.where(at_or_after[..., None] & ~torch.isfinite(xs), book.frozen_x[None], xs)
            xs = torch.where(after[..., None], book.frozen_x[None], xs)
            ls = torch.where(after[..., None], book.frozen_l[None], ls)
            ds = torch.where(after[..., None], float("nan"), ds)
            ws = torch.where(after[..., None], float("nan"), ws)
            fs = fs & ~after[:, None, :]
        _first_hits(built, book, ts, xs, after)
        _count_flags(book, ts, fs)
        keep = ts % every == 0
        if bool(keep.any()):
            book.records.append((ts[keep], xs[keep], ls[keep], ds[keep], ws[keep], fs[keep]))
        x = buf_x[C]
        t0 += C
        if progress is not None:
            progress(min(t0 / steps, 1.0))
    book.x = x
    return book


def _early_stop(book: _Book, buf_x: Tensor, ts: Tensor, t0: int, tol: float) -> tuple[int, Tensor]:
    """The first step after which no lane moved more than ``tol``: the chunk is cut after it."""
    moved = (buf_x[1:] - buf_x[:-1]).norm(dim=-1).nan_to_num(0.0).amax(-1)
    still = torch.nonzero(moved < tol).flatten()
    C = len(ts)
    if len(still):
        C = int(still[0]) + 1
        book.early = True
        book.steps_run = t0 + C
    return C, ts[:C]


def _guards(book: _Book, names, ts, xs, ls, ds, fs, prev, start) -> Tensor:
    """The first non-finite loss/gradient (or x) or direction of a chunk stops its lane at that
    step, frozen at its last finite point; returns ``after`` (C, B): the steps after a lane's stop.
    One sum first: NaN and inf propagate through it, so a finite total (the common case) means
    every value is finite and the per-lane tests are skipped."""
    t0 = int(ts[0])
    if not bool(torch.isfinite(xs.sum() + ls.sum() + ds.sum())):
        bad_loss = ~torch.isfinite(ls).all(-1) | ~torch.isfinite(xs).all(-1)
        bad_dir = ~torch.isfinite(ds).all(-1) & ~bad_loss
        bad = (bad_loss | bad_dir) & (book.stop_step < 0)
        hit = bad.any(0)
        first_bad = torch.where(bad, ts[:, None], torch.iinfo(torch.long).max).amin(0)
        for i in torch.nonzero(hit).flatten().tolist():
            c = int(first_bad[i]) - t0
            code = 1 if bool(bad_loss[c, i]) else 2
            book.stop_code[i] = code
            fs[c, names.index("nonfinite_loss" if code == 1 else "nonfinite_direction"), i] = True
            # The last finite point: x_t itself, or x_{t-1} when x_t is already non-finite.
            if bool(torch.isfinite(xs[c, i]).all()) and bool(torch.isfinite(ls[c, i]).all()):
                book.frozen_x[i], book.frozen_l[i] = xs[c, i], ls[c, i]
            elif c > 0:
                book.frozen_x[i], book.frozen_l[i] = xs[c - 1, i], ls[c - 1, i]
            elif prev is not None:
                book.frozen_x[i], book.frozen_l[i] = prev[0][i], prev[1][i]
            else:  # a non-finite start cannot pass validation; keep the start
                book.frozen_x[i] = start[i]
                book.frozen_l[i] = float("nan")
        book.stop_step = torch.where(hit, first_bad, book.stop_step)
    # Everything after a lane's stop step is the frozen lane.
    return (book.stop_step >= 0)[None, :] & (ts[:, None] > book.stop_step[None, :])


def _first_hits(built: _Run, book: _Book, ts: Tensor, xs: Tensor, after: Tensor) -> None:
    """The first steps within the tolerance of the global minimum and of the Pareto set, tested
    only for lanes that have not reached them. A lane at distance r from a target at the chunk's
    start that moves at most `reach` from there stays farther than r - reach all chunk (triangle
    inequality), so only lanes with r - reach <= tol need the per-step test (stalled lanes far
    away, most of a basin map's unfinished ones, skip it)."""
    tol, D = built.config.tolerance, built.shape[2]
    eps = torch.finfo(built.dtype).eps
    big = torch.iinfo(torch.long).max
    pending = torch.nonzero((book.first_min < 0) | (book.first_par < 0)).flatten()
    if not len(pending):
        return
    C = len(ts)
    path = xs[:, pending]  # (C, P, D)
    start = path[0]
    reach = (path - start).norm(dim=-1).amax(0)
    for first_hit, lower_bound, near in (
        (book.first_min, (start - built.gmin).norm(dim=-1), _near_point(built.gmin, tol)),
        (book.first_par, built.pareto_distance.box_distance(start), _near_set(built.pareto_distance, tol)),
    ):
        slack = 8 * eps * (lower_bound + reach + tol)  # rounding in the three distances
        need = (first_hit[pending] < 0) & ~(lower_bound - reach > tol + slack)
        sel = torch.nonzero(need).flatten()
        if len(sel):
            near_lanes = pending[sel]
            hit_now = near(path[:, sel].reshape(-1, D)).view(C, -1) & ~after[:, near_lanes]
            cand = torch.where(hit_now, ts[:, None], big).amin(0)
            first_hit[near_lanes] = torch.where(cand < big, cand, -1)


def _count_flags(book: _Book, ts: Tensor, fs: Tensor) -> None:
    if bool(fs.any()):
        big = torch.iinfo(torch.long).max
        book.counts += fs.sum(0)
        cand = torch.where(fs, ts[:, None, None], big).amin(0)
        book.first = torch.where((book.first < 0) & (cand < big), cand, book.first)


def _assemble(built: _Run, book: _Book, seconds: float, backend: str, notices: tuple[str, ...]) -> Result:
    """The final state (stopped lanes at their frozen point), its first hits and outcome class,
    and the records as numpy arrays."""
    config, dtype = built.config, built.dtype
    B, K, D = built.shape
    tol = config.tolerance
    stopped = book.stop_step >= 0
    x = torch.where(stopped[:, None], book.frozen_x, book.x)
    losses, _ = built.problem.losses_and_grads(x, built.pparams)
    losses = torch.where(stopped[:, None], book.frozen_l, losses)
    near_min = (x - built.gmin).norm(dim=-1) <= tol
    near_par = built.pareto_distance.within(x, tol)
    first_min = torch.where((book.first_min < 0) & near_min & ~stopped, book.steps_run, book.first_min)
    first_par = torch.where((book.first_par < 0) & near_par & ~stopped, book.steps_run, book.first_par)
    far = geometry.escaped(built.problem.box, x.to(torch.float64).numpy())
    nan_d = torch.full((1, B, D), float("nan"), dtype=dtype)
    nan_w = torch.full((1, B, K), float("nan"), dtype=dtype)
    codes = {0: "early_stop" if book.early else "completed", 1: "nonfinite_loss", 2: "nonfinite_direction"}
    rec_t, rec_x, rec_l, rec_d, rec_w, rec_f = (
        (list(r) for r in zip(*book.records)) if book.records else ([],) * 6
    )
    names = built.names
    return Result(
        config=config,
        lanes=built.lanes,
        recorded_steps=torch.cat(rec_t + [torch.tensor([book.steps_run])]).numpy(),
        x=torch.cat(rec_x + [x[None]]).numpy(),
        losses=torch.cat(rec_l + [losses[None]]).numpy(),
        directions=torch.cat(rec_d + [nan_d]).numpy(),
        weights=torch.cat(rec_w + [nan_w]).numpy(),
        flags={
            n: torch.cat([f[:, j] for f in rec_f] + [torch.zeros((1, B), dtype=torch.bool)]).numpy()
            for j, n in enumerate(names)
        },
        flag_counts={n: book.counts[j].numpy() for j, n in enumerate(names)},
        flag_first={n: book.first[j].numpy() for j, n in enumerate(names)},
        first_global_min=first_min.numpy(),
        first_pareto=first_par.numpy(),
        stop_step=torch.where(stopped, book.stop_step, book.steps_run).numpy(),
        stop_reason=[codes[int(c)] for c in book.stop_code],
        global_min=built.gmin.to(torch.float64).numpy(),
        steps_run=book.steps_run,
        seconds=seconds,
        flag_help=built.flag_help,
        final_class=[
            "diverged" if far[i] else "global_min" if near_min[i] else "pareto" if near_par[i] else "other"
            for i in range(B)
        ],
        backend=backend,
        notices=notices,
    )
