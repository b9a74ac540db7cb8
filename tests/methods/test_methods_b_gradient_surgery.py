"""Gradient-based methods of this batch (normalized_sum, nashmtl, pcgrad, gradvac, graddrop)
against closed forms, the spec's test vectors, brute-force searches and plain loop ports of the
published algorithms."""

from __future__ import annotations

import math

import pytest
import torch

from toyopt.methods import METHODS, StepInput, lane_params, step_once
from toyopt.methods.nashmtl import newton_alpha, two_task_alpha

F64 = torch.float64
# Spec test vectors: g1 = (1, 0), g2 = (-0.5, 1).
SPEC_GRADS = torch.tensor([[[1.0, 0.0], [-0.5, 1.0]]], dtype=F64)


def run(name, grads, state=None, random=None, **values):
    return step_once(METHODS[name], values, grads, state=state, random=random)


def unit(v):
    return v / v.norm(dim=-1, keepdim=True)


# ---------------------------------------------------------------- normalized sum


def test_normalized_sum_spec_vector_and_definition():
    out = run("normalized_sum", SPEC_GRADS)
    torch.testing.assert_close(
        out.direction, torch.tensor([[0.55279, 0.89443]], dtype=F64), atol=1e-5, rtol=0
    )
    g = torch.randn(7, 4, 3, dtype=F64) * torch.logspace(-12, 12, 7, dtype=F64).view(7, 1, 1)
    torch.testing.assert_close(run("normalized_sum", g).direction, unit(g).sum(1))


def test_normalized_sum_skips_and_flags_a_zero_gradient():
    g = torch.tensor([[[3.0, 4.0], [0.0, 0.0]]], dtype=F64)
    out = run("normalized_sum", g)
    torch.testing.assert_close(out.direction, torch.tensor([[0.6, 0.8]], dtype=F64))
    assert out.flags["zero_gradient_skipped"].all()


# ---------------------------------------------------------------- Nash-MTL


def test_nash_two_tasks_spec_vector_norm_and_bisector():
    out = run("nashmtl", SPEC_GRADS)
    torch.testing.assert_close(
        out.direction, torch.tensor([[0.74350, 1.20300]], dtype=F64), atol=1e-5, rtol=0
    )
    g = torch.randn(200, 2, 5, dtype=F64) * torch.exp(2 * torch.randn(200, 2, 1, dtype=F64))
    out = run("nashmtl", g)
    d = out.direction
    torch.testing.assert_close(d.norm(dim=-1), torch.full((200,), math.sqrt(2), dtype=F64))
    bisector = unit(unit(g).sum(1))
    torch.testing.assert_close(unit(d), bisector)
    gamma = g @ g.transpose(1, 2)
    residual = out.weights * (gamma @ out.weights.unsqueeze(-1)).squeeze(-1)
    torch.testing.assert_close(residual, torch.ones_like(residual))


@pytest.mark.parametrize("K,D", [(3, 2), (3, 6), (5, 8)])
def test_nash_general_k_solves_the_bargaining_equations(K, D):
    gen = torch.Generator().manual_seed(K * 10 + D)
    g = torch.randn(300, K, D, generator=gen, dtype=F64) * torch.exp(
        2 * torch.randn(300, K, 1, generator=gen, dtype=F64)
    )
    out = run("nashmtl", g)
    ok = ~out.flags["solver_not_converged"] & ~out.flags["no_solution"]
    assert ok.float().mean() > 0.5
    gamma = g @ g.transpose(1, 2)
    a = out.weights[ok]
    residual = a * (gamma[ok] @ a.unsqueeze(-1)).squeeze(-1)
    torch.testing.assert_close(residual, torch.ones_like(residual), atol=1e-6, rtol=0)
    # Every task improves: <g_i, d> = 1 / alpha_i > 0.
    assert ((g[ok] @ out.direction[ok].unsqueeze(-1)).squeeze(-1) > 0).all()
    # Failures give d = 0 and keep the previous alpha.
    assert (out.direction[~ok] == 0).all()
    torch.testing.assert_close(out.state.alpha[~ok], torch.zeros_like(out.state.alpha[~ok]))


