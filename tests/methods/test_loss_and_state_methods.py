"""Loss-based and stateful weightings (stl, si, rlw, dwa, uw, famo, gradnorm) against independent
references: autograd of each method's own objective, torch.optim.Adam, and plain-Python loops."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from toyopt.methods import METHODS, StepInput, lane_params, step_once
from toyopt.methods._common import adam_update

F64 = torch.float64


@pytest.fixture(autouse=True)
def seeded():
    """Each test draws its random inputs from the global generator seeded afresh (and restored
    afterwards), so a failure reproduces whatever ran before."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        yield


def run(name, grads, losses, lower, state=None, random=None, **values):
    return step_once(METHODS[name], values, grads, losses, lower, state=state, random=random)


def task_losses(x: torch.Tensor) -> torch.Tensor:
    """Two smooth positive-ish losses of x (B, 2) for autograd references; (B, 2)."""
    l1 = (x[:, 0] - 1) ** 2 + 0.5 * torch.sin(x[:, 1]) + 3
    l2 = (x[:, 1] + 2) ** 2 + 0.3 * x[:, 0] * x[:, 1] + 1
    return torch.stack([l1, l2], -1)


def losses_and_grads(x: torch.Tensor):
    x = x.detach().requires_grad_(True)
    losses = task_losses(x)
    grads = torch.stack(
        [torch.autograd.grad(losses[:, i].sum(), x, retain_graph=True)[0] for i in range(2)], 1
    )
    return losses.detach(), grads


def test_stl_follows_the_chosen_task_and_flags_a_missing_one():
    g = torch.randn(4, 3, 5, dtype=F64)
    out = run("stl", g, None, None, task=2)
    torch.testing.assert_close(out.direction, g[:, 2])
    assert not out.flags["task_out_of_range"].any()
    out = run("stl", g, None, None, task=3)
    assert torch.equal(out.direction, torch.zeros(4, 5, dtype=F64))
    assert out.flags["task_out_of_range"].all()


def test_si_is_the_gradient_of_the_sum_of_log_shifted_losses():
    x = torch.randn(6, 2, dtype=F64)
    lower = torch.tensor([[0.5, -1.0]], dtype=F64).expand(6, 2)
    losses, grads = losses_and_grads(x)
    xr = x.clone().requires_grad_(True)
    (torch.log(task_losses(xr) - lower).sum()).backward()
    out = run("si", grads, losses, lower)
    torch.testing.assert_close(out.direction, xr.grad)
    assert not out.flags["loss_below_bound"].any()


def test_si_clamps_and_flags_a_loss_at_its_bound():
    g = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]], dtype=F64)
    out = run("si", g, torch.tensor([[2.0, 3.0]], dtype=F64), torch.tensor([[2.0, 1.0]], dtype=F64))
    assert out.flags["loss_below_bound"].all()
    torch.testing.assert_close(out.direction, torch.tensor([[1e8, 0.5]], dtype=F64))


def test_si_raw_losses_follow_the_published_backward_pass():
    """loss_shift none: the published code's backward of log(l) is g / l even where l < 0 (its
    forward value is NaN there); autograd of torch.log gives the same, and l = 0 is non-finite."""
    x = torch.randn(6, 2, dtype=F64)
    offset = torch.tensor([100.0, 0.0], dtype=F64)  # task 1's loss becomes negative
    losses, grads = losses_and_grads(x)
    xr = x.clone().requires_grad_(True)
    torch.log(task_losses(xr) - offset).sum().backward()
    out = run("si", grads, losses - offset, torch.full((6, 2), -50.0, dtype=F64), loss_shift="none")
    assert ((losses - offset)[:, 0] < 0).all()
    torch.testing.assert_close(out.direction, xr.grad)
    assert out.flags["loss_below_bound"].all()
    zero = run("si", grads[:1], torch.tensor([[0.0, 1.0]], dtype=F64), None, loss_shift="none")
    assert not torch.isfinite(zero.direction).all()


def test_rlw_weights_are_the_softmax_of_the_given_normal_draws():
    g = torch.randn(3, 3, 4, dtype=F64)
    z = torch.randn(3, 3, dtype=F64)
    out = run("rlw", g, None, None, random=z)
    for b in range(3):
        e = [math.exp(v) for v in z[b].tolist()]
        expected = [v / sum(e) for v in e]
        assert out.weights[b].tolist() == pytest.approx(expected, rel=1e-12)
        torch.testing.assert_close(out.direction[b], sum(w * g[b, i] for i, w in enumerate(expected)))
    assert METHODS["rlw"].random.distribution == "normal"


