"""FAMO, fast adaptive multitask optimization: balance the tasks' log-loss decrease rates.

Liu, Liu, Stone, Liu, "FAMO: Fast Adaptive Multitask Optimization", NeurIPS 2023 (arXiv
2306.03792); reference code Cranial-XIX/FAMO (``methods/weight_methods.py``, ``experiments/toy``).

Logits xi in R^K (initialised to 0), z = softmax(xi), D_i = l_i - l*_i + 1e-8. The code
back-propagates sum_i z_i log(D_i) / c with c = sum_j z_j / D_j held constant, so

    d = sum_i w_i g_i,    w_i = (z_i / D_i) / sum_j (z_j / D_j)      (weights sum to 1)

After each parameter step the logits learn from the new losses (the toy calls this at the
start of every step after the first, before the weights are formed):

    delta_i = log(D_i^prev) - log(D_i)                 (how much log-loss i fell)
    grad_xi = J_softmax(xi)^T delta = z * (delta - <z, delta>)
    xi <- Adam(xi, grad_xi, lr = w_lr, weight_decay = gamma)      (torch.optim.Adam, L2 decay)

g_i is task i's gradient, l_i its loss, l*_i its lower bound (FAMO's toy: (-21 * scale, -21)),
D^prev the previous step's D. Tasks that improved more get less weight. FAMO needs no
per-task gradients in a network (one backward pass); here d is formed from the given g_i.
Where l_i - l*_i <= 0 the log is undefined: it is clamped to 0 (D_i = 1e-8) and
``loss_below_bound`` is raised.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from ._common import adam_update, combine, softmax
from .base import MethodOutput, MethodSpec, ParamSpec, ReferenceCase, StepInput, Tensor

#: FAMO's offset inside every log and ratio (``1e-8`` in the reference code).
OFFSET = 1e-8


class State(NamedTuple):
    logits: Tensor  # (B, K) xi
    exp_avg: Tensor  # (B, K) Adam first moment of xi
    exp_avg_sq: Tensor  # (B, K) Adam second moment of xi
    adam_steps: Tensor  # (B,) Adam steps taken
    prev_gap: Tensor  # (B, K) D at the previous step
    steps: Tensor  # (B,) steps taken so far


def init(B, K, D, params, dtype) -> State:
    zeros = torch.zeros((B, K), dtype=dtype)
    scalar = torch.zeros(B, dtype=dtype)
    return State(zeros, zeros.clone(), zeros.clone(), scalar, torch.ones((B, K), dtype=dtype), scalar.clone())


def step(inp: StepInput, state: State, params) -> MethodOutput:
    shifted = inp.losses - inp.lower_bounds
    below = shifted <= 0
    gap = shifted.clamp_min(0.0) + OFFSET
    # Logit update from the decrease since the previous step (none at the first step).
    z_old = softmax(state.logits)
    delta = state.prev_gap.log() - gap.log()
    grad_logits = z_old * (delta - (z_old * delta).sum(-1, keepdim=True))
    logits, exp_avg, exp_avg_sq, adam_steps = adam_update(
        state.logits,
        grad_logits,
        state.exp_avg,
        state.exp_avg_sq,
        state.adam_steps,
        params["w_lr"],
        params["gamma"],
    )
    started = (state.steps > 0).unsqueeze(-1)
    logits = torch.where(started, logits, state.logits)
    exp_avg = torch.where(started, exp_avg, state.exp_avg)
    exp_avg_sq = torch.where(started, exp_avg_sq, state.exp_avg_sq)
    adam_steps = torch.where(started.squeeze(-1), adam_steps, state.adam_steps)

    z = softmax(logits)
    ratio = z / gap
    weights = ratio / ratio.sum(-1, keepdim=True)
    new_state = State(logits, exp_avg, exp_avg_sq, adam_steps, gap, state.steps + 1)
    return MethodOutput(combine(weights, inp.grads), weights, new_state, {"loss_below_bound": below.any(-1)})


SPEC = MethodSpec(
    name="famo",
    label="FAMO",
    paper="Liu, Liu, Stone, Liu, NeurIPS 2023, arXiv 2306.03792",
    summary="Loss-only weighting that equalises the tasks' log-loss decrease rates; needs a lower bound l*.",
    step=step,
    init=init,
    params=(
        ParamSpec(
            "w_lr",
            0.025,
            "Adam learning rate of the logits xi (0.025 in every FAMO source)",
            low=1e-5,
            high=1.0,
        ),
        ParamSpec(
            "gamma",
            0.0,
            "weight decay of the logits (L2, as torch.optim.Adam): 0.0 in the FAMO toy (run.sh); "
            "0.01 in FAMO's common parser, 1e-5 the FAMO class default, 1e-3 in LibMTL",
            low=0.0,
            high=1.0,
        ),
    ),
    reads_losses=True,
    flags={"loss_below_bound": "some l_i - l*_i <= 0: clamped to 0 (FAMO's log is undefined there)"},
    guarantees=frozenset({"permutation_invariant"}),
    references=(
        ReferenceCase(
            grads=((1.0, 0.0), (-0.5, 1.0)),
            direction=(-0.06347064945117759, 0.7089804329674517),
            weights=(0.2910195670325483, 0.7089804329674517),
            derivation=(
                "FAMO toy loop: logits stepped by torch.optim.Adam on the autograd gradient of "
                "<softmax(xi), log D_prev - log D>, weights z_i / D_i normalised"
            ),
            params={"w_lr": 0.1},
            steps=3,
            losses=((2.0, 0.5), (1.5, 0.7), (1.0, 0.6)),
            lower_bounds=(0.0, 0.0),
        ),
    ),
)
