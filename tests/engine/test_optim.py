"""Batched optimizers against torch.optim, bit for bit, lane by lane."""

from __future__ import annotations

import pytest
import torch

from toyopt.optim import SGD, Adam, make_optimizer

B, D, STEPS = 4, 2, 60


def gradient_sequence(dtype: torch.dtype) -> torch.Tensor:
    """(STEPS, B, D) gradients spanning many magnitudes, signs and a few exact zeros."""
    gen = torch.Generator().manual_seed(11)
    g = torch.randn((STEPS, B, D), generator=gen, dtype=torch.float64)
    g = g * torch.logspace(-6, 3, B, dtype=torch.float64)[None, :, None]
    g[7] = 0.0
    g[20, 1] = 0.0
    return g.to(dtype)


def reference_trajectories(make_torch_opt, x0: torch.Tensor, grads: torch.Tensor) -> torch.Tensor:
    """Each lane as a separate parameter of shape (D,) with its own torch optimizer; the lane's
    gradient is written into .grad each step (as the reference toy scripts do)."""
    out = torch.empty((STEPS, *x0.shape), dtype=x0.dtype)
    params = [torch.nn.Parameter(x0[b].clone()) for b in range(x0.shape[0])]
    opts = [make_torch_opt([p]) for p in params]
    for t in range(STEPS):
        for b, (p, opt) in enumerate(zip(params, opts)):
            p.grad = grads[t, b].clone()
            opt.step()
            out[t, b] = p.detach()
    return out


def batched_trajectories(opt, x0: torch.Tensor, grads: torch.Tensor, state=None) -> torch.Tensor:
    x = x0.clone()
    state = opt.init(x) if state is None else state
    out = torch.empty((STEPS, *x0.shape), dtype=x0.dtype)
    for t in range(STEPS):
        x, state = opt.update(grads[t], state, x)
        out[t] = x
    return out


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("lr", [1e-3, 0.37])
def test_adam_bit_for_bit(dtype, lr):
    x0 = torch.tensor([[-8.5, 7.5], [0.0, 0.0], [9.0, 9.0], [1e-7, -3.0]], dtype=dtype)
    grads = gradient_sequence(dtype)
    ref = reference_trajectories(lambda p: torch.optim.Adam(p, lr=lr, foreach=False), x0, grads)
    got = batched_trajectories(Adam(lr), x0, grads)
    assert got.dtype == dtype
    for b in range(B):
        assert torch.equal(got[:, b], ref[:, b]), f"lane {b}"
    # torch's default implementation choice on CPU gives the same numbers.
    assert torch.equal(ref, reference_trajectories(lambda p: torch.optim.Adam(p, lr=lr), x0, grads))


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_sgd_bit_for_bit(dtype, momentum):
    x0 = torch.tensor([[-8.5, 7.5], [0.0, 0.0], [9.0, 9.0], [1e-7, -3.0]], dtype=dtype)
    grads = gradient_sequence(dtype)
    ref = reference_trajectories(
        lambda p: torch.optim.SGD(p, lr=0.01, momentum=momentum, foreach=False), x0, grads
    )
    got = batched_trajectories(SGD(0.01, momentum), x0, grads)
    for b in range(B):
        assert torch.equal(got[:, b], ref[:, b]), f"lane {b}"


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_adam_tensor_step_close_to_int_step(dtype):
    """The compiled engine keeps the step count as a 0-d tensor; the update must agree with the
    Python-int path to rounding."""
    x0 = torch.tensor([[-8.5, 7.5], [0.0, 0.0], [9.0, 9.0], [1e-7, -3.0]], dtype=dtype)
    grads = gradient_sequence(dtype)
    opt = Adam(1e-3)
    exact = batched_trajectories(opt, x0, grads)
    tensor_step = batched_trajectories(
        opt, x0, grads, state=opt.init(x0, step=torch.tensor(0.0, dtype=dtype))
    )
    rtol = 1e-12 if dtype == torch.float64 else 1e-5
    torch.testing.assert_close(tensor_step, exact, rtol=rtol, atol=rtol)
    # Both moved away from the start (the comparison is not vacuous).
    assert (exact[-1] - x0).abs().min() > 1e-4


def test_adam_first_step_is_lr_times_sign():
    """With zero state, Adam's first step is lr * g / (|g| + eps / ...) ~ lr * sign(g)."""
    x0 = torch.zeros((1, 3), dtype=torch.float64)
    g = torch.tensor([[2.0, -0.5, 1e3]], dtype=torch.float64)
    x, state = Adam(0.1).update(g, Adam(0.1).init(x0), x0)
    torch.testing.assert_close(x, torch.tensor([[-0.1, 0.1, -0.1]], dtype=torch.float64), rtol=1e-7, atol=0)
    assert state.step == 1


def test_make_optimizer():
    assert make_optimizer("adam", 0.01) == Adam(0.01)
    assert make_optimizer("sgd", 0.01, 0.5) == SGD(0.01, 0.5)
    with pytest.raises(ValueError, match="optimizer must be one of"):
        make_optimizer("rmsprop", 0.01)
