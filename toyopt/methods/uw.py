"""UW, uncertainty weighting: learn one log-variance per task alongside the parameters.

Kendall, Gal, Cipolla, "Multi-Task Learning Using Uncertainty to Weigh Losses for Scene
Geometry and Semantics", CVPR 2018 (arXiv 1705.07115); implemented as ``Uncertainty`` in the
Nash-MTL and FAMO code.

    L(theta, s) = sum_i 1/2 (exp(-s_i) L_i + s_i),    L_i = l_i - l*_i or l_i
    d = dL/dtheta = 1/2 sum_i exp(-s_i) g_i
    dL/ds_i = 1/2 (1 - exp(-s_i) L_i)     (fixed point exp(s_i) = L_i)

s_i = log sigma_i^2 (initialised to 0) is task i's learned log-variance, g_i its gradient, l_i
its loss and l*_i its lower bound. Every step returns d computed with the current s and then
updates s with its own Adam (betas 0.9/0.999, eps 1e-8, learning rate ``lr``; in the toy scripts
s shares the model's Adam but with ``method_params_lr`` = 0.025). ``loss_shift`` "lower_bound"
uses L_i = l_i - l*_i; where L_i <= 1e-8 it is clamped to 1e-8 for the s update and
``loss_below_bound`` is raised. "none" uses L_i = l_i, as the published code does: a loss <= 0
makes dL/ds_i >= 1/2, so s_i falls without bound and task i's weight exp(-s_i) / 2 grows
exponentially (flagged). In float32, as the published runs, the square of the growing direction
soon overflows the optimizer's Adam second moment, which then freezes the parameters.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from ._common import LOSS_SHIFT, adam_update, combine, task_losses
from .base import EPS, MethodOutput, MethodSpec, ParamSpec, ReferenceCase, StepInput, Tensor


class State(NamedTuple):
    log_var: Tensor  # (B, K) s_i = log sigma_i^2
    exp_avg: Tensor  # (B, K) Adam first moment of s
    exp_avg_sq: Tensor  # (B, K) Adam second moment of s
    adam_steps: Tensor  # (B,) Adam steps taken


def init(B, K, D, params, dtype) -> State:
    zeros = torch.zeros((B, K), dtype=dtype)
    return State(zeros, zeros.clone(), zeros.clone(), torch.zeros(B, dtype=dtype))


def step(inp: StepInput, state: State, params) -> MethodOutput:
    losses = task_losses(inp, params)
    below = losses <= EPS
    if params["loss_shift"] == "lower_bound":
        losses = losses.clamp_min(EPS)
    precision = torch.exp(-state.log_var)
    weights = 0.5 * precision
    grad_s = 0.5 * (1.0 - precision * losses)
    log_var, exp_avg, exp_avg_sq, steps = adam_update(
        state.log_var, grad_s, state.exp_avg, state.exp_avg_sq, state.adam_steps, params["lr"]
    )
    return MethodOutput(
        combine(weights, inp.grads),
        weights,
        State(log_var, exp_avg, exp_avg_sq, steps),
        {"loss_below_bound": below.any(-1)},
    )


SPEC = MethodSpec(
    name="uw",
    label="UW",
    paper="Kendall, Gal, Cipolla, CVPR 2018, arXiv 1705.07115",
    summary="Learned per-task log-variances s; weights exp(-s_i)/2 settle at 1/(2 (l_i - l*_i)).",
    step=step,
    init=init,
    params=(
        ParamSpec(
            "lr",
            0.025,
            "Adam learning rate of the log-variances (method_params_lr = 0.025 in the Nash-MTL/FAMO toy)",
            low=1e-5,
            high=1.0,
        ),
        LOSS_SHIFT,
    ),
    reads_losses=True,
    flags={
        "loss_below_bound": "some loss read (l_i - l*_i, or l_i under loss_shift none) was <= 1e-8: clamped "
        "to 1e-8 in the log-variance update (lower_bound) or used as is, as the published code does (none)"
    },
    guarantees=frozenset({"permutation_invariant"}),
    references=(
        ReferenceCase(
            grads=((1.0, 0.0), (-0.5, 1.0)),
            direction=(0.1114092244197778, 0.605678165336),
            weights=(0.4142483070877778, 0.605678165336),
            derivation=(
                "the loss sum_i (exp(-s_i) L_i + s_i) / 2 differentiated by autograd, s stepped by "
                "torch.optim.Adam (two updates), d = sum_i exp(-s_i) g_i / 2"
            ),
            params={"lr": 0.1},
            steps=3,
            losses=((2.0, 0.5), (1.5, 0.7), (1.0, 0.6)),
            lower_bounds=(0.0, 0.0),
        ),
    ),
)
