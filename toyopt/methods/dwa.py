"""DWA, dynamic weight average: weight each task by how slowly its loss is falling.

Liu, Johns, Davison, "End-to-End Multi-Task Learning with Attention", CVPR 2019 (arXiv
1803.10704). The paper averages over epochs; this is the iteration-window version of the
Nash-MTL code (``DynamicWeightAverage``), which the Nash-MTL/FAMO toy uses.

State: a FIFO of the last 2W loss vectors (W = ``window``), initialised to ones, and the number
of steps n taken so far. At every step the current (shifted) losses L_i = l_i - l*_i are pushed
into the FIFO; then, once n > W (counting from 0),

    r_i = mean(newest W entries of L_i) / mean(oldest W entries of L_i)
    lambda_i = K * softmax(r / T)_i

and lambda = 1 before that. The loss is mean_i(lambda_i l_i), so d = (1/K) sum_i lambda_i g_i.
g_i is task i's gradient, l_i its loss, l*_i its lower bound, T the temperature, K the number
of tasks.

``loss_shift`` "lower_bound" uses L = l - l* (ratios need positive losses, the toy's are
negative); there a window mean of 0 is replaced by a tiny number of the same scale and the
softmax is max-shifted, so the weights stay finite. "none" uses the raw losses and evaluates
the formula exactly as the published code does, K exp(r_i / T) / sum_j exp(r_j / T) with no
guard: a window mean crossing 0 gives a huge ratio, exp overflows (past r / T = 88.7 in
float32, 709.8 in float64) and the weights become NaN, which stops the lane. Whenever a window
mean is <= 0 the ratio is meaningless and ``nonpositive_ratio`` is raised.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from ._common import LOSS_SHIFT, combine, softmax, task_losses
from .base import EPS, MethodOutput, MethodSpec, ParamSpec, ReferenceCase, StepInput, Tensor


class State(NamedTuple):
    costs: Tensor  # (B, 2W, K) FIFO of (shifted) loss vectors, oldest first
    steps: Tensor  # (B,) steps taken so far


def init(B, K, D, params, dtype) -> State:
    window = params["window"]
    return State(torch.ones((B, 2 * window, K), dtype=dtype), torch.zeros(B, dtype=dtype))


def step(inp: StepInput, state: State, params) -> MethodOutput:
    window = params["window"]
    K = inp.grads.shape[1]
    losses = task_losses(inp, params)
    costs = torch.cat([state.costs[:, 1:], losses.unsqueeze(1)], dim=1)
    newer = costs[:, window:].mean(1)
    older = costs[:, :window].mean(1)
    temperature = params["temperature"].unsqueeze(-1)
    if params["loss_shift"] == "lower_bound":
        tiny = EPS * torch.maximum(newer.abs(), older.abs()) + torch.finfo(losses.dtype).tiny
        scores = softmax(newer / torch.where(older.abs() > tiny, older, tiny) / temperature)
    else:
        exp = torch.exp(newer / older / temperature)
        scores = exp / exp.sum(-1, keepdim=True)
    active = (state.steps > window).unsqueeze(-1)
    lam = torch.where(active, K * scores, torch.ones_like(scores))
    nonpositive = active & ((newer <= 0) | (older <= 0))
    weights = lam / K
    return MethodOutput(
        combine(weights, inp.grads),
        weights,
        State(costs, state.steps + 1),
        {"nonpositive_ratio": nonpositive.any(-1)},
    )


SPEC = MethodSpec(
    name="dwa",
    label="DWA",
    paper="Liu, Johns, Davison, CVPR 2019, arXiv 1803.10704 (iteration window as in Nash-MTL code)",
    summary="Tasks whose loss falls slowly over the last window get more weight.",
    step=step,
    init=init,
    params=(
        ParamSpec(
            "temperature", 2.0, "softmax temperature T (2.0 in the paper and all codes)", low=0.01, high=100.0
        ),
        ParamSpec(
            "window",
            25,
            "iterations per averaging window W (Nash-MTL/FAMO toy code: 25; the paper uses epochs)",
            kind="int",
            low=1,
            high=1000,
            step=1,
        ),
        LOSS_SHIFT,
    ),
    reads_losses=True,
    flags={
        "nonpositive_ratio": "a window mean loss was <= 0: the loss ratio (and so the weights) is meaningless"
    },
    guarantees=frozenset({"permutation_invariant"}),
    references=(
        ReferenceCase(
            grads=((1.0, 0.0), (-0.5, 1.0)),
            direction=(0.21431268474792825, 0.5237915435013812),
            weights=(0.47620845649861887, 0.5237915435013812),
            derivation=(
                "paper formula with a one-step window: lambda = 2 softmax((L(2) / L(1)) / 2), d = (1/2) "
                "sum_i lambda_i g_i"
            ),
            params={"window": 1},
            steps=3,
            losses=((2.0, 0.5), (1.5, 0.7), (1.0, 0.6)),
            lower_bounds=(0.0, 0.0),
        ),
    ),
)
