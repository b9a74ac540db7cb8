"""PCGrad, projecting conflicting gradients ("gradient surgery").

Yu, Kumar, Gupta, Levine, Hausman, Finn, "Gradient Surgery for Multi-Task Learning", NeurIPS
2020 (arXiv 2001.06782); follows ``PCGrad._project_conflicting`` of the Nash-MTL/FAMO code.

For every task i, start from g_i^PC = g_i and visit the tasks j = pi_i(1), ..., pi_i(K) in a
random order pi_i (all K tasks, i itself included, as the published code shuffles the whole
list):

    if <g_i^PC, g_j> < 0:   g_i^PC <- g_i^PC - <g_i^PC, g_j> / ||g_j||^2 * g_j

(always projecting on the original g_j). Then d = sum_i g_i^PC (``reduction`` "sum") or
d = (1/K) sum_i g_i^PC ("mean"). g_i is task i's gradient, K the number of tasks.

Computed from the Gram matrix only: g_i^PC = sum_k C_ik g_k and <g_i^PC, g_j> = (C Gamma)_ij.
For K = 2 the order does not matter and the result is the closed form
d = s [(1 - G12/G11) g_1 + (1 - G12/G22) g_2] when G12 = <g_1, g_2> < 0 (s = 1 sum, 1/2 mean),
so K = 2 uses a fixed order and no random numbers. For K > 2 each pi_i is the argsort of K
uniform draws from ``inp.random``. A g_j with ||g_j|| <= 1e-8 * max_k ||g_k|| is never projected
on (``zero_gradient_skipped`` when that skipped a projection). For K = 2 every task keeps
<g_i, d> >= 0; for K > 2 that can fail, so no such guarantee is claimed.
"""

from __future__ import annotations

import torch

from ._common import TWO_TASK_ORDER, negligible, permutations_from_uniform
from ._gram import gram, norms, sq_norms
from .base import EMPTY, MethodOutput, MethodSpec, ParamSpec, RandomNeed, ReferenceCase, StepInput


def projection_coefficients(gram_: torch.Tensor, order: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """C (B, K, K) with g_i^PC = sum_k C_ik g_k after PCGrad's projections in ``order``
    (B, K, K: row i lists the tasks task i is projected against), and a (B,) flag: a
    projection on a negligible gradient was skipped."""
    B, K, _ = gram_.shape
    squares = sq_norms(gram_)
    tiny = negligible(norms(gram_))
    coef = torch.eye(K, dtype=gram_.dtype).expand(B, K, K).clone()
    skipped = torch.zeros(B, dtype=torch.bool)
    for position in range(K):
        j = order[:, :, position]  # (B, K): the task each row i projects against now
        dot = (coef @ gram_).gather(-1, j.unsqueeze(-1)).squeeze(-1)
        conflict = dot < 0
        usable = ~tiny.gather(-1, j)
        sq = squares.gather(-1, j)
        step_ = torch.where(conflict & usable, -dot / torch.where(usable, sq, 1.0), 0.0)
        coef = coef.scatter_add(-1, j.unsqueeze(-1), step_.unsqueeze(-1))
        skipped = skipped | (conflict & ~usable).any(-1)
    return coef, skipped


def step(inp: StepInput, state, params) -> MethodOutput:
    B, K, _ = inp.grads.shape
    if K == 2:
        order = TWO_TASK_ORDER.expand(B, 2, 2)
    else:
        order = permutations_from_uniform(inp.random, K)
    coef, skipped = projection_coefficients(gram(inp.grads), order)
    weights = coef.sum(-2)
    if params["reduction"] == "mean":
        weights = weights / K
    d = (weights.unsqueeze(-1) * inp.grads).sum(-2)
    return MethodOutput(d, weights, EMPTY, {"zero_gradient_skipped": skipped})


SPEC = MethodSpec(
    name="pcgrad",
    label="PCGrad",
    paper="Yu et al., NeurIPS 2020, arXiv 2001.06782",
    summary="Removes from each task gradient its component against every conflicting other gradient.",
    step=step,
    params=(
        ParamSpec(
            "reduction",
            "sum",
            "sum of the projected gradients (official code, Nash-MTL, FAMO, LibMTL) "
            "or their mean (CAGrad toy)",
            kind="choice",
            choices=("sum", "mean"),
        ),
    ),
    random=RandomNeed("uniform", lambda K, D: K * K),
    flags={
        "zero_gradient_skipped": "a conflicting gradient had norm <= 1e-8 x the largest: not projected on"
    },
    references=(
        ReferenceCase(
            grads=((1.0, 0.0), (-0.5, 1.0)),
            direction=(0.8, 1.4),
            weights=(1.5000000000000004, 1.4),
            derivation="the paper's loop on the vectors: g1 and g2 each lose their component along the other",
        ),
        ReferenceCase(
            grads=((1.0, 0.0, 0.0), (-0.5, 1.0, 0.0), (0.2, -0.6, 0.8)),
            direction=(0.7200000000000001, 0.9561538461538462, 1.3384615384615386),
            weights=(1.3653846153846163, 1.9600000000000006, 1.673076923076923),
            derivation=(
                "the paper's loop on the vectors, task orders argsort of the random rows: (0, 2, 1), (1, "
                "2, 0), (0, 1, 2)"
            ),
            random=(0.1, 0.9, 0.5, 0.7, 0.2, 0.4, 0.3, 0.6, 0.8),
        ),
    ),
)
