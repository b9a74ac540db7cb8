"""The Liu et al. 2021 toy: analytic losses and gradients against autograd and against an
independent plain-Python transcription of CAGrad's toy.py formula (Liu et al. 2021)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from toyopt.problems import get_problem, liu2021
from toyopt.problems.liu2021 import LOWER

PROBLEM = get_problem("liu2021")
SCALES = (1.0, 0.1)


def autograd_losses_and_grads(x: torch.Tensor, params: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """Reference: per-task gradients of ``problem.losses`` by autograd (rows are independent)."""
    x = x.detach().clone().requires_grad_(True)
    f = PROBLEM.losses(x, params)
    grads = []
    for k in range(f.shape[1]):
        (g,) = torch.autograd.grad(f[:, k].sum(), x, retain_graph=True)
        grads.append(g)
    return f.detach(), torch.stack(grads, dim=1)


def assert_grads_close(g: torch.Tensor, g_ref: torch.Tensor, rtol: float, atol: float) -> None:
    """Each task gradient within rtol of its own norm: the x2 component is a sum of terms that
    can cancel (e.g. a 1e5 clamp slope times a 1e-8 tanh derivative), so an entry-wise relative
    tolerance would demand more than the dtype carries."""
    err = (g - g_ref).norm(dim=-1)
    bound = rtol * g_ref.norm(dim=-1) + atol
    worst = int((err - bound).flatten().argmax())
    assert bool((err <= bound).all()), (
        worst // 2,
        err.flatten()[worst].item(),
        bound.flatten()[worst].item(),
    )


def gate_points() -> list[tuple[float, float]]:
    """Points on and just beside the tanh gates' kink at x2 = 0."""
    tiny = torch.finfo(torch.float64).tiny
    x2s = [0.0, -0.0, tiny, -tiny, 1e-300, -1e-300, 1e-12, -1e-12, 1e-8, -1e-8, 5e-6, -5e-6]
    return [(x1, x2) for x1 in (-9.0, -7.0, -3.0, 0.0, 2.5, 7.0, 9.5) for x2 in x2s]


def clamp_points() -> list[tuple[float, float]]:
    """Points on the curves a_1 = 0 and a_2 = 0 (where log max(|a_i|, LOWER) is clamped) and
    beside them so that |a_i| is just below, at the order of, and above LOWER.

    a_1 = 0.5(-x1 - 7) - tanh(-x2) = 0  <=>  x1 = -7 - 2 tanh(-x2)
    a_2 = 0.5(-x1 + 3) + tanh(-x2) + 2 = 0  <=>  x1 = 7 + 2 tanh(-x2)
    A shift of x1 by h changes a_i by -h/2.
    """
    out = []
    for x2 in (0.3, 1.0, 2.0, 4.0, 9.0, -0.5, -3.0):
        t = math.tanh(-x2)
        for root in (-7 - 2 * t, 7 + 2 * t):
            for h in (0.0, 1e-7, -1e-7, 1e-3, -1e-3, *(k * LOWER for k in (1, -1, 2, -2, 3, -3))):
                out.append((root + h, x2))
    return out


def random_points(n: int, seed: int) -> list[tuple[float, float]]:
    rng = np.random.default_rng(seed)
    return [tuple(p) for p in rng.uniform(-12, 12, size=(n, 2)).tolist()]


ALL_POINTS = random_points(2000, 0) + gate_points() + clamp_points() + [(0.0, 0.0)]


@pytest.fixture(params=["paired", "lane_major"])
def layout(request, monkeypatch):
    """Run a test with the tasks computed together on (B, 2) tensors, or one after the other on
    (B,) columns (the form chosen for many points and under torch.compile)."""
    monkeypatch.setattr(liu2021, "LANE_MAJOR_FROM", 10**9 if request.param == "paired" else 1)
    return request.param


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("scale", SCALES)
def test_both_layouts_identical_bit_for_bit(scale, dtype, monkeypatch):
    """The layout is a speed choice only: the engine's results must not depend on the lane count."""
    x = torch.tensor(ALL_POINTS, dtype=dtype)
    out = {}
    for name, threshold in (("paired", 10**9), ("lane_major", 1)):
        monkeypatch.setattr(liu2021, "LANE_MAJOR_FROM", threshold)
        out[name] = PROBLEM.losses_and_grads(x, {"scale": scale})
    for a, b in zip(out["paired"], out["lane_major"]):
        assert a.shape == b.shape and a.dtype == b.dtype == dtype
        assert torch.equal(a, b)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_tanh_is_odd_bit_for_bit(dtype):
    """losses_and_grads takes tanh(-y) as -tanh(y); CAGrad's toy.py evaluates tanh(-y). Both
    layouts' sizes (vectorised and scalar tails) and the kink's neighbourhood."""
    rng = np.random.default_rng(1)
    special = [0.0, -0.0, 1e-300, 20.0, 400.0]
    values = np.concatenate([rng.uniform(-12, 12, 5000), rng.normal(0, 1e-6, 500), special])
    y = torch.tensor(values, dtype=dtype)
    for n in (3, 17, len(y)):
        assert torch.equal(torch.tanh(-y[:n]), -torch.tanh(y[:n]))


