"""SDMGrad: stochastic direction-oriented multi-objective gradient descent (deterministic form).

Xiao, Ban, Ji, "Direction-oriented Multi-objective Learning: Simple and Provable Stochastic
Algorithms", NeurIPS 2023 (arXiv 2305.18409).

    w* = argmin_{w in Delta_K} (1/2) ||g_w + lambda g0||^2,    d = (g_w* + lambda g0) / (1 + lambda),

with g_i the gradient of task i (K tasks), g_w = sum_i w_i g_i, g0 = (1/K) sum_i g_i and
lambda >= 0 the pull towards g0 (lambda = 0 is MGDA, lambda -> inf gives g0). Equivalently d is
the min-norm point of conv{g_i} restricted to weights >= lambda / (K (1 + lambda)).

* K = 2: exact, x = clip((g2 - g1)^T (g2 + lambda g0) / ||g1 - g2||^2, 0, 1) (x = 1/2 if g1 = g2),
  as the official toy's bounded scalar minimization.
* K > 2: the official framework solver: projected SGD on w from uniform w (``solver_iters``
  steps, lr ``solver_lr``, momentum ``momentum``) on the gradient Gamma w + lambda Gamma u with
  Gamma divided by (mean_i ||g_i||)^2 (the framework adds 1e-4 inside the root; we keep it
  scale-free), Euclidean projection onto the simplex after each step. The framework warm-starts w
  across training steps; here each step starts from uniform w (stateless).

The official toy adds N(0, 0.2^2) noise to the gradients; that is the engine's ``noise`` option,
not part of this method.
"""

from __future__ import annotations

import torch

from ._common import combine, uniform
from ._gram import gram, norms
from .base import EMPTY, EPS, MethodOutput, MethodSpec, ParamSpec, ReferenceCase, StepInput, Tensor


def project_simplex(v: Tensor) -> Tensor:
    """Euclidean projection of each row of v (B, K) onto the simplex (sort-based, exact)."""
    K = v.shape[-1]
    srt = v.sort(dim=-1, descending=True).values
    css = srt.cumsum(-1) - 1
    k = torch.arange(1, K + 1, dtype=v.dtype)
    count = (srt - css / k > 0).sum(-1, keepdim=True).clamp_min(1)
    theta = css.gather(-1, count - 1) / count.to(v.dtype)
    return (v - theta).clamp_min(0.0)


def step(inp: StepInput, state, params) -> MethodOutput:
    grads = inp.grads
    B, K, _ = grads.shape
    dtype = grads.dtype
    lmbda = params["lmbda"].to(dtype)
    g = gram(grads)
    u = uniform(grads)
    if K == 2:
        g11, g22, g12 = g[:, 0, 0], g[:, 1, 1], g[:, 0, 1]
        denom = g11 + g22 - 2 * g12
        safe = denom > EPS * (g11 + g22) + torch.finfo(dtype).tiny
        num = g22 - g12 + lmbda * (g22 - g11) / 2
        x = torch.where(safe, (num / torch.where(safe, denom, torch.ones_like(denom))).clamp(0, 1), 0.5)
        w = torch.stack([x, 1 - x], dim=-1)
        not_converged = torch.zeros(B, dtype=torch.bool)
    else:
        scale = norms(g).mean(-1).square()
        gn = g / scale.clamp_min(torch.finfo(dtype).tiny)[:, None, None]
        pull = lmbda.unsqueeze(-1) * (gn @ u.unsqueeze(-1)).squeeze(-1)
        lr = params["solver_lr"].to(dtype).unsqueeze(-1)
        momentum = params["momentum"].to(dtype).unsqueeze(-1)
        w = u
        buf = torch.zeros_like(u)
        for i in range(params["solver_iters"]):
            grad = (gn @ w.unsqueeze(-1)).squeeze(-1) + pull
            buf = grad if i == 0 else momentum * buf + grad
            w = project_simplex(w - lr * buf)
        grad = (gn @ w.unsqueeze(-1)).squeeze(-1) + pull
        gap = (grad * w).sum(-1) - grad.amin(-1)  # Frank-Wolfe duality gap, units of (mean ||g_i||)^2
        not_converged = gap > 1e-6
    weights = (w + lmbda.unsqueeze(-1) * u) / (1 + lmbda).unsqueeze(-1)
    return MethodOutput(combine(weights, grads), weights, EMPTY, {"solver_not_converged": not_converged})


SPEC = MethodSpec(
    name="sdmgrad",
    label="SDMGrad",
    paper="Xiao, Ban, Ji, NeurIPS 2023, arXiv 2305.18409",
    summary="MGDA pulled towards the mean gradient: min-norm of g_w + lambda g0 over the simplex.",
    step=step,
    cost=lambda params: 1 + 0.02 * params["solver_iters"],  # per inner iteration, toyopt.budget
    params=(
        ParamSpec(
            "lmbda",
            0.01,
            "pull towards g0: 0.01 in the official toy; 0.3 in its parser and TorchJD; 0.6 class default",
            low=0.0,
            high=100.0,
            step=0.01,
        ),
        ParamSpec(
            "solver_iters",
            20,
            "projected-SGD iterations for K > 2 (K = 2 is exact)",
            kind="int",
            low=1,
            high=10000,
        ),
        ParamSpec(
            "solver_lr",
            10.0,
            "projected-SGD learning rate for K > 2 (framework: 10)",
            low=1e-4,
            high=100.0,
            step=0.1,
        ),
        ParamSpec(
            "momentum",
            0.5,
            "projected-SGD momentum for K > 2 (framework: 0.5)",
            low=0.0,
            high=0.99,
            step=0.05,
        ),
    ),
    flags={
        "solver_not_converged": "K > 2: the projected-SGD weights have a duality gap above 1e-6 (relative to "
        "mean squared gradient norm)",
    },
    guarantees=frozenset({"permutation_invariant"}),
    references=(
        ReferenceCase(
            grads=((1.0, 0.0), (-0.5, 1.0)),
            direction=(0.30769230769230776, 0.4615384615384615),
            weights=(0.5384615384615387, 0.4615384615384615),
            derivation="min on the segment of ||g_w + 0.3 g0||^2 (a 1-D quadratic); d = (g_w + 0.3 g0) / 1.3",
            params={"lmbda": 0.3},
        ),
    ),
)
