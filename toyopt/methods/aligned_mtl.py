"""Aligned-MTL: align the task gradients into an orthogonal, equal-norm system.

Senushkin, Patakin, Kuznetsov, Konushin, "Independent Component Alignment for Multi-Task
Learning", CVPR 2023 (arXiv 2305.19000); reference code LibMTL ``Aligned_MTL`` and TorchJD.

With Gamma_ij = <g_i, g_j> (g_i the gradient of task i, K tasks) and Gamma = V Lambda V^T its
eigendecomposition, keep the eigenvalues above tol = max(Lambda) K eps32 (eps32 = float32's
machine epsilon, as LibMTL computes it) and set

    B = sqrt(sigma) V_r Lambda_r^{-1/2} V_r^T,   beta = B p,   d = sum_i beta_i g_i,

so the aligned gradients G^T B are mutually orthogonal with norm sqrt(sigma). sigma is the
smallest kept eigenvalue (``scale = min``, the paper and LibMTL), their lower median (``median``)
or their mean (``rmse``, TorchJD's name for the original implementation's choice); p = 1 (LibMTL,
``preference = ones``) or 1/K (TorchJD, ``uniform``). Rank-deficient Gamma (parallel or
anti-parallel gradients, K > D) keeps only the nonzero eigenvalues (flag ``rank_deficient``);
all-zero gradients give d = 0.
"""

from __future__ import annotations

import torch

from ._common import combine
from ._gram import gram, scaled
from .base import EMPTY, MethodOutput, MethodSpec, ParamSpec, ReferenceCase, StepInput

EPS32 = torch.finfo(torch.float32).eps


def step(inp: StepInput, state, params) -> MethodOutput:
    grads = inp.grads
    B, K, _ = grads.shape
    dtype = grads.dtype
    fin = torch.finfo(dtype)
    # Not the shared pseudo-inverse: the rank rule (eigenvalues above max K eps32) is LibMTL's own.
    gn, _ = scaled(gram(grads))
    evals, evecs = torch.linalg.eigh(gn)
    top = evals.amax(-1, keepdim=True)
    kept = evals > top.clamp_min(fin.tiny) * K * EPS32
    count = kept.sum(-1)
    all_zero = count == 0
    big = torch.full_like(evals, torch.inf)
    mode = params["scale"]
    if mode == "min":
        sigma = torch.where(kept, evals, big).amin(-1)
    elif mode == "median":
        ascending = torch.where(kept, evals, big).sort(-1).values
        sigma = ascending.gather(-1, ((count - 1).clamp_min(0) // 2).unsqueeze(-1)).squeeze(-1)
    else:
        sigma = torch.where(kept, evals, 0.0).sum(-1) / count.clamp_min(1).to(dtype)
    sigma = torch.where(all_zero, torch.zeros_like(sigma), sigma)
    inv_sqrt = torch.where(kept, torch.where(kept, evals, 1.0).rsqrt(), 0.0)
    align = (
        sigma.clamp_min(0).sqrt()[:, None, None] * (evecs * inv_sqrt.unsqueeze(-2)) @ evecs.transpose(-1, -2)
    )
    pref = torch.ones(B, K, dtype=dtype) / (K if params["preference"] == "uniform" else 1)
    weights = (align @ pref.unsqueeze(-1)).squeeze(-1)
    flags = {"zero_gradients": all_zero, "rank_deficient": (count < K) & ~all_zero}
    return MethodOutput(combine(weights, grads), weights, EMPTY, flags)


SPEC = MethodSpec(
    name="aligned_mtl",
    label="Aligned-MTL",
    paper="Senushkin et al., CVPR 2023, arXiv 2305.19000",
    summary="Sum of the gradients after aligning them into an orthogonal system of equal norms.",
    step=step,
    params=(
        ParamSpec(
            "scale",
            "min",
            "norm of the aligned gradients: sqrt of the smallest (min: paper, LibMTL), lower-median (median) "
            "or mean (rmse: TorchJD's 'original implementation') kept eigenvalue of the Gram matrix",
            kind="choice",
            choices=("min", "median", "rmse"),
        ),
        ParamSpec(
            "preference",
            "ones",
            "task preference p in beta = B p: ones (LibMTL: sum of the aligned gradients) or 1/K (TorchJD)",
            kind="choice",
            choices=("ones", "uniform"),
        ),
    ),
    flags={
        "zero_gradients": "all gradients are 0: d = 0",
        "rank_deficient": "the Gram matrix has eigenvalues below max K eps32 (dependent gradients); only the "
        "others are aligned",
    },
    guarantees=frozenset({"permutation_invariant"}),
    references=(
        ReferenceCase(
            grads=((1.0, 0.0), (-0.5, 1.0)),
            direction=(0.5680982812227503, 0.9468304687045838),
            weights=(1.0415135155750423, 0.9468304687045839),
            derivation="SVD G = U S W^T: aligned gradients s_min U W^T, summed",
        ),
        ReferenceCase(
            grads=((1.0, 0.0, 0.0), (-0.5, 1.0, 0.0), (0.2, -0.6, 0.8)),
            direction=(0.16051197356478636, 0.1724145192246696, 0.2605049525985833),
            weights=(0.2792823522519442, 0.36779323367360717, 0.3256311907482291),
            derivation="SVD G = U S W^T: aligned gradients s_min U W^T, averaged",
            params={"preference": "uniform"},
        ),
    ),
)
