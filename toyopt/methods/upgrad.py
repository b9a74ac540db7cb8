"""UPGrad: unconflicting projection of gradients (mean of the projections onto the dual cone).

Quinton & Rey, "Jacobian Descent for Multi-Objective Optimization", 2024 (arXiv 2406.16232);
reference code TorchJD (``UPGrad``).

    d = (1/K) sum_i pi(g_i),   pi = Euclidean projection onto the dual cone {x : <g_j, x> >= 0 for all j},

with g_i the gradient of task i (K tasks). Gram form: pi(g_i) = sum_j v^(i)_j g_j with

    v^(i) = argmin_{v >= e_i / K} v^T Gamma~ v,   Gamma~ = Gamma / tr(Gamma) + reg I,

Gamma_ij = <g_i, g_j>, e_i the i-th unit vector (the 1/K folds in the mean); beta = sum_i v^(i).

* K = 2 (exact): v^(1) = (1/2) (1, max(0, -Gamma~12 / Gamma~22)) and symmetrically, so for reg = 0
  UPGrad is PCGrad with mean reduction: d = (1/2) [(1 - G12/G11) g1 + (1 - G12/G22) g2] if
  G12 < 0, else g0.
* 2 < K <= 6: each QP is solved exactly by enumerating its 2^K possible free sets (a linear
  system each; the KKT-feasible solution with the least objective is kept), posed on the unit
  gradients (the dual cone depends only on directions), in float64.
* K > 6: ``qp_sweeps`` sweeps of exact cyclic coordinate descent (each coordinate minimized in
  closed form subject to its bound), which can converge slowly (flag ``solver_not_converged``).

``reg``: TorchJD adds 1e-4 (relative to tr Gamma) for its QP solver; then <g_j, d> can be
slightly negative (up to reg tr(Gamma) v_j). The default 0 is the exact projection of the paper,
for which d never conflicts with any task.
"""

from __future__ import annotations

import torch

from ._common import combine, conflicting_beyond_rounding
from ._gram import gram, norms, pseudo_inverse, sq_norms, unit_gram
from .base import EMPTY, MethodOutput, MethodSpec, ParamSpec, ReferenceCase, StepInput, Tensor

#: Largest K solved exactly by enumerating the free sets (2^K linear systems per QP).
MAX_ENUMERATED = 6


def _enumerated(gt: Tensor) -> tuple[Tensor, Tensor]:
    """v^(i) for every i (B, K, K) in float64, every QP solved exactly: for each free set F
    (coordinates above their bound) solve Gamma~_FF v_F = -Gamma~_FA v_A with v_A at the bound, keep
    the KKT-feasible solution with the least objective (one with linearly independent free columns
    always exists)."""
    B, K, _ = gt.shape
    gt = gt.to(torch.float64)
    dtype = gt.dtype
    eps = torch.finfo(dtype).eps
    masks = torch.tensor([[(s >> j) & 1 for j in range(K)] for s in range(2**K)], dtype=torch.bool)  # (S, K)
    lower = torch.eye(K, dtype=dtype) / K  # (K problems, K)
    free = masks[None, :, :]  # (1, S, K)
    fixed_v = torch.where(free, 0.0, lower[:, None, :])  # (K problems, S, K)
    both = free.unsqueeze(-1) & free.unsqueeze(-2)  # (1, S, K, K)
    eye = torch.eye(K, dtype=dtype)
    mat = torch.where(both[None], gt[:, None, None], eye)  # (B, 1, S, K, K)
    mat = mat.expand(B, K, -1, K, K)
    rhs = torch.where(free[None], -(fixed_v[None] @ gt[:, None]), fixed_v[None])  # (B, K, S, K)
    sol = (pseudo_inverse(mat)[0] @ rhs.unsqueeze(-1)).squeeze(-1)
    v = torch.where(free[None], sol, fixed_v[None])
    grad = v @ gt[:, None]  # (B, K, S, K): (Gamma~ v)_j = <u_j, pi(u_i)>, the multiplier of j
    # Feasibility (v >= bound, and <u_j, pi(u_i)> >= 0 on the fixed coordinates) is judged on its
    # natural scale 1/K, not relative to |v|: near-anti-parallel gradients need huge cancelling v,
    # and a relative test would let a wrong free set pass. Stationarity on the free coordinates is
    # resolved only to rounding of Gamma~ v, i.e. relative to |v|.
    tol = max(1e-9, 1e3 * K * eps)
    size = 1 + v.abs().amax(-1)
    violation = torch.maximum(
        torch.maximum(
            (lower[None, :, None, :] - v).clamp_min(0.0).amax(-1),
            torch.where(free[None], 0.0, (-grad).clamp_min(0.0)).amax(-1),
        ),
        torch.where(free[None], grad.abs(), 0.0).amax(-1) / size,
    )
    feasible = violation <= tol
    objective = torch.where(feasible, (v * grad).sum(-1), torch.full_like(violation, torch.inf))
    none_feasible = ~feasible.any(-1)  # (B, K): fall back to the least violating free set
    best = torch.where(none_feasible, violation.argmin(-1), objective.argmin(-1))  # (B, K)
    v_best = v.gather(2, best[:, :, None, None].expand(B, K, 1, K)).squeeze(2)
    return v_best, none_feasible.any(-1)


