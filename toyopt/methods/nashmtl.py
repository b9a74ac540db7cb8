"""Nash-MTL: the Nash bargaining solution between the tasks.

Navon, Shamsian, Achituve, Maron, Kawaguchi, Chechik, Fetaya, "Multi-Task Learning as a
Bargaining Game", ICML 2022 (arXiv 2202.01017); reference code AvivNavon/nash-mtl ``NashMTL``.

    find alpha in R^K, alpha > 0, with   alpha_i (Gamma alpha)_i = 1   for every i,
    d = sum_i alpha_i g_i

g_i is task i's gradient and Gamma_ij = <g_i, g_j> the Gram matrix. Then <g_i, d> = 1/alpha_i > 0
for every task. The equations are the stationarity conditions of the strictly convex

    phi(alpha) = 1/2 alpha^T Gamma alpha - sum_i log alpha_i     (alpha > 0),

which has a minimiser exactly when no non-negative non-zero combination of the g_i vanishes.

* K = 2, closed form: alpha_i = 1 / (n_i sqrt(1 + cos phi12)), n_i = ||g_i||, cos phi12 =
  Gamma_12 / (n_1 n_2); so d = (u_1 + u_2) / sqrt(1 + cos phi12) (u_i = g_i / n_i) bisects the
  gradients and ||d|| = sqrt(2) whatever their norms.
* K > 2: damped Newton on phi (``newton_iters`` steps) in the scale-free variables
  gamma_i = alpha_i n_i (the reference code divides Gamma by its Frobenius norm instead),
  warm-started from the previous alpha (the state; alpha_i = 1 / n_i at first). Each step
  first rescales alpha along its ray to the exact minimiser there, then takes the Newton step
  damped by 1/(1 + Newton decrement) while the decrement is >= 1/4 (this keeps alpha > 0).
  The reference code instead runs up to 20 convex-concave steps solved by cvxpy/ECOS.

No bargaining solution exists when a gradient is zero (``no_solution``) or the gradients are
anti-parallel (K = 2, 1 + cos phi12 <= tolerance: ``no_solution``); for K > 2 a solver that did
not reach max_i |alpha_i (Gamma alpha)_i - 1| <= tolerance raises ``solver_not_converged``
(e.g. at Pareto-stationary points, where no solution exists). In all these cases d = 0 and the
state keeps the previous alpha, as the reference code keeps its previous alpha on failure (it
then still steps along that alpha; here the step is withheld instead). The reference code also
clips ||d|| to 1.0 (``max_norm``); that is the framework's ``clip_norm`` (MethodEntry), not part
of this method.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from ._common import negligible
from ._gram import gram, norms
from .base import MethodOutput, MethodSpec, ParamSpec, ReferenceCase, StepInput, Tensor


class State(NamedTuple):
    alpha: Tensor  # (B, K) the last bargaining solution (warm start)


def init(B, K, D, params, dtype) -> State:
    # 0 = no previous solution: the first K > 2 solve starts from alpha_i = 1 / n_i.
    return State(torch.zeros((B, K), dtype=dtype))


def tolerance(dtype: torch.dtype) -> float:
    """Residual tolerance max_i |alpha_i (Gamma alpha)_i - 1| (and for 1 + cos phi at K = 2)."""
    return max(1e-6, 1e4 * torch.finfo(dtype).eps)


def two_task_alpha(gram_: Tensor) -> tuple[Tensor, Tensor]:
    """Closed-form alpha (B, 2) and a (B,) flag: no solution (zero or anti-parallel gradient)."""
    n = norms(gram_)
    zero = negligible(n).any(-1)
    safe = n.clamp_min(torch.finfo(gram_.dtype).tiny)
    one_plus_cos = 1 + (gram_[:, 0, 1] / (safe[:, 0] * safe[:, 1])).clamp(-1.0, 1.0)
    anti = one_plus_cos <= tolerance(gram_.dtype)
    bad = zero | anti
    alpha = 1.0 / (safe * torch.where(bad, 1.0, one_plus_cos).sqrt().unsqueeze(-1))
    return alpha, bad


def newton_alpha(gram_: Tensor, alpha0: Tensor, iters: int) -> tuple[Tensor, Tensor]:
    """alpha (B, K) from damped Newton on phi warm-started at alpha0 (rows that are not all
    positive and finite start from alpha_i = 1 / n_i), and the residual
    max_i |alpha_i (Gamma alpha)_i - 1| (B,)."""
    B, K, _ = gram_.shape
    info = torch.finfo(gram_.dtype)
    n = norms(gram_).clamp_min(info.tiny**0.5)
    # Work in gamma_i = alpha_i n_i with the cosine matrix R = Gamma / (n n^T) (unit diagonal):
    # gamma_i (R gamma)_i = 1, so the scale of the gradients drops out.
    cosines = gram_ / (n.unsqueeze(-1) * n.unsqueeze(-2))
    warm = (torch.isfinite(alpha0) & (alpha0 > 0)).all(-1, keepdim=True)
    gamma = torch.where(warm, alpha0 * n, 1.0)
    eye = torch.eye(K, dtype=gram_.dtype)
    low, high = info.tiny**0.25, info.max**0.25  # keeps gamma^2 and R gamma gamma finite
    gamma = gamma.clamp(low, high)
    for _ in range(iters):
        # Exact minimiser of phi along the ray t * gamma: t^2 gamma^T R gamma = K.
        curvature = (gamma.unsqueeze(-2) @ cosines @ gamma.unsqueeze(-1)).squeeze(-1).squeeze(-1)
        gamma = (gamma * (K / curvature.clamp_min(info.tiny)).sqrt().unsqueeze(-1)).clamp(low, high)
        gradient = (cosines @ gamma.unsqueeze(-1)).squeeze(-1) - 1.0 / gamma
        # Newton step p = -(R + diag(1/gamma^2))^-1 gradient, solved as p = gamma * q with
        # (diag(gamma) R diag(gamma) + I) q = -gamma * gradient: eigenvalues >= 1, always well posed.
        scaled = gamma.unsqueeze(-1) * cosines * gamma.unsqueeze(-2) + eye
        q = torch.cholesky_solve(-(gamma * gradient).unsqueeze(-1), torch.linalg.cholesky_ex(scaled)[0])
        step = gamma * q.squeeze(-1)
        decrement = (-(gradient * step).sum(-1)).clamp_min(0).sqrt()
        damping = torch.where(decrement < 0.25, 1.0, 1.0 / (1.0 + decrement))
        gamma = (gamma + damping.unsqueeze(-1) * step).clamp(low, high)
    residual = (gamma * (cosines @ gamma.unsqueeze(-1)).squeeze(-1) - 1.0).abs().amax(-1)
    return gamma / n, residual


def step(inp: StepInput, state: State, params) -> MethodOutput:
    B, K, _ = inp.grads.shape
    gram_ = gram(inp.grads)
    if K == 2:
        alpha, no_solution = two_task_alpha(gram_)
        not_converged = torch.zeros(B, dtype=torch.bool)
    else:
        no_solution = negligible(norms(gram_)).any(-1)
        alpha, residual = newton_alpha(gram_, state.alpha, params["newton_iters"])
        not_converged = ~no_solution & ~(residual <= tolerance(gram_.dtype))
    failed = (no_solution | not_converged).unsqueeze(-1)
    weights = torch.where(failed, 0.0, alpha)
    d = (weights.unsqueeze(-1) * inp.grads).sum(-2)
    new_state = State(torch.where(failed, state.alpha, alpha))
    return MethodOutput(
        d, weights, new_state, {"no_solution": no_solution, "solver_not_converged": not_converged}
    )


SPEC = MethodSpec(
    name="nashmtl",
    label="Nash-MTL",
    paper="Navon et al., ICML 2022, arXiv 2202.01017",
    summary="Nash bargaining: alpha_i <g_i, d> = 1 for every task; for K = 2 the bisector with norm sqrt(2).",
    step=step,
    cost=lambda params: 1 + 0.02 * params["newton_iters"],  # per inner iteration, toyopt.budget
    init=init,
    params=(
        ParamSpec(
            "newton_iters",
            30,
            "damped Newton steps per update (K > 2 only; K = 2 is solved in closed form). "
            "The reference code runs up to 20 cvxpy/ECOS convex-concave steps instead",
            kind="int",
            low=1,
            high=500,
            step=1,
        ),
    ),
    flags={
        "no_solution": "a zero gradient, or (K = 2) anti-parallel gradients: no bargaining solution; d = 0",
        "solver_not_converged": "K > 2: Newton did not reach the residual tolerance (e.g. Pareto-stationary "
        "point, where no solution exists); d = 0, previous alpha kept",
    },
    guarantees=frozenset({"non_conflicting", "permutation_invariant"}),
    references=(
        ReferenceCase(
            grads=((1.0, 0.0), (-0.5, 1.0)),
            direction=(0.7434960689203691, 1.2030019100150913),
            weights=(1.3449970239279148, 1.2030019100150913),
            derivation="Newton's method on alpha_i <g_i, sum_j alpha_j g_j> = 1",
        ),
        ReferenceCase(
            grads=((1.0, 0.0, 0.0), (-0.5, 1.0, 0.0), (0.2, -0.6, 0.8)),
            direction=(0.7395005068832865, 0.9061497340684352, 1.2775099450756016),
            weights=(1.3522641170519543, 1.8642821928751363, 1.5968874313445018),
            derivation="Newton's method on alpha_i <g_i, sum_j alpha_j g_j> = 1",
        ),
    ),
)
