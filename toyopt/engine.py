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
from .config import Config
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
        return self._final_class[lane]

    def lanes_of(self, entry: int) -> list[Lane]:
        return [lane for lane in self.lanes if lane.entry == entry]

    _final_class: list[str] = field(default_factory=list)


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


class _Group:
    """The lanes of one method entry: a contiguous slice of the batch."""

    def __init__(self, spec, entry, sl, params, gen, state, flag_names):
        self.spec, self.entry, self.sl, self.params, self.gen, self.state = (
            spec,
            entry,
            sl,
            params,
            gen,
            state,
        )
        self.flag_names = flag_names  # the spec's declared flags, in a fixed order
        self.size = sl.stop - sl.start


def _make_step(problem, pparams, groups, optimizer, lower, noise_std, K, D, dtype):
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


#: Steps per compiled block (backend "compiled"): longer blocks run faster but compile longer.
UNROLL = 16


def _padded(z: Tensor, start: int, length: int) -> Tensor:
    part = z[start : start + length]
    if part.shape[0] < length:
        part = torch.cat([part, part[-1:].expand(length - part.shape[0], *part.shape[1:])])
    return part


def _row(blocks: list[Tensor], index: int) -> Tensor:
    """Row ``index`` of torch.cat(blocks) without concatenating them."""
    for block in blocks:
        if index < block.shape[0]:
            return block[index]
        index -= block.shape[0]
    raise IndexError(index)


def _compiled_block(step_fn):
    """UNROLL steps as one compiled graph (torch.compile, inductor); per-step outputs stacked."""

    def block(x, opt_state, states, progress, noises, randoms):
        xs, ls, ds, ws, fs = [], [], [], [], []
        total = 0.0
        for u in range(UNROLL):
            x, opt_state, states, losses, d, w, flags = step_fn(
                x,
                opt_state,
                states,
                progress[u],
                [None if z is None else z[u] for z in noises],
                [None if r is None else r[u] for r in randoms],
            )
            xs.append(x), ls.append(losses), ds.append(d), ws.append(w), fs.append(flags)
            # One sum over the block's states, losses and directions, each fused into the loop
            # that computes them: finite unless one of them is not (or the sum overflows), the
            # engine's cheap guard test.
            total = total + (x.sum() + losses.sum() + d.sum())
        stacked_flags = [torch.stack([f[g] for f in fs]) for g in range(len(fs[0]))]
        stacked = (torch.stack(xs), torch.stack(ls), torch.stack(ds), torch.stack(ws))
        return stacked[0], opt_state, states, *stacked[1:], stacked_flags, total

    compiled = torch.compile(block, dynamic=False)
    dynamo_config = torch._dynamo.config

    def call(*args):
        # Dynamo keeps at most `recompile_limit` (8) compiled versions of `block` per process (one
        # per run structure) and would run every further structure eagerly, silently. Made to
        # raise instead, the limit drops the old versions and this run compiles its own. (Set and
        # restored by hand: config.patch costs about 0.2 ms, a whole 16-step block of 5 lanes 0.5 ms.)
        previous = dynamo_config.fail_on_recompile_limit_hit
        dynamo_config.fail_on_recompile_limit_hit = True
        try:
            return compiled(*args)
        except torch._dynamo.exc.FailOnRecompileLimitHit:
            torch.compiler.reset()
            return compiled(*args)
        finally:
            dynamo_config.fail_on_recompile_limit_hit = previous

    return call


