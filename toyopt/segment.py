"""Many steps of one method entry's lanes in one call: the step loop as torch's ``while_loop``.

A segment advances the lanes of one method entry (a "group") from step ``t0`` by ``n`` steps and
keeps, inside the loop, everything the engine promises per step: the guards (the first
non-finite loss, gradient, x or direction stops a lane and freezes it at its last finite point),
per-lane flag counts and first-fire steps, and the first steps within the tolerance of the
global minimum and of the Pareto set. The first step's losses, direction, weights and flags are
returned too: the engine calls one segment per recording interval, so those are the records.

Everything a setting can change is a tensor argument (x, lr, momentum, every float parameter of
the method, the problem's loss scale, the tolerance, t0, n, the pre-drawn random numbers), so
under torch.compile one graph per method *structure* (the method's int and choice parameters,
optimizer, dtype, noise on or off, clipping on or off) serves every run, any number of lanes.
The same function runs eagerly (``compiled=False``): the tests hold both against
``engine.run``'s eager loop.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch

from .methods.base import StepInput

Tensor = torch.Tensor

#: Engine guard rows of a group's flag table, before the method's own flags.
GUARD_ROWS = ("nonfinite_direction", "nonfinite_loss", "clipped")


class Carry(NamedTuple):
    """The per-lane bookkeeping a segment updates (every field (B,) or (rows, B) or (B, n))."""

    x: Tensor  # (B, D) x_t
    prev_x: Tensor  # (B, D) x_{t-1} (the start at t = 0)
    prev_l: Tensor  # (B, K) losses at x_{t-1} (NaN at t = 0)
    stop_step: Tensor  # (B,) long, -1 while the lane runs
    stop_code: Tensor  # (B,) long: 1 nonfinite_loss, 2 nonfinite_direction
    frozen_x: Tensor  # (B, D) the last finite point of a stopped lane
    frozen_l: Tensor  # (B, K)
    counts: Tensor  # (F, B) long
    first: Tensor  # (F, B) long, -1 never
    first_min: Tensor  # (B,) long
    first_par: Tensor  # (B,) long


class Record(NamedTuple):
    """What the segment's first step computed at x_t0 (the recorded state)."""

    losses: Tensor  # (B, K)
    direction: Tensor  # (B, D)
    weights: Tensor  # (B, K)
    flags: Tensor  # (F, B) bool


class Fixed(NamedTuple):
    """Run-wide inputs that do not change during the run."""

    lr: Tensor  # ()
    momentum: Tensor  # ()
    problem: dict  # the problem's parameters, floats as 0-d tensors
    lower: Tensor  # (B, K)
    noise_std: Tensor  # ()
    output_scale: Tensor  # ()
    clip_norm: Tensor  # ()
    gmin: Tensor  # (D,)
    tol: Tensor  # ()
    pareto: Tensor  # (M, D) the Pareto polyline sorted by x1
    window: Tensor  # (W,) arange: segments searched from a cell's first
    cell_first: Tensor  # (cells,) long: first polyline segment a point in the cell can be near
    cell_low: Tensor  # () x1 where the cells start
    cell_width: Tensor  # ()
    progress_denominator: Tensor  # () max(steps - 1, 1)


def pareto_distance(x: Tensor, fixed: Fixed) -> Tensor:
    """(B,) distance from each row of x to the Pareto polyline, exact up to the tolerance:
    geometry.FastParetoDistance's arithmetic on a fixed window of segments. The window's first
    segment comes from a table over uniform cells of x1 (a gather, where a binary search would be
    a call out of the compiled code), built by the engine so that the window holds every segment
    that meets [x1 - tol, x1 + tol]."""
    pts = fixed.pareto
    n, cells = pts.shape[0], fixed.cell_first.shape[0]
    cell = ((x[:, 0] - fixed.cell_low) / fixed.cell_width).floor().clamp(0, cells - 1).long()
    i = (fixed.cell_first[cell][:, None] + fixed.window[None, :]).clamp(max=n - 2)
    a = pts[i]
    ab = pts[i + 1] - a
    ap = x[:, None, :] - a
    t = ((ap * ab).sum(-1) / (ab * ab).sum(-1)).clamp(0, 1)
    return (ap - t[..., None] * ab).norm(dim=-1).amin(-1)


