"""Small batched linear-algebra helpers shared by the method modules."""

from __future__ import annotations

import torch

from .base import EPS, Tensor


def gram(grads: Tensor) -> Tensor:
    """Gram matrix Gamma_ij = <g_i, g_j>, shape (B, K, K), from grads (B, K, D)."""
    return grads @ grads.transpose(-1, -2)


def combine(weights: Tensor, grads: Tensor) -> Tensor:
    """sum_i weights_i g_i, shape (B, D)."""
    return (weights.unsqueeze(-1) * grads).sum(-2)


def quad(gram_: Tensor, a: Tensor, b: Tensor | None = None) -> Tensor:
    """a^T Gamma b for batched vectors a, b of shape (B, K); returns (B,)."""
    b = a if b is None else b
    return (a.unsqueeze(-2) @ gram_ @ b.unsqueeze(-1)).squeeze(-1).squeeze(-1)


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
