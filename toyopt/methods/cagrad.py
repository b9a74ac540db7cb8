"""CAGrad: conflict-averse gradient descent.

Liu, Liu, Jin, Stone, Liu, "Conflict-Averse Gradient Descent for Multi-task Learning",
NeurIPS 2021 (arXiv 2110.14048).

The update maximizes the worst task improvement inside a ball around the mean gradient:

    max_d min_i <g_i, d>   s.t.  ||d - g0|| <= c ||g0||,

with g_i the gradient of task i (K tasks), g0 = (1/K) sum_i g_i the mean gradient and c >= 0
the ball's relative radius. Its dual is a convex problem over the simplex Delta_K:

    w* = argmin_{w in Delta_K} F(w),   F(w) = <g_w, g0> + c ||g0|| ||g_w||,   g_w = sum_i w_i g_i,

and the direction is d_raw = g0 + (c ||g0|| / ||g_w*||) g_w*, which lies on the ball's sphere.
Everything is Gram-only: <g_w, g0> = w^T Gamma u, ||g_w||^2 = w^T Gamma w, ||g0||^2 = u^T Gamma u
with Gamma_ij = <g_i, g_j> and u = 1/K. The published codes divide d_raw by a constant
(``rescale``): none, 1 + c^2 (nyuv2/utils.py, LibMTL, the Nash-MTL and FAMO frameworks) or
1 + c (the official toy.py).

Solver: F is "linear + c ||g0|| sqrt(quadratic)" in w, and along any segment of the simplex its
minimizer has a closed form (the root of a scalar equation, found in ``segment_minimizer``).
K = 2 is therefore solved exactly on the segment x in [0, 1] (w = (x, 1 - x)); K > 2 runs
``solver_iters`` pairwise Frank-Wolfe iterations with that exact line search, from uniform w.

``eps`` reproduces toy.py's absolute guards: ||g0|| = sqrt(u^T Gamma u + eps / K^2),
||g_w|| = sqrt(w^T Gamma w + eps) inside F, and lambda = c ||g0|| / (||g_w|| + eps). The default
eps = 0 is the paper's exact formula, for which the ball guarantee holds exactly; toy.py uses
1e-4, which only matters where the gradients are ~1e-2 or smaller.
"""

from __future__ import annotations

import torch

from ._common import combine, uniform
from ._gram import gram, quad, scaled, sq_norms
from .base import EMPTY, UNIT_SWEEP, MethodOutput, MethodSpec, ParamSpec, ReferenceCase, StepInput, Tensor


def segment_minimizer(slope: Tensor, rho: Tensor, A: Tensor, B: Tensor, C: Tensor, gmax: Tensor) -> Tensor:
    """argmin over gamma in [0, gmax] of  phi(gamma) = slope*gamma + rho*sqrt(A + 2 B gamma + C gamma^2)
    (rho >= 0, the quadratic a squared norm, so phi is convex), batched (B,).

    The interior stationary point solves rho (B + C gamma) = -slope sqrt(q(gamma)); with
    t = B + C gamma and Delta = A C - B^2 >= 0 this is t = -slope sqrt(Delta / (rho^2 C - slope^2)),
    which exists only when rho^2 C > slope^2. The best of {0, gmax, that point} is returned, so
    no case analysis on signs is needed.
    """
    tiny = torch.finfo(A.dtype).tiny
    delta = (A * C - B * B).clamp_min(0.0)
    denom = rho * rho * C - slope * slope
    ok = (denom > 0) & (C > tiny)
    t = -slope * torch.sqrt(delta / torch.where(ok, denom, torch.ones_like(denom)))
    interior = torch.where(ok, (t - B) / torch.where(ok, C, torch.ones_like(C)), torch.zeros_like(C))
    interior = torch.minimum(interior.clamp_min(0.0), gmax)
    cands = torch.stack([torch.zeros_like(gmax), gmax, interior], dim=-1)
    q = (A.unsqueeze(-1) + 2 * B.unsqueeze(-1) * cands + C.unsqueeze(-1) * cands * cands).clamp_min(0.0)
    phi = slope.unsqueeze(-1) * cands + rho.unsqueeze(-1) * q.sqrt()
    return cands.gather(-1, phi.argmin(-1, keepdim=True)).squeeze(-1)


