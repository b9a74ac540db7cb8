"""The two-task toy of Liu et al. 2021 (CAGrad, NeurIPS 2021, arXiv 2110.14048), as in its toy.py.

With x = (x1, x2), LOWER = 5e-6 and the gates c1 = max(tanh(x2/2), 0), c2 = max(tanh(-x2/2), 0):

    f1 = s * ( c1 [log max(|0.5(-x1 - 7) - tanh(-x2)|, LOWER) + 6]
             + c2 [((-x1 + 7)^2 + 0.1 (-x2 - 8)^2) / 10 - 20] )
    f2 =       c1 [log max(|0.5(-x1 + 3) + tanh(-x2) + 2|, LOWER) + 6]
             + c2 [((-x1 - 7)^2 + 0.1 (-x2 - 8)^2) / 10 - 20]

s is the loss scale on task 1 (1 in CAGrad and SDMGrad, 0.1 in Nash-MTL and FAMO).

The analytic gradient reproduces autograd's conventions at the kinks exactly: the clamp
``max(t, 0)`` passes the gradient where t >= 0 (so at x2 = 0 both gates have slope +-1/2 and the
standard start (0, 0) moves), ``max(|a|, LOWER)`` passes it where |a| >= LOWER, and d|a|/da = sign(a)
with sign(0) = 0.
"""

from __future__ import annotations

import torch

from ..methods.base import ParamSpec
from .base import ProblemSpec, Tensor

LOWER = 5e-6


def _parts(x: Tensor):
    x1, x2 = x[..., 0], x[..., 1]
    tanh_neg_x2 = torch.tanh(-x2)
    a1 = 0.5 * (-x1 - 7) - tanh_neg_x2
    a2 = 0.5 * (-x1 + 3) + tanh_neg_x2 + 2
    log1 = torch.clamp(a1.abs(), LOWER).log() + 6
    log2 = torch.clamp(a2.abs(), LOWER).log() + 6
    gate1_raw = torch.tanh(x2 * 0.5)
    gate2_raw = torch.tanh(-x2 * 0.5)
    sq_common = 0.1 * (-x2 - 8).pow(2)
    sq1 = ((-x1 + 7).pow(2) + sq_common) / 10 - 20
    sq2 = ((-x1 - 7).pow(2) + sq_common) / 10 - 20
    return x1, x2, tanh_neg_x2, a1, a2, log1, log2, gate1_raw, gate2_raw, sq1, sq2


def losses(x: Tensor, params: dict) -> Tensor:
    """(B, 2) losses at x (B, 2), differentiable by autograd (the reference form)."""
    _, _, _, _, _, log1, log2, g1r, g2r, sq1, sq2 = _parts(x)
    c1 = torch.clamp(g1r, 0)
    c2 = torch.clamp(g2r, 0)
    f1 = (log1 * c1 + sq1 * c2) * params["scale"]
    f2 = log2 * c1 + sq2 * c2
    return torch.stack([f1, f2], dim=-1)


#: Per-task constants (task 1, task 2) of a = 0.5 (-x1 + shift) + sign * tanh(-x2) + offset and of
#: the quadratic (-x1 + centre)^2: shift, sign, offset, centre.
TASK_CONSTANTS = ((-7.0, -1.0, 0.0, 7.0), (3.0, 1.0, 2.0, -7.0))
#: d(x2/2)/dx2 and d(-x2/2)/dx2: the inner slopes of the gates tanh(x2/2) and tanh(-x2/2).
GATE_INNER_SLOPES = (0.5, -0.5)
_TENSORS: dict[torch.dtype, tuple[Tensor, ...]] = {}
#: From this many points on, the tasks are computed one after the other on (B,) columns.
LANE_MAJOR_FROM = 1024


def _constant_tensors(dtype: torch.dtype) -> tuple[Tensor, ...]:
    """(2,) tensors, made once per dtype (making a tensor costs as much as an operation): the
    gates' inner slopes, then the task constants."""
    if dtype not in _TENSORS:
        columns = (GATE_INNER_SLOPES, *zip(*TASK_CONSTANTS))
        _TENSORS[dtype] = tuple(torch.tensor(column, dtype=dtype) for column in columns)
    return _TENSORS[dtype]


def _task_terms(x1, x2, tn, gates, gate_slopes, sq_common, shift, sign, offset, centre):
    """f_i (unscaled) and its gradient (df/dx1, df/dx2) for one task (constants are floats and
    x1, x2 columns) or for both at once (constants (2,) tensors, x1, x2 (B, 1))."""
    c1, c2 = gates
    s1, s2 = gate_slopes
    a = 0.5 * (-x1 + shift) + sign * tn + offset
    abs_a = a.abs()
    log_term = torch.clamp(abs_a, LOWER).log() + 6
    dx1 = -x1 + centre
    sq = (dx1.pow(2) + sq_common) / 10 - 20
    f = log_term * c1 + sq * c2
    # d log(max(|a|, LOWER))/da = sign(a)/|a| where |a| >= LOWER, else 0.
    r = torch.where(abs_a >= LOWER, torch.sign(a) / abs_a.clamp_min(LOWER), 0.0)
    dfdx1 = c1 * r * -0.5 + c2 * (-0.2 * dx1)
    dfdx2 = s1 * log_term + c1 * r * (-sign * (1 - tn * tn)) + s2 * sq + c2 * (0.02 * (x2 + 8))
    return f, dfdx1, dfdx2


