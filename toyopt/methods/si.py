"""SI, scale-invariant linear scalarization: descend the sum of log-losses.

Baseline ``ScaleInvariantLinearScalarization`` of Navon et al., "Multi-Task Learning as a
Bargaining Game", ICML 2022 (arXiv 2202.01017).

    L = sum_i log(l_i - l*_i),    d = grad L = sum_i g_i / (l_i - l*_i)

g_i is task i's gradient, l_i its loss and l*_i its lower bound (the engine's
``lower_bounds``). The published code takes log(l_i) directly (l* = 0), which is undefined on
the toy's negative losses; the lower bound makes the logarithm defined. Where
l_i - l*_i <= eps (eps = 1e-8) the shifted loss is clamped to eps and ``loss_below_bound`` is
raised. The direction is invariant to rescaling any one loss, not to shifting it.
"""

from __future__ import annotations

from ._common import combine
from .base import EMPTY, EPS, MethodOutput, MethodSpec, ReferenceCase, StepInput


def step(inp: StepInput, state, params) -> MethodOutput:
    shifted = inp.losses - inp.lower_bounds
    below = shifted <= EPS
    weights = 1.0 / shifted.clamp_min(EPS)
    return MethodOutput(combine(weights, inp.grads), weights, EMPTY, {"loss_below_bound": below.any(-1)})


SPEC = MethodSpec(
    name="si",
    label="SI",
    paper="Scale-invariant LS baseline of Navon et al., ICML 2022, arXiv 2202.01017",
    summary="Gradient of sum_i log(l_i - l*_i): each task weighted by 1 / its shifted loss.",
    step=step,
    reads_losses=True,
    flags={"loss_below_bound": "some l_i - l*_i <= 1e-8: clamped to 1e-8 (the log is undefined there)"},
    guarantees=frozenset({"permutation_invariant"}),
    references=(
        ReferenceCase(
            grads=((1.0, 0.0), (-0.5, 1.0)),
            direction=(0.375, 0.25),
            weights=(0.5, 0.25),
            derivation="closed form: weights 1 / (l_i - l*_i) = (1/2, 1/4)",
            losses=((3.0, 1.0),),
            lower_bounds=(1.0, -3.0),
        ),
    ),
)
