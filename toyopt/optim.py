"""Batched optimizers with explicit state (optax style): ``init(x)`` and ``update(d, state, x)``.

Each lane's parameters are one row of x (B, D) and each row is updated exactly as
``torch.optim.Adam`` / ``torch.optim.SGD`` update a single parameter tensor whose ``.grad`` is the
aggregated direction d (the way every reference toy script feeds its direction to the optimizer).
The arithmetic follows torch's single-tensor implementations operation for operation, so a
lane matches the reference optimizer bit for bit.
"""

from __future__ import annotations

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


def _flat(t: Tensor) -> Tensor:
    """The updates are elementwise, so they run on 1-D views (the same numbers): compiled, inductor
    then vectorises over all B x D entries, not over the D = 2 columns of each lane."""
    return t.reshape(-1)


@dataclass(frozen=True)
class Adam:
    """Adam (Kingma & Ba 2015) with torch's defaults: betas (0.9, 0.999), eps 1e-8."""

    lr: float
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8

    def init(self, x: Tensor, step=0) -> AdamState:
        return AdamState(step, torch.zeros_like(x), torch.zeros_like(x))

    def update(self, d: Tensor, state: AdamState, x: Tensor) -> tuple[Tensor, AdamState]:
        """``state.step`` is a Python int (eager: bias corrections in double precision, exactly as
        torch.optim.Adam) or a 0-d tensor (compiled: no recompilation as the count changes)."""
        shape = x.shape
        x, d, state = _flat(x), _flat(d), AdamState(state.step, _flat(state.exp_avg), _flat(state.exp_avg_sq))
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
        return x.view(shape), AdamState(step, exp_avg.view(shape), exp_avg_sq.view(shape))


@dataclass(frozen=True)
class SGD:
    """Plain SGD, optionally with heavy-ball momentum as torch.optim.SGD (dampening 0)."""

    lr: float
    momentum: float = 0.0

    def init(self, x: Tensor, step=0) -> SGDState:
        return SGDState(step, torch.zeros_like(x))

    def update(self, d: Tensor, state: SGDState, x: Tensor) -> tuple[Tensor, SGDState]:
        shape = x.shape
        x, d, buf = _flat(x), _flat(d), _flat(state.momentum_buffer)
        if self.momentum != 0:
            # torch.optim.SGD starts the buffer at the first gradient (equal to 0 * momentum + d).
            buf = buf.mul(self.momentum).add(d)
            d = buf
        return x.add(d, alpha=-self.lr).view(shape), SGDState(state.step + 1, buf.view(shape))


def make_optimizer(name: str, lr: float, momentum: float = 0.0):
    if name == "adam":
        return Adam(lr)
    if name == "sgd":
        return SGD(lr, momentum)
    raise ValueError(f"optimizer must be one of ['adam', 'sgd'], got {name!r}")