def losses_and_grads(x: Tensor, params: dict) -> tuple[Tensor, Tensor]:
    """Losses (B, 2) and analytic per-task gradients (B, 2, 2) at x (B, 2), in one batched pass.

    One formula (``_task_terms``), laid out two ways with the same arithmetic, so the results are
    identical bit for bit: for few points both tasks at once on (B, 2) tensors, the fewest tensor
    operations (eager torch costs a few us per operation, whatever its size); for many points, and
    whenever torch.compile or torch.export traces it, the tasks one after the other on contiguous
    (B,) columns, which eager torch runs about 1.6x faster at 10^4 points and inductor vectorises
    over the points (a (B, 2) layout makes it vectorise over the 2 columns instead: 4x slower).
    """
    inner_slopes, *task_tensors = _constant_tensors(x.dtype)
    # Traced first: comparing a symbolic lane count would bound it (a guard) in an export.
    lane_major = torch.compiler.is_compiling() or x.shape[0] >= LANE_MAJOR_FROM
    if lane_major:  # the two gates as (2, B) rows
        x1, x2 = x[:, 0], x[:, 1]
        inner_slopes = inner_slopes[:, None]

        def pair(ts):
            return torch.stack(ts)

        def split(t):
            return t[0], t[1]
    else:  # the two gates as (B, 2) columns
        x1, x2 = x[..., 0:1], x[..., 1:2]

        def pair(ts):
            return torch.cat(ts, dim=-1)

        def split(t):
            return t[..., 0:1], t[..., 1:2]

    # tanh is odd in IEEE arithmetic too (torch's kernels compute it on |y| and restore the sign),
    # so tanh(-y) = -tanh(y) exactly: two tanh evaluations instead of three.
    tn = -torch.tanh(x2)
    half = torch.tanh(x2 * 0.5)
    gates_raw = pair([half, -half])
    # d max(tanh(+-x2/2), 0)/dx2, with autograd's convention at the kink (the slope passes at 0).
    slopes = torch.where(gates_raw >= 0, (1 - gates_raw * gates_raw) * inner_slopes, 0.0)
    sq_common = 0.1 * (-x2 - 8).pow(2)
    shared = (x1, x2, tn, split(torch.clamp(gates_raw, 0)), split(slopes), sq_common)
    scale = params["scale"]
    if lane_major:
        (f1, g11, g12), (f2, g21, g22) = (_task_terms(*shared, *task) for task in TASK_CONSTANTS)
        losses = torch.stack([f1 * scale, f2], dim=-1)
        grads = torch.stack([torch.stack([g11 * scale, g12 * scale], -1), torch.stack([g21, g22], -1)], 1)
        return losses, grads
    f, dfdx1, dfdx2 = _task_terms(*shared, *task_tensors)
    scales = torch.tensor([scale, 1.0], dtype=x.dtype)
    return f * scales, torch.stack([dfdx1, dfdx2], dim=-1) * scales[:, None]


def default_lower_bounds(params: dict) -> tuple[float, float]:
    """FAMO's toy bounds l* = (-21 s, -21): each loss is >= -20 (times s for task 1)."""
    return (-21.0 * params["scale"], -21.0)


def pareto_guess(lmbda: Tensor, params: dict) -> Tensor:
    """In x2 < 0, stationarity of l f1 + (1 - l) f2 of the unscaled losses gives x1 = 14 l - 7; a
    weight lmbda on the scaled f1 is the weight l = lmbda s / (lmbda s + 1 - lmbda) on the unscaled."""
    s = params["scale"]
    unscaled = lmbda * s / (lmbda * s + 1 - lmbda)
    return torch.stack([14 * unscaled - 7, torch.full_like(lmbda, -8.4)], dim=-1)


SPEC = ProblemSpec(
    name="liu2021",
    label="Liu et al. 2021 two-task toy",
    paper="Liu, Liu, Jin, Stone, Liu, Conflict-Averse Gradient Descent, NeurIPS 2021, arXiv 2110.14048",
    n_tasks=2,
    dim=2,
    box=((-10.0, 10.0), (-10.0, 10.0)),
    losses=losses,
    losses_and_grads=losses_and_grads,
    default_lower_bounds=default_lower_bounds,
    pareto_guess=pareto_guess,
    params=(
        ParamSpec(
            "scale",
            1.0,
            "loss scale s on task 1 (Nash-MTL and FAMO toys use 0.1)",
            low=1e-3,
            high=1e3,
            step=0.05,
        ),
    ),
    summary="Two tasks with a curved Pareto set near x2 = -8.4 and two task-specific minima.",
)