def _coordinate_descent(gt: Tensor, sweeps: int) -> tuple[Tensor, Tensor]:
    """beta = sum_i v^(i), every QP by ``sweeps`` sweeps of exact cyclic coordinate descent."""
    B, K, _ = gt.shape
    fin = torch.finfo(gt.dtype)
    diag = sq_norms(gt)
    lower = torch.eye(K, dtype=gt.dtype).expand(B, K, K) / K  # row i: the bound e_i / K of problem i
    v = lower.clone()
    safe = diag > fin.tiny
    for _ in range(sweeps):
        for j in range(K):
            grad_j = (v @ gt[:, :, j].unsqueeze(-1)).squeeze(-1)  # (B, K problems): (Gamma~ v)_j
            step_j = grad_j / torch.where(safe[:, j], diag[:, j], 1.0).unsqueeze(-1)
            new_j = torch.maximum(lower[:, :, j], v[:, :, j] - step_j)
            v[:, :, j] = torch.where(safe[:, j].unsqueeze(-1), new_j, v[:, :, j])
    grad = v @ gt
    kkt = torch.minimum(v - lower, grad).abs().amax((-1, -2))
    return v.sum(-2), kkt > 1e-9


def step(inp: StepInput, state, params) -> MethodOutput:
    grads = inp.grads
    B, K, _ = grads.shape
    dtype = grads.dtype
    fin = torch.finfo(dtype)
    g = gram(grads)
    trace = sq_norms(g).sum(-1)
    reg = params["reg"].to(dtype)
    eye = torch.eye(K, dtype=dtype)
    gt = g / trace.clamp_min(fin.tiny)[:, None, None] + reg[:, None, None] * eye
    not_converged = torch.zeros(B, dtype=torch.bool)
    if K == 2:
        # -G~12 / G~ii written on the raw Gram: G_ii / tr(Gamma) underflows when the norms differ
        # by ~1e12 (float32), and the huge ratio it stands for is exactly what must not be lost.
        denom = sq_norms(g) + (reg * trace).unsqueeze(-1)
        safe = denom > fin.tiny
        ratio = torch.where(
            safe, (-g[:, 0, 1].unsqueeze(-1) / torch.where(safe, denom, 1.0)).clamp_min(0.0), 0.0
        )
        weights = 0.5 * (1 + ratio)  # beta_1 = 1/2 (1 + max(0, -G~12 / G~11)), beta_2 likewise
    elif K <= MAX_ENUMERATED:
        # The dual cone only depends on the gradients' directions, so the QPs are posed on unit
        # gradients (v_j = w_j / n_j): a gradient 1e-16 times smaller than another keeps its constraint.
        # The Gram of float32 gradients in float64 is exact enough to see their rank deficiency.
        g64 = gram(grads.to(torch.float64))
        cosines, nonzero = unit_gram(g64)
        n = norms(g64)
        n_safe = torch.where(nonzero, n, torch.ones_like(n))
        # TorchJD's ridge reg * I on Gamma / tr(Gamma), in these coordinates; a zero gradient's
        # constraint is left as the identity (it constrains nothing)
        ridge = reg.to(torch.float64)[:, None] * sq_norms(g64).sum(-1, keepdim=True) / n_safe**2
        cosines = cosines + torch.diag_embed(torch.where(nonzero, ridge, 1.0))
        v_hat, not_converged = _enumerated(cosines)
        # v^(i)_j = n_i v_hat^(i)_j / n_j (problem i's bound scales with n_i); zero gradients add nothing
        weights = ((n.unsqueeze(-1) * v_hat).sum(-2) / n_safe * nonzero).to(dtype)
    else:
        weights, not_converged = _coordinate_descent(gt, params["qp_sweeps"])
    weights = torch.where((trace <= fin.tiny).unsqueeze(-1), torch.full_like(weights, 1.0 / K), weights)
    d = combine(weights, grads)
    if K > 2 and not bool((params["reg"] > 0).any()):
        not_converged = not_converged | conflicting_beyond_rounding(grads, d)
    flags = {
        "zero_gradients": trace <= fin.tiny,
        "solver_not_converged": not_converged,
    }
    return MethodOutput(d, weights, EMPTY, flags)


