"""Independent derivations of the methods' worked examples (``MethodSpec.references``).

Each function recomputes one reference case from the method's definition in the paper (or the
reference code's algorithm) with plain numpy on the gradient VECTORS, by brute force (dense grids
refined by golden-section search, enumeration of a cone's faces) or by a closed form, never by
calling toyopt. ``test_reference_values.py`` checks that these derivations reproduce the numbers
each module declares, and that each module's ``step`` reproduces them too.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import torch

GOLDEN = (math.sqrt(5) - 1) / 2


def weights_of(grads: np.ndarray, d: np.ndarray) -> np.ndarray:
    """beta with d = sum_i beta_i g_i (unique when the g_i are linearly independent)."""
    beta, *_ = np.linalg.lstsq(grads.T, d, rcond=None)
    return beta


def argmax_on_interval(f, low: float, high: float, grid: int = 20001) -> float:
    """argmax of f on [low, high]: a dense grid, then golden-section search around the best point."""
    xs = np.linspace(low, high, grid)
    best = int(np.argmax([f(x) for x in xs]))
    a, b = xs[max(best - 1, 0)], xs[min(best + 1, grid - 1)]
    for _ in range(200):
        x1, x2 = b - GOLDEN * (b - a), a + GOLDEN * (b - a)
        if f(x1) >= f(x2):
            b = x2
        else:
            a = x1
    return (a + b) / 2


def quadratic_argmin_01(f) -> float:
    """argmin over x in [0, 1] of a quadratic f, from three of its values (exact for a quadratic)."""
    f0, fh, f1 = f(0.0), f(0.5), f(1.0)
    a = 2 * (f1 - 2 * fh + f0)  # f = a x^2 + b x + f0
    b = f1 - f0 - a
    if a <= 0:  # concave (or linear): the least end point
        return 0.0 if f0 <= f1 else 1.0
    return min(max(-b / (2 * a), 0.0), 1.0)


def unit(angle: float) -> np.ndarray:
    return np.array([math.cos(angle), math.sin(angle)])


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max())
    return e / e.sum()


# ----------------------------------------------------------------------------- plain weightings


def ls(G, reduction):
    w = np.full(len(G), 1.0 if reduction == "sum" else 1.0 / len(G))
    return w @ G, w


def stl(G, task):
    w = np.eye(len(G))[task]
    return w @ G, w


def si(G, losses, lower):
    w = 1.0 / (np.asarray(losses) - lower)
    return w @ G, w


def rlw(G, z):
    w = softmax(np.asarray(z[: len(G)]))
    return w @ G, w


def normalized_sum(G):
    d = sum(g / np.linalg.norm(g) for g in G)
    return d, weights_of(G, d)


def uw(G, losses_per_step, lower, lr):
    """Kendall et al.: the loss sum_i 1/2 (exp(-s_i) L_i + s_i) differentiated in s by autograd, s
    stepped by torch.optim.Adam once per earlier step; returns the last step's
    d = dL/dtheta = 1/2 sum_i exp(-s_i) g_i."""
    s = torch.zeros(len(G), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.Adam([s], lr=lr)
    for losses in losses_per_step[:-1]:
        L = torch.tensor(np.asarray(losses) - lower)
        opt.zero_grad()
        (0.5 * (torch.exp(-s) * L + s)).sum().backward()
        opt.step()
    w = 0.5 * np.exp(-s.detach().numpy())
    return w @ G, w


def dwa(G, losses_per_step, lower, temperature):
    """Liu et al. (2019) with a window of one iteration: lambda = K softmax(r / T), r_i = L_i(t-1) /
    L_i(t-2), the loss mean_i lambda_i l_i (lambda = 1 until two ratios' worth of losses exist)."""
    K = len(G)
    L = [np.asarray(x) - lower for x in losses_per_step]
    if len(L) < 3:
        lam = np.ones(K)
    else:
        lam = K * softmax((L[-1] / L[-2]) / temperature)
    w = lam / K
    return w @ G, w


def famo(G, losses_per_step, lower, w_lr):
    """FAMO's toy loop: weights w_i proportional to z_i / D_i with z = softmax(xi), D = l - l* + 1e-8;
    before every step after the first, xi takes one torch.optim.Adam step on the gradient (by
    autograd) of <softmax(xi), log D_prev - log D>."""
    xi = torch.zeros(len(G), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.Adam([xi], lr=w_lr)
    D = [np.asarray(x) - lower + 1e-8 for x in losses_per_step]
    for prev, cur in zip(D, D[1:]):
        opt.zero_grad()
        (torch.softmax(xi, 0) * torch.tensor(np.log(prev) - np.log(cur))).sum().backward()
        opt.step()
    z = torch.softmax(xi, 0).detach().numpy()
    w = (z / D[-1]) / (z / D[-1]).sum()
    return w @ G, w


def gradnorm(G, losses_per_step, lower, alpha, lr):
    """GradNorm (LibMTL form): w = K softmax(xi), xi from 1; the gradient-norm loss
    sum_i |w_i ||g_i|| - mean_j(w_j ||g_j||) r_i^alpha| (target held constant) differentiated by
    autograd, xi stepped by torch.optim.Adam; returns the last step's d."""
    K = len(G)
    norms = np.linalg.norm(G, axis=1)
    xi = torch.ones(K, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.Adam([xi], lr=lr)
    L0 = np.asarray(losses_per_step[0]) - lower
    for losses in losses_per_step[:-1]:
        L = np.asarray(losses) - lower
        ratio = L / L0
        r = torch.tensor(ratio / ratio.mean(), dtype=torch.float64)
        w = K * torch.softmax(xi, 0)
        Gn = w * torch.tensor(norms)
        target = (Gn.mean() * r**alpha).detach()
        opt.zero_grad()
        (Gn - target).abs().sum().backward()
        opt.step()
    w = (K * torch.softmax(xi, 0)).detach().numpy()
    return w @ G, w


# ------------------------------------------------------------------------------ min-norm family


def min_norm_two(G, pull=0.0):
    """argmin over the segment of || g_x + pull g0 ||, g_x = x g1 + (1 - x) g2 (closed form of a
    1-D quadratic); returns (x, 1 - x)."""
    g0 = G.mean(0)
    x = quadratic_argmin_01(lambda x: float(np.sum((x * G[0] + (1 - x) * G[1] + pull * g0) ** 2)))
    return np.array([x, 1 - x])


def min_norm_hull(G) -> np.ndarray:
    """Weights of the point of conv{g_i} nearest 0, by enumerating the faces (every subset of
    vertices: the affine-hull projection of 0, kept if its weights are >= 0)."""
    K = len(G)
    best, best_norm = None, math.inf
    for size in range(1, K + 1):
        for face in itertools.combinations(range(K), size):
            P = G[list(face)]
            # min ||P^T w|| s.t. sum w = 1: KKT system [P P^T 1; 1^T 0]
            A = np.block([[P @ P.T, np.ones((size, 1))], [np.ones((1, size)), np.zeros((1, 1))]])
            rhs = np.r_[np.zeros(size), 1.0]
            sol = np.linalg.lstsq(A, rhs, rcond=None)[0][:size]
            if (sol >= -1e-12).all():
                w = np.zeros(K)
                w[list(face)] = sol
                norm = np.linalg.norm(w @ G)
                if norm < best_norm - 1e-15:
                    best, best_norm = w, norm
    return best


def mgda(G):
    w = min_norm_hull(G)
    return w @ G, w


def mgda_avg_argmin(G, iterations):
    """Su's iteration on the vector u itself: u_{k+1} = (k u_k + g_tau) / (k + 1), tau = the task
    with the least <g_i, u_k> (lowest index on ties), u_1 = g0; weights counted alongside."""
    K = len(G)
    u, w = G.mean(0), np.full(K, 1.0 / K)
    for k in range(1, iterations + 1):
        tau = int(np.argmin(G @ u))
        u = (k * u + G[tau]) / (k + 1)
        w = (k * w + np.eye(K)[tau]) / (k + 1)
    return u, w


def mgda_softmax(G, steps, lr0):
    """Gradient descent on f(xi) = ||sum_i softmax(xi)_i g_i||^2 / max_i ||g_i||^2, gradient by autograd."""
    Gt = torch.tensor(G)
    scale = float((Gt * Gt).sum(-1).max())
    xi = torch.zeros(len(G), dtype=torch.float64, requires_grad=True)
    for _ in range(steps):
        f = (torch.softmax(xi, 0) @ Gt).square().sum() / scale
        (grad,) = torch.autograd.grad(f, xi)
        xi = (xi - lr0 * grad).detach().requires_grad_(True)
    w = torch.softmax(xi, 0).detach().numpy()
    return w @ G, w


def sdmgrad(G, lmbda):
    w = min_norm_two(G, lmbda)
    d = (w @ G + lmbda * G.mean(0)) / (1 + lmbda)
    return d, weights_of(G, d)


def cagrad(G, c, rescale):
    """max_d min_i <g_i, d> on the sphere ||d - g0|| = c ||g0|| (2-D, by angle search)."""
    g0 = G.mean(0)
    radius = c * np.linalg.norm(g0)
    theta = argmax_on_interval(lambda t: float(np.min(G @ (g0 + radius * unit(t)))), 0.0, 2 * math.pi)
    d = (g0 + radius * unit(theta)) / {"none": 1.0, "1+c^2": 1 + c * c, "1+c": 1 + c}[rescale]
    return d, weights_of(G, d)


def conicgrad_exact(G, c):
    """max_d min_i <g_i, d> over ||d|| = ||g0||, cos(d, g0) >= c (2-D, by angle search in the wedge)."""
    g0 = G.mean(0)
    r, psi0, half = np.linalg.norm(g0), math.atan2(g0[1], g0[0]), math.acos(c)
    psi = argmax_on_interval(lambda p: float(np.min(G @ (r * unit(p)))), psi0 - half, psi0 + half)
    d = r * unit(psi)
    return d, weights_of(G, d)


# ------------------------------------------------------------------------------- projections


def project_dual_cone(G, x) -> np.ndarray:
    """Euclidean projection of x onto {y : <g_j, y> >= 0 for all j}, by enumerating the sets of
    active constraints (projection onto each intersection of hyperplanes, kept if feasible)."""
    K = len(G)
    best, best_dist = None, math.inf
    for size in range(0, K + 1):
        for active in itertools.combinations(range(K), size):
            A = G[list(active)]
            y = x if size == 0 else x - A.T @ np.linalg.lstsq(A @ A.T, A @ x, rcond=None)[0]
            if (G @ y >= -1e-12).all() and np.linalg.norm(y - x) < best_dist - 1e-15:
                best, best_dist = y, np.linalg.norm(y - x)
    return best


def upgrad(G):
    d = np.mean([project_dual_cone(G, g) for g in G], axis=0)
    return d, weights_of(G, d)


def pcgrad(G, orders, reduction):
    """Yu et al.'s loop on the vectors: each g_i visits the tasks in orders[i] and drops its
    component along every g_j it conflicts with (always the original g_j)."""
    out = []
    for i, order in enumerate(orders):
        v = G[i].copy()
        for j in order:
            if v @ G[j] < 0:
                v = v - (v @ G[j]) / (G[j] @ G[j]) * G[j]
        out.append(v)
    d = np.sum(out, axis=0) / (len(G) if reduction == "mean" else 1)
    return d, weights_of(G, d)


def gradops(G, project_when):
    """g_i' = g_i minus its least-squares projection onto span{g_j : j != i} (every task, or only
    those in conflict), d = sum_i g_i' (alpha = 0)."""
    K = len(G)
    total = np.zeros(G.shape[1])
    for i in range(K):
        others = G[[j for j in range(K) if j != i]]
        conflicted = (others @ G[i] < 0).any()
        if project_when == "always" or conflicted:
            coef = np.linalg.lstsq(others.T, G[i], rcond=None)[0]
            total += G[i] - others.T @ coef
        else:
            total += G[i]
    return total, weights_of(G, total)


def gradvac(G, steps, beta):
    """Wang et al. (K = 2, targets from 0, EMA after every pair): the vector update applied
    ``steps`` times to the same gradients; returns the last step's d."""
    K = len(G)
    target = np.zeros((K, K))
    for _ in range(steps):
        out = []
        for i in range(K):
            v = G[i].copy()
            for j in [j for j in range(K) if j != i]:
                phi = v @ G[j] / (np.linalg.norm(v) * np.linalg.norm(G[j]))
                hat = target[i, j]
                if phi < hat:
                    v = v + G[j] * np.linalg.norm(v) * (
                        hat * math.sqrt(1 - phi**2) - phi * math.sqrt(1 - hat**2)
                    ) / (np.linalg.norm(G[j]) * math.sqrt(1 - hat**2))
                target[i, j] = (1 - beta) * hat + beta * phi
            out.append(v)
        d = np.sum(out, axis=0)
    return d, weights_of(G, d)


def graddrop(G, uniform, reduction):
    """Chen et al.'s sign dropout per coordinate with the given U_j; weights = the surviving share
    <kept_i, g_i> / ||g_i||^2 (times 1/K for the mean)."""
    K, D = G.shape
    kept = np.zeros_like(G)
    for j in range(D):
        purity = 0.5 * (1 + G[:, j].sum() / np.abs(G[:, j]).sum())
        for i in range(K):
            if (G[i, j] > 0 and purity > uniform[j]) or (G[i, j] < 0 and purity < uniform[j]):
                kept[i, j] = G[i, j]
    s = 1.0 / K if reduction == "mean" else 1.0
    return s * kept.sum(0), s * np.einsum("kd,kd->k", kept, G) / np.einsum("kd,kd->k", G, G)


# ------------------------------------------------------------------------------ equal-projection


def imtlg(G):
    """d = sum beta_i g_i with sum beta = 1 and <d, g_i / ||g_i||> equal for every i: a K x K
    linear system in beta."""
    K = len(G)
    U = G / np.linalg.norm(G, axis=1, keepdims=True)
    M = U @ G.T  # M[i, k] = <u_i, g_k>, so (M beta)_i = <u_i, d>
    rows = [M[i] - M[0] for i in range(1, K)] + [np.ones(K)]
    beta = np.linalg.solve(np.array(rows), np.r_[np.zeros(K - 1), 1.0])
    return beta @ G, beta


def nashmtl(G):
    """alpha > 0 with alpha_i <g_i, G^T alpha> = 1: Newton's method on those K equations from
    alpha_i = 1 / ||g_i||, residual checked."""
    Gram = G @ G.T
    alpha = 1.0 / np.linalg.norm(G, axis=1)
    for _ in range(100):
        F = alpha * (Gram @ alpha) - 1
        Jac = np.diag(Gram @ alpha) + alpha[:, None] * Gram
        alpha = alpha - np.linalg.solve(Jac, F)
    assert np.abs(alpha * (Gram @ alpha) - 1).max() < 1e-12 and (alpha > 0).all()
    return alpha @ G, alpha


def aligned_mtl(G, preference):
    """Senushkin et al. through the SVD of the gradient matrix G = U S W^T: the aligned gradients
    are s_min W U^T (orthonormal rows scaled by the smallest singular value); d = their
    p-weighted sum."""
    U, S, Wt = np.linalg.svd(G, full_matrices=False)
    aligned = S.min() * (U @ Wt)  # row i: task i's aligned gradient
    p = np.ones(len(G)) / (len(G) if preference == "uniform" else 1)
    d = p @ aligned
    return d, weights_of(G, d)


def conicgrad_sgd(G, c, lam, sign, steps, lr, momentum=0.5):
    """The reconstructed ConicGrad pipeline as its docstring states it, with its solver replayed by
    torch.optim.SGD: xi from 0, ``steps`` momentum-SGD steps on
    J(w) = ||g_w||^2 + lam <g0, g_w>^2 / (delta ||g0||^2), delta = -lam (1 - c^2), at w = softmax(xi)
    (divided by (mean_i ||g_i||)^2, gradient by autograd), the best iterate kept; then d = H^-1 g_w
    with H = lam c^2 ||g0||^2 I - lam g0 g0^T inverted as a D x D matrix (not by Sherman-Morrison),
    oriented along g0 (``corrected``) and scaled to ||g0||."""
    Gt = torch.tensor(G)
    g0 = G.mean(0)
    norm_scale = float(np.linalg.norm(G, axis=1).mean() ** 2)
    n0 = float(g0 @ g0)
    delta = -lam * (1 - c * c)

    def J(w):
        gw = w @ Gt
        return (gw @ gw + lam * (torch.tensor(g0) @ gw) ** 2 / (delta * n0)) / norm_scale

    xi = torch.zeros(len(G), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.SGD([xi], lr=lr, momentum=momentum)
    best_w = torch.full((len(G),), 1.0 / len(G), dtype=torch.float64)
    best_j = float(J(best_w))
    for _ in range(steps):
        opt.zero_grad()
        J(torch.softmax(xi, 0)).backward()
        opt.step()
        w = torch.softmax(xi, 0).detach()
        if float(J(w)) < best_j:
            best_w, best_j = w, float(J(w))
    gw = best_w.numpy() @ G
    H = lam * c * c * n0 * np.eye(len(g0)) - lam * np.outer(g0, g0)
    d = np.linalg.solve(H, gw)
    if sign == "corrected" and d @ g0 < 0:
        d = -d
    d = d * math.sqrt(n0) / np.linalg.norm(d)
    return d, weights_of(G, d)
