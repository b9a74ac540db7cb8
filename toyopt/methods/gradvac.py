"""GradVac, gradient vaccine: pull each pair of gradients towards its running cosine target.

Wang, Tsvetkov, Firat, Cao, "Gradient Vaccine: Investigating and Improving Multi-task
Optimization in Massively Multilingual Models", ICLR 2021 (arXiv 2010.05874); follows LibMTL
``GradVac`` and TorchJD ``GradVacWeighting`` (whole-model granularity).

State: targets phihat (K x K, initialised to 0). For every task i, start from g_i^PC = g_i and
visit the other tasks j != i in a random order:

    phi_ij = cos(g_i^PC, g_j)
    if phi_ij < phihat_ij:
        g_i^PC <- g_i^PC + g_j ||g_i^PC|| (phihat_ij sqrt(1 - phi_ij^2) - phi_ij sqrt(1 - phihat_ij^2))
                                          / (||g_j|| sqrt(1 - phihat_ij^2))
    phihat_ij <- (1 - beta) phihat_ij + beta phi_ij       (with the pre-correction phi_ij)

d = sum_i g_i^PC. g_i is task i's gradient, beta the EMA rate. With phihat = 0 the correction is
exactly PCGrad's projection. Computed from the Gram matrix (g_i^PC = sum_k C_ik g_k). The visiting
order of row i is the argsort of K uniform draws from ``inp.random`` with i left out
(for K = 2 there is only one other task, so no random numbers are used).

Guards: a pair where ||g_i^PC|| or ||g_j|| <= 1e-8 * max_k ||g_k|| has no cosine: it is skipped,
phihat_ij unchanged (``zero_gradient_skipped``). sqrt(1 - phihat^2) is clamped to >= 1e-4 so a
target near +-1 cannot blow the correction up (``degenerate_target``; the codes add 1e-8).
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from ._common import TWO_TASK_ORDER, permutations_from_uniform
from ._gram import gram, norms
from .base import EPS, MethodOutput, MethodSpec, ParamSpec, RandomNeed, ReferenceCase, StepInput, Tensor

#: Smallest sqrt(1 - phihat^2) used as a divisor.
MIN_SINE = 1e-4


class State(NamedTuple):
    target: Tensor  # (B, K, K) phihat_ij (the diagonal is unused)


def init(B, K, D, params, dtype) -> State:
    return State(torch.zeros((B, K, K), dtype=dtype))


def step(inp: StepInput, state: State, params) -> MethodOutput:
    B, K, _ = inp.grads.shape
    gram_ = gram(inp.grads)
    n = norms(gram_)
    threshold = (EPS * n.amax(-1) + torch.finfo(gram_.dtype).tiny).unsqueeze(-1)
    order = TWO_TASK_ORDER.expand(B, 2, 2) if K == 2 else permutations_from_uniform(inp.random, K)
    beta = params["beta"].view(B, 1)
    always = params["ema_update"] == "always"
    rows = torch.arange(K).expand(B, K)
    coef = torch.eye(K, dtype=gram_.dtype).expand(B, K, K).clone()
    target = state.target
    skipped = torch.zeros(B, dtype=torch.bool)
    degenerate = torch.zeros(B, dtype=torch.bool)
    for position in range(K):
        j = order[:, :, position]
        other = j != rows
        dot = (coef @ gram_).gather(-1, j.unsqueeze(-1)).squeeze(-1)
        norm_i = ((coef @ gram_) * coef).sum(-1).clamp_min(0).sqrt()
        norm_j = n.gather(-1, j)
        usable = (norm_i > threshold) & (norm_j > threshold)
        cos = (dot / (norm_i * norm_j).clamp_min(torch.finfo(gram_.dtype).tiny)).clamp(-1.0, 1.0)
        phihat = target.gather(-1, j.unsqueeze(-1)).squeeze(-1)
        correct = other & usable & (cos < phihat)
        sine_hat = (1 - phihat * phihat).clamp_min(0).sqrt()
        safe_sine_hat = sine_hat.clamp_min(MIN_SINE)
        amount = norm_i * (phihat * (1 - cos * cos).clamp_min(0).sqrt() - cos * sine_hat)
        amount = amount / (norm_j.clamp_min(torch.finfo(gram_.dtype).tiny) * safe_sine_hat)
        coef = coef.scatter_add(-1, j.unsqueeze(-1), torch.where(correct, amount, 0.0).unsqueeze(-1))
        update = other & usable if always else correct
        new_phihat = torch.where(update, (1 - beta) * phihat + beta * cos, phihat)
        target = target.scatter(-1, j.unsqueeze(-1), new_phihat.unsqueeze(-1))
        skipped = skipped | (other & ~usable).any(-1)
        degenerate = degenerate | (correct & (sine_hat < MIN_SINE)).any(-1)
    weights = coef.sum(-2)
    d = (weights.unsqueeze(-1) * inp.grads).sum(-2)
    return MethodOutput(
        d, weights, State(target), {"zero_gradient_skipped": skipped, "degenerate_target": degenerate}
    )


SPEC = MethodSpec(
    name="gradvac",
    label="GradVac",
    paper="Wang et al., ICLR 2021, arXiv 2010.05874",
    summary="PCGrad generalised: pulls each pairwise cosine up to an EMA target instead of to 0.",
    step=step,
    init=init,
    params=(
        ParamSpec(
            "beta",
            0.5,
            "EMA rate of the cosine targets (0.5 in LibMTL and TorchJD; "
            "the paper's value, maybe 1e-2, unchecked)",
            low=0.0,
            high=1.0,
            unverified=True,
        ),
        ParamSpec(
            "ema_update",
            "always",
            "always: update phihat after every pair (TorchJD, spec's LibMTL); on_correction: only when a "
            "correction was applied (an older LibMTL revision)",
            kind="choice",
            choices=("always", "on_correction"),
            unverified=True,
        ),
    ),
    random=RandomNeed("uniform", lambda K, D: K * K),
    flags={
        "zero_gradient_skipped": "a pair had a gradient of norm <= 1e-8 x the largest: no cosine, skipped",
        "degenerate_target": "a correction used a target with sqrt(1 - phihat^2) < 1e-4 (clamped)",
    },
    references=(
        ReferenceCase(
            grads=((1.0, 0.0), (-0.5, 1.0)),
            direction=(0.6623505596776629, 1.2164674129035506),
            weights=(1.2705842661294384, 1.2164674129035506),
            derivation="the paper's vector update twice (targets 0, then the EMA of the first cosines)",
            steps=2,
        ),
    ),
)
