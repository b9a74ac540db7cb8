"""Many steps of one method entry's lanes in one call: the step loop as torch's ``while_loop``.

A segment advances the lanes of one method entry (a "group") from step ``t0`` by ``n`` steps and
keeps, inside the loop, everything the engine promises per step: the guards (the first
non-finite loss, gradient, x or direction stops a lane and freezes it at its last finite point),
per-lane flag counts and first-fire steps, and the first steps within the tolerance of the
global minimum and of the Pareto set. The first step's losses, direction, weights and flags are
kept too: the engine calls one segment per recording interval, so those are the records.

The per-lane state is packed into two tensors, one row per lane (``Layout``): every float (x, the
previous x and losses, the frozen point, the optimizer's and the method's state, the record) in
one, every integer (stop step and reason, flag counts and first steps, first hits, the recorded
flags) in the other. The loop carries those two and a counter, so the compiled loop allocates a
few tensors per step, not one per field, and a call passes a few tensors.

Everything a setting can change is a tensor argument (x, lr, momentum, every float parameter of
the method, the problem's float parameters, the tolerance, t0, n, the pre-drawn random numbers),
so one compiled graph per method *structure* (the method's int and choice parameters,
optimizer, dtype, noise on or off, output scale on or off, clipping on or off) serves every run,
any number of lanes. The same function runs eagerly too.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch

from .methods.base import StepInput

Tensor = torch.Tensor

#: Engine guard rows of a group's flag table, before the method's own flags.
GUARD_ROWS = ("nonfinite_direction", "nonfinite_loss", "clipped")

#: The run-wide scalars of a segment, in the order of its ``scalars`` input (then gmin's D
#: entries, then the problem's float parameters in declaration order).
SCALARS = (
    "lr",
    "momentum",
    "noise_std",
    "output_scale",
    "clip_norm",
    "tol",
    "cell_low",
    "cell_width",
    "progress_denominator",
)


class Layout:
    """Where each per-lane field lives in a group's packed float and int rows.

    Floats: x, prev_x (x_{t-1}), prev_l (losses at x_{t-1}), frozen_x, frozen_l (a stopped lane's
    last finite point), the optimizer's per-lane state, the method's state (each field flattened),
    then the record of the segment's first step: losses, direction, weights.
    Ints: stop_step (-1 while running), stop_code (1 nonfinite_loss, 2 nonfinite_direction),
    first_min, first_par (first hits, -1 never), then per flag row the count, the first step
    (-1 never) and the recorded flag (0/1).
    """

    def __init__(self, K: int, D: int, F: int, optimizer: str, state):
        self.K, self.D, self.F = K, D, F
        self.state_type = type(state)  # the method's state NamedTuple (fields (B, ...) tensors)
        self.state_shapes = tuple(tuple(t.shape[1:]) for t in state)
        state_shapes = self.state_shapes
        widths = [("x", D), ("prev_x", D), ("prev_l", K), ("frozen_x", D), ("frozen_l", K)]
        widths += [(f"opt{i}", D) for i in range(2 if optimizer == "adam" else 1)]
        widths += [(f"state{i}", math.prod(s)) for i, s in enumerate(state_shapes)]
        widths += [("rec_l", K), ("rec_d", D), ("rec_w", K)]
        self.floats = _offsets(widths)
        self.opt_fields = [n for n, _ in widths if n.startswith("opt")]
        self.state_fields = [n for n, _ in widths if n.startswith("state")]
        self.ints = _offsets(
            [("stop_step", 1), ("stop_code", 1), ("first_min", 1), ("first_par", 1)]
            + [("counts", F), ("first", F), ("rec_f", F)]
        )
        self.float_width = sum(w for _, w in widths)
        self.int_width = 4 + 3 * F

    def field(self, packed: Tensor, name: str) -> Tensor:
        """(B, width) view of one float field (ints: (B,) for the single columns)."""
        table = self.floats if name in self.floats else self.ints
        start, stop = table[name]
        if stop - start == 1 and table is self.ints:
            return packed[:, start]
        return packed[:, start:stop]

    def state(self, floats: Tensor) -> list[Tensor]:
        """The method state's fields, each (B, *shape)."""
        B = floats.shape[0]
        return [self.field(floats, n).reshape(B, *s) for n, s in zip(self.state_fields, self.state_shapes)]

    def initial(self, x0: Tensor, state) -> tuple[Tensor, Tensor]:
        """The packed rows at step 0: x0 (B, D) and the method's initial state."""
        B, dtype = x0.shape[0], x0.dtype
        nan_l = torch.full((B, self.K), float("nan"), dtype=dtype)
        zeros_d = torch.zeros((B, self.D), dtype=dtype)
        zeros_k = torch.zeros((B, self.K), dtype=dtype)
        parts = [x0, x0, nan_l, zeros_d, zeros_k] + [zeros_d] * len(self.opt_fields)
        parts += [t.reshape(B, -1).to(dtype) for t in state]
        parts += [zeros_k, zeros_d, zeros_k]
        never = torch.full((B, 1), -1, dtype=torch.long)
        zero = torch.zeros((B, 1), dtype=torch.long)
        flags = torch.zeros((B, self.F), dtype=torch.long)
        ints = [never, zero, never, never, flags, flags - 1, flags]
        return torch.cat(parts, dim=1), torch.cat(ints, dim=1)


