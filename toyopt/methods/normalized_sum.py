"""Normalized sum (Su Jianlin's gradient-normalized weighting): add the unit task gradients.

Su Jianlin, "多任务学习漫谈（一）：以损失之名" and "（二）：行梯度之事", kexue.fm 2022 (blog).
Weighting each task by the stop-gradient 1 / ||g_i|| gives

    d = sum_i g_i / ||g_i||

g_i is task i's gradient. d is invariant to rescaling any task and to shifting the losses. For
K = 2 it points along the bisector of g_1 and g_2 (as Nash-MTL and IMTL-G) with norm
sqrt(2 + 2 cos phi), phi the angle between them. A task with ||g_i|| <= 1e-8 * max_j ||g_j||
has no direction: it is left out (weight 0) and ``zero_gradient_skipped`` is raised.
"""

from __future__ import annotations

import torch

from ._common import combine, negligible
from .base import EMPTY, MethodOutput, MethodSpec, ReferenceCase, StepInput


def step(inp: StepInput, state, params) -> MethodOutput:
    norms = inp.grads.norm(dim=-1)
    skipped = negligible(norms)
    weights = torch.where(skipped, 0.0, 1.0 / norms.clamp_min(torch.finfo(norms.dtype).tiny))
    return MethodOutput(
        combine(weights, inp.grads), weights, EMPTY, {"zero_gradient_skipped": skipped.any(-1)}
    )


SPEC = MethodSpec(
    name="normalized_sum",
    label="Normalized sum",
    paper="Su Jianlin, kexue.fm blog 2022, 多任务学习漫谈（一）/（二）",
    summary="Sum of unit-length task gradients: every task counts equally, whatever its scale.",
    step=step,
    flags={
        "zero_gradient_skipped": "a task gradient had norm <= 1e-8 x the largest: left out (no direction)"
    },
    guarantees=frozenset({"permutation_invariant"}),
    references=(
        ReferenceCase(
            grads=((1.0, 0.0), (-0.5, 1.0)),
            direction=(0.5527864045000421, 0.8944271909999159),
            weights=(1.0000000000000002, 0.8944271909999159),
            derivation="closed form: d = g1 / ||g1|| + g2 / ||g2||, ||g2|| = sqrt(5) / 2",
        ),
    ),
)
