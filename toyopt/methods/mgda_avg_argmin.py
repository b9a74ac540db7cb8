"""MGDA by averaged argmin: Su Jianlin's first min-norm solver (Frank-Wolfe with step 1/(k+1)).

Su Jianlin, "Multi-task learning notes (II): acting on gradients" (blog, kexue.fm/archives/8896,
2022). It solves max_u min_i <g_i, u> - (1/2) ||u||^2, whose solution is MGDA's min-norm point
u* = g_w* with w* = argmin_{w in Delta_K} ||g_w||^2 (g_i the gradient of task i, K tasks,
g_w = sum_i w_i g_i, Delta_K the simplex):

    tau_k = argmin_i <g_i, u_k>,   u_{k+1} = (k u_k + g_tau_k) / (k + 1),

tracked in weights, w_{k+1} = (k w_k + e_tau_k) / (k + 1), so <g_i, u_k> = (Gamma w_k)_i with
Gamma_ij = <g_i, g_j>. Start (our choice) w_1 = 1/K (u_1 = g0); ties in the argmin go to the
lowest index; ``iterations`` steps. Convergence is O(log k / k) in the objective; u oscillates
around u* with an amplitude ~ 1/k.
"""

from __future__ import annotations

import torch

from ._common import combine, uniform
from ._gram import gram, largest_sq_norm, quad
from .base import EMPTY, EPS, MethodOutput, MethodSpec, ParamSpec, ReferenceCase, StepInput


def step(inp: StepInput, state, params) -> MethodOutput:
    grads = inp.grads
    B, K, _ = grads.shape
    g = gram(grads)
    scale = largest_sq_norm(g)
    w = uniform(grads)
    eye = torch.eye(K, dtype=grads.dtype)
    for k in range(1, params["iterations"] + 1):
        tau = (g @ w.unsqueeze(-1)).squeeze(-1).argmin(-1)
        w = (k * w + eye[tau]) / (k + 1)
    gw = (g @ w.unsqueeze(-1)).squeeze(-1)
    gap = quad(g, w) - gw.amin(-1)  # duality gap of min_w ||g_w||^2 / 2
    flags = {
        "pareto_stationary": quad(g, w) <= EPS * scale,
        "solver_not_converged": gap > 1e-3 * scale,
    }
    return MethodOutput(combine(w, grads), w, EMPTY, flags)


SPEC = MethodSpec(
    name="mgda_avg_argmin",
    label="MGDA (Su, averaged argmin)",
    paper="Su Jianlin, blog 'Multi-task learning notes (II)', 2022 (kexue.fm/archives/8896)",
    summary="MGDA's min-norm point by averaging the worst task's gradient (Frank-Wolfe, step 1/(k+1)).",
    step=step,
    cost=lambda params: 1 + 0.05 * params["iterations"],  # per inner iteration, toyopt.budget
    params=(
        ParamSpec(
            "iterations",
            100,
            "averaging iterations (the blog gives no count)",
            kind="int",
            low=1,
            high=100000,
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
            direction=(0.4375, 0.375),
            weights=(0.625, 0.375),
            derivation=(
                "the blog's iteration on u by hand: u = g0, then the argmin task is 1, 2, 1: w = (5/8, 3/8)"
            ),
            params={"iterations": 3},
        ),
        ReferenceCase(
            grads=((1.0, 0.0, 0.0), (-0.5, 1.0, 0.0), (0.2, -0.6, 0.8)),
            direction=(0.14166666666666666, 0.24166666666666664, 0.23333333333333334),
            weights=(0.29166666666666663, 0.41666666666666663, 0.29166666666666663),
            derivation="the blog's iteration u_{k+1} = (k u_k + g_tau) / (k + 1) run on the vectors",
            params={"iterations": 7},
        ),
    ),
)