def _offsets(widths: list[tuple[str, int]]) -> dict[str, tuple[int, int]]:
    out, at = {}, 0
    for name, width in widths:
        out[name] = (at, at + width)
        at += width
    return out


class Geometry(NamedTuple):
    """The first-hit tests' geometry, constant over a run (see ``pareto_distance``)."""

    pareto: Tensor  # (M, D) the Pareto polyline sorted by x1
    cell_first: Tensor  # (cells,) long: first polyline segment a point in the cell can be near
    window: Tensor  # (W,) arange: segments searched from a cell's first


def pareto_distance(x: Tensor, geo: Geometry, cell_low: Tensor, cell_width: Tensor) -> Tensor:
    """(B,) distance from each row of x to the Pareto polyline, exact up to the tolerance:
    geometry.FastParetoDistance's arithmetic on a fixed window of segments. The window's first
    segment comes from a table over uniform cells of x1 (a gather, where a binary search would be
    a call out of the compiled code), built by the engine so that the window holds every segment
    that meets [x1 - tol, x1 + tol]."""
    pts = geo.pareto
    n, cells = pts.shape[0], geo.cell_first.shape[0]
    cell = ((x[:, 0] - cell_low) / cell_width).floor().clamp(0, cells - 1).long()
    # (W, B): the reduction runs over the window, the vectorised loop over the lanes.
    i = (geo.window[:, None] + geo.cell_first[cell][None, :]).clamp(max=n - 2)
    a = pts[i]
    ab = pts[i + 1] - a
    ap = x[None, :, :] - a
    t = ((ap * ab).sum(-1) / (ab * ab).sum(-1)).clamp(0, 1)
    return (ap - t[..., None] * ab).norm(dim=-1).amin(0)


