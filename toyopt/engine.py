"""The trajectory engine: a Config in, a Result out.

Lanes are (method entry x grid value x starting point). Every lane's x lives in one (B, D)
tensor: the problem's losses and gradients, the optimizer step and the outcome checks run once per
step for all lanes together; each method entry then computes the directions of its own lanes in
one batched call. Per-lane parameter values (a grid of c, say) are tensors, so a whole grid costs
one call.

Random numbers (gradient noise, a method's own draws) come from one torch.Generator per method
entry, seeded from the config's seed and the entry's position, so a run is bit-for-bit
reproducible and an entry's lanes do not depend on which other methods share the run.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch

from . import geometry
from .config import Config
from .methods import draw_random, get_method, lane_params
from .methods.base import StepInput
from .optim import make_optimizer
from .problems import get_problem

Tensor = torch.Tensor

#: Engine-level guards (recorded like a method's own flags).
ENGINE_FLAGS = {
    "nonfinite_direction": "the method returned a non-finite direction; the lane stopped at its last finite point",
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
        minimum)."""
        if self.stop_reason[lane] != "completed" and self.stop_reason[lane] != "early_stop":
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


def _seed_for(seed: int, entry: int) -> int:
    return (seed * 1_000_003 + entry * 7919 + 12345) % (2**63 - 1)


