"""ConicGrad (exact): the cone-constrained max-min direction with ||d|| = ||g0||.

Hassanpour et al., "ConicGrad: Conic Gradient Descent for Multi-task Learning", 2025
(arXiv 2502.00217). The paper's own derivation (a dual with a Sherman-Morrison-Woodbury step) is
not recoverable and is reconstructed in ``conicgrad``; this module solves the problem the paper
states, exactly:

    max_{d in K_c, ||d|| = r} min_i <g_i, d>,   K_c = {d : <d, g0> >= c ||d|| ||g0||},   r = ||g0||,

with g_i the gradient of task i (K tasks), g0 = (1/K) sum_i g_i the mean gradient and c the
cosine of the cone's half-angle theta_c = arccos c (c in [0, 1]; c = 1 is the ray through g0,
c = 0 the half-space <d, g0> >= 0).

With the ball ||d|| <= r instead of the sphere the problem is convex and, by the minimax theorem,
equals min_{w in Delta_K} r sigma_c(g_w), where g_w = sum_i w_i g_i and sigma_c(v) is the support
function of K_c intersected with the unit ball. Its solution: if the MGDA min-norm direction
d_mn = g_{w_mn} lies in the cone, d = r d_mn / ||d_mn||; otherwise d is on the cone's boundary,
d = r (c g0^ + s e^) with s = sqrt(1 - c^2), g0^ = g0/||g0|| and e^ a unit vector orthogonal to g0.
The boundary case is the convex problem min_w c <g_w, g0^> + s ||P g_w|| (P projects onto the
complement of g0; this is sigma_c in its boundary regime) and e^ = P g_w* / ||P g_w*||.

* K = 2 (any D): "rotate the MGDA direction into the wedge": e^ is the unit vector of P d_mn, i.e.
  in 2-D psi = psi0 + clip(wrap(psi_mn - psi0), -theta_c, theta_c) with psi the polar angles.
* K > 2: d_mn (min ||g_w||) and the boundary problem by ``solver_iters`` pairwise Frank-Wolfe
  steps with exact line search (``cagrad.minimize_linear_plus_norm``; the boundary problem's norm
  is smoothed with an epsilon that goes to 0 in five phases, since its kink P g_w = 0 contains the
  uniform start); in 2-D the two boundary rays
  are also compared directly (Frank-Wolfe can stall on the kink P g_w = 0 of the boundary problem);
  the best feasible candidate is returned.
* Pareto-stationary points (d_mn = 0, e.g. anti-parallel gradients): the fixed-norm problem has
  two tied optima, the two boundary rays. The tie is broken deterministically towards the side
  psi0 + theta_c (2-D: e^ = g0^ rotated by +90 degrees; D > 2: the coordinate axis least aligned
  with g0, orthogonalised), flagged ``tie_break``. For K > 2 the boundary solution returned there
  is exact only when P g_w* != 0; the flag ``pareto_stationary`` marks these points.
* D = 1: the cone is the ray through g0, so d = g0.

c may follow a schedule over the run (toyopt extension, not in the paper): c_t = c + (c_end - c)
s(progress) with s = 0 (constant), progress (linear) or (1 - cos(pi progress)) / 2 (cosine).
"""

from __future__ import annotations

import math

import torch

from ._common import combine, mgda_two_task, uniform
from ._gram import gram, pseudo_inverse, scaled
from .base import EMPTY, UNIT_SWEEP, MethodOutput, MethodSpec, ParamSpec, ReferenceCase, StepInput, Tensor
from .cagrad import minimize_linear_plus_norm

SCHEDULES = ("constant", "linear", "cosine")


def scheduled_c(params: dict, progress: Tensor | None, dtype: torch.dtype) -> Tensor:
    """c_t (B,) = c + (c_end - c) s(progress) for the ``c_schedule`` in params (progress None = 0)."""
    c0, c1 = params["c"].to(dtype), params["c_end"].to(dtype)
    p = torch.zeros((), dtype=dtype) if progress is None else progress.to(dtype)
    frac = {
        "constant": torch.zeros_like(p),
        "linear": p,
        "cosine": (1 - torch.cos(math.pi * p)) / 2,
    }[params["c_schedule"]]
    return c0 + (c1 - c0) * frac