def test_nash_three_tasks_in_the_plane_matches_a_dense_angle_search():
    """The bargaining direction maximises sum_i log <g_i, u> over unit u (brute force: a grid of
    angles, then a finer grid around the best one)."""
    gen = torch.Generator().manual_seed(5)
    g = torch.randn(40, 3, 2, generator=gen, dtype=F64)
    out = run("nashmtl", g)

    def best_angle(centre, half_width, n=4001):
        angles = centre.unsqueeze(-1) + torch.linspace(-1, 1, n, dtype=F64) * half_width
        u = torch.stack([angles.cos(), angles.sin()], -1)  # (B, n, 2)
        dots = g @ u.transpose(1, 2)  # (B, 3, n)
        feasible = (dots > 0).all(1)
        score = torch.where(feasible, dots.clamp_min(1e-300).log().sum(1), -math.inf)
        return angles.gather(-1, score.argmax(-1, keepdim=True)).squeeze(-1), feasible.any(-1)

    coarse, solvable = best_angle(torch.zeros(40, dtype=F64), math.pi)
    fine, _ = best_angle(coarse, 2 * math.pi / 4000)
    best = torch.stack([fine.cos(), fine.sin()], -1)
    assert 5 <= solvable.sum() < 40
    assert (out.flags["solver_not_converged"] == ~solvable).all()
    assert (out.direction[~solvable] == 0).all()
    cos = (unit(out.direction[solvable]) * best[solvable]).sum(-1)
    assert (cos > 1 - 1e-9).all()


def test_nash_newton_agrees_with_the_two_task_closed_form_and_warm_starts():
    g = torch.randn(50, 2, 3, dtype=F64)
    gamma = g @ g.transpose(1, 2)
    closed, bad = two_task_alpha(gamma)
    assert not bad.any()
    newton, residual = newton_alpha(gamma, torch.zeros(50, 2, dtype=F64), 40)
    torch.testing.assert_close(newton, closed, rtol=1e-6, atol=0)
    # Warm-started at the solution, one Newton step keeps it.
    again, residual = newton_alpha(gamma, closed, 1)
    torch.testing.assert_close(again, closed, rtol=1e-8, atol=0)


def test_nash_flags_anti_parallel_and_zero_gradients_with_d_zero():
    g = torch.tensor([[[1.0, 2.0], [-2.0, -4.0]], [[1.0, 0.0], [0.0, 0.0]]], dtype=F64)
    previous = (
        METHODS["nashmtl"]
        .init(2, 2, 2, {}, F64)
        ._replace(alpha=torch.tensor([[0.3, 0.7], [1.0, 2.0]], dtype=F64))
    )
    out = run("nashmtl", g, state=previous)
    assert out.flags["no_solution"].all()
    assert (out.direction == 0).all()
    torch.testing.assert_close(out.state.alpha, previous.alpha)


# ---------------------------------------------------------------- PCGrad


def pcgrad_loop(grads, orders, reduction):
    """A port of the published loop for one lane: grads (K, D), orders[i] the visiting order."""
    K = grads.shape[0]
    pc = [grads[i].clone() for i in range(K)]
    for i in range(K):
        for j in orders[i]:
            dot = torch.dot(pc[i], grads[j])
            if dot < 0:
                pc[i] = pc[i] - dot * grads[j] / grads[j].norm() ** 2
    total = sum(pc)
    return total / K if reduction == "mean" else total


