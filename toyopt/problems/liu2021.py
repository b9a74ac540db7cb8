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


_CONSTANTS: dict[torch.dtype, tuple[Tensor, ...]] = {}


def _constants(dtype: torch.dtype) -> tuple[Tensor, ...]:
    """Per-task constants, made once per dtype (creating tensors costs as much as an operation)."""
    if dtype not in _CONSTANTS:
        rows = ((-1.0, 1.0), (-7.0, 3.0), (0.0, 2.0), (7.0, -7.0), (0.5, -0.5))
        _CONSTANTS[dtype] = tuple(torch.tensor(r, dtype=dtype) for r in rows)
    return _CONSTANTS[dtype]


def losses_and_grads(x: Tensor, params: dict) -> tuple[Tensor, Tensor]:
    """Losses (B, 2) and analytic per-task gradients (B, 2, 2) at x (B, 2), in one batched pass.

    Both tasks are computed together on (B, 2) tensors (column i is task i) to keep the number of
    tensor operations per step small: the engine's cost is dominated by per-operation overhead.
    """
    sign_t, shift, offset, centre, gate_slope = _constants(x.dtype)
    x1, x2 = x[..., 0:1], x[..., 1:2]
    tn = torch.tanh(-x2)  # (B, 1)
    a = 0.5 * (-x1 + shift) + sign_t * tn + offset  # a_i = 0.5 (-x1 + shift_i) -/+ tanh(-x2) + offset_i
    abs_a = a.abs()
    logs = torch.clamp(abs_a, LOWER).log() + 6
    gates_raw = torch.tanh(torch.cat([x2 * 0.5, -x2 * 0.5], dim=-1))  # (B, 2): tanh(x2/2), tanh(-x2/2)
    gates = torch.clamp(gates_raw, 0)
    dx1 = -x1 + centre
    sq = (dx1.pow(2) + 0.1 * (-x2 - 8).pow(2)) / 10 - 20
    c1, c2 = gates[..., 0:1], gates[..., 1:2]
    f = logs * c1 + sq * c2
    # d gate/dx2 with clamp's gradient passed where its input is >= 0; the second gate's argument is -x2/2.
    dgates = torch.where(gates_raw >= 0, (1 - gates_raw * gates_raw) * gate_slope, 0.0)
    # d log(max(|a|, LOWER))/da = sign(a)/|a| where |a| >= LOWER, else 0.
    r = torch.where(abs_a >= LOWER, torch.sign(a) / abs_a.clamp_min(LOWER), 0.0)
    dfdx1 = c1 * r * -0.5 + c2 * (-0.2 * dx1)
    dfdx2 = (
        dgates[..., 0:1] * logs
        + c1 * r * (-sign_t * (1 - tn * tn))
        + dgates[..., 1:2] * sq
        + c2 * (0.02 * (x2 + 8))
    )
    scale = torch.tensor([params["scale"], 1.0], dtype=x.dtype)
    return f * scale, torch.stack([dfdx1, dfdx2], dim=-1) * scale[:, None]


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