@pytest.mark.parametrize("scale", SCALES)
def test_gradients_match_autograd_float64(scale, layout):
    params = {"scale": scale}
    x = torch.tensor(ALL_POINTS, dtype=torch.float64)
    f, g = PROBLEM.losses_and_grads(x, params)
    f_ref, g_ref = autograd_losses_and_grads(x, params)
    assert g.shape == (len(ALL_POINTS), 2, 2)
    torch.testing.assert_close(f, f_ref, rtol=1e-13, atol=1e-13)
    assert_grads_close(g, g_ref, rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("scale", SCALES)
def test_gradients_match_autograd_float32(scale, layout):
    params = {"scale": scale}
    x = torch.tensor(ALL_POINTS, dtype=torch.float32)
    f, g = PROBLEM.losses_and_grads(x, params)
    f_ref, g_ref = autograd_losses_and_grads(x, params)
    assert f.dtype == g.dtype == torch.float32
    torch.testing.assert_close(f, f_ref, rtol=1e-5, atol=1e-5)
    assert_grads_close(g, g_ref, rtol=1e-5, atol=1e-6)


def test_gradients_match_finite_differences_away_from_kinks():
    """A check of autograd's reference itself where the losses are smooth (|x2| > 0.1 and
    |a_i| > 0.01): central differences of ``losses`` in float64."""
    params = {"scale": 0.1}
    pts = np.array(random_points(500, 1))
    t = np.tanh(-pts[:, 1])
    a1 = 0.5 * (-pts[:, 0] - 7) - t
    a2 = 0.5 * (-pts[:, 0] + 3) + t + 2
    keep = (np.abs(pts[:, 1]) > 0.1) & (np.abs(a1) > 0.01) & (np.abs(a2) > 0.01)
    x = torch.tensor(pts[keep], dtype=torch.float64)
    _, g = PROBLEM.losses_and_grads(x, params)
    h = 1e-6
    for j in range(2):
        e = torch.zeros(2, dtype=torch.float64)
        e[j] = h
        fd = (PROBLEM.losses(x + e, params) - PROBLEM.losses(x - e, params)) / (2 * h)
        torch.testing.assert_close(g[:, :, j], fd, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("scale", SCALES)
def test_origin_convention_matches_autograd(scale, layout):
    """At (0, 0) both gates are 0 but autograd passes the clamp's gradient (tanh(0) = 0 >= 0),
    so the start moves; the analytic gradient must follow the same convention."""
    params = {"scale": scale}
    x = torch.zeros((1, 2), dtype=torch.float64)
    _, g = PROBLEM.losses_and_grads(x, params)
    _, g_ref = autograd_losses_and_grads(x, params)
    assert torch.equal(g, g_ref) or torch.allclose(g, g_ref, rtol=1e-15, atol=0)
    assert g_ref[0, 0, 0] == 0 and g_ref[0, 1, 0] == 0
    assert g_ref[0, 1, 1] > 1  # it does move
    # The hand derivation agrees with autograd: 0.5 (log 3.5 + 6) + 0.5 * 14.46 for both tasks.
    by_hand = 0.5 * (math.log(3.5) + 6) + 0.5 * 14.46
    assert g_ref[0, 1, 1].item() == pytest.approx(by_hand, rel=1e-14)
    assert g_ref[0, 0, 1].item() == pytest.approx(scale * by_hand, rel=1e-14)


def cagrad_toy_reference(x1: float, x2: float, scale: float) -> tuple[float, float]:
    """Plain-Python transcription of the toy losses of CAGrad's toy.py (Liu et al. 2021)."""
    c1 = max(math.tanh(x2 / 2), 0.0)
    c2 = max(math.tanh(-x2 / 2), 0.0)
    f1 = c1 * (math.log(max(abs(0.5 * (-x1 - 7) - math.tanh(-x2)), 5e-6)) + 6) + c2 * (
        ((-x1 + 7) ** 2 + 0.1 * (-x2 - 8) ** 2) / 10 - 20
    )
    f2 = c1 * (math.log(max(abs(0.5 * (-x1 + 3) + math.tanh(-x2) + 2), 5e-6)) + 6) + c2 * (
        ((-x1 - 7) ** 2 + 0.1 * (-x2 - 8) ** 2) / 10 - 20
    )
    return scale * f1, f2


@pytest.mark.parametrize("scale", SCALES)
def test_losses_match_independent_transcription(scale):
    params = {"scale": scale}
    x = torch.tensor(ALL_POINTS, dtype=torch.float64)
    ref = torch.tensor([cagrad_toy_reference(a, b, scale) for a, b in ALL_POINTS], dtype=torch.float64)
    torch.testing.assert_close(PROBLEM.losses(x, params), ref, rtol=1e-13, atol=1e-13)
    torch.testing.assert_close(PROBLEM.losses_and_grads(x, params)[0], ref, rtol=1e-13, atol=1e-13)


def test_known_values():
    """Values read off the formula by hand at simple points."""
    params = {"scale": 1.0}
    x = torch.tensor([[0.0, 0.0], [7.0, -8.0], [-7.0, -8.0]], dtype=torch.float64)
    f = PROBLEM.losses(x, params)
    assert f[0].tolist() == [0.0, 0.0]  # both gates are zero
    c2 = math.tanh(4.0)
    assert f[1].tolist() == pytest.approx([-20 * c2, (196 / 10 - 20) * c2], rel=1e-14)
    assert f[2].tolist() == pytest.approx([(196 / 10 - 20) * c2, -20 * c2], rel=1e-14)


def test_losses_bounded_below_by_default_lower_bounds():
    """FAMO's l* = (-21 s, -21) lies below every loss: a dense grid over a large box."""
    g = torch.linspace(-30, 30, 601, dtype=torch.float64)
    x = torch.cartesian_prod(g, g)
    for scale in SCALES:
        params = {"scale": scale}
        lower = torch.tensor(PROBLEM.default_lower_bounds(params), dtype=torch.float64)
        assert (PROBLEM.losses(x, params) > lower).all()


def test_batch_shapes_and_dtype_preserved():
    x = torch.zeros((0, 2), dtype=torch.float32)
    f, g = PROBLEM.losses_and_grads(x, {"scale": 1.0})
    assert f.shape == (0, 2) and g.shape == (0, 2, 2) and f.dtype == torch.float32
