"""MGDA: the minimum-norm element of the convex hull of the task gradients.

Sener & Koltun, "Multi-Task Learning as Multi-Objective Optimization", NeurIPS 2018
(arXiv 1810.04650); Desideri 2012.

    w* = argmin_{w in simplex} ||sum_i w_i g_i||^2 = argmin_w w^T Gamma w,   d = sum_i w*_i g_i

Gamma_ij = <g_i, g_j> is the Gram matrix. For K = 2 the weight on g1 is exact:
x = clip((Gamma22 - Gamma12) / (Gamma11 + Gamma22 - 2 Gamma12), 0, 1). For K > 2 Frank-Wolfe with
exact line search runs ``fw_iters`` iterations from the uniform weights. The Nash-MTL/FAMO
code's extra factor K is a framework convention (``MethodEntry.output_scale``), not a parameter here.
d = 0 at Pareto-stationary points: MGDA stops on the Pareto set.
"""

from __future__ import annotations

import torch

from ._common import combine, conflicting_beyond_rounding, mgda_two_task, uniform
from ._gram import gram, quad, scaled
from .base import EMPTY, EPS, MethodOutput, MethodSpec, ParamSpec, ReferenceCase, StepInput


def min_norm_weights(gram_: torch.Tensor, iters: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Min-norm weights on the simplex and a (B,) flag: Frank-Wolfe did not reach its
    duality gap tolerance (only for K > 2; the K = 2 closed form is exact)."""
    B, K, _ = gram_.shape
    if K == 2:
        x = mgda_two_task(gram_)
        return torch.stack([x, 1 - x], dim=-1), torch.zeros(B, dtype=torch.bool)
    fin = torch.finfo(gram_.dtype)
    # The minimiser is invariant to scaling Gamma: solve on Gamma / max_i Gamma_ii so that the
    # tolerances below mean the same at gradient norms 1e-12 and 1e12.
    g, _ = scaled(gram_)
    w = uniform(g)
    gap = torch.zeros(B, dtype=g.dtype)
    for _ in range(iters):
        grad = (g @ w.unsqueeze(-1)).squeeze(-1)  # Gamma w
        e = torch.nn.functional.one_hot(grad.argmin(-1), K).to(g.dtype)
        ww = quad(g, w)
        we = (grad * e).sum(-1)
        gap = ww - we  # Frank-Wolfe duality gap, >= ww - min_w w^T Gamma w
        denom = ww - 2 * we + quad(g, e)  # ||g_w - g_t||^2
        gamma = torch.where(denom > 16 * fin.eps, gap / denom.clamp_min(16 * fin.eps), 0.0)
        gamma = gamma.clamp(0.0, 1.0)
        w = (1 - gamma).unsqueeze(-1) * w + gamma.unsqueeze(-1) * e
    return w, gap > 1e-6 * quad(g, w).clamp_min(EPS)


def step(inp: StepInput, state, params) -> MethodOutput:
    g = gram(inp.grads)
    w, not_converged = min_norm_weights(g, params["fw_iters"])
    d = combine(w, inp.grads)
    if g.shape[-1] > 2:  # Frank-Wolfe's answer, checked against the vectors
        not_converged = not_converged | conflicting_beyond_rounding(inp.grads, d)
    largest = inp.grads.norm(dim=-1).amax(-1)
    stopped = d.norm(dim=-1) <= EPS * largest + torch.finfo(d.dtype).tiny
    return MethodOutput(d, w, EMPTY, {"pareto_stationary": stopped, "solver_not_converged": not_converged})


SPEC = MethodSpec(
    name="mgda",
    label="MGDA",
    paper="Sener & Koltun, NeurIPS 2018, arXiv 1810.04650",
    summary="Min-norm point of the convex hull of the gradients; stops on the Pareto set.",
    step=step,
    params=(
        ParamSpec(
            "fw_iters",
            100,
            "Frank-Wolfe iterations (K > 2 only; K = 2 is solved exactly)",
            kind="int",
            low=1,
            high=1000,
        ),
    ),
    flags={
        "pareto_stationary": "d = 0: the point is Pareto-stationary and MGDA stops here",
        "solver_not_converged": "K > 2: Frank-Wolfe stopped with a duality gap above 1e-6, or its d "
        "conflicts with a task beyond rounding",
    },
    guarantees=frozenset({"non_conflicting", "min_norm", "permutation_invariant"}),
    references=(
        ReferenceCase(
            grads=((1.0, 0.0), (-0.5, 1.0)),
            direction=(0.3076923076923078, 0.46153846153846145),
            weights=(0.5384615384615385, 0.46153846153846145),
            derivation="min-norm point of the segment [g1, g2]: w = (7/13, 6/13), d = (4/13, 6/13)",
        ),
        ReferenceCase(
            grads=((1.0, 0.0, 0.0), (-0.5, 1.0, 0.0), (0.2, -0.6, 0.8)),
            direction=(0.12877263581488765, 0.19315895372233322, 0.2736418511066413),
            weights=(0.2595573440643844, 0.39839034205231416, 0.3420523138833016),
            derivation="min-norm point of the triangle conv{g1, g2, g3} by enumerating its faces",
            params={"fw_iters": 1000},
            tolerance=1e-09,
        ),
    ),
)
