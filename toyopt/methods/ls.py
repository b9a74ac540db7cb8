"""Linear scalarization: the plain mean or sum of the task gradients.

d = sum_i g_i (reduction "sum", the Nash-MTL/FAMO ``ls``) or d = g0 = (1/K) sum_i g_i
(reduction "mean", the CAGrad toy's "mean" baseline). g_i is task i's gradient, K the number
of tasks.
"""

from __future__ import annotations

import torch

from ._common import combine
from .base import EMPTY, MethodOutput, MethodSpec, ParamSpec, ReferenceCase, StepInput


def step(inp: StepInput, state, params) -> MethodOutput:
    B, K, _ = inp.grads.shape
    value = 1.0 if params["reduction"] == "sum" else 1.0 / K
    weights = torch.full((B, K), value, dtype=inp.grads.dtype)
    return MethodOutput(combine(weights, inp.grads), weights, EMPTY, {})


SPEC = MethodSpec(
    name="ls",
    label="LS",
    paper="Linear scalarization (baseline); Navon et al. 2022, arXiv 2202.01017",
    summary="Average (or sum) of the task gradients: the reference objective's own gradient.",
    step=step,
    params=(
        ParamSpec(
            "reduction",
            "mean",
            "mean: d = g0 (CAGrad toy); sum: d = K g0 (Nash-MTL/FAMO code)",
            kind="choice",
            choices=("mean", "sum"),
        ),
    ),
    guarantees=frozenset({"permutation_invariant"}),
    references=(
        ReferenceCase(
            grads=((1.0, 0.0), (-0.5, 1.0)),
            direction=(0.25, 0.5),
            weights=(0.5, 0.5),
            derivation="closed form: d = (g1 + g2) / 2",
        ),
        ReferenceCase(
            grads=((1.0, 0.0), (-0.5, 1.0)),
            direction=(0.5, 1.0),
            weights=(1.0, 1.0),
            derivation="closed form: d = g1 + g2",
            params={"reduction": "sum"},
        ),
    ),
)