def run(config: Config, progress: Callable[[float], Any] | None = None, chunk: int | None = None) -> Result:
    """Run every lane of ``config`` for ``config.steps`` steps (or until early stop).

    The loop keeps per-step work to the step itself and collects each block's stacked outputs;
    outcome checks, guards (non-finite values freeze a lane at its last finite point,
    decided after the fact per chunk: lanes are independent, so a NaN lane cannot affect the
    others), flag counts and recording run once per chunk, vectorised over its steps.
    """
    config = config.validated()
    budget.check(config)
    started = time.perf_counter()
    dtype = getattr(torch, config.dtype)
    problem = get_problem(config.problem)
    pparams = dict(config.problem_params)
    lanes = build_lanes(config)
    B, K, D = len(lanes), problem.n_tasks, problem.dim
    # Chunk buffers hold chunk x B states: bound their memory for large runs (basin maps).
    chunk = chunk or max(16, min(512, 1_000_000 // B))

    x = torch.tensor([lane.init for lane in lanes], dtype=dtype).reshape(B, D)
    lower = torch.tensor(config.resolved_lower_bounds(), dtype=dtype).expand(B, K)
    optimizer = make_optimizer(config.optimizer, config.lr, config.momentum)
    opt_state = optimizer.init(x)

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
        state = spec.init_state(len(idx), K, D, params, dtype)
        group = _Group(spec, entry, slice(idx[0], idx[-1] + 1), params, gen, state, list(spec.flags))
        groups.append(group)
        flag_help.update(spec.flags)
        for n in spec.flags:
            if n not in names:
                names.append(n)
    # Row of each group's flag (and its clip flag) in the run-wide flag table.
    group_rows = [
        torch.tensor(
            [names.index(n) for n in g.flag_names] + ([names.index("clipped")] if g.entry.clip_norm else []),
            dtype=torch.long,
        )
        for g in groups
    ]
    step_fn = _make_step(problem, pparams, groups, optimizer, lower, config.noise, K, D, dtype)
    unroll = 1
    if config.backend == "compiled":
        step_fn, unroll = _compiled_block(step_fn), UNROLL
        chunk = max(unroll, chunk - chunk % unroll)
        opt_state = optimizer.init(x, step=torch.tensor(0.0, dtype=dtype))

    pareto = geometry.pareto_set(problem, pparams)
    pareto_distance = geometry.FastParetoDistance(pareto, dtype, exact_within=config.tolerance)
    gmin = geometry.global_minimum(problem, pparams).to(dtype)
    tol = config.tolerance
    eps = torch.finfo(dtype).eps

    steps = config.steps
    every = config.record_every
    rec_x, rec_l, rec_d, rec_w, rec_f, rec_t = [], [], [], [], [], []
    F = len(names)
    counts = torch.zeros((F, B), dtype=torch.long)
    first = torch.full((F, B), -1, dtype=torch.long)
    first_min = torch.full((B,), -1, dtype=torch.long)
    first_par = torch.full((B,), -1, dtype=torch.long)
    stop_step = torch.full((B,), -1, dtype=torch.long)  # -1: still running
    stop_code = torch.zeros(B, dtype=torch.long)  # 1 nonfinite_loss, 2 nonfinite_direction
    frozen_x = torch.zeros((B, D), dtype=dtype)
    frozen_l = torch.zeros((B, K), dtype=dtype)
    steps_run = steps
    early = False
    states = [g.state for g in groups]
    t0 = 0
    # The last state x_t and its losses before the current chunk (where a lane whose x goes
    # non-finite right at a chunk boundary is frozen).
    prev_x = prev_l = None
    while t0 < steps and not early:
        C = min(chunk, steps - t0)
        noises = [
            torch.randn((C, g.size, K, D), generator=g.gen, dtype=dtype) if config.noise > 0 else None
            for g in groups
        ]
        randoms = [
            None
            if g.spec.random is None
            else draw_random(g.spec, C * g.size, K, D, g.gen, dtype).view(C, g.size, -1)
            for g in groups
        ]
        # Per block of steps (one step eager, UNROLL compiled): (x_{t+1}, losses, d, w) stacked
        # over its steps, and each group's flags (steps, rows, lanes).
        parts: list[tuple[Tensor, Tensor, Tensor, Tensor]] = []
        part_flags: list[list[Tensor]] = []
        totals: list[Tensor] = []  # compiled: each block's one sum over its x, losses and d
        x_start = x
        if unroll == 1:
            for c in range(C):
                progress_t = torch.tensor((t0 + c) / max(steps - 1, 1), dtype=dtype)
                x, opt_state, states, losses, d, w, flags = step_fn(
                    x,
                    opt_state,
                    states,
                    progress_t,
                    [None if n is None else n[c] for n in noises],
                    [None if r is None else r[c] for r in randoms],
                )
                parts.append((x[None], losses[None], d[None], w[None]))
                part_flags.append([fl[None] for fl in flags])
        else:
            for c in range(0, C, unroll):
                n = min(unroll, C - c)  # the last block may be padded; its extra steps are discarded
                prog = (torch.arange(t0 + c, t0 + c + unroll, dtype=dtype) / max(steps - 1, 1)).clamp(max=1.0)
                x_b, opt_state, states, l_b, d_b, w_b, f_b, total = step_fn(
                    x,
                    opt_state,
                    states,
                    prog,
                    [None if z is None else _padded(z, c, unroll) for z in noises],
                    [None if r is None else _padded(r, c, unroll) for r in randoms],
                )
                x = x_b[n - 1]
                parts.append((x_b[:n], l_b[:n], d_b[:n], w_b[:n]))
                part_flags.append([fl[:n] for fl in f_b])
                totals.append(total)
        buf_x = torch.cat([x_start[None], *(p[0] for p in parts)])  # (C + 1, B, D): x_t0 ... x_t0+C
        ts = torch.arange(t0, t0 + C)
        # Early stop: the first step after which no lane moved more than the tolerance.
        if config.early_stop_tol > 0:
            moved = (buf_x[1:] - buf_x[:-1]).norm(dim=-1).nan_to_num(0.0).amax(-1)
            still = torch.nonzero(moved < config.early_stop_tol).flatten()
            if len(still):
                C = int(still[0]) + 1
                early = True
                steps_run = t0 + C
                ts = ts[:C]
        xs = buf_x[:C]
        fs = torch.zeros((C, F, B), dtype=torch.bool)
        for gi, (g, rows) in enumerate(zip(groups, group_rows)):
            if len(rows):
                fs[:, rows, g.sl] = torch.cat([pf[gi] for pf in part_flags])[:C]
        keep = ts % every == 0
        # Guards, decided after the fact: the first non-finite loss/gradient or direction stops a lane.
        # One sum first: NaN and inf propagate through it, so a finite total (the common case)
        # means every value is finite and the per-lane tests can be skipped. Compiled blocks sum
        # their own outputs inside the kernel; then the losses, directions and weights of a chunk
        # are gathered only when something is recorded or may be non-finite.
        if totals:
            suspect = not bool(torch.isfinite(torch.stack(totals).sum()))
            ls = ds = ws = None
            if suspect or bool(keep.any()):
                ls, ds, ws = (torch.cat([p[i] for p in parts])[:C] for i in (1, 2, 3))
        else:
            ls, ds, ws = (torch.cat([p[i] for p in parts])[:C] for i in (1, 2, 3))
            suspect = not bool(torch.isfinite(xs.sum() + ls.sum() + ds.sum()))
        hit = None
        if suspect:
            bad_loss = ~torch.isfinite(ls).all(-1) | ~torch.isfinite(xs).all(-1)
            bad_dir = ~torch.isfinite(ds).all(-1) & ~bad_loss
            bad = (bad_loss | bad_dir) & (stop_step < 0)
            hit = bad.any(0)
        if hit is not None and bool(hit.any()):
            first_bad = torch.where(bad, ts[:, None], torch.iinfo(torch.long).max).amin(0)
            lanes_hit = torch.nonzero(hit).flatten()
            for i in lanes_hit.tolist():
                c = int(first_bad[i]) - t0
                stop_code[i] = 1 if bool(bad_loss[c, i]) else 2
                fs[c, names.index("nonfinite_loss" if stop_code[i] == 1 else "nonfinite_direction"), i] = True
                # The last finite point: x_t itself, or x_{t-1} when x_t is already non-finite.
                if bool(torch.isfinite(xs[c, i]).all()) and bool(torch.isfinite(ls[c, i]).all()):
                    frozen_x[i], frozen_l[i] = xs[c, i], ls[c, i]
                elif c > 0:
                    frozen_x[i], frozen_l[i] = xs[c - 1, i], ls[c - 1, i]
                elif prev_x is not None:
                    frozen_x[i], frozen_l[i] = prev_x[i], prev_l[i]
                else:  # a non-finite start cannot pass validation; keep the start
                    frozen_x[i] = buf_x[0, i]
                    frozen_l[i] = float("nan")
            stop_step = torch.where(hit, first_bad, stop_step)
        prev_x, prev_l = xs[-1], ls[-1] if ls is not None else _row([p[1] for p in parts], C - 1)
        # Everything after a lane's stop step is the frozen lane.
        after = (stop_step >= 0)[None, :] & (ts[:, None] > stop_step[None, :])
        if bool((stop_step >= 0).any()):  # (the common case, no stopped lane, skips the copies)
            at_or_after = (stop_step >= 0)[None, :] & (ts[:, None] >= stop_step[None, :])
            xs = torch.where(at_or_after[..., None] & ~torch.isfinite(xs), frozen_x[None], xs)
            xs = torch.where(after[..., None], frozen_x[None], xs)
            if ls is not None:
                ls = torch.where(after[..., None], frozen_l[None], ls)
                ds = torch.where(after[..., None], float("nan"), ds)
                ws = torch.where(after[..., None], float("nan"), ws)
            fs = fs & ~after[:, None, :]
        # Outcome bookkeeping at every x_t of the chunk, only for the lanes that have not yet
        # reached the minimum (or the Pareto set): once reached, the first step is known. A lane
        # at distance r from a target at the chunk's start that moves at most `reach` from there
        # stays farther than r - reach all chunk (triangle inequality), so only lanes with
        # r - reach <= tol need the per-step test (stalled lanes far away, most of a basin map's
        # unfinished ones, skip it).
        big = torch.iinfo(torch.long).max
        pending = torch.nonzero((first_min < 0) | (first_par < 0)).flatten()
        if len(pending):
            path = xs[:, pending]  # (C, P, D)
            start = path[0]
            reach = (path - start).norm(dim=-1).amax(0)
            for first_hit, lower_bound, near in (
                (first_min, (start - gmin).norm(dim=-1), _near_point(gmin, tol)),
                (first_par, pareto_distance.box_distance(start), _near_set(pareto_distance, tol)),
            ):
                slack = 8 * eps * (lower_bound + reach + tol)  # rounding in the three distances
                need = (first_hit[pending] < 0) & ~(lower_bound - reach > tol + slack)
                sel = torch.nonzero(need).flatten()
                if len(sel):
                    near_lanes = pending[sel]
                    hit_now = near(path[:, sel].reshape(-1, D)).view(C, -1) & ~after[:, near_lanes]
                    cand = torch.where(hit_now, ts[:, None], big).amin(0)
                    first_hit[near_lanes] = torch.where(cand < big, cand, -1)
        if bool(fs.any()):
            counts += fs.sum(0)
            cand_flag = torch.where(fs, ts[:, None, None], big).amin(0)
            first = torch.where((first < 0) & (cand_flag < big), cand_flag, first)
        if bool(keep.any()):
            rec_x.append(xs[keep])
            rec_l.append(ls[keep])
            rec_d.append(ds[keep])
            rec_w.append(ws[keep])
            rec_f.append(fs[keep])
            rec_t.append(ts[keep])
        x = buf_x[C]
        t0 += C
        if progress is not None:
            progress(min(t0 / steps, 1.0))

    stopped = stop_step >= 0
    x = torch.where(stopped[:, None], frozen_x, x)
    losses, _ = problem.losses_and_grads(x, pparams)
    losses = torch.where(stopped[:, None], frozen_l, losses)
    near_min = (x - gmin).norm(dim=-1) <= tol
    near_par = pareto_distance.within(x, tol)
    first_min = torch.where((first_min < 0) & near_min & ~stopped, steps_run, first_min)
    first_par = torch.where((first_par < 0) & near_par & ~stopped, steps_run, first_par)
    nan_d = torch.full((1, B, D), float("nan"), dtype=dtype)
    nan_w = torch.full((1, B, K), float("nan"), dtype=dtype)
    codes = {0: "early_stop" if early else "completed", 1: "nonfinite_loss", 2: "nonfinite_direction"}
    reason = [codes[int(c)] for c in stop_code]
    result = Result(
        config=config,
        lanes=lanes,
        recorded_steps=torch.cat(rec_t + [torch.tensor([steps_run])]).numpy(),
        x=torch.cat(rec_x + [x[None]]).numpy(),
        losses=torch.cat(rec_l + [losses[None]]).numpy(),
        directions=torch.cat(rec_d + [nan_d]).numpy(),
        weights=torch.cat(rec_w + [nan_w]).numpy(),
        flags={
            n: torch.cat([f[:, j] for f in rec_f] + [torch.zeros((1, B), dtype=torch.bool)]).numpy()
            for j, n in enumerate(names)
        },
        flag_counts={n: counts[j].numpy() for j, n in enumerate(names)},
        flag_first={n: first[j].numpy() for j, n in enumerate(names)},
        first_global_min=first_min.numpy(),
        first_pareto=first_par.numpy(),
        stop_step=torch.where(stopped, stop_step, steps_run).numpy(),
        stop_reason=reason,
        global_min=gmin.to(torch.float64).numpy(),
        steps_run=steps_run,
        seconds=time.perf_counter() - started,
        flag_help=flag_help,
    )
    far = geometry.escaped(problem.box, x.to(torch.float64).numpy())
    result._final_class = [
        "diverged" if far[i] else "global_min" if near_min[i] else "pareto" if near_par[i] else "other"
        for i in range(B)
    ]
    return result