def schedule_params(default_c: float, low: float, high: float, help_c: str) -> tuple[ParamSpec, ...]:
    """The c, c_schedule and c_end parameters shared by both ConicGrad variants."""
    return (
        ParamSpec("c", default_c, help_c, low=low, high=high, step=0.01, sweep=UNIT_SWEEP),
        ParamSpec(
            "c_schedule",
            "constant",
            "toyopt extension (not in the paper): c_t moves from c to c_end over the run, "
            "linearly or along a half cosine; constant keeps c",
            kind="choice",
            choices=SCHEDULES,
        ),
        ParamSpec(
            "c_end",
            0.9,
            "c at the end of the run when c_schedule is not constant",
            low=low,
            high=high,
            step=0.01,
        ),
    )


def orthogonal_unit(g0_hat: Tensor) -> Tensor:
    """A deterministic unit vector orthogonal to g0_hat (B, D), D >= 2: the +90 degree rotation in
    2-D; for D > 2 the coordinate axis least aligned with g0_hat, orthogonalised."""
    D = g0_hat.shape[-1]
    if D == 2:
        return torch.stack([-g0_hat[:, 1], g0_hat[:, 0]], dim=-1)
    axis = torch.nn.functional.one_hot(g0_hat.abs().argmin(-1), D).to(g0_hat.dtype)
    v = axis - (axis * g0_hat).sum(-1, keepdim=True) * g0_hat
    return v / v.norm(dim=-1, keepdim=True).clamp_min(torch.finfo(v.dtype).tiny)


