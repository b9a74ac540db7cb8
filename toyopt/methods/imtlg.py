"""IMTL-G: impartial multi-task learning, gradient part.

Liu, Li, Kuang, Xue, Chen, Yang, Liao, Zhang, "Towards Impartial Multi-task Learning",
ICLR 2021. The direction d = sum_i beta_i g_i with sum_i beta_i = 1 has equal projections on
every unit task gradient, <d, g_i / ||g_i||> equal for all i (g_i the gradient of task i, K tasks).

Gram form (TorchJD): with Gamma_ij = <g_i, g_j> and n_i = ||g_i|| = sqrt(Gamma_ii),

    v = Gamma^+ n,   beta = v / sum_i v_i,

Gamma^+ the pseudo-inverse (``_gram.pseudo_solve``, in float64: eigenvalues below 1e3 K eps_machine max
eigenvalue are dropped).
Then Gamma beta = n / sum_i v_i when Gamma is invertible, i.e. <d, g_i> = n_i / sum_j v_j.

K = 2 closed form (exact, continuous also for parallel gradients): beta = (n2, n1) / (n1 + n2),
d = (n1 n2 / (n1 + n2)) (g1^ + g2^), the bisector.

For K > 2 sum_i v_i can be negative; d then increases every loss (flag ``negative_projection``).
With rank(Gamma) < K (e.g. K > D) the pseudo-inverse no longer equalises the projections
(flag ``rank_deficient``).
"""

from __future__ import annotations

import torch

from ._common import combine
from ._gram import gram, pseudo_solve, scaled, sq_norms
from .base import EMPTY, MethodOutput, MethodSpec, ReferenceCase, StepInput


def step(inp: StepInput, state, params) -> MethodOutput:
    grads = inp.grads
    B, K, _ = grads.shape
    dtype = grads.dtype
    fin = torch.finfo(dtype)
    gn, scale = scaled(gram(grads))
    n = sq_norms(gn).sqrt()  # norms in units of the largest norm
    all_zero = scale <= fin.tiny
    if K == 2:
        total = n.sum(-1, keepdim=True)
        weights = n.flip(-1) / torch.where(all_zero.unsqueeze(-1), torch.ones_like(total), total)
        rank_deficient = torch.zeros(B, dtype=torch.bool)
        negative = torch.zeros(B, dtype=torch.bool)
    else:
        # In float64 whatever the input (float32 products are exact there), so the shared
        # pseudo-inverse cut-off sees a float32 Gram's true rank.
        g64, _ = scaled(gram(grads.to(torch.float64)))
        v, rank = pseudo_solve(g64, sq_norms(g64).sqrt())
        v = v.to(dtype)
        total = v.sum(-1)
        tiny_total = total.abs() <= 1e-9 * v.abs().sum(-1).clamp_min(fin.tiny)
        weights = v / torch.where(tiny_total, torch.ones_like(total), total).unsqueeze(-1)
        weights = torch.where((tiny_total | all_zero).unsqueeze(-1), torch.zeros_like(weights), weights)
        rank_deficient = (rank < K) & ~all_zero
        negative = (total < 0) & ~tiny_total & ~all_zero
        all_zero = all_zero | tiny_total
    weights = torch.where(all_zero.unsqueeze(-1), torch.zeros_like(weights), weights)
    flags = {
        "zero_gradients": all_zero,
        "rank_deficient": rank_deficient,
        "negative_projection": negative,
    }
    return MethodOutput(combine(weights, grads), weights, EMPTY, flags)


SPEC = MethodSpec(
    name="imtlg",
    label="IMTL-G",
    paper="Liu et al., 'Towards Impartial Multi-task Learning', ICLR 2021",
    summary="Equal projection of d on every unit task gradient; the bisector for two tasks.",
    step=step,
    flags={
        "zero_gradients": "all gradients are 0 (or sum_i v_i = 0 for K > 2): d = 0",
        "rank_deficient": "K > 2 and Gamma is singular: pseudo-inverse used, projections may differ",
        "negative_projection": "K > 2: the common projection <d, g_i^> is negative (d increases every loss)",
    },
    guarantees=frozenset({"permutation_invariant"}),
    references=(
        ReferenceCase(
            grads=((1.0, 0.0), (-0.5, 1.0)),
            direction=(0.2917960675006309, 0.4721359549995794),
            weights=(0.5278640450004206, 0.4721359549995794),
            derivation="the linear system sum beta = 1, <d, g1/||g1||> = <d, g2/||g2||>",
        ),
        ReferenceCase(
            grads=((1.0, 0.0, 0.0), (-0.5, 1.0, 0.0), (0.2, -0.6, 0.8)),
            direction=(0.12219864540267426, 0.19772156164072305, 0.27351482924058407),
            weights=(0.2552487798781088, 0.4028576835711611, 0.34189353655073007),
            derivation="the linear system sum beta = 1, equal <d, g_i/||g_i||>",
        ),
    ),
)