def minimize_linear_plus_norm(
    lin: Tensor, rho: Tensor, gram_: Tensor, eps: Tensor | float, iters: int, start: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """w in Delta_K minimizing F(w) = <lin, w> + rho sqrt(w^T Gamma w + eps), and F's Frank-Wolfe
    duality gap at the returned w (B,), in the units of F.

    K = 2: one exact line search over the whole simplex (the segment from e_2 to e_1).
    K > 2: ``iters`` pairwise Frank-Wolfe steps (weight moves from the worst supported vertex to
    the best vertex; exact line search) from ``start`` (default uniform w).
    """
    B, K = lin.shape
    eps = torch.as_tensor(eps, dtype=lin.dtype).expand(B)
    tiny = torch.finfo(lin.dtype).tiny

    # Below this norm of g_w (relative to the Gram's size) the norm term's gradient is taken as 0.
    floor = 1e-12 * sq_norms(gram_).sum(-1).clamp_min(tiny).sqrt()

    def gradient(w):
        gw = (gram_ @ w.unsqueeze(-1)).squeeze(-1)
        q = (quad(gram_, w) + eps).clamp_min(0.0)
        norm = q.sqrt()
        term = torch.where((norm > floor).unsqueeze(-1), gw / norm.clamp_min(tiny).unsqueeze(-1), 0.0)
        return lin + rho.unsqueeze(-1) * term, gw, q

    def line_step(w, v, gmax):
        _, gw, q = gradient(w)
        gamma = segment_minimizer((lin * v).sum(-1), rho, q, (gw * v).sum(-1), quad(gram_, v), gmax)
        return w + gamma.unsqueeze(-1) * v

    if K == 2:
        # Built whole rather than written into by index: an indexed write of a Python number
        # inside torch.export's while_loop body fails ("FunctionalTensor on its own").
        one = torch.ones(B, dtype=lin.dtype)
        e2 = torch.stack([torch.zeros_like(one), one], dim=-1)
        v = torch.stack([one, -one], dim=-1)
        w = line_step(e2, v, one)
    else:
        w = uniform(lin) if start is None else start
        eye = torch.eye(K, dtype=lin.dtype)
        for _ in range(iters):
            grad, _, _ = gradient(w)
            toward = grad.argmin(-1)
            away = torch.where(w > 0, grad, torch.full_like(grad, -torch.inf)).argmax(-1)
            v = eye[toward] - eye[away]
            w = line_step(w, v, w.gather(-1, away.unsqueeze(-1)).squeeze(-1))
    grad, _, _ = gradient(w)
    gap = (grad * w).sum(-1) - grad.amin(-1)
    return w, gap


def step(inp: StepInput, state, params) -> MethodOutput:
    grads = inp.grads
    B, K, _ = grads.shape
    dtype = grads.dtype
    c = params["c"].to(dtype)
    eps = params["eps"].to(dtype)
    g = gram(grads)
    u = uniform(grads)
    # Work on Gamma / s (s = largest squared norm) so that squares of squares stay in range.
    gn, scale = scaled(g)
    g0_sq_n = quad(gn, u)
    rho_n = c * (g0_sq_n + eps / scale / K**2).clamp_min(0.0).sqrt()
    lin_n = (gn @ u.unsqueeze(-1)).squeeze(-1)
    w, gap = minimize_linear_plus_norm(lin_n, rho_n, gn, eps / scale, params["solver_iters"])

    # The step from the vectors themselves: ||g0|| and ||g_w|| from the Gram lose precision where the
    # gradients nearly cancel, and d must sit on the ball's sphere to rounding.
    size = scale.sqrt()  # max_i ||g_i||
    resolution = 100 * torch.finfo(dtype).eps * size
    g0 = combine(u, grads)
    gw = combine(w, grads)
    g0_norm = g0.norm(dim=-1)
    gw_norm = gw.norm(dim=-1)
    rho = c * (g0_norm.square() + eps / K**2).sqrt()
    # g_w* = 0 (Pareto-stationary with c >= 1): the direction of g_w is undefined; d = g0.
    gw_zero = gw_norm <= resolution
    denom = (gw_norm.square() + eps).sqrt() + eps
    lam = torch.where(gw_zero, torch.zeros_like(c), rho / torch.where(gw_zero, torch.ones_like(denom), denom))
    divisor = {"none": torch.ones_like(c), "1+c^2": 1 + c * c, "1+c": 1 + c}[params["rescale"]]
    weights = (u + lam.unsqueeze(-1) * w) / divisor.unsqueeze(-1)
    direction = (g0 + lam.unsqueeze(-1) * gw) / divisor.unsqueeze(-1)
    flags = {
        "g0_zero": g0_norm <= resolution,
        "gw_zero": gw_zero,
        "solver_not_converged": (gap > 1e-6) if K > 2 else torch.zeros(B, dtype=torch.bool),
    }
    return MethodOutput(direction, weights, EMPTY, flags)


SPEC = MethodSpec(
    name="cagrad",
    label="CAGrad",
    paper="Liu, Liu, Jin, Stone, Liu, NeurIPS 2021, arXiv 2110.14048",
    summary="Best worst-case task improvement within a ball of radius c||g0|| around the mean gradient.",
    step=step,
    params=(
        ParamSpec(
            "c",
            0.5,
            "ball radius relative to ||g0||; c < 1 is needed to converge to the minimum of the mean loss "
            "(c >= 1: the ball contains 0 and CAGrad can stop on the Pareto set like MGDA). "
            "0.5 in the official toy, 0.4 in the Nash-MTL/FAMO frameworks",
            low=0.0,
            high=10.0,
            step=0.05,
            sweep=UNIT_SWEEP,
        ),
        ParamSpec(
            "rescale",
            "1+c",
            "divide d by a constant: 1+c (official toy.py), 1+c^2 (nyuv2/utils.py, LibMTL, Nash-MTL/FAMO "
            "frameworks: rescale=1), none (rescale=0)",
            kind="choice",
            choices=("none", "1+c^2", "1+c"),
        ),
        ParamSpec(
            "eps",
            0.0,
            "toy.py's absolute guard, added inside the norms of g0 and g_w and to ||g_w|| in the step "
            "(toy.py: 1e-4); 0 = the paper's exact formula",
            low=0.0,
            high=1.0,
            step=1e-4,
        ),
        ParamSpec(
            "solver_iters",
            100,
            "pairwise Frank-Wolfe iterations for K > 2 (K = 2 is solved exactly)",
            kind="int",
            low=1,
            high=10000,
        ),
    ),
    flags={
        "g0_zero": "the mean gradient is 0: the ball is a point and d = 0",
        "gw_zero": "the dual solution g_w* is 0 (Pareto-stationary, c >= 1): no direction, d = g0",
        "solver_not_converged": "K > 2: Frank-Wolfe duality gap above 1e-6 (relative to max ||g_i||^2)",
    },
    guarantees=frozenset({"in_ball"}),
    references=(
        ReferenceCase(
            grads=((1.0, 0.0), (-0.5, 1.0)),
            direction=(0.45788941684435885, 0.686834125266538),
            weights=(0.801306479477628, 0.6868341252665379),
            derivation="max of min_i <g_i, d> on the circle ||d - g0|| = c ||g0|| by angle search",
            params={"c": 0.5, "rescale": "none"},
            tolerance=1e-09,
        ),
        ReferenceCase(
            grads=((1.0, 0.0), (-0.5, 1.0)),
            direction=(0.30525961122957257, 0.45788941684435863),
            weights=(0.5342043196517521, 0.4578894168443587),
            derivation="the same angle search, divided by 1 + c",
            params={"c": 0.5, "rescale": "1+c"},
            tolerance=1e-09,
        ),
        ReferenceCase(
            grads=((1.0, 0.0), (-0.5, 1.0)),
            direction=(0.36631153347548706, 0.5494673002132304),
            weights=(0.6410451835821024, 0.5494673002132305),
            derivation="the same angle search, divided by 1 + c^2",
            params={"c": 0.5, "rescale": "1+c^2"},
            tolerance=1e-09,
        ),
        ReferenceCase(
            grads=((3.0, 0.0), (-0.5, 0.4)),
            direction=(0.7557495212859306, 0.5954003847885245),
            weights=(0.5000000007571955, 1.4885009619713117),
            derivation=(
                "max of min_i <g_i, d> on the circle ||d - g0|| = c ||g0|| by angle search (one task active)"
            ),
            params={"c": 0.5, "rescale": "none"},
            tolerance=1e-08,
        ),
    ),
)
