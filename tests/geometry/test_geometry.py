"""Pareto set, global minimum and feasible-region predicates against independent references:
a numpy brute-force minimisation of the weighted losses over the whole box and hand-checked
vectors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from toyopt import geometry
from toyopt.problems import get_problem

PROBLEM = get_problem("liu2021")


def toy_numpy(x1: np.ndarray, x2: np.ndarray, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """The toy losses (Liu et al. 2021, CAGrad's toy.py) written independently in numpy."""
    t = np.tanh(-x2)
    c1 = np.maximum(np.tanh(x2 / 2), 0)
    c2 = np.maximum(np.tanh(-x2 / 2), 0)
    f1 = c1 * (np.log(np.maximum(np.abs(0.5 * (-x1 - 7) - t), 5e-6)) + 6) + c2 * (
        ((-x1 + 7) ** 2 + 0.1 * (-x2 - 8) ** 2) / 10 - 20
    )
    f2 = c1 * (np.log(np.maximum(np.abs(0.5 * (-x1 + 3) + t + 2), 5e-6)) + 6) + c2 * (
        ((-x1 - 7) ** 2 + 0.1 * (-x2 - 8) ** 2) / 10 - 20
    )
    return scale * f1, f2


def brute_force_argmin(w1, w2, scale: float, rounds: int = 14) -> np.ndarray:
    """argmin over [-10, 10]^2 of w1 f1 + w2 f2 (f1 scaled) for each weight pair: the best point
    of a 401 x 401 grid over the whole box, then repeated zooms (41 x 41 grids, each 8 times
    narrower) around the incumbent."""
    g = np.linspace(-10, 10, 401)
    X1, X2 = np.meshgrid(g, g, indexing="ij")
    f1, f2 = toy_numpy(X1, X2, scale)
    out = []
    for a, b in zip(w1, w2):
        i = np.argmin(a * f1 + b * f2)
        best = np.array([X1.flat[i], X2.flat[i]])
        h = g[1] - g[0]
        for _ in range(rounds):
            s = np.linspace(-2 * h, 2 * h, 41)
            Y1, Y2 = np.meshgrid(best[0] + s, best[1] + s, indexing="ij")
            y1, y2 = toy_numpy(Y1, Y2, scale)
            j = np.argmin(a * y1 + b * y2)
            best = np.array([Y1.flat[j], Y2.flat[j]])
            h /= 8
        out.append(best)
    return np.array(out)


@pytest.mark.parametrize("scale", [1.0, 0.1])
def test_pareto_set_matches_brute_force(scale):
    params = {"scale": scale}
    ps = geometry.pareto_set(PROBLEM, params)  # lmbda = linspace(0, 1, 401)
    assert ps.points.shape == (401, 2) and ps.front.shape == (401, 2)
    idx = np.arange(0, 401, 10)
    lm = ps.lmbda[idx].numpy()
    assert np.allclose(lm, idx / 400)
    ref = brute_force_argmin(lm, 1 - lm, scale)
    np.testing.assert_allclose(ps.points[idx].numpy(), ref, atol=1e-4, rtol=0)
    # The front is the image of the set under the (scaled) losses.
    f1, f2 = toy_numpy(ps.points[:, 0].numpy(), ps.points[:, 1].numpy(), scale)
    np.testing.assert_allclose(ps.front.numpy(), np.stack([f1, f2], -1), rtol=1e-12, atol=1e-12)
    # Every brute-force optimum lies on the polyline.
    assert ps.distance(torch.tensor(ref)).max() < 1e-4


def test_pareto_endpoints_and_middle():
    ps = geometry.pareto_set(PROBLEM, {"scale": 1.0})
    ends = brute_force_argmin([0.0, 0.5, 1.0], [1.0, 0.5, 0.0], 1.0)
    np.testing.assert_allclose(ends, [[-7, -8.4345], [0, -8.3551], [7, -8.4345]], atol=1e-4)
    np.testing.assert_allclose(ps.points[[0, 200, 400]].numpy(), ends, atol=1e-4)
    # Scaling task 1 reparametrises the set but keeps its end points.
    ps01 = geometry.pareto_set(PROBLEM, {"scale": 0.1})
    np.testing.assert_allclose(ps01.points[[0, -1]].numpy(), ends[[0, 2]], atol=1e-4)


@pytest.mark.parametrize(("scale", "expected"), [(1.0, (0.0, -8.3551)), (0.1, (-5.727, -8.409))])
def test_global_minimum_of_mean_loss(scale, expected):
    ref = brute_force_argmin([0.5], [0.5], scale)[0]
    np.testing.assert_allclose(ref, expected, atol=1e-3)
    gm = geometry.global_minimum(PROBLEM, {"scale": scale})
    assert gm.shape == (2,) and gm.dtype == torch.float64
    np.testing.assert_allclose(gm.numpy(), ref, atol=1e-4)
    # No point of a dense grid has a lower mean loss.
    g = np.linspace(-10, 10, 801)
    X1, X2 = np.meshgrid(g, g, indexing="ij")
    f1, f2 = toy_numpy(X1, X2, scale)
    m1, m2 = toy_numpy(gm[0].item(), gm[1].item(), scale)
    assert (f1 + f2).min() >= m1 + m2 - 1e-12


def test_pareto_points_are_stationary_for_their_weight():
    """grad(l f1 + (1 - l) f2) = 0 at the point for weight l (checked by central differences of
    the numpy losses, independent of the analytic gradient)."""
    ps = geometry.pareto_set(PROBLEM, {"scale": 0.1})
    x = ps.points.numpy()
    lm = ps.lmbda.numpy()
    h = 1e-6
    for j in range(2):
        e = np.zeros(2)
        e[j] = h
        fp = toy_numpy(*(x + e).T, 0.1)
        fm = toy_numpy(*(x - e).T, 0.1)
        d = (lm * (fp[0] - fm[0]) + (1 - lm) * (fp[1] - fm[1])) / (2 * h)
        assert np.abs(d).max() < 1e-7


def brute_distance(points: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Distance from each x to the polyline through ``points``, segment by segment in numpy."""
    a, b = points[:-1], points[1:]
    ab = b - a
    ap = x[:, None, :] - a[None]
    t = np.clip((ap * ab).sum(-1) / (ab * ab).sum(-1), 0, 1)
    return np.linalg.norm(ap - t[..., None] * ab, axis=-1).min(-1)


@pytest.mark.parametrize("scale", [1.0, 0.1])
def test_pareto_distance_matches_numpy(scale):
    ps = geometry.pareto_set(PROBLEM, {"scale": scale})
    rng = np.random.default_rng(3)
    x = np.concatenate(
        [
            rng.uniform(-10, 10, (3000, 2)),
            np.stack([rng.uniform(-9, 9, 3000), -8.4 + rng.normal(0, 0.3, 3000)], -1),
        ]
    )
    got = ps.distance(torch.tensor(x)).numpy()
    np.testing.assert_allclose(got, brute_distance(ps.points.numpy(), x), rtol=1e-12, atol=1e-13)
    # Hand-checked: straight below the left end point, and exactly on a vertex.
    end = ps.points[0].numpy()
    assert ps.distance(torch.tensor([[end[0] - 3.0, end[1]]]))[0].item() == pytest.approx(3.0, abs=1e-12)
    assert ps.distance(ps.points[150:151])[0].item() == 0.0


@pytest.mark.parametrize("scale", [1.0, 0.1])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_fast_pareto_distance_matches_exact(scale, dtype):
    ps = geometry.pareto_set(PROBLEM, {"scale": scale})
    fast = geometry.FastParetoDistance(ps, dtype)
    rng = np.random.default_rng(4)
    near = np.stack([rng.uniform(-12, 12, 20000), -8.4 + rng.normal(0, 0.25, 20000)], -1)
    far = rng.uniform(-10, 10, (5000, 2))
    x = torch.tensor(np.concatenate([near, far]), dtype=dtype)
    got = fast(x)
    exact = ps.distance(x)
    assert got.dtype == dtype
    # Fast searches a subset of segments, so it can only over-estimate ...
    slack = 1e-12 if dtype == torch.float64 else 1e-5
    assert bool((got >= exact - slack).all())
    # ... and near the set (where the engine's 0.05 tolerance is applied) it is exact.
    close = exact < 0.5
    assert int(close.sum()) > 10000
    torch.testing.assert_close(
        got[close], exact[close], rtol=1e-12 if dtype == torch.float64 else 1e-5, atol=slack
    )


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_fast_pareto_within_agrees_with_exact_distance(dtype):
    ps = geometry.pareto_set(PROBLEM, {"scale": 0.1})
    fast = geometry.FastParetoDistance(ps, dtype, exact_within=0.05)
    rng = np.random.default_rng(5)
    near = np.stack([rng.uniform(-8, 8, 20000), -8.4 + rng.normal(0, 0.06, 20000)], -1)
    far = rng.uniform(-10, 10, (5000, 2))
    x = torch.tensor(np.concatenate([near, far, ps.points.numpy()]), dtype=dtype)
    exact = ps.distance(x.double())
    got = fast.within(x, 0.05)
    # Decided the same way wherever the exact distance is not within rounding of the threshold.
    clear = (exact - 0.05).abs() > (1e-12 if dtype == torch.float64 else 1e-5)
    assert torch.equal(got[clear], (exact <= 0.05)[clear])
    assert 1000 < int(got.sum()) < len(x) - 1000  # both outcomes are exercised
    with pytest.raises(ValueError, match="exact_within"):
        fast.within(x, 0.1)


def test_box_distance_is_a_lower_bound_zero_inside_the_box():
    """The engine skips a lane's per-step Pareto test when this bound, less how far the lane
    moves, exceeds the tolerance: it must never exceed the exact distance."""
    ps = geometry.pareto_set(PROBLEM, {"scale": 1.0})
    fast = geometry.FastParetoDistance(ps, torch.float64, exact_within=0.05)
    rng = np.random.default_rng(6)
    x = torch.tensor(
        np.concatenate(
            [
                rng.uniform(-12, 12, (20000, 2)),
                np.stack([rng.uniform(-7, 7, 2000), np.full(2000, -8.4)], -1),
            ]
        )
    )
    bound, exact = fast.box_distance(x), ps.distance(x)
    assert bool((bound <= exact + 1e-12).all())
    inside = ((x >= fast.low) & (x <= fast.high)).all(-1)
    assert int(inside.sum()) > 1000 and bool((bound[inside] == 0).all())
    # Far from the set the bound is tight in x2 (the set is a thin band around x2 = -8.4).
    corner = torch.tensor([[0.0, 5.0]], dtype=torch.float64)
    assert fast.box_distance(corner).item() == pytest.approx(5.0 - fast.high[1].item(), rel=1e-12)


def test_in_cone_hand_checked():
    g0 = torch.tensor([[1.0, 0.0]], dtype=torch.float64).expand(5, 2)
    d = torch.tensor([[1.0, 1.0], [1.0, 1.01], [0.0, 1.0], [-1.0, 0.1], [2.0, 0.0]], dtype=torch.float64)
    # cos(45 deg) = 0.7071: [1, 1] is on the boundary of the c = 0.7071 cone, [1, 1.01] outside.
    c = math.cos(math.pi / 4)
    assert geometry.in_cone(d, g0, c).tolist() == [True, False, False, False, True]
    assert geometry.in_cone(d, g0, 0.0).tolist() == [True, True, True, False, True]
    assert geometry.in_cone(d, g0, -1.0).tolist() == [True] * 5
    assert geometry.in_cone(d, g0, 1.0).tolist() == [False, False, False, False, True]


def test_in_ball_hand_checked():
    g0 = torch.tensor([[2.0, 0.0]], dtype=torch.float64).expand(5, 2)
    # Ball centre (2, 0), radius 0.5 * 2 = 1.
    d = torch.tensor([[3.0, 0.0], [2.0, 1.0], [2.6, 0.8], [2.61, 0.8], [0.9, 0.0]], dtype=torch.float64)
    assert geometry.in_ball(d, g0, 0.5).tolist() == [True, True, True, False, False]
    assert geometry.in_ball(d, g0, 0.0).tolist() == [False] * 5
    assert geometry.in_ball(g0[:1], g0[:1], 0.0).tolist() == [True]


def test_in_dual_cone_hand_checked():
    grads = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64).expand(5, 2, 2)
    d = torch.tensor([[1.0, 1.0], [1.0, 0.0], [1.0, -1e-3], [-1.0, 2.0], [0.0, 0.0]], dtype=torch.float64)
    assert geometry.in_dual_cone(d, grads).tolist() == [True, True, False, False, True]
    # Obtuse pair: g1 = (1, 0), g2 = (-1, 1); the dual cone is {d1 >= 0, d2 >= d1}.
    grads2 = torch.tensor([[1.0, 0.0], [-1.0, 1.0]], dtype=torch.float64).expand(4, 2, 2)
    d2 = torch.tensor([[1.0, 1.0], [1.0, 2.0], [1.0, 0.9], [0.0, 1.0]], dtype=torch.float64)
    assert geometry.in_dual_cone(d2, grads2).tolist() == [True, True, False, True]


def test_half_angles():
    assert geometry.cone_half_angle(0.5) == pytest.approx(math.pi / 3)
    assert geometry.cone_half_angle(-1.0) == pytest.approx(math.pi)
    with pytest.raises(ValueError, match="c must be in"):
        geometry.cone_half_angle(1.5)
    # Tangents from the origin to a circle of radius c at distance 1: sin(angle) = c.
    assert geometry.ball_tangent_half_angle(0.5) == pytest.approx(math.pi / 6)
    assert geometry.ball_tangent_half_angle(1.0) is None
    # The matching cone has the same half-angle: acos(sqrt(1 - c^2)) = asin(c).
    for c in (0.1, 0.4, 0.9):
        assert math.acos(geometry.matching_cone_c(c)) == pytest.approx(geometry.ball_tangent_half_angle(c))