def test_pcgrad_two_task_closed_form_and_spec_vector():
    out = run("pcgrad", SPEC_GRADS, reduction="mean")
    torch.testing.assert_close(out.direction, torch.tensor([[0.4, 0.7]], dtype=F64))
    g = torch.randn(300, 2, 4, dtype=F64)
    G = g @ g.transpose(1, 2)
    g11, g22, g12 = G[:, 0, 0], G[:, 1, 1], G[:, 0, 1]
    conflict = (g12 < 0).unsqueeze(-1)
    closed = (1 - g12 / g11).unsqueeze(-1) * g[:, 0] + (1 - g12 / g22).unsqueeze(-1) * g[:, 1]
    expected = torch.where(conflict, closed, g.sum(1))
    out = run("pcgrad", g, reduction="sum")
    torch.testing.assert_close(out.direction, expected)
    # K = 2: no task is hurt (<g_i, d> >= 0 up to rounding).
    dots = (g @ out.direction.unsqueeze(-1)).squeeze(-1)
    assert (dots >= -1e-12 * g.norm(dim=-1) * out.direction.norm(dim=-1, keepdim=True)).all()


@pytest.mark.parametrize("K", [3, 5])
def test_pcgrad_matches_the_loop_with_the_same_permutations(K):
    gen = torch.Generator().manual_seed(K)
    B, D = 40, 3
    g = torch.randn(B, K, D, generator=gen, dtype=F64)
    random = torch.rand(B, K * K, generator=gen, dtype=F64)
    out = run("pcgrad", g, random=random, reduction="sum")
    for b in range(B):
        orders = [sorted(range(K), key=lambda k, i=i: random[b, i * K + k].item()) for i in range(K)]
        torch.testing.assert_close(out.direction[b], pcgrad_loop(g[b], orders, "sum"))
    torch.testing.assert_close(out.direction, (out.weights.unsqueeze(-1) * g).sum(1))


def test_pcgrad_skips_and_flags_a_negligible_conflicting_gradient():
    g = torch.tensor([[[1.0, 0.0], [-1e-20, 0.0]]], dtype=F64)
    out = run("pcgrad", g)
    assert out.flags["zero_gradient_skipped"].all()
    torch.testing.assert_close(out.direction, g.sum(1))


# ---------------------------------------------------------------- GradVac


def gradvac_loop(grads, orders, target, beta):
    """A port of the published loop (TorchJD / LibMTL, vectors) for one lane; returns d, target."""
    K = grads.shape[0]
    target = target.clone()
    pc = [grads[i].clone() for i in range(K)]
    for i in range(K):
        for j in orders[i]:
            if j == i:
                continue
            cos = torch.dot(pc[i], grads[j]) / (pc[i].norm() * grads[j].norm())
            if cos < target[i, j]:
                t = target[i, j]
                w = pc[i].norm() * (t * (1 - cos**2).sqrt() - cos * (1 - t**2).sqrt())
                w = w / (grads[j].norm() * (1 - t**2).sqrt())
                pc[i] = pc[i] + w * grads[j]
            target[i, j] = (1 - beta) * target[i, j] + beta * cos
    return sum(pc), target


def test_gradvac_with_zero_targets_is_pcgrad_for_two_tasks():
    g = torch.randn(100, 2, 3, dtype=F64)
    vac = run("gradvac", g, beta=0.3)
    pc = run("pcgrad", g, reduction="sum")
    torch.testing.assert_close(vac.direction, pc.direction)


@pytest.mark.parametrize("K", [2, 3, 4])
def test_gradvac_matches_the_loop_over_several_steps(K):
    gen = torch.Generator().manual_seed(10 + K)
    B, D, beta = 12, 3, 0.4
    spec = METHODS["gradvac"]
    params = lane_params(spec, {"beta": beta}, B, F64)
    state = spec.init_state(B, K, D, params, F64)
    targets = [torch.zeros(K, K, dtype=F64) for _ in range(B)]
    corrected_with_target = False
    for _ in range(6):
        g = torch.randn(B, K, D, generator=gen, dtype=F64)
        random = torch.rand(B, K * K, generator=gen, dtype=F64)
        out = spec.step(StepInput(g, random=random), state, params)
        for b in range(B):
            orders = [sorted(range(K), key=lambda k, i=i: random[b, i * K + k].item()) for i in range(K)]
            if K == 2:
                orders = [[0, 1], [1, 0]]
            corrected_with_target |= bool((targets[b] != 0).any())
            d, targets[b] = gradvac_loop(g[b], orders, targets[b], beta)
            torch.testing.assert_close(out.direction[b], d)
            torch.testing.assert_close(out.state.target[b] * (1 - torch.eye(K, dtype=F64)), targets[b])
        state = out.state
    assert corrected_with_target


