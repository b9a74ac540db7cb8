"""RLW, random loss weighting: a fresh random convex combination of the task gradients.

Lin, Ye, Xu, Shi, Zhang, Kwok, "Reasonable Effectiveness of Random Weighting: A Litmus Test for
Multi-Task Learning", TMLR 2022 (arXiv 2111.10603).

    z ~ N(0, I_K),   lambda = softmax(z),   d = sum_i lambda_i g_i

g_i is task i's gradient and z is drawn anew at every step (the engine supplies it as
``inp.random``). As in the Nash-MTL, FAMO and LibMTL code, lambda sums to 1.
"""

from __future__ import annotations

from ._common import combine, softmax
from .base import EMPTY, MethodOutput, MethodSpec, RandomNeed, ReferenceCase, StepInput


def step(inp: StepInput, state, params) -> MethodOutput:
    K = inp.grads.shape[1]
    weights = softmax(inp.random[:, :K])
    return MethodOutput(combine(weights, inp.grads), weights, EMPTY, {})


SPEC = MethodSpec(
    name="rlw",
    label="RLW",
    paper="Lin et al., TMLR 2022, arXiv 2111.10603",
    summary="Weights softmax(z) with z ~ N(0, I) drawn every step.",
    step=step,
    random=RandomNeed("normal", lambda K, D: K),
    references=(
        ReferenceCase(
            grads=((1.0, 0.0), (-0.5, 1.0)),
            direction=(-0.125, 0.75),
            weights=(0.25, 0.75),
            derivation="closed form: softmax(0, log 3) = (1/4, 3/4)",
            random=(0.0, 1.0986122886681098),
        ),
    ),
)