def dwa_reference(loss_rows, window, temp):
    """The Nash-MTL DynamicWeightAverage loop, in numpy: weights (lambda, before dividing by K)."""
    K = len(loss_rows[0])
    costs = np.ones((2 * window, K))
    weights = np.ones(K)
    out = []
    for n, row in enumerate(loss_rows):
        costs[:-1] = costs[1:]
        costs[-1] = row
        if n > window:
            ws = costs[window:].mean(0) / costs[:window].mean(0)
            weights = K * np.exp(ws / temp) / np.exp(ws / temp).sum()
        out.append(weights.copy())
    return out


@pytest.mark.parametrize("shift", ["lower_bound", "none"])
def test_dwa_window_arithmetic_matches_the_reference_loop(shift):
    rng = np.random.default_rng(0)
    window, temp, steps, K = 4, 1.5, 15, 3
    loss_rows = rng.uniform(1.0, 5.0, size=(steps, K))
    lower = np.array([0.5, -1.0, 0.0])
    shifted = loss_rows - lower if shift == "lower_bound" else loss_rows
    expected = dwa_reference(list(shifted), window, temp)
    spec = METHODS["dwa"]
    g = torch.randn(2, K, 3, dtype=F64)
    params = lane_params(spec, {"window": window, "temperature": temp, "loss_shift": shift}, 2, F64)
    state = spec.init_state(2, K, 3, params, F64)
    for t in range(steps):
        losses = torch.tensor(loss_rows[t], dtype=F64).expand(2, K)
        inp = StepInput(g, losses, torch.tensor(lower, dtype=F64).expand(2, K))
        out = spec.step(inp, state, params)
        state = out.state
        np.testing.assert_allclose(out.weights[0].numpy() * K, expected[t], rtol=1e-12)
        torch.testing.assert_close(out.direction, (out.weights.unsqueeze(-1) * g).sum(1))
    # Once active, the weights have left 1 (the losses are random): the window really acted.
    assert not np.allclose(expected[-1], 1.0)


@pytest.mark.parametrize("shift", ["lower_bound", "none"])
def test_dwa_flags_nonpositive_window_means(shift):
    g = torch.randn(1, 2, 2, dtype=F64)
    params = lane_params(METHODS["dwa"], {"window": 1, "loss_shift": shift}, 1, F64)
    state = METHODS["dwa"].init_state(1, 2, 2, params, F64)
    flags = []
    for losses in ([-1.0, 2.0], [0.5, 2.0], [-3.0, 1.0], [0.5, 1.0]):
        out = METHODS["dwa"].step(
            StepInput(g, torch.tensor([losses], dtype=F64), torch.zeros(1, 2, dtype=F64)), state, params
        )
        state = out.state
        flags.append(bool(out.flags["nonpositive_ratio"]))
        assert torch.isfinite(out.direction).all()
    assert flags == [False, False, True, True]


def test_dwa_raw_losses_overflow_as_the_published_formula_does():
    """A window mean just above 0 makes the ratio huge: the published K exp(r/T) / sum exp(r/T)
    overflows to inf / inf = NaN (the engine then stops the lane); the shifted variant's
    max-shifted softmax gives the finite limit, all weight on that task."""
    g = torch.randn(1, 2, 2, dtype=F64)
    rows = ([1e-6, 1.0], [1e-6, 1.0], [1.0, 1.0])
    with np.errstate(over="ignore", invalid="ignore"):
        expected = dwa_reference(rows, 1, 2.0)[-1]  # numpy: exp(1e6 / 2) overflows too
    assert np.isnan(expected[0])
    for shift, finite in (("none", False), ("lower_bound", True)):
        params = lane_params(METHODS["dwa"], {"window": 1, "loss_shift": shift}, 1, F64)
        state = METHODS["dwa"].init_state(1, 2, 2, params, F64)
        for row in rows:
            inp = StepInput(g, torch.tensor([row], dtype=F64), torch.zeros(1, 2, dtype=F64))
            out = METHODS["dwa"].step(inp, state, params)
            state = out.state
        assert bool(torch.isfinite(out.direction).all()) is finite
    torch.testing.assert_close(out.weights, torch.tensor([[1.0, 0.0]], dtype=F64))