def run(config: Config, progress: Callable[[float], Any] | None = None) -> Result:
    """Run every lane of ``config`` for ``config.steps`` steps (or until early stop)."""
    config = config.validated()
    started = time.perf_counter()
    dtype = getattr(torch, config.dtype)
    problem = get_problem(config.problem)
    pparams = dict(config.problem_params)
    lanes = build_lanes(config)
    B, K, D = len(lanes), problem.n_tasks, problem.dim

    x = torch.tensor([lane.init for lane in lanes], dtype=dtype).reshape(B, D)
    lower = torch.tensor(config.resolved_lower_bounds(), dtype=dtype).expand(B, K)
    optimizer = make_optimizer(config.optimizer, config.lr, config.momentum)
    opt_state = optimizer.init(x)

    groups = []
    for e, entry in enumerate(config.methods):
        idx = [lane.index for lane in lanes if lane.entry == e]
        spec = get_method(entry.name)
        combos = [lanes[i].params for i in idx]
        per_lane = {p.name: [c[p.name] for c in combos] for p in spec.params if p.kind == "float"}
        shared = {p.name: combos[0][p.name] for p in spec.params if p.kind != "float"}
        params = lane_params(spec, {**per_lane, **shared}, len(idx), dtype)
        gen = torch.Generator().manual_seed(_seed_for(config.seed, e))
        sl = slice(idx[0], idx[-1] + 1)
        state = spec.init_state(len(idx), K, D, params, dtype)
        groups.append([spec, entry, sl, params, gen, state])

    flag_names = dict(ENGINE_FLAGS)
    for spec, *_ in groups:
        flag_names.update(spec.flags)
    names = list(flag_names)

    pareto = geometry.pareto_set(problem, pparams)
    pareto_distance = geometry.FastParetoDistance(pareto, dtype)
    gmin = geometry.global_minimum(problem, pparams).to(dtype)
    tol = config.tolerance

    steps = config.steps
    rec_steps = list(range(0, steps, config.record_every))
    T = len(rec_steps) + 1
    rec_x = torch.full((T, B, D), float("nan"), dtype=dtype)
    rec_l = torch.full((T, B, K), float("nan"), dtype=dtype)
    rec_d = torch.full((T, B, D), float("nan"), dtype=dtype)
    rec_w = torch.full((T, B, K), float("nan"), dtype=dtype)
    rec_f = torch.zeros((T, len(names), B), dtype=torch.bool)
    counts = torch.zeros((len(names), B), dtype=torch.long)
    first = torch.full((len(names), B), -1, dtype=torch.long)
    first_min = torch.full((B,), -1, dtype=torch.long)
    first_par = torch.full((B,), -1, dtype=torch.long)
    alive = torch.ones(B, dtype=torch.bool)
    stop_step = torch.full((B,), steps, dtype=torch.long)
    reason = ["completed"] * B
    d = torch.zeros((B, D), dtype=dtype)
    w = torch.zeros((B, K), dtype=dtype)
    fl = torch.zeros((len(names), B), dtype=torch.bool)
    noise_std = config.noise
    report_every = max(1, steps // 100)
    rec_i = 0
    steps_run = steps
    t = 0
    losses = torch.zeros((B, K), dtype=dtype)

    for t in range(steps):
        losses, grads = problem.losses_and_grads(x, pparams)
        # Outcome bookkeeping at x_t.
        near_min = (x - gmin).norm(dim=-1) <= tol
        near_par = pareto_distance(x) <= tol
        first_min = torch.where((first_min < 0) & near_min, t, first_min)
        first_par = torch.where((first_par < 0) & near_par, t, first_par)

        fl.zero_()
        bad_input = ~(torch.isfinite(losses).all(-1) & torch.isfinite(grads).flatten(1).all(-1))
        fl[names.index("nonfinite_loss")] = bad_input & alive
        progress_t = torch.tensor(t / max(steps - 1, 1), dtype=dtype)
        for group in groups:
            spec, entry, sl, params, gen, state = group
            g = grads[sl]
            if noise_std > 0:
                g = g + noise_std * torch.randn(g.shape, generator=gen, dtype=dtype)
            rnd = draw_random(spec, g.shape[0], K, D, gen, dtype)
            out = spec.step(StepInput(g, losses[sl], lower[sl], rnd, progress_t), state, params)
            group[5] = out.state
            dg = out.direction
            if entry.output_scale != 1.0:
                dg = dg * entry.output_scale
            if entry.clip_norm is not None:
                # torch.nn.utils.clip_grad_norm_: scale by max_norm / (norm + 1e-6) when below 1.
                coef = entry.clip_norm / (dg.norm(dim=-1, keepdim=True) + 1e-6)
                fl[names.index("clipped"), sl] = coef.squeeze(-1) < 1
                dg = dg * coef.clamp(max=1.0)
            d[sl] = dg
            w[sl] = out.weights
            for name, value in out.flags.items():
                fl[names.index(name), sl] = value
        bad_dir = ~torch.isfinite(d).all(-1) & ~bad_input
        fl[names.index("nonfinite_direction")] = bad_dir & alive
        stopping = (bad_input | bad_dir) & alive
        if bool(stopping.any()):
            for i in torch.nonzero(stopping).flatten().tolist():
                reason[i] = "nonfinite_loss" if bool(bad_input[i]) else "nonfinite_direction"
            stop_step = torch.where(stopping, t, stop_step)
            alive = alive & ~stopping
        fl &= alive | stopping
        counts += fl
        first = torch.where((first < 0) & fl, t, first)

        if rec_i < len(rec_steps) and rec_steps[rec_i] == t:
            rec_x[rec_i], rec_l[rec_i], rec_d[rec_i], rec_w[rec_i] = x, losses, d, w
            rec_f[rec_i] = fl
            rec_i += 1

        step_d = torch.where(alive[:, None], d, 0.0)
        x_new, opt_state = optimizer.update(step_d, opt_state, x)
        x_new = torch.where(alive[:, None], x_new, x)
        if config.early_stop_tol > 0 and float((x_new - x).norm(dim=-1).max()) < config.early_stop_tol:
            x = x_new
            steps_run = t + 1
            for i in range(B):
                if reason[i] == "completed":
                    reason[i] = "early_stop"
            stop_step = torch.where(alive, t + 1, stop_step)
            break
        x = x_new
        if progress is not None and t % report_every == 0:
            progress(t / steps)

    losses, _ = problem.losses_and_grads(x, pparams)
    final_t = steps_run
    near_min = (x - gmin).norm(dim=-1) <= tol
    near_par = pareto_distance(x) <= tol
    first_min = torch.where((first_min < 0) & near_min & alive, final_t, first_min)
    first_par = torch.where((first_par < 0) & near_par & alive, final_t, first_par)
    rec_x[rec_i], rec_l[rec_i] = x, losses
    used = rec_i + 1
    recorded = np.array(rec_steps[:rec_i] + [final_t])
    if progress is not None:
        progress(1.0)

    final_class = [
        "global_min" if bool(near_min[i]) else "pareto" if bool(near_par[i]) else "other" for i in range(B)
    ]
    result = Result(
        config=config,
        lanes=lanes,
        recorded_steps=recorded,
        x=rec_x[:used].numpy(),
        losses=rec_l[:used].numpy(),
        directions=rec_d[:used].numpy(),
        weights=rec_w[:used].numpy(),
        flags={n: rec_f[:used, j].numpy() for j, n in enumerate(names)},
        flag_counts={n: counts[j].numpy() for j, n in enumerate(names)},
        flag_first={n: first[j].numpy() for j, n in enumerate(names)},
        first_global_min=first_min.numpy(),
        first_pareto=first_par.numpy(),
        stop_step=stop_step.numpy(),
        stop_reason=reason,
        global_min=gmin.to(torch.float64).numpy(),
        steps_run=steps_run,
        seconds=time.perf_counter() - started,
        flag_help=flag_names,
    )
    result._final_class = final_class
    return result