def make_segment(problem, spec, layout: Layout, optimizer: str, static_params: dict, structure):
    """segment(floats, ints, lane, scalars, steps, pareto, cell_first, window[, noises][, randoms])
    -> (floats, ints) for one method structure.

    ``floats`` (B, layout.float_width) and ``ints`` (B, layout.int_width) long are the packed
    per-lane state; ``lane`` (B, P + K) each lane's float method parameters (in the spec's
    order) then its task lower bounds; ``scalars`` the run-wide ``SCALARS``, gmin and the
    problem's float parameters; ``steps`` (2,) long: t0 and n >= 1. ``noises`` (n, B, K, D) when
    the structure has gradient noise, ``randoms`` (n, B, r) when the method draws.
    ``structure`` (noise, scaled, clipped) are the on/off switches.
    """
    noise, scaled, clipped = structure
    K, D = layout.K, layout.D
    float_params = [p.name for p in spec.params if p.kind == "float"]
    problem_floats = [p.name for p in problem.params if p.kind == "float"]
    L = layout.field

    def one_step(t, floats, lane, scalars, noise_t, random_t):
        s = dict(zip(SCALARS, scalars.unbind()))
        x = L(floats, "x")
        pparams = {name: scalars[len(SCALARS) + D + i] for i, name in enumerate(problem_floats)}
        losses, grads = problem.losses_and_grads(x, pparams)
        if noise:
            grads = grads + s["noise_std"] * noise_t
        progress = (t.to(x.dtype) / s["progress_denominator"]).clamp(max=1.0)
        params = {name: lane[:, i] for i, name in enumerate(float_params)}
        lower = lane[:, len(float_params) :]
        mstate = layout.state_type(*layout.state(floats))
        out = spec.step(
            StepInput(grads, losses, lower, random_t, progress), mstate, {**params, **static_params}
        )
        d = out.direction
        if scaled:
            d = d * s["output_scale"]
        no_flag = torch.zeros(x.shape[0], dtype=torch.bool)
        clip_flag = no_flag
        if clipped:
            coef = s["clip_norm"] / (d.norm(dim=-1, keepdim=True) + 1e-6)
            clip_flag = coef.squeeze(-1) < 1
            d = d * coef.clamp(max=1.0)
        method_flags = [out.flags[n] if n in out.flags else no_flag for n in spec.flags]
        opt = [L(floats, n) for n in layout.opt_fields]
        x_new, opt = _optimizer_update(optimizer, d, opt, x, t, s)
        return losses, d, out.weights, clip_flag, method_flags, x_new, opt, out.state

    def body(i, floats, ints, lane, scalars, steps, geo, noises, randoms):
        t = steps[0] + i
        noise_t = None if noises is None else noises.index_select(0, i.view(1)).squeeze(0)
        random_t = None if randoms is None else randoms.index_select(0, i.view(1)).squeeze(0)
        losses, d, w, clip_flag, method_flags, x_new, opt, mstate = one_step(
            t, floats, lane, scalars, noise_t, random_t
        )
        s = dict(zip(SCALARS, scalars.unbind()))
        x, prev_x, prev_l = L(floats, "x"), L(floats, "prev_x"), L(floats, "prev_l")
        stop_step = L(ints, "stop_step")
        running = stop_step < 0
        x_fin = torch.isfinite(x).all(-1)
        at_fin = x_fin & torch.isfinite(losses).all(-1)
        bad_loss = ~at_fin
        bad_dir = ~torch.isfinite(d).all(-1) & at_fin
        stops = running & (bad_loss | bad_dir)
        keep_here = (stops & at_fin)[:, None]
        frozen_x = torch.where(keep_here, x, torch.where(stops[:, None], prev_x, L(floats, "frozen_x")))
        frozen_l = torch.where(keep_here, losses, torch.where(stops[:, None], prev_l, L(floats, "frozen_l")))
        flags = torch.stack([stops & bad_dir, stops & bad_loss, clip_flag, *method_flags], dim=1)
        flags = flags & running[:, None]
        counts = L(ints, "counts") + flags
        first = torch.where((L(ints, "first") < 0) & flags, t, L(ints, "first"))
        # The point judged at step t: x_t, or the frozen point when x_t itself is not finite.
        here = torch.where(x_fin[:, None], x, frozen_x)
        gmin = scalars[len(SCALARS) : len(SCALARS) + D]
        near_min = (here - gmin).norm(dim=-1) <= s["tol"]
        near_par = pareto_distance(here, geo, s["cell_low"], s["cell_width"]) <= s["tol"]
        first_min = torch.where((L(ints, "first_min") < 0) & running & near_min, t, L(ints, "first_min"))
        first_par = torch.where((L(ints, "first_par") < 0) & running & near_par, t, L(ints, "first_par"))
        recording = i == 0
        B = x.shape[0]
        new_floats = torch.cat(
            [
                x_new,
                x,
                losses,
                frozen_x,
                frozen_l,
                *opt,
                *(m.reshape(B, -1) for m in mstate),
                torch.where(recording, torch.cat([losses, d, w], dim=1), floats[:, -(2 * K + D) :]),
            ],
            dim=1,
        )
        new_ints = torch.cat(
            [
                torch.where(stops, t, stop_step)[:, None],
                torch.where(stops, torch.where(bad_loss, 1, 2), L(ints, "stop_code"))[:, None],
                first_min[:, None],
                first_par[:, None],
                counts,
                first,
                torch.where(recording, flags.long(), L(ints, "rec_f")),
            ],
            dim=1,
        )
        return i + 1, new_floats, new_ints

    def segment(floats, ints, lane, scalars, steps, pareto, cell_first, window, *draws):
        draws = list(draws)
        noises = draws.pop(0) if noise else None
        randoms = draws.pop(0) if spec.random is not None else None
        geo = Geometry(pareto, cell_first, window)

        def cond(i, floats, ints):
            return i < steps[1]

        def loop(i, floats, ints):
            return body(i, floats, ints, lane, scalars, steps, geo, noises, randoms)

        zero = torch.zeros((), dtype=torch.long)
        _, floats, ints = _while_loop(cond, loop, (zero, floats, ints))
        return floats, ints

    return segment


def _while_loop(cond, body, operands):
    from torch._higher_order_ops.while_loop import while_loop

    return while_loop(cond, body, operands)


def _optimizer_update(name: str, d: Tensor, state: list[Tensor], x: Tensor, t: Tensor, s: dict):
    """The engine's optimizers (optim.py) with lr and momentum as tensors; the step count of the
    update at step t is t + 1 (every lane updates at every step)."""
    if name == "adam":
        exp_avg, exp_avg_sq = state
        beta1, beta2, eps = 0.9, 0.999, 1e-8
        step = (t + 1).to(x.dtype)
        exp_avg = exp_avg.lerp(d, 1 - beta1)
        exp_avg_sq = exp_avg_sq.mul(beta2).addcmul(d, d, value=1 - beta2)
        bias_correction1 = 1 - beta1**step
        bias_correction2_sqrt = (1 - beta2**step) ** 0.5
        denom = (exp_avg_sq.sqrt() / bias_correction2_sqrt).add(eps)
        return x - (s["lr"] / bias_correction1) * (exp_avg / denom), [exp_avg, exp_avg_sq]
    (buf,) = state
    buf = buf * s["momentum"] + d  # zero momentum: buf = d exactly
    return x - s["lr"] * buf, [buf]