def test_adam_helper_matches_torch_adam_with_weight_decay():
    torch.manual_seed(1)
    p0 = torch.randn(3, dtype=F64)
    grads = torch.randn(20, 3, dtype=F64)
    ref = p0.clone().requires_grad_(True)
    opt = torch.optim.Adam([ref], lr=0.03, weight_decay=0.01)
    p, m, v, n = (
        p0.view(1, 3),
        torch.zeros(1, 3, dtype=F64),
        torch.zeros(1, 3, dtype=F64),
        torch.zeros(1, dtype=F64),
    )
    for gr in grads:
        ref.grad = gr.clone()
        opt.step()
        p, m, v, n = adam_update(
            p, gr.view(1, 3), m, v, n, torch.tensor([0.03], dtype=F64), torch.tensor([0.01], dtype=F64)
        )
        torch.testing.assert_close(p[0], ref.detach(), rtol=1e-13, atol=1e-15)


def x_sequence(steps, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(2, 2, generator=gen, dtype=F64) * 2 for _ in range(steps)]


def test_uw_direction_and_log_variances_follow_autograd_and_torch_adam():
    lower = torch.tensor([[1.0, -2.0]], dtype=F64).expand(2, 2)
    log_var = torch.zeros(2, 2, dtype=F64, requires_grad=True)
    opt = torch.optim.Adam([log_var], lr=0.05)
    spec = METHODS["uw"]
    params = lane_params(spec, {"lr": 0.05}, 2, F64)
    state = spec.init_state(2, 2, 2, params, F64)
    for x in x_sequence(12):
        losses, grads = losses_and_grads(x)
        xr = x.clone().requires_grad_(True)
        opt.zero_grad()
        shifted = task_losses(xr) - lower
        total = (0.5 * (torch.exp(-log_var) * shifted + log_var)).sum()
        total.backward()
        out = spec.step(StepInput(grads, losses, lower), state, params)
        torch.testing.assert_close(out.direction, xr.grad)
        opt.step()
        state = out.state
        torch.testing.assert_close(state.log_var, log_var.detach())
    assert (state.log_var.abs() > 0.1).any()


def test_uw_flags_a_loss_below_its_bound():
    g = torch.randn(1, 2, 2, dtype=F64)
    out = run("uw", g, torch.tensor([[0.0, 3.0]], dtype=F64), torch.tensor([[1.0, 0.0]], dtype=F64))
    assert out.flags["loss_below_bound"].all() and torch.isfinite(out.state.log_var).all()


def test_uw_raw_losses_follow_torch_adam_and_let_a_negative_task_fade():
    """loss_shift none, as the published code: s_i descends 1/2 (exp(-s_i) l_i + s_i) on the raw
    loss, whose s-gradient is >= 1/2 when l_i < 0: s_i falls for ever and task i's weight
    exp(-s_i) / 2 grows."""
    offset = torch.tensor([100.0, 0.0], dtype=F64)
    log_var = torch.zeros(2, 2, dtype=F64, requires_grad=True)
    opt = torch.optim.Adam([log_var], lr=0.05)
    spec = METHODS["uw"]
    params = lane_params(spec, {"lr": 0.05, "loss_shift": "none"}, 2, F64)
    state = spec.init_state(2, 2, 2, params, F64)
    for x in x_sequence(12):
        losses, grads = losses_and_grads(x)
        xr = x.clone().requires_grad_(True)
        opt.zero_grad()
        (0.5 * (torch.exp(-log_var) * (task_losses(xr) - offset) + log_var)).sum().backward()
        out = spec.step(StepInput(grads, losses - offset, torch.zeros(2, 2, dtype=F64)), state, params)
        torch.testing.assert_close(out.direction, xr.grad)
        opt.step()
        state = out.state
        torch.testing.assert_close(state.log_var, log_var.detach())
    assert (state.log_var[:, 0] < -0.5).all()


class FamoReference:
    """FAMO's weight method as in the reference code: torch.optim.Adam on the logits, the weight
    gradient from autograd through softmax, the direction from autograd of the FAMO loss."""

    def __init__(self, K, lower, w_lr, gamma):
        self.lower = lower
        self.w = torch.zeros(K, dtype=F64, requires_grad=True)
        self.opt = torch.optim.Adam([self.w], lr=w_lr, weight_decay=gamma)

    def direction(self, x):
        xr = x.clone().requires_grad_(True)
        losses = task_losses(xr.unsqueeze(0))[0]
        self.prev = losses.detach()
        z = torch.softmax(self.w, -1).detach()
        gap = losses - self.lower + 1e-8
        c = (z / gap).sum().detach()
        (gap.log() * z / c).sum().backward()
        return xr.grad

    def update(self, losses):
        delta = (self.prev - self.lower + 1e-8).log() - (losses - self.lower + 1e-8).log()
        grad = torch.autograd.grad(torch.softmax(self.w, -1), self.w, grad_outputs=delta)[0]
        self.opt.zero_grad()
        self.w.grad = grad
        self.opt.step()


