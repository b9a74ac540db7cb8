"""Geometry of a problem and of the feasible regions: Pareto set and front, the global minimum
of the mean loss, distances to them, and CAGrad's ball / ConicGrad's cone / the dual cone.

Nothing here is hard-coded: the Pareto set is the curve of stationary points of
l f1 + (1 - l) f2 for l in [0, 1], found by Newton's method on the analytic gradient, and the
global minimum is its point at l = 1/2 (the minimum of the mean (f1 + f2)/2 of the losses as the
problem defines them, i.e. with the loss scale applied).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

from .problems import ProblemSpec, get_problem

Tensor = torch.Tensor


def _weighted_grad(problem: ProblemSpec, params: dict, x: Tensor, lmbda: Tensor) -> Tensor:
    _, grads = problem.losses_and_grads(x, params)
    return lmbda[:, None] * grads[:, 0] + (1 - lmbda[:, None]) * grads[:, 1]


def stationary_points(problem: ProblemSpec, params: dict, lmbda: Tensor, iters: int = 60) -> Tensor:
    """x (M, D) with grad(l f1 + (1 - l) f2)(x) = 0 for each l in ``lmbda`` (M,), by Newton's
    method from ``problem.pareto_guess``; the Hessian by central differences of the analytic
    gradient (the residual itself is exact, so the root is)."""
    lmbda = lmbda.to(torch.float64)
    x = problem.pareto_guess(lmbda, params).to(torch.float64)
    h = 1e-5
    eye = torch.eye(problem.dim, dtype=torch.float64)
    for _ in range(iters):
        g = _weighted_grad(problem, params, x, lmbda)
        cols = [
            (
                _weighted_grad(problem, params, x + h * e, lmbda)
                - _weighted_grad(problem, params, x - h * e, lmbda)
            )
            / (2 * h)
            for e in eye
        ]
        hess = torch.stack(cols, dim=-1)
        step = torch.linalg.solve(hess, g.unsqueeze(-1)).squeeze(-1)
        x = x - step.clamp(-1.0, 1.0)
        if step.abs().max() < 1e-13:
            break
    return x


@dataclass(frozen=True)
class ParetoSet:
    """The Pareto set as a polyline in x-space (ordered by l) and its image, the front."""

    lmbda: Tensor  # (M,)
    points: Tensor  # (M, D)
    front: Tensor  # (M, K)

    def distance(self, x: Tensor) -> Tensor:
        """Euclidean distance from each row of x (B, D) to the polyline, (B,), exact for the
        polyline. Batched over segments in chunks to bound memory."""
        a = self.points[:-1].to(x.dtype)
        ab = (self.points[1:] - self.points[:-1]).to(x.dtype)
        ab2 = (ab * ab).sum(-1).clamp_min(1e-300)
        out = []
        for chunk in torch.split(x, 4096):
            ap = chunk[:, None, :] - a[None]
            t = ((ap * ab[None]).sum(-1) / ab2).clamp(0, 1)
            d = ap - t[..., None] * ab[None]
            out.append(d.norm(dim=-1).min(-1).values)
        return torch.cat(out)


@lru_cache(maxsize=64)
def _pareto_cached(problem_name: str, params_key: tuple, n: int) -> ParetoSet:
    problem = get_problem(problem_name)
    params = dict(params_key)
    lmbda = torch.linspace(0, 1, n, dtype=torch.float64)
    points = stationary_points(problem, params, lmbda)
    front = problem.losses(points, params)
    return ParetoSet(lmbda, points, front)


def pareto_set(problem: ProblemSpec, params: dict, n: int = 401) -> ParetoSet:
    """The Pareto set sampled at ``n`` evenly spaced weights l (cached)."""
    return _pareto_cached(problem.name, tuple(sorted(params.items())), n)


@lru_cache(maxsize=64)
def _global_min_cached(problem_name: str, params_key: tuple) -> tuple[float, ...]:
    problem = get_problem(problem_name)
    x = stationary_points(problem, dict(params_key), torch.tensor([0.5], dtype=torch.float64))
    return tuple(x[0].tolist())


def global_minimum(problem: ProblemSpec, params: dict) -> Tensor:
    """The minimiser of the mean loss (f1 + f2)/2 (with the problem's loss scale applied), (D,)."""
    return torch.tensor(_global_min_cached(problem.name, tuple(sorted(params.items()))), dtype=torch.float64)


class FastParetoDistance:
    """Distance to a Pareto polyline that is a graph over x1 (as for the Liu et al. toy), cheap
    enough to run on every recorded state: each point measures only to the segments whose
    x1-range meets [x1 - r, x1 + r] with r = ``exact_within``. A polyline point closer than r has
    its x1 within r too, so every distance up to r is exact; larger ones are upper bounds. Tests
    check it against ``ParetoSet.distance``."""

    def __init__(self, pareto: ParetoSet, dtype: torch.dtype, exact_within: float = 0.5):
        pts = pareto.points.to(dtype)
        pts = pts[torch.argsort(pts[:, 0])]
        if not bool((pts[1:, 0] > pts[:-1, 0]).all()):
            raise ValueError("FastParetoDistance needs a Pareto set that is a graph over x1")
        self.pts, self.x1, self.n, self.r = pts, pts[:, 0].contiguous(), pts.shape[0], exact_within
        self.low, self.high = pts.amin(0), pts.amax(0)  # bounding box of the polyline

    def box_distance(self, x: Tensor) -> Tensor:
        """(N,) distance from each row of x to the polyline's bounding box: a lower bound of the
        distance to the polyline, at the cost of a clamp."""
        return (x - torch.maximum(torch.minimum(x, self.high), self.low)).norm(dim=-1)

    def within(self, x: Tensor, tol: float) -> Tensor:
        """(N,) bool: distance from each row of x to the polyline <= tol (tol <= exact_within).
        Only points inside the polyline's bounding box grown by tol can be that close, and on a
        trajectory map almost none are, so the segment search runs on those candidates alone."""
        if tol > self.r:
            raise ValueError(f"tol must be <= exact_within = {self.r}, got {tol}")
        box = ((x >= self.low - tol) & (x <= self.high + tol)).all(-1)
        out = torch.zeros(x.shape[0], dtype=torch.bool)
        candidates = torch.nonzero(box).flatten()
        if len(candidates):
            out[candidates] = self(x[candidates]) <= tol
        return out

    def __call__(self, x: Tensor, batch: int = 16384) -> Tensor:
        out = []
        for part in torch.split(x, batch):
            first = (torch.searchsorted(self.x1, (part[:, 0] - self.r).contiguous()) - 1).clamp(0, self.n - 2)
            last = (torch.searchsorted(self.x1, (part[:, 0] + self.r).contiguous())).clamp(0, self.n - 2)
            width = int((last - first).max()) + 1 if len(part) else 1
            i = (first[:, None] + torch.arange(width)[None, :]).clamp(max=self.n - 2)  # (N, W) segment starts
            a = self.pts[i]
            ab = self.pts[i + 1] - a
            ap = part[:, None, :] - a
            t = ((ap * ab).sum(-1) / (ab * ab).sum(-1)).clamp(0, 1)
            out.append((ap - t[..., None] * ab).norm(dim=-1).amin(-1))
        return torch.cat(out) if out else x.new_zeros((0,))


# -- feasible regions in gradient space (2-D) ---------------------------------------------------


def default_escape(box) -> float:
    """How far outside the plotting box a final point counts as escaped: the box's larger side."""
    box = np.asarray(box, dtype=float)
    return float((box[:, 1] - box[:, 0]).max())


def escaped(box, points: np.ndarray, escape: float | None = None) -> np.ndarray:
    """(N,) bool: which finite ``points`` (N, D) lie farther than ``escape`` (default
    ``default_escape``) from the plotting ``box``. Such a lane has left the picture for good and
    counts as diverged, in the engine's outcome and in the basin maps alike."""
    escape = default_escape(box) if escape is None else escape
    box = np.asarray(box, dtype=float)
    points = np.asarray(points, dtype=float)
    outside = np.maximum(np.maximum(box[:, 0] - points, points - box[:, 1]), 0.0)
    return np.isfinite(points).all(-1) & (np.linalg.norm(np.nan_to_num(outside), axis=-1) > escape)


def cone_half_angle(c: float) -> float:
    """ConicGrad's cone {d : cos(d, g0) >= c}: half-angle arccos(c) (c in [-1, 1]); the region is
    convex for c >= 0 and non-convex for c < 0."""
    if not -1.0 <= c <= 1.0:
        raise ValueError(f"cone c must be in [-1, 1], got {c!r}")
    return math.acos(c)


def in_cone(d: Tensor, g0: Tensor, c: float, tol: float = 1e-9) -> Tensor:
    nd, n0 = d.norm(dim=-1), g0.norm(dim=-1)
    return (d * g0).sum(-1) >= c * nd * n0 - tol * (nd * n0).clamp_min(1e-300)


def in_ball(d: Tensor, g0: Tensor, c: float, tol: float = 1e-9) -> Tensor:
    """CAGrad's ball ||d - g0|| <= c ||g0||."""
    n0 = g0.norm(dim=-1)
    return (d - g0).norm(dim=-1) <= c * n0 * (1 + tol)


def in_dual_cone(d: Tensor, grads: Tensor, tol: float = 1e-9) -> Tensor:
    """Non-conflicting directions: <g_i, d> >= 0 for every task i."""
    dots = (grads * d[..., None, :]).sum(-1)
    return (dots >= -tol * grads.norm(dim=-1) * d.norm(dim=-1)[..., None]).all(-1)


def ball_tangent_half_angle(c: float) -> float | None:
    """Half-width seen from the origin of the ball ||d - g0|| <= c||g0||: arcsin(c) for c < 1;
    None for c >= 1 (the ball contains 0)."""
    return math.asin(c) if 0 <= c < 1 else None


def matching_cone_c(c_ball: float) -> float:
    """The cone c whose wedge spans the same angle as CAGrad's ball with c_ball < 1."""
    return math.sqrt(1 - c_ball * c_ball)


def dual_cone_arc(grads: np.ndarray) -> tuple[float, float] | None:
    """The non-conflicting directions {d : <g_i, d> >= 0 for all i} of 2-D gradients as an angle
    interval (lo, hi) (radians, hi - lo <= 2 pi); None when only d = 0 qualifies. Each nonzero
    g_i allows the half-circle of width pi around its angle; the intersection of such arcs is one arc."""
    lo, hi = -math.pi, math.pi
    first = True
    for g in grads:
        if not np.any(g):
            continue
        a = math.atan2(g[1], g[0])
        if first:
            lo, hi, first = a - math.pi / 2, a + math.pi / 2, False
            continue
        centre = (lo + hi) / 2
        a = centre + (a - centre + math.pi) % (2 * math.pi) - math.pi  # nearest copy of a
        lo, hi = max(lo, a - math.pi / 2), min(hi, a + math.pi / 2)
        if hi < lo:
            return None
    return lo, hi


#: Interior points per axis of the box grid that ``conflict_point`` searches when no start conflicts.
CONFLICT_GRID = 9


def conflict_point(
    problem: ProblemSpec, params: dict, starts: tuple[tuple[float, ...], ...]
) -> tuple[float, ...]:
    """A point that shows a conflict: of the ``starts`` where the task gradients conflict
    (<g1, g2> < 0), the one where their norms are closest (largest min/max ratio, so that both
    arrows are visible); when no start conflicts, the same choice over a grid of CONFLICT_GRID^2
    interior points of the problem's box; without any conflict there, the first start."""
    return _conflict_point(problem.name, tuple(sorted(params.items())), tuple(map(tuple, starts)))


@lru_cache(maxsize=64)
def _conflict_point(problem_name: str, params_key: tuple, starts: tuple) -> tuple[float, ...]:
    problem, params = get_problem(problem_name), dict(params_key)
    axes = [np.linspace(lo, hi, CONFLICT_GRID + 2)[1:-1] for lo, hi in problem.box]
    grid = tuple(tuple(float(v) for v in p) for p in np.stack(np.meshgrid(*axes), -1).reshape(-1, len(axes)))
    for candidates in (starts, grid):
        x = torch.tensor(candidates, dtype=torch.float64)
        _, grads = problem.losses_and_grads(x, params)
        conflict = (grads[:, 0] * grads[:, 1]).sum(-1) < 0
        if bool(conflict.any()):
            norms = grads.norm(dim=-1)
            balance = norms.amin(-1) / norms.amax(-1).clamp_min(1e-300)
            return candidates[int(torch.argmax(torch.where(conflict, balance, -1.0)))]
    return starts[0]
