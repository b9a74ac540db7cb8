"""SI, scale-invariant linear scalarization: descend the sum of log-losses.

Baseline ``ScaleInvariantLinearScalarization`` of Navon et al., "Multi-Task Learning as a
Bargaining Game", ICML 2022 (arXiv 2202.01017).

    L = sum_i log(L_i),    d = grad L = sum_i g_i / L_i,    L_i = l_i - l*_i or l_i

g_i is task i's gradient, l_i its loss and l*_i its lower bound (the engine's ``lower_bounds``).
``loss_shift`` "lower_bound" uses L_i = l_i - l*_i, which makes the logarithm defined on the
toy's negative losses; where L_i <= eps (eps = 1e-8) it is clamped to eps and
``loss_below_bound`` is raised. "none" uses L_i = l_i, as the published code does: its
``log(l_i)`` is NaN for l_i < 0 but its backward pass still returns g_i / l_i, which reverses
task i's gradient; L_i = 0 gives a non-finite direction, which stops the lane. The flag then
marks every step with some l_i <= eps. The direction is invariant to rescaling any one loss,
not to shifting it.
"""

from __future__ import annotations

from ._common import LOSS_SHIFT, combine, task_losses
from .base import EMPTY, EPS, MethodOutput, MethodSpec, ReferenceCase, StepInput


def step(inp: StepInput, state, params) -> MethodOutput:
    losses = task_losses(inp, params)
    below = losses <= EPS
    if params["loss_shift"] == "lower_bound":
        losses = losses.clamp_min(EPS)
    weights = 1.0 / losses
    return MethodOutput(combine(weights, inp.grads), weights, EMPTY, {"loss_below_bound": below.any(-1)})


SPEC = MethodSpec(
    name="si",
    label="SI",
    paper="Scale-invariant LS baseline of Navon et al., ICML 2022, arXiv 2202.01017",
    summary="Gradient of sum_i log(l_i - l*_i): each task weighted by 1 / its shifted loss.",
    step=step,
    params=(LOSS_SHIFT,),
    reads_losses=True,
    flags={
        "loss_below_bound": "some loss read (l_i - l*_i, or l_i under loss_shift none) was <= 1e-8: the log "
        "is undefined there; clamped to 1e-8 (lower_bound) or used as is, as the published code does (none)"
    },
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