def test_famo_matches_the_reference_update_order_and_adam():
    lower = torch.tensor([-2.1, -21.0], dtype=F64)
    reference = FamoReference(2, lower, 0.025, 0.01)
    spec = METHODS["famo"]
    params = lane_params(spec, {"w_lr": 0.025, "gamma": 0.01}, 1, F64)
    state = spec.init_state(1, 2, 2, params, F64)
    for t, x in enumerate(x_sequence(15)):
        x = x[:1]
        losses, grads = losses_and_grads(x)
        if t > 0:
            reference.update(losses[0])
        expected = reference.direction(x[0])
        out = spec.step(StepInput(grads, losses, lower.view(1, 2)), state, params)
        state = out.state
        torch.testing.assert_close(out.direction[0], expected)
        torch.testing.assert_close(state.logits[0], reference.w.detach())
        assert out.weights.sum().item() == pytest.approx(1.0)
    assert (state.logits.abs() > 1e-3).all()


def test_famo_weights_are_normalised_inverse_shifted_losses_at_the_first_step():
    g = torch.randn(2, 3, 4, dtype=F64)
    losses = torch.tensor([[1.0, 2.0, 4.0], [3.0, 3.0, 0.5]], dtype=F64)
    lower = torch.zeros(2, 3, dtype=F64)
    out = run("famo", g, losses, lower)
    inv = 1 / losses
    torch.testing.assert_close(out.weights, inv / inv.sum(-1, keepdim=True))
    below = run("famo", g, -losses, lower)
    assert below.flags["loss_below_bound"].all() and torch.isfinite(below.direction).all()


def test_gradnorm_matches_autograd_of_its_balancing_loss():
    lower = torch.tensor([0.0, -1.0], dtype=F64)
    alpha, lr = 1.5, 0.04
    logits = torch.ones(2, dtype=F64, requires_grad=True)
    opt = torch.optim.Adam([logits], lr=lr)
    spec = METHODS["gradnorm"]
    params = lane_params(spec, {"alpha": alpha, "lr": lr}, 1, F64)
    state = spec.init_state(1, 2, 2, params, F64)
    initial = None
    for x in x_sequence(10, seed=3):
        losses, grads = losses_and_grads(x[:1])
        shifted = losses[0] - lower
        initial = shifted if initial is None else initial
        w = 2 * torch.softmax(logits, -1)
        per = torch.stack([(w[i] * grads[0, i]).norm() for i in range(2)])
        rel = shifted / initial
        r = rel / rel.mean()
        target = (per.mean() * r**alpha).detach()
        opt.zero_grad()
        (per - target).abs().sum().backward()
        expected_d = (w.detach().unsqueeze(-1) * grads[0]).sum(0)
        out = spec.step(StepInput(grads, losses, lower.view(1, 2)), state, params)
        state = out.state
        torch.testing.assert_close(out.direction[0], expected_d)
        opt.step()
        torch.testing.assert_close(state.logits[0], logits.detach())
    assert (state.logits[0] - 1).abs().max() > 1e-3


@pytest.mark.parametrize("name", ["stl", "si", "rlw", "dwa", "uw", "famo", "gradnorm"])
def test_float32_runs_finite(name):
    spec = METHODS[name]
    g = torch.randn(5, 2, 2, dtype=torch.float32)
    losses = torch.rand(5, 2, dtype=torch.float32) * 10 - 3
    lower = torch.full((5, 2), -2.0, dtype=torch.float32)
    params = lane_params(spec, {}, 5, torch.float32)
    state = spec.init_state(5, 2, 2, params, torch.float32)
    for _ in range(30):
        random = torch.randn(5, 2, dtype=torch.float32) if spec.random else None
        out = spec.step(StepInput(g, losses, lower, random), state, params)
        state = out.state
        assert out.direction.dtype == torch.float32 and torch.isfinite(out.direction).all()
        assert set(out.flags) <= set(spec.flags)
