"""Batched optimizers with explicit state (optax style): ``init(x)`` and ``update(d, state, x)``.

Each lane's parameters are one row of x (B, D) and each row is updated exactly as
``torch.optim.Adam`` / ``torch.optim.SGD`` update a single parameter tensor whose ``.grad`` is the
aggregated direction d (the way every reference toy script feeds its direction to the optimizer).
The arithmetic follows torch's single-tensor implementations operation for operation, so a
lane matches the reference optimizer bit for bit.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import NamedTuple

import torch

Tensor = torch.Tensor


class AdamState(NamedTuple):
    step: int
    exp_avg: Tensor
    exp_avg_sq: Tensor


class SGDState(NamedTuple):
    step: int
    momentum_buffer: Tensor


def _flat_when_compiled(update):
    """The updates are elementwise, so under torch.compile they run on 1-D views of x, d and the
    state (the same numbers): inductor then vectorises over all B x D entries, not over the D = 2
    columns of each lane. Eager, the views would only add operations."""

    @functools.wraps(update)
    def wrapped(self, d: Tensor, state, x: Tensor):
        if x.dim() < 2 or not torch.compiler.is_compiling():
            return update(self, d, state, x)

        def reshaped(s, shape):
            return type(s)(*(t.reshape(shape) if isinstance(t, Tensor) and t.dim() > 0 else t for t in s))

        x_new, new_state = update(self, d.reshape(-1), reshaped(state, (-1,)), x.reshape(-1))
        return x_new.view(x.shape), reshaped(new_state, x.shape)

    return wrapped


@dataclass(frozen=True)
class Adam:
    """Adam (Kingma & Ba 2015) with torch's defaults: betas (0.9, 0.999), eps 1e-8."""

    lr: float
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8

    def init(self, x: Tensor, step=0) -> AdamState:
        return AdamState(step, torch.zeros_like(x), torch.zeros_like(x))

    @_flat_when_compiled
    def update(self, d: Tensor, state: AdamState, x: Tensor) -> tuple[Tensor, AdamState]:
        """``state.step`` is a Python int (eager: bias corrections in double precision, exactly as
        torch.optim.Adam) or a 0-d tensor (compiled: no recompilation as the count changes)."""
        step = state.step + 1
        exp_avg = state.exp_avg.lerp(d, 1 - self.beta1)
        exp_avg_sq = state.exp_avg_sq.mul(self.beta2).addcmul(d, d, value=1 - self.beta2)
        bias_correction1 = 1 - self.beta1**step
        bias_correction2_sqrt = (1 - self.beta2**step) ** 0.5
        denom = (exp_avg_sq.sqrt() / bias_correction2_sqrt).add(self.eps)
        if isinstance(step, Tensor):
            x = x - (self.lr / bias_correction1) * (exp_avg / denom)
        else:
            x = x.addcdiv(exp_avg, denom, value=-(self.lr / bias_correction1))
        return x, AdamState(step, exp_avg, exp_avg_sq)


@dataclass(frozen=True)
class SGD:
    """Plain SGD, optionally with heavy-ball momentum as torch.optim.SGD (dampening 0)."""

    lr: float
    momentum: float = 0.0

    def init(self, x: Tensor, step=0) -> SGDState:
        return SGDState(step, torch.zeros_like(x))

    @_flat_when_compiled
    def update(self, d: Tensor, state: SGDState, x: Tensor) -> tuple[Tensor, SGDState]:
        buf = state.momentum_buffer
        if self.momentum != 0:
            # torch.optim.SGD starts the buffer at the first gradient (equal to 0 * momentum + d).
            buf = buf.mul(self.momentum).add(d)
            d = buf
        return x.add(d, alpha=-self.lr), SGDState(state.step + 1, buf)


def make_optimizer(name: str, lr: float, momentum: float = 0.0):
    if name == "adam":
        return Adam(lr)
    if name == "sgd":
        return SGD(lr, momentum)
    raise ValueError(f"optimizer must be one of ['adam', 'sgd'], got {name!r}")
