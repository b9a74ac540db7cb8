"""GradNorm (Chen et al.): learn task weights that equalise weighted gradient norms.

Chen, Badrinarayanan, Lee, Rabinovich, "GradNorm: Gradient Normalization for Adaptive Loss
Balancing in Deep Multitask Networks", ICML 2018 (arXiv 1711.02257); follows LibMTL's
``GradNorm`` (weights K * softmax of learnable logits).

    w = K * softmax(xi),                          d = sum_i w_i g_i
    G_i = ||w_i g_i||,   Gbar = mean_j G_j
    Ltilde_i = L_i(t) / L_i(0),   r_i = Ltilde_i / mean_j Ltilde_j,   L_i = l_i - l*_i
    L_grad(xi) = sum_i | G_i - Gbar * r_i^alpha |         (Gbar * r_i^alpha held constant)
    xi <- Adam(xi, dL_grad/dxi, lr)

xi are the logits (initialised to 1 as in LibMTL; any constant gives w = 1), g_i task i's
gradient, l_i its loss, l*_i its lower bound, L_i(0) the shifted loss at the first step (kept
in the state), alpha the asymmetry. d uses the weights before the logit update, as in LibMTL,
where one optimizer step updates the model and the logits together. LibMTL starts GradNorm
after the first epoch; here it acts from the first step. Shifted losses <= 1e-8 are clamped to
1e-8 (the ratios need positive losses) and ``loss_below_bound`` is raised.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from ._common import adam_update, combine, softmax
from .base import EPS, MethodOutput, MethodSpec, ParamSpec, ReferenceCase, StepInput, Tensor


class State(NamedTuple):
    logits: Tensor  # (B, K) xi
    exp_avg: Tensor  # (B, K) Adam first moment of xi
    exp_avg_sq: Tensor  # (B, K) Adam second moment of xi
    adam_steps: Tensor  # (B,) Adam steps taken
    initial_losses: Tensor  # (B, K) L_i(0) (meaningful once steps > 0)
    steps: Tensor  # (B,) steps taken so far


def init(B, K, D, params, dtype) -> State:
    zeros = torch.zeros((B, K), dtype=dtype)
    return State(
        torch.ones((B, K), dtype=dtype),
        zeros.clone(),
        zeros.clone(),
        torch.zeros(B, dtype=dtype),
        torch.ones((B, K), dtype=dtype),
        torch.zeros(B, dtype=dtype),
    )


def step(inp: StepInput, state: State, params) -> MethodOutput:
    K = inp.grads.shape[1]
    shifted = inp.losses - inp.lower_bounds
    below = shifted <= EPS
    shifted = shifted.clamp_min(EPS)
    initial = torch.where((state.steps > 0).unsqueeze(-1), state.initial_losses, shifted)

    z = softmax(state.logits)
    weights = K * z
    norms = inp.grads.norm(dim=-1)
    weighted_norms = weights * norms
    relative = shifted / initial
    rate = relative / relative.mean(-1, keepdim=True)
    target = weighted_norms.mean(-1, keepdim=True) * rate ** params["alpha"].unsqueeze(-1)
    # dL_grad/dw_i = sign(G_i - target_i) ||g_i||, then through w = K softmax(xi).
    grad_w = torch.sign(weighted_norms - target) * norms
    grad_logits = K * z * (grad_w - (z * grad_w).sum(-1, keepdim=True))
    logits, exp_avg, exp_avg_sq, adam_steps = adam_update(
        state.logits, grad_logits, state.exp_avg, state.exp_avg_sq, state.adam_steps, params["lr"]
    )
    new_state = State(logits, exp_avg, exp_avg_sq, adam_steps, initial, state.steps + 1)
    return MethodOutput(combine(weights, inp.grads), weights, new_state, {"loss_below_bound": below.any(-1)})


SPEC = MethodSpec(
    name="gradnorm",
    label="GradNorm",
    paper="Chen et al., ICML 2018, arXiv 1711.02257 (as in LibMTL)",
    summary="Learned weights K softmax(xi) pushed towards equal weighted gradient norms times training rate.",
    step=step,
    init=init,
    params=(
        ParamSpec(
            "alpha",
            1.5,
            "asymmetry alpha: how strongly slow tasks are pulled up (1.5 in LibMTL)",
            low=0.0,
            high=5.0,
        ),
        ParamSpec(
            "lr",
            0.025,
            "Adam learning rate of the logits (LibMTL uses the model's optimizer; "
            "0.025 = the toy's method_params_lr)",
            low=1e-5,
            high=1.0,
            unverified=True,
        ),
    ),
    reads_losses=True,
    flags={"loss_below_bound": "some l_i - l*_i <= 1e-8: clamped to 1e-8 (loss ratios need positive losses)"},
    guarantees=frozenset({"permutation_invariant"}),
    references=(
        ReferenceCase(
            grads=((1.0, 0.0), (-0.5, 1.0)),
            direction=(0.6424237502147395, 0.9050508331901737),
            weights=(1.0949491668098263, 0.9050508331901737),
            derivation=(
                "LibMTL GradNorm: sum_i |w_i ||g_i|| - mean_j(w_j ||g_j||) r_i^1.5| differentiated by "
                "autograd, logits stepped by torch.optim.Adam (two updates)"
            ),
            params={"lr": 0.1},
            steps=3,
            losses=((2.0, 0.5), (1.5, 0.7), (1.0, 0.6)),
            lower_bounds=(0.0, 0.0),
        ),
    ),
)
