"""GradDrop, gradient sign dropout: per coordinate, keep only the gradients of one sign.

Chen, Ngiam, Huang, Luong, Kretzschmar, Chai, Anguelov, "Just Pick a Sign: Optimizing Deep
Multitask Models with Gradient Sign Dropout", NeurIPS 2020 (arXiv 2010.06808). Per-coordinate
form of the CAGrad ``nyuv2/utils.py`` and FAMO ``GradDrop`` code.

For every coordinate j (of D):

    P_j = 1/2 (1 + sum_i g_ij / sum_i |g_ij|)          (positive-sign purity)
    U_j ~ Uniform(0, 1)                                  (from ``inp.random``)
    M_ij = 1[g_ij > 0] 1[P_j > U_j] + 1[g_ij < 0] 1[P_j < U_j]
    d = s sum_i (k + (1 - k) M_i) * g_i                  (elementwise)

g_ij is coordinate j of task i's gradient, k the leak (k = 1 passes every gradient unchanged),
s = 1/K (``reduction`` "mean", CAGrad code) or 1 ("sum": FAMO multiplies the mean by K).
The code adds 1e-8 to sum_i |g_ij|; here a coordinate where every g_ij = 0 gets P_j = 1/2
instead, so the rule does not depend on the gradients' scale. GradDrop is not a weighting of
whole gradients (it depends on the coordinate system); see ``weights_note`` (``weights_exact`` is False).
"""

from __future__ import annotations

import torch

from .base import EMPTY, MethodOutput, MethodSpec, ParamSpec, RandomNeed, ReferenceCase, StepInput


def masks(grads: torch.Tensor, uniform: torch.Tensor) -> torch.Tensor:
    """M (B, K, D) in {0, 1}: which gradient coordinates survive, given U (B, D)."""
    total = grads.abs().sum(-2)
    purity = 0.5 * (1 + grads.sum(-2) / total.clamp_min(torch.finfo(grads.dtype).tiny))
    keep_positive = (purity > uniform).unsqueeze(-2) & (grads > 0)
    keep_negative = (purity < uniform).unsqueeze(-2) & (grads < 0)
    return (keep_positive | keep_negative).to(grads.dtype)


def step(inp: StepInput, state, params) -> MethodOutput:
    B, K, D = inp.grads.shape
    leak = params["leak"].view(B, 1, 1)
    kept = (leak + (1 - leak) * masks(inp.grads, inp.random[:, :D])) * inp.grads
    scale = 1.0 / K if params["reduction"] == "mean" else 1.0
    d = scale * kept.sum(-2)
    sq_norms = (inp.grads * inp.grads).sum(-1)
    share = (kept * inp.grads).sum(-1) / sq_norms.clamp_min(torch.finfo(sq_norms.dtype).tiny)
    return MethodOutput(d, scale * share, EMPTY, {})


SPEC = MethodSpec(
    name="graddrop",
    label="GradDrop",
    paper="Chen et al., NeurIPS 2020, arXiv 2010.06808",
    summary="Per coordinate, randomly keeps the positive or the negative gradient entries by sign purity.",
    step=step,
    params=(
        ParamSpec(
            "leak",
            0.0,
            "leak k: share of every gradient passed through unmasked "
            "(paper option, default 0; the toy codes have none)",
            low=0.0,
            high=1.0,
            unverified=True,
        ),
        ParamSpec(
            "reduction",
            "mean",
            "mean of the masked gradients (CAGrad nyuv2 code) or their sum (FAMO code: mean times K)",
            kind="choice",
            choices=("mean", "sum"),
        ),
    ),
    random=RandomNeed("uniform", lambda K, D: D),
    weights_exact=False,
    weights_note=(
        "not a weighting: weights_i = s <kept_i, g_i> / ||g_i||^2, the share of g_i that survives "
        "(d = sum_i weights_i g_i only when each gradient is kept or dropped as a whole)"
    ),
    references=(
        ReferenceCase(
            grads=((1.0, 0.0), (-0.5, 1.0)),
            direction=(0.5, 0.5),
            weights=(0.5, 0.4),
            derivation="by hand: purities (2/3, 1) > U keep the positive entries: d = (1/2, 1/2)",
            random=(0.5, 0.3),
        ),
        ReferenceCase(
            grads=((1.0, 0.0), (-0.5, 1.0)),
            direction=(-0.25, 0.5),
            weights=(0.0, 0.5),
            derivation="by hand: purity 2/3 < U = 0.9 keeps the negative entry of coordinate 1",
            random=(0.9, 0.3),
        ),
    ),
)
