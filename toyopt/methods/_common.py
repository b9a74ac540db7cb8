"""Small batched helpers shared by the method modules (Gram-matrix ones are in ``_gram``)."""

from __future__ import annotations

import torch

from .base import EPS, ParamSpec, StepInput, Tensor


def combine(weights: Tensor, grads: Tensor) -> Tensor:
    """sum_i weights_i g_i, shape (B, D)."""
    return (weights.unsqueeze(-1) * grads).sum(-2)


def uniform(like: Tensor) -> Tensor:
    """u = 1/K for every lane, shape (B, K), from any (B, K, ...) tensor."""
    B, K = like.shape[0], like.shape[1]
    return torch.full((B, K), 1.0 / K, dtype=like.dtype, device=like.device)


def flag(cond: Tensor) -> Tensor:
    """A (B,) bool flag from a (B,) condition."""
    return cond.to(torch.bool)


def mgda_two_task(gram_: Tensor) -> Tensor:
    """Weight x on g1 of the min-norm element of conv{g1, g2} (exact, K = 2).

    x = clip((G22 - G12) / (G11 + G22 - 2 G12), 0, 1); when g1 = g2 the denominator vanishes and
    every x gives the same vector, so x = 1/2.
    """
    g11, g22, g12 = gram_[:, 0, 0], gram_[:, 1, 1], gram_[:, 0, 1]
    denom = g11 + g22 - 2 * g12
    safe = denom > EPS * (g11 + g22) + torch.finfo(gram_.dtype).tiny
    x = (g22 - g12) / torch.where(safe, denom, torch.ones_like(denom))
    return torch.where(safe, x.clamp(0.0, 1.0), torch.full_like(x, 0.5))


def adam_update(
    param: Tensor,
    grad: Tensor,
    exp_avg: Tensor,
    exp_avg_sq: Tensor,
    step: Tensor,
    lr: Tensor,
    weight_decay: Tensor | float = 0.0,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """One ``torch.optim.Adam`` step (L2 ``weight_decay`` added to the gradient, as torch does)
    on a method's own learnable (B, K) parameter, lanes in the rows.

    ``step`` (B,) counts the steps already taken and ``lr``/``weight_decay`` are (B,) tensors or
    numbers. Returns (param, exp_avg, exp_avg_sq, step) after the update.
    """
    beta1, beta2 = betas
    if isinstance(lr, Tensor):
        lr = lr.reshape(-1, 1)
    if isinstance(weight_decay, Tensor):
        weight_decay = weight_decay.reshape(-1, 1)
    grad = grad + weight_decay * param
    step = step + 1
    exp_avg = exp_avg.lerp(grad, 1 - beta1)
    exp_avg_sq = exp_avg_sq.mul(beta2).addcmul(grad, grad, value=1 - beta2)
    bias_correction1 = (1 - beta1**step).unsqueeze(-1)
    bias_correction2_sqrt = (1 - beta2**step).sqrt().unsqueeze(-1)
    denom = exp_avg_sq.sqrt() / bias_correction2_sqrt + eps
    param = param - (lr / bias_correction1) * (exp_avg / denom)
    return param, exp_avg, exp_avg_sq, step


def negligible(norms: Tensor) -> Tensor:
    """(B, K) bool: gradient norms too small to divide by, relative to the lane's largest norm
    (scale-invariant: a lane whose gradients are all 1e-12 is not degenerate)."""
    scale = norms.amax(-1, keepdim=True)
    return norms <= EPS * scale + torch.finfo(norms.dtype).tiny


def permutations_from_uniform(random: Tensor, K: int) -> Tensor:
    """(B, K, K) long: row i is a uniformly random permutation of 0..K-1 (argsort of K
    independent uniform draws), one per task i, from ``random`` (B, >= K*K)."""
    B = random.shape[0]
    return random[:, : K * K].reshape(B, K, K).argsort(-1)


#: Visiting order for K = 2 where the order cannot matter: row i visits task i, then the other.
TWO_TASK_ORDER = torch.tensor([[0, 1], [1, 0]])


def softmax(logits: Tensor) -> Tensor:
    """Softmax over the last axis, max-shifted. Written out because ``torch.softmax`` enters a
    parallel region even for a (B, K) tensor, which costs milliseconds per call on a busy CPU."""
    e = torch.exp(logits - logits.amax(-1, keepdim=True))
    return e / e.sum(-1, keepdim=True)


def conflicting_beyond_rounding(grads: Tensor, d: Tensor) -> Tensor:
    """(B,) bool: some task has <g_j, d> < 0 by more than a direction assembled from Gram-matrix
    quantities can be resolved, sqrt(eps) ||g_j|| max_i ||g_i|| + 1e-6 ||g_j|| ||d||. A solver
    that claims d is non-conflicting checks its answer against the vectors with this, so that an
    ill-conditioned solve is reported instead of returned as if it were exact."""
    eps = torch.finfo(d.dtype).eps
    norms = grads.norm(dim=-1)
    inner = (grads @ d.unsqueeze(-1)).squeeze(-1)
    slack = eps**0.5 * norms * norms.amax(-1, keepdim=True) + 1e-6 * norms * d.norm(dim=-1, keepdim=True)
    return (inner < -slack).any(-1)


#: Which losses a loss-based weighting (SI, UW, DWA) reads: the sane l - l* (positive on the toy,
#: whose losses are negative in the valleys) or the raw l, as the Nash-MTL and FAMO code bases do.
LOSS_SHIFT = ParamSpec(
    "loss_shift",
    "lower_bound",
    "lower_bound: the losses minus their lower bounds l* (positive on the toy); none: the raw losses, "
    "as the Nash-MTL/FAMO code bases take them (logs and ratios of negative losses; a non-finite "
    "value stops the lane)",
    kind="choice",
    choices=("lower_bound", "none"),
)


def task_losses(inp: StepInput, params) -> Tensor:
    """(B, K) the losses the method reads under its ``loss_shift``: l - l*, or the raw l."""
    return inp.losses - inp.lower_bounds if params["loss_shift"] == "lower_bound" else inp.losses
