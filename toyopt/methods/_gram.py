"""Gram-matrix utilities: the one home of the conventions every Gram-based method shares.

For gradients g (B, K, D), Gamma_ij = <g_i, g_j> is the (B, K, K) Gram matrix. Methods written on
Gamma alone are invariant to rotations of the parameter space and cost O(K^2) per lane after the
one O(K^2 D) product.

* Squared norms are Gamma's diagonal, clamped at 0 (rounding must not make them negative).
* Scale: Gram quantities are divided by the largest squared norm S^2 = max_i Gamma_ii (floored at
  the dtype's smallest normal number, so all-zero gradients stay finite), which keeps squares of
  squares in range and makes every tolerance relative.
* Pseudo-inverse: eigenvalues with |lambda| <= PINV_RTOL_FACTOR * K * eps * max |lambda| count
  as zero. A Gram matrix assembled from K gradients carries rounding of about K eps times its
  largest eigenvalue; the factor 1e3 keeps that noise (and a method's own rescaling of Gamma) from
  being inverted into huge weights, while still resolving gradients whose directions differ by
  angles down to ~sqrt(1e3 K eps) (~1e-6 rad in float64).
"""

from __future__ import annotations

import torch

from .base import Tensor

#: Relative eigenvalue cut-off of ``pseudo_inverse``, in units of K * eps_machine.
PINV_RTOL_FACTOR = 1e3


def gram(grads: Tensor) -> Tensor:
    """Gram matrix Gamma_ij = <g_i, g_j>, shape (B, K, K), from grads (B, K, D)."""
    return grads @ grads.transpose(-1, -2)


def quad(gram_: Tensor, a: Tensor, b: Tensor | None = None) -> Tensor:
    """a^T Gamma b for batched vectors a, b of shape (B, K); returns (B,)."""
    b = a if b is None else b
    return (a.unsqueeze(-2) @ gram_ @ b.unsqueeze(-1)).squeeze(-1).squeeze(-1)


def sq_norms(gram_: Tensor) -> Tensor:
    """||g_i||^2 = Gamma_ii (clamped at 0), shape (..., K)."""
    return torch.diagonal(gram_, dim1=-2, dim2=-1).clamp_min(0.0)


def norms(gram_: Tensor) -> Tensor:
    """||g_i|| = sqrt(Gamma_ii), shape (..., K)."""
    return sq_norms(gram_).sqrt()


def largest_sq_norm(gram_: Tensor) -> Tensor:
    """S^2 = max_i ||g_i||^2 (..., ), floored at the dtype's tiny: the scale to divide Gram
    quantities by."""
    return sq_norms(gram_).amax(-1).clamp_min(torch.finfo(gram_.dtype).tiny)


def scaled(gram_: Tensor) -> tuple[Tensor, Tensor]:
    """(Gamma / S^2, S^2): the Gram matrix in units of the largest squared norm, and that unit."""
    scale = largest_sq_norm(gram_)
    return gram_ / scale[..., None, None], scale


def unit_gram(gram_: Tensor) -> tuple[Tensor, Tensor]:
    """The cosine matrix <g_i, g_j> / (||g_i|| ||g_j||) (0 in the rows and columns of zero
    gradients) and the (..., K) mask of nonzero gradients. Spans and cones depend only on
    directions, so methods that build them work here: a gradient far smaller than the others keeps
    its direction."""
    n = norms(gram_)
    nonzero = n > torch.finfo(gram_.dtype).tiny
    n_safe = torch.where(nonzero, n, torch.ones_like(n))
    both = nonzero.unsqueeze(-1) & nonzero.unsqueeze(-2)
    return torch.where(both, gram_ / (n_safe.unsqueeze(-1) * n_safe.unsqueeze(-2)), 0.0), nonzero


def _inverted_spectrum(sym: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Eigenvectors V, inverted eigenvalues (0 where dropped) and the numerical rank of
    symmetric matrices (..., K, K): eigenvalues at or below PINV_RTOL_FACTOR * K * eps * max
    |lambda| are dropped."""
    K = sym.shape[-1]
    fin = torch.finfo(sym.dtype)
    evals, evecs = torch.linalg.eigh(sym)
    size = evals.abs()
    kept = size > PINV_RTOL_FACTOR * K * fin.eps * size.amax(-1, keepdim=True).clamp_min(fin.tiny)
    inverse = torch.where(kept, 1 / torch.where(kept, evals, torch.ones_like(evals)), 0.0)
    return evecs, inverse, kept.sum(-1)


def pseudo_inverse(sym: Tensor) -> tuple[Tensor, Tensor]:
    """Moore-Penrose pseudo-inverse of symmetric matrices (..., K, K) and their numerical rank."""
    evecs, inverse, rank = _inverted_spectrum(sym)
    return (evecs * inverse.unsqueeze(-2)) @ evecs.transpose(-1, -2), rank


def pseudo_solve(sym: Tensor, rhs: Tensor) -> tuple[Tensor, Tensor]:
    """sym^+ rhs for rhs (..., K) and the numerical rank, applied as V (Lambda^+ (V^T rhs)): a
    right-hand side in the null space comes out as rounding noise of its own size, whatever the
    order of the tasks."""
    evecs, inverse, rank = _inverted_spectrum(sym)
    projected = (evecs.transpose(-1, -2) @ rhs.unsqueeze(-1)).squeeze(-1)
    return (evecs @ (inverse * projected).unsqueeze(-1)).squeeze(-1), rank