def test_gradvac_ema_only_on_correction_option():
    g = torch.tensor([[[1.0, 0.0], [0.6, 0.8]]], dtype=F64)  # cos = 0.6 > target 0: no correction
    out = run("gradvac", g, ema_update="on_correction")
    assert (out.state.target == 0).all()
    out = run("gradvac", g, ema_update="always", beta=0.5)
    torch.testing.assert_close(out.state.target[0, 0, 1], torch.tensor(0.3, dtype=F64))


def test_gradvac_skips_a_zero_gradient_pair():
    g = torch.tensor([[[1.0, 0.0], [0.0, 0.0]]], dtype=F64)
    out = run("gradvac", g)
    assert out.flags["zero_gradient_skipped"].all()
    torch.testing.assert_close(out.direction, g.sum(1))
    assert (out.state.target == 0).all()


# ---------------------------------------------------------------- GradDrop


def test_graddrop_mask_semantics_for_given_uniforms():
    # Coordinates: 0 mixed signs (purity 0.5 + 0.5 * (3 - 1) / 4 = 0.75), 1 all positive (1),
    # 2 all negative (0).
    g = torch.tensor([[[3.0, 2.0, -1.0], [-1.0, 1.0, -2.0]]], dtype=F64)
    # U = 0.5 < 0.75: keep the positive entries of coordinate 0; U = 0.99 < 1: keep coordinate 1;
    # U = 0.2 > 0: keep the negative entries of coordinate 2.
    out = run("graddrop", g, random=torch.tensor([[0.5, 0.99, 0.2]], dtype=F64), reduction="sum")
    torch.testing.assert_close(out.direction, torch.tensor([[3.0, 3.0, -3.0]], dtype=F64))
    # U = 0.9 > 0.75: keep the negative entry of coordinate 0 instead.
    out = run("graddrop", g, random=torch.tensor([[0.9, 0.99, 0.2]], dtype=F64), reduction="mean")
    torch.testing.assert_close(out.direction, torch.tensor([[-0.5, 1.5, -1.5]], dtype=F64))


def test_graddrop_full_leak_is_the_plain_mean():
    g = torch.randn(5, 3, 4, dtype=F64)
    out = run("graddrop", g, random=torch.rand(5, 4, dtype=F64), leak=1.0)
    torch.testing.assert_close(out.direction, g.mean(1))
    torch.testing.assert_close(out.weights, torch.full((5, 3), 1 / 3, dtype=F64))


# ---------------------------------------------------------------- float32 and extreme scales


@pytest.mark.parametrize("name", ["normalized_sum", "nashmtl", "pcgrad", "gradvac", "graddrop"])
@pytest.mark.parametrize("K", [2, 3])
def test_float32_and_extreme_scales_stay_finite(name, K):
    spec = METHODS[name]
    B, D = 8, 2
    scales = torch.logspace(-12, 12, B, dtype=torch.float32).view(B, 1, 1)
    g = torch.randn(B, K, D, dtype=torch.float32) * scales
    g[0, 1] = 0.0
    g[1, 1] = -g[1, 0]
    params = lane_params(spec, {}, B, torch.float32)
    state = spec.init_state(B, K, D, params, torch.float32)
    for _ in range(3):
        random = None if spec.random is None else torch.rand(B, spec.random.size(K, D), dtype=torch.float32)
        out = spec.step(StepInput(g, random=random), state, params)
        state = out.state
        assert out.direction.dtype == torch.float32
        assert torch.isfinite(out.direction).all() and torch.isfinite(out.weights).all()
        assert set(out.flags) <= set(spec.flags)
