"""STL, single-task learning: follow one task's gradient and ignore the others.

The baseline ``STL`` of the Nash-MTL and FAMO code bases (Navon et al., "Multi-Task Learning as
a Bargaining Game", ICML 2022, arXiv 2202.01017).

    d = g_t

g_t is the gradient of task t (0-based parameter ``task``). When t >= K (the problem has fewer
tasks) there is no such gradient: d = 0 and the flag ``task_out_of_range`` is raised.
"""

from __future__ import annotations

import torch

from ._common import combine
from .base import EMPTY, MethodOutput, MethodSpec, ParamSpec, ReferenceCase, StepInput


def step(inp: StepInput, state, params) -> MethodOutput:
    B, K, _ = inp.grads.shape
    task = params["task"]
    # Built whole rather than written into by index: an indexed write of a Python number inside
    # torch.export's while_loop body fails ("FunctionalTensor on its own"). All zero if task >= K.
    weights = (torch.arange(K) == task).to(inp.grads.dtype).repeat(B, 1)
    out_of_range = torch.full((B,), task >= K, dtype=torch.bool)
    return MethodOutput(combine(weights, inp.grads), weights, EMPTY, {"task_out_of_range": out_of_range})


SPEC = MethodSpec(
    name="stl",
    label="STL",
    paper="Single-task baseline of Navon et al., ICML 2022, arXiv 2202.01017 (code: STL)",
    summary="Follows one task's gradient only.",
    step=step,
    params=(
        ParamSpec(
            "task",
            0,
            "index of the task to follow (0-based, below the problem's number of tasks)",
            kind="int",
            low=0,
            high=15,
            step=1,
            high_for_tasks=lambda K: K - 1,
        ),
    ),
    flags={"task_out_of_range": "the chosen task index is >= the number of tasks: d = 0"},
    references=(
        ReferenceCase(
            grads=((1.0, 0.0), (-0.5, 1.0)),
            direction=(-0.5, 1.0),
            weights=(0.0, 1.0),
            derivation="closed form: d = g2",
            params={"task": 1},
        ),
    ),
)