def cone_direction(grads: Tensor, c: Tensor, solver_iters: int) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
    """The exact direction d (B, D), weights beta (d = G^T beta except at tie-breaks) and flags."""
    B, K, D = grads.shape
    dtype = grads.dtype
    fin = torch.finfo(dtype)
    c = c.to(dtype).clamp(0.0, 1.0)
    s = (1 - c * c).clamp_min(0.0).sqrt()
    g = gram(grads)
    gn, scale = scaled(g)  # Gram in units of the largest squared norm
    u = uniform(grads)
    # Norms and directions from the vectors themselves (accurate to ~eps S), weights from the Gram.
    size = scale.sqrt()  # S = max_i ||g_i||
    resolution = 100 * fin.eps * size
    g0 = combine(u, grads)
    r = g0.norm(dim=-1)
    g0_zero = r <= resolution
    r_safe = torch.where(g0_zero, torch.ones_like(r), r)
    r_n = r / size  # ||g0|| in units of S, for the Gram-unit formulas
    g0_hat = g0 / r_safe.unsqueeze(-1)
    zeros = torch.zeros(B, dtype=torch.bool)

    if D == 1:
        weights = torch.where(g0_zero.unsqueeze(-1), torch.zeros_like(u), u)
        return (
            combine(weights, grads),
            weights,
            {
                "g0_zero": g0_zero,
                "pareto_stationary": zeros,
                "tie_break": zeros,
                "on_boundary": zeros,
                "solver_not_converged": zeros,
            },
        )

    # MGDA candidate: the min-norm direction, normalised, if it lies in the cone.
    if K == 2:
        x = mgda_two_task(gn)
        w_mn = torch.stack([x, 1 - x], dim=-1)
        mn_gap = torch.zeros(B, dtype=dtype)
        mn_gap_bad = zeros
    else:  # min ||g_w|| is "linear + norm" with a zero linear part: pairwise Frank-Wolfe
        ones = torch.ones(B, dtype=dtype)
        w_mn, mn_gap = minimize_linear_plus_norm(torch.zeros_like(u), ones, gn, 0.0, solver_iters)
        mn_gap_bad = mn_gap > 1e-6
    v_mn = combine(w_mn, grads)
    mn_norm = v_mn.norm(dim=-1)
    # ||d_mn||^2 - ||d*||^2 <= gap: within the solver's accuracy d* may be 0 (Pareto-stationary);
    # for K > 2 Frank-Wolfe also leaves residual weights of ~1e-12 (relative) on the way to d* = 0.
    floor = resolution if K == 2 else fin.eps**0.5 * size
    stationary = mn_norm.square() <= floor.square() + mn_gap.clamp_min(0.0) * scale
    mn_norm = torch.where(stationary, torch.ones_like(mn_norm), mn_norm)
    cos_mn = (v_mn * g0_hat).sum(-1) / mn_norm
    mn_inside = (~stationary) & (cos_mn >= c)
    beta_mn = (r / mn_norm).unsqueeze(-1) * w_mn
    d_mn = (r / mn_norm).unsqueeze(-1) * v_mn

    # Boundary candidate: d = r (c g0^ + s e^), e^ the unit of P g_w, w from MGDA (K = 2) or from
    # the boundary problem min_w c <g_w, g0^> + s ||P g_w|| (K > 2).
    r_n_safe = torch.where(g0_zero, torch.ones_like(r_n), r_n)
    gu = (gn @ u.unsqueeze(-1)).squeeze(-1)  # Gamma u
    gperp = gn - gu.unsqueeze(-1) * gu.unsqueeze(-2) / (r_n_safe * r_n_safe)[:, None, None]
    if K == 2:
        w_b, bd_gap_bad = w_mn, zeros
    else:
        # Uniform w is exactly on the kink P g_w = 0 of this problem, where Frank-Wolfe stalls: smooth
        # the norm as sqrt(||P g_w||^2 + eps) and let eps -> 0 over the iterations (warm-started).
        lin_b = c.unsqueeze(-1) * gu / r_n_safe.unsqueeze(-1)
        w_b = None
        phases = (1e-2, 1e-4, 1e-6, 1e-8, 0.0)
        for eps in phases:
            w_b, gap = minimize_linear_plus_norm(lin_b, s, gperp, eps, -(-solver_iters // len(phases)), w_b)
        bd_gap_bad = gap > 1e-6
    v_b = combine(w_b, grads)
    along = (v_b * g0_hat).sum(-1)
    h = v_b - along.unsqueeze(-1) * g0_hat  # P g_w
    h_norm = h.norm(dim=-1)
    # g0 = mean of the g_i is known to ~eps S, so its direction to ~eps S / ||g0||, and removing
    # g_w's component along it leaves an error of ~|along| eps S / ||g0|| (large where the g_i
    # nearly cancel): below that, P g_w is noise and the point is a tie.
    tie = h_norm <= resolution * (1 + along.abs() / r_safe)
    h_norm = torch.where(tie, torch.ones_like(h_norm), h_norm)
    perp = orthogonal_unit(g0_hat)
    e_hat = torch.where(tie.unsqueeze(-1), perp, h / h_norm.unsqueeze(-1))
    # Orthogonalise once more so that d = r (c g0^ + s e^) has norm r and cosine c to rounding.
    e_hat = e_hat - (e_hat * g0_hat).sum(-1, keepdim=True) * g0_hat
    e_hat = e_hat / e_hat.norm(dim=-1, keepdim=True).clamp_min(fin.tiny)
    d_b = r.unsqueeze(-1) * (c.unsqueeze(-1) * g0_hat + s.unsqueeze(-1) * e_hat)
    kappa = along / r_safe  # P g_w = g_w - kappa g0
    beta_b = c.unsqueeze(-1) * u + (r * s / h_norm).unsqueeze(-1) * (w_b - kappa.unsqueeze(-1) * u)
    beta_b = torch.where(tie.unsqueeze(-1), c.unsqueeze(-1) * u, beta_b)

    if K == 2:
        use_mn = mn_inside
    else:  # both candidates approximate: keep the better feasible one
        value_mn = (grads @ d_mn.unsqueeze(-1)).squeeze(-1).amin(-1)
        value_b = (grads @ d_b.unsqueeze(-1)).squeeze(-1).amin(-1)
        if D == 2:
            # The cone's boundary in 2-D is two rays: compare them directly, which is exact where the
            # dual's kink (P g_w = 0) stalls Frank-Wolfe. Their weights: min-norm beta = Gamma^+ G d.
            r_full = r.unsqueeze(-1)
            pinv, _ = pseudo_inverse(g)
            for side in (1.0, -1.0):
                d_ray = r_full * (c.unsqueeze(-1) * g0_hat + side * s.unsqueeze(-1) * perp)
                value_ray = (grads @ d_ray.unsqueeze(-1)).squeeze(-1).amin(-1)
                better = value_ray > value_b + fin.eps * size * r
                beta_ray = (pinv @ (grads @ d_ray.unsqueeze(-1))).squeeze(-1)
                ray_in_span = (combine(beta_ray, grads) - d_ray).norm(
                    dim=-1
                ) <= 1e3 * fin.eps * r_full.squeeze(-1)
                d_b = torch.where(better.unsqueeze(-1), d_ray, d_b)
                beta_b = torch.where(better.unsqueeze(-1), beta_ray, beta_b)
                value_b = torch.where(better, value_ray, value_b)
                tie = torch.where(better, ~ray_in_span, tie)
                bd_gap_bad = bd_gap_bad & ~better
        use_mn = mn_inside & (value_mn >= value_b)
    d = torch.where(use_mn.unsqueeze(-1), d_mn, d_b)
    weights = torch.where(use_mn.unsqueeze(-1), beta_mn, beta_b)
    d = torch.where(g0_zero.unsqueeze(-1), torch.zeros_like(d), d)
    weights = torch.where(g0_zero.unsqueeze(-1), torch.zeros_like(weights), weights)
    tie_used = tie & ~use_mn & ~g0_zero & (s > 0)
    flags = {
        "g0_zero": g0_zero,
        "pareto_stationary": stationary & ~g0_zero,
        "tie_break": tie_used,
        "on_boundary": ~use_mn & ~g0_zero,
        "solver_not_converged": (mn_gap_bad | (bd_gap_bad & ~use_mn)) & ~g0_zero,
    }
    return d, weights, flags


def step(inp: StepInput, state, params) -> MethodOutput:
    c = scheduled_c(params, inp.progress, inp.grads.dtype)
    d, weights, flags = cone_direction(inp.grads, c, params["solver_iters"])
    return MethodOutput(d, weights, EMPTY, flags)


SPEC = MethodSpec(
    name="conicgrad_exact",
    label="ConicGrad, exact cone solution",
    paper="Hassanpour et al. 2025, arXiv 2502.00217 (problem as stated; exact solution derived here)",
    summary="Best worst-case task improvement over directions within arccos(c) of g0, ||d|| = ||g0||.",
    step=step,
    params=schedule_params(
        0.5,
        0.0,
        1.0,
        "cone half-angle as a cosine: d must satisfy cos(d, g0) >= c (c = 1: d = g0; c = 0: any d with "
        "<d, g0> >= 0); negative c (a non-convex cone) is not offered",
    )
    + (
        ParamSpec(
            "solver_iters",
            100,
            "Frank-Wolfe iterations for K > 2 (MGDA and the boundary problem); K = 2 is exact",
            kind="int",
            low=1,
            high=10000,
        ),
    ),
    flags={
        "g0_zero": "the mean gradient is 0: the cone is undefined and d = 0",
        "pareto_stationary": "the min-norm point of conv{g_i} is 0; the optimum is taken on the cone's "
        "boundary (exact for K = 2)",
        "tie_break": "two boundary rays tie; the side psi0 + theta_c was taken (d leaves span{g_i}: weights "
        "then only give its component along g0)",
        "on_boundary": "the cone constraint is active: d lies on the cone's boundary",
        "solver_not_converged": "K > 2: a Frank-Wolfe duality gap stayed above its tolerance",
    },
    guarantees=frozenset({"in_cone", "norm_g0"}),
    weights_exact=False,
    weights_note="direction = sum_i weights_i * g_i, except at tie_break (d then leaves span{g_i})",
    references=(
        ReferenceCase(
            grads=((1.0, 0.0), (-0.5, 1.0)),
            direction=(0.3100868364730212, 0.4651302547095317),
            weights=(0.5426519638277871, 0.4651302547095317),
            derivation=(
                "max of min_i <g_i, d> over ||d|| = ||g0|| within arccos(c) of g0, by angle search: the "
                "MGDA direction, inside the cone"
            ),
            params={"c": 0.5},
            tolerance=1e-09,
        ),
        ReferenceCase(
            grads=((3.0, 0.0), (-0.5, 0.4)),
            direction=(0.45179491924311316, 1.182531754730548),
            weights=(0.6433198708854329, 2.9563293868263703),
            derivation="the same angle search where the cone constraint is active",
            params={"c": 0.5},
            tolerance=1e-09,
        ),
    ),
)
