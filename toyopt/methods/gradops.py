"""GradOPS: gradient deconfliction via orthogonal projections onto subspaces (reconstruction).

Zhu, Zhao, Wu, Wang, Deng, Xu, Zheng, "Gradient Deconfliction via Orthogonal Projections onto
Subspaces for Multi-task Learning", WSDM 2025 (arXiv 2503.03438). No equations or code were
recoverable beyond the outline; reconstructed choices are marked unverified.

Symbols: g_i the gradient of task i (K tasks), S_{-i} = span{g_j : j != i}, P_{-i} the orthogonal
projector onto S_{-i}, Gamma_ij = <g_i, g_j>.

1. Deconfliction: g_i' = g_i - P_{-i} g_i (the part of g_i orthogonal to every other gradient).
   ``project_when = conflict`` applies it only to tasks that conflict with some other task
   (min_{j != i} Gamma_ij < 0) and keeps g_i' = g_i otherwise; for K = 2 projecting a
   non-conflicting pair would create a conflict. ``always`` projects every task.
   Gram form on unit gradients u_j = g_j / ||g_j|| (spans depend only on directions, and this keeps
   a tiny gradient's direction): P_{-i} u_i = sum_{j != i} a_j u_j, a = U_{-i,-i}^+ U_{-i,i} with
   U_jk = <u_j, u_k> (pseudo-inverse, eigenvalues below 1e3 K eps_machine max dropped);
   K = 2: g1' = g1 - (Gamma12 / Gamma22) g2.
2. G' = sum_i g_i'. Then <G', g_j> >= 0 for every j: a projected g_i' is orthogonal to every other
   g_j, and an unprojected g_i conflicts with nobody.
3. Reweighting: R_i = <g_i, G'> / ||G'|| (task i's first-order improvement along G'),
   r_i = R_i / ((1/K) sum_j R_j), w_i = r_i^alpha / sum_j r_j^alpha and d = K sum_i w_i g_i'
   (alpha = 0 gives d = G'). Since every w_i >= 0, d stays non-conflicting for every alpha.
"""

from __future__ import annotations

import torch

from ._common import combine
from ._gram import gram, largest_sq_norm, norms, pseudo_inverse, sq_norms, unit_gram
from .base import EMPTY, MethodOutput, MethodSpec, ParamSpec, ReferenceCase, StepInput


def deconflicted_coefficients(g: torch.Tensor, project_when: str) -> torch.Tensor:
    """(B, K, K) C with g_i' = sum_j C_ij g_j, from the Gram matrix g (B, K, K)."""
    B, K, _ = g.shape
    dtype = g.dtype
    fin = torch.finfo(dtype)
    eye = torch.eye(K, dtype=dtype)
    if K == 2:
        other = sq_norms(g).flip(-1)  # Gamma_22 for task 1, Gamma_11 for task 2
        safe = other > fin.tiny  # any gradient that is not zero spans its direction
        a = torch.where(safe, g[:, 0, 1].unsqueeze(-1) / torch.where(safe, other, 1.0), 0.0)  # (B, 2)
        proj = torch.stack(
            [
                torch.stack([torch.zeros_like(a[:, 0]), a[:, 0]], -1),
                torch.stack([a[:, 1], torch.zeros_like(a[:, 1])], -1),
            ],
            dim=1,
        )
    else:
        # Spans depend only on directions: work with unit gradients so that a gradient much smaller
        # than the others still spans its direction (zero gradients span nothing).
        cosines, nonzero = unit_gram(g)
        n = norms(g)
        n_safe = torch.where(nonzero, n, torch.ones_like(n))
        others = ~torch.eye(K, dtype=torch.bool)  # row i: mask of j != i
        mask = (others.unsqueeze(-1) & others.unsqueeze(-2)).to(dtype)  # (K, K, K): sub-Gram of task i
        sub = cosines.unsqueeze(1) * mask  # (B, K, K, K): task i's sub-Gram, zeros outside S_{-i}
        rhs = cosines * others.to(dtype)  # row i: <u_j, u_i> for j != i
        pinv, _ = pseudo_inverse(sub)
        unit_coef = (pinv @ rhs.unsqueeze(-1)).squeeze(-1)  # P u_i = sum_j unit_coef_ij u_j
        proj = unit_coef * n.unsqueeze(-1) / n_safe.unsqueeze(-2)  # on g_j: n_i / n_j
    coef = eye - proj
    if project_when == "conflict":
        conflicted = torch.where(torch.eye(K, dtype=torch.bool), torch.inf, g).amin(-1) < 0  # (B, K)
        coef = torch.where(conflicted.unsqueeze(-1), coef, eye)
    return coef