def make_segment(
    problem,
    spec,
    state_type,
    optimizer_name: str,
    params_static: dict,
    noise: bool,
    scaled: bool,
    clipped: bool,
):
    """segment(carry, opt_state, mstate, params, fixed, noises, randoms, t0, n) -> (carry,
    opt_state, mstate, record) for one method structure."""

    def one_step(t, x, opt_state, mstate, params, fixed: Fixed, noise_t, random_t):
        losses, grads = problem.losses_and_grads(x, fixed.problem)
        if noise:
            grads = grads + fixed.noise_std * noise_t
        progress = (t.to(x.dtype) / fixed.progress_denominator).clamp(max=1.0)
        out = spec.step(
            StepInput(grads, losses, fixed.lower, random_t, progress), mstate, {**params, **params_static}
        )
        d = out.direction
        if scaled:
            d = d * fixed.output_scale
        no_flag = torch.zeros(x.shape[0], dtype=torch.bool)
        clip_flag = no_flag
        if clipped:
            coef = fixed.clip_norm / (d.norm(dim=-1, keepdim=True) + 1e-6)
            clip_flag = coef.squeeze(-1) < 1
            d = d * coef.clamp(max=1.0)
        method_flags = [out.flags[n] if n in out.flags else no_flag for n in spec.flags]
        x_new, opt_state = _optimizer_update(optimizer_name, d, opt_state, x, fixed)
        return losses, d, out.weights, clip_flag, method_flags, x_new, opt_state, out.state

    def body(t, c: Carry, opt_state, mstate, params, fixed: Fixed, noise_t, random_t):
        losses, d, w, clip_flag, method_flags, x_new, opt_state, mstate = one_step(
            t, c.x, opt_state, mstate, params, fixed, noise_t, random_t
        )
        running = c.stop_step < 0
        x_fin = torch.isfinite(c.x).all(-1)
        at_fin = x_fin & torch.isfinite(losses).all(-1)
        bad_loss = ~at_fin
        bad_dir = ~torch.isfinite(d).all(-1) & at_fin
        stops = running & (bad_loss | bad_dir)
        keep_here = (stops & at_fin)[:, None]
        frozen_x = torch.where(keep_here, c.x, torch.where(stops[:, None], c.prev_x, c.frozen_x))
        frozen_l = torch.where(keep_here, losses, torch.where(stops[:, None], c.prev_l, c.frozen_l))
        flags = torch.stack([stops & bad_dir, stops & bad_loss, clip_flag, *method_flags]) & running
        counts = c.counts + flags
        first = torch.where((c.first < 0) & flags, t, c.first)
        # The point judged at step t: x_t, or the frozen point when x_t itself is not finite.
        here = torch.where(x_fin[:, None], c.x, frozen_x)
        near_min = (here - fixed.gmin).norm(dim=-1) <= fixed.tol
        near_par = pareto_distance(here, fixed) <= fixed.tol
        first_min = torch.where((c.first_min < 0) & running & near_min, t, c.first_min)
        first_par = torch.where((c.first_par < 0) & running & near_par, t, c.first_par)
        carry = Carry(
            x_new,
            c.x.clone(),  # (a while_loop body may not return an input as it is)
            losses,
            torch.where(stops, t, c.stop_step),
            torch.where(stops, torch.where(bad_loss, 1, 2), c.stop_code),
            frozen_x,
            frozen_l,
            counts,
            first,
            first_min,
            first_par,
        )
        return carry, opt_state, mstate, Record(losses, d, w, flags)

    def segment(carry: Carry, opt_state, mstate, params, fixed: Fixed, noises, randoms, t0, n):
        """Steps t0 .. t0 + n - 1 (n >= 1); noises (n, B, K, D) and randoms (n, B, r) or None.
        The first step's outputs are kept as the segment's record."""
        B, D = carry.x.shape
        K = fixed.lower.shape[1]
        F = carry.counts.shape[0]
        record = Record(
            torch.zeros((B, K), dtype=carry.x.dtype),
            torch.zeros((B, D), dtype=carry.x.dtype),
            torch.zeros((B, K), dtype=carry.x.dtype),
            torch.zeros((F, B), dtype=torch.bool),
        )

        def cond(i, *state):
            return i < n

        def loop(i, carry, opt_state, mstate, record):
            carry, opt_state, mstate, now = body(
                t0 + i,
                Carry(*carry),
                opt_state,
                state_type(*mstate),
                params,
                fixed,
                None if noises is None else noises[i],
                None if randoms is None else randoms[i],
            )
            first_step = i == 0
            record = tuple(torch.where(first_step, new, old) for new, old in zip(now, record))
            return i + 1, tuple(carry), tuple(opt_state), tuple(mstate), record

        zero = torch.zeros((), dtype=torch.long)
        operands = (zero, tuple(carry), tuple(opt_state), tuple(mstate), tuple(record))
        _, carry, opt_state, mstate, record = _while_loop(cond, loop, operands)
        return Carry(*carry), opt_state, state_type(*mstate), Record(*record)

    return segment


def _while_loop(cond, body, operands):
    from torch._higher_order_ops.while_loop import while_loop

    return while_loop(cond, body, operands)


def _optimizer_update(name: str, d: Tensor, state: Any, x: Tensor, fixed: Fixed):
    """The engine's optimizers (optim.py) with lr and momentum as tensors."""
    if name == "adam":
        step, exp_avg, exp_avg_sq = state
        beta1, beta2, eps = 0.9, 0.999, 1e-8
        step = step + 1
        exp_avg = exp_avg.lerp(d, 1 - beta1)
        exp_avg_sq = exp_avg_sq.mul(beta2).addcmul(d, d, value=1 - beta2)
        bias_correction1 = 1 - beta1**step
        bias_correction2_sqrt = (1 - beta2**step) ** 0.5
        denom = (exp_avg_sq.sqrt() / bias_correction2_sqrt).add(eps)
        return x - (fixed.lr / bias_correction1) * (exp_avg / denom), (step, exp_avg, exp_avg_sq)
    step, buf = state
    buf = buf * fixed.momentum + d  # zero momentum: buf = d exactly
    return x - fixed.lr * buf, (step + 1, buf)
