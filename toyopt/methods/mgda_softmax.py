"""MGDA by softmax-parametrised gradient descent: Su Jianlin's second min-norm solver.

Su Jianlin, "Multi-task learning notes (II): acting on gradients" (blog, kexue.fm/archives/8896,
2022), section "de-constraint". The simplex weights are w = softmax(xi), and plain gradient
descent minimizes f(xi) = w^T Gamma w = ||g_w||^2 (Gamma_ij = <g_i, g_j>, g_i the gradient of
task i, K tasks, g_w = sum_i w_i g_i), whose minimizer over the simplex is MGDA's:

    grad_xi f = 2 w * (Gamma w - (w^T Gamma w) 1),   xi <- xi - (lr0 / max_i Gamma_ii) grad_xi f,

from xi = 0 (w = 1/K), ``steps`` times. Dividing the step by max_i Gamma_ii makes it scale-free.
w stays strictly positive, so solutions on the simplex boundary are only approached
asymptotically. d = g_w.
"""

from __future__ import annotations

import torch

from ._common import combine
from ._gram import gram, quad, scaled
from .base import EMPTY, EPS, MethodOutput, MethodSpec, ParamSpec, ReferenceCase, StepInput


def step(inp: StepInput, state, params) -> MethodOutput:
    grads = inp.grads
    B, K, _ = grads.shape
    gn, _ = scaled(gram(grads))
    lr = params["lr0"].to(grads.dtype).unsqueeze(-1)
    xi = torch.zeros((B, K), dtype=grads.dtype)
    for _ in range(params["steps"]):
        w = torch.softmax(xi, dim=-1)
        gw = (gn @ w.unsqueeze(-1)).squeeze(-1)
        xi = xi - lr * 2 * w * (gw - quad(gn, w).unsqueeze(-1))
    w = torch.softmax(xi, dim=-1)
    gw = (gn @ w.unsqueeze(-1)).squeeze(-1)
    gap = quad(gn, w) - gw.amin(-1)
    flags = {
        "pareto_stationary": quad(gn, w) <= EPS,
        "solver_not_converged": gap > 1e-3,
    }
    return MethodOutput(combine(w, grads), w, EMPTY, flags)


SPEC = MethodSpec(
    name="mgda_softmax",
    label="MGDA (Su, softmax GD)",
    paper="Su Jianlin, blog 'Multi-task learning notes (II)', 2022 (kexue.fm/archives/8896)",
    summary="MGDA's min-norm point by gradient descent on softmax logits of the weights.",
    step=step,
    cost=lambda params: 1 + 0.15 * params["steps"],  # per inner iteration, toyopt.budget
    params=(
        ParamSpec(
            "steps",
            100,
            "gradient-descent steps on the logits (the blog gives no count)",
            kind="int",
            low=1,
            high=100000,
            unverified=True,
        ),
        ParamSpec(
            "lr0",
            1.0,
            "step size times max_i ||g_i||^2 (the blog gives no value)",
            low=1e-3,
            high=10.0,
            step=0.1,
            unverified=True,
        ),
    ),
    flags={
        "pareto_stationary": "||d||^2 <= 1e-8 max ||g_i||^2: the point is (close to) Pareto-stationary",
        "solver_not_converged": "the duality gap ||d||^2 - min_i <g_i, d> is above 1e-3 max ||g_i||^2",
    },
    guarantees=frozenset({"permutation_invariant"}),
    references=(
        ReferenceCase(
            grads=((1.0, 0.0), (-0.5, 1.0)),
            direction=(0.30736692338327676, 0.4617553844111489),
            weights=(0.5382446155888512, 0.4617553844111489),
            derivation=(
                "gradient descent on ||sum_i softmax(xi)_i g_i||^2 / max_i ||g_i||^2 with the gradient by"
                " autograd"
            ),
            params={"steps": 5},
        ),
        ReferenceCase(
            grads=((1.0, 0.0, 0.0), (-0.5, 1.0, 0.0), (0.2, -0.6, 0.8)),
            direction=(0.1558168979811418, 0.19725576589882063, 0.25802327208029524),
            weights=(0.286697689940589, 0.390773219959042, 0.322529090100369),
            derivation=(
                "gradient descent on ||sum_i softmax(xi)_i g_i||^2 / max_i ||g_i||^2 with the gradient by"
                " autograd"
            ),
            params={"steps": 5},
        ),
    ),
)