def step(inp: StepInput, state, params) -> MethodOutput:
    # In float64 whatever the input: the projection coefficients are ratios of Gram entries, which
    # for float32 gradients whose norms differ by ~1e12 leave float32's range.
    grads = inp.grads.to(torch.float64)
    B, K, _ = grads.shape
    dtype = grads.dtype
    fin = torch.finfo(dtype)
    g = gram(grads)
    coef = deconflicted_coefficients(g, params["project_when"])
    total = coef.sum(1)  # G' = sum_i g_i' = G^T total
    gp = (g @ total.unsqueeze(-1)).squeeze(-1)  # <g_i, G'>
    gp_norm = (total * gp).sum(-1).clamp_min(0.0).sqrt()
    scale = largest_sq_norm(g).sqrt()
    # ||G'||^2 = total^T Gamma total cancels catastrophically when the deconflicted gradients
    # nearly vanish (nearly anti-parallel pairs): its rounding error is about
    # eps (||total||_1 scale)^2, so a norm below sqrt(K eps) ||total||_1 scale is noise, i.e. zero.
    d_zero = gp_norm <= (K * fin.eps) ** 0.5 * total.abs().sum(-1) * scale
    improvement = gp / torch.where(d_zero, torch.ones_like(gp_norm), gp_norm).unsqueeze(-1)  # R_i
    ratio = improvement / improvement.mean(-1, keepdim=True).clamp_min(fin.tiny)  # r_i
    floor = 1e-12
    zero_r = (ratio <= floor).any(-1) & ~d_zero
    alpha = params["alpha"].to(dtype).unsqueeze(-1)
    # R_i >= 0 makes r_i <= K exactly; the upper clamp only keeps rounding noise finite.
    w = torch.softmax(alpha * ratio.clamp(floor, K).log(), dim=-1)  # r_i^alpha / sum_j r_j^alpha
    w = torch.where(d_zero.unsqueeze(-1), torch.full_like(w, 1.0 / K), w)
    weights = K * (w.unsqueeze(-1) * coef).sum(1)
    flags = {"d_zero": d_zero, "zero_improvement": zero_r & (params["alpha"] != 0)}
    weights = weights.to(inp.grads.dtype)
    return MethodOutput(combine(weights, inp.grads), weights, EMPTY, flags)


SPEC = MethodSpec(
    name="gradops",
    label="GradOPS",
    paper="Zhu et al., WSDM 2025, arXiv 2503.03438 (reconstructed from the outline; no code found)",
    summary="Remove from each conflicting gradient its projection on the others' span; reweight by alpha.",
    step=step,
    params=(
        ParamSpec(
            "project_when",
            "conflict",
            "conflict: deconflict only tasks in conflict with another (K = 2: Gamma12 < 0); always: all",
            kind="choice",
            choices=("conflict", "always"),
            unverified=True,
        ),
        ParamSpec(
            "alpha",
            0.0,
            "trade-off exponent: w_i = r_i^alpha / sum_j r_j^alpha, r_i = R_i / mean R, "
            "R_i = <g_i, G'>/||G'|| (reconstructed); 0 returns G'; the paper reports e.g. -3 and -1",
            low=-10.0,
            high=10.0,
            step=0.5,
            unverified=True,
        ),
    ),
    flags={
        "d_zero": "every deconflicted gradient vanished (e.g. K > D, or the gradients are 0): d = 0",
        "zero_improvement": "alpha != 0 and some task has R_i = 0: r_i was floored at 1e-12 before the power",
    },
    guarantees=frozenset({"non_conflicting", "permutation_invariant"}),
    references=(
        ReferenceCase(
            grads=((1.0, 0.0), (-0.5, 1.0)),
            direction=(0.8, 1.4),
            weights=(1.5000000000000004, 1.4),
            derivation="each gradient minus its least-squares projection onto the other's span, summed",
        ),
        ReferenceCase(
            grads=((1.0, 0.0, 0.0), (-0.5, 1.0, 0.0), (0.2, -0.6, 0.8)),
            direction=(0.7901234567901235, 1.0350617283950614, 1.3787654320987657),
            weights=(1.4800000000000009, 2.0691358024691366, 1.723456790123457),
            derivation="each gradient minus its least-squares projection onto the others' span, summed",
            params={"project_when": "always"},
        ),
    ),
)