SPEC = MethodSpec(
    name="upgrad",
    label="UPGrad",
    paper="Quinton & Rey, 'Jacobian Descent for Multi-Objective Optimization', arXiv 2406.16232 (TorchJD)",
    summary="Mean of the task gradients each projected onto the dual cone; PCGrad (mean) for two tasks.",
    step=step,
    cost=lambda params: 1 + 0.01 * params["qp_sweeps"],  # per inner iteration, toyopt.budget
    params=(
        ParamSpec(
            "reg",
            0.0,
            "ridge added to Gamma / tr(Gamma) (TorchJD: 1e-4, for its QP solver); 0 = the exact projection",
            low=0.0,
            high=1.0,
            step=1e-4,
        ),
        ParamSpec(
            "qp_sweeps",
            100,
            "coordinate-descent sweeps per QP for K > 6 (K <= 6 is exact)",
            kind="int",
            low=1,
            high=10000,
        ),
    ),
    flags={
        "zero_gradients": "all gradients are 0: d = 0",
        "solver_not_converged": "K > 6: a QP's KKT residual stayed above 1e-9 (Gamma / tr Gamma); "
        "K <= 6: no free set passed the KKT check; or (reg = 0, K > 2) d rebuilt from the vectors "
        "conflicts with a task beyond rounding (ill-conditioned Gram)",
    },
    guarantees=frozenset({"non_conflicting", "permutation_invariant"}),
    references=(
        ReferenceCase(
            grads=((1.0, 0.0), (-0.5, 1.0)),
            direction=(0.4, 0.7),
            weights=(0.7500000000000002, 0.7),
            derivation=(
                "mean of the projections of g1, g2 onto the dual cone, by enumerating active constraints "
                "(= PCGrad, mean)"
            ),
        ),
        ReferenceCase(
            grads=((1.0, 0.0, 0.0), (-0.5, 1.0, 0.0), (0.2, -0.6, 0.8)),
            direction=(0.26337448559670773, 0.34502057613168735, 0.45958847736625524),
            weights=(0.49333333333333357, 0.6897119341563791, 0.5744855967078191),
            derivation=(
                "mean of the projections of g1, g2, g3 onto the dual cone, by enumerating active constraints"
            ),
        ),
    ),
)
