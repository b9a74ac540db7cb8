"""Hypothesis fuzz of every registered method on adversarial gradient sets.

Each hypothesis example draws a seed, K, D, dtype and a parameter mode; the seed generates a batch of
LANES lanes, each from one adversarial category (norms log-uniform over 1e-12 .. 1e12, exact zeros,
parallel, anti-parallel, exactly opposite, nearly anti-parallel with cos = -1 + 1e-12, one zero and one
huge, ...) with losses at, below, just above and far above their lower bounds. Stateful methods take
STEPS consecutive steps on fresh batches. Every output must keep the step contract and be finite; with
default parameters (c spread over its range) every claimed guarantee must hold, with tolerances
relative to the lane's own gradient norms (conftest.check_guarantees).

The default suite runs SAMPLE_EXAMPLES examples per method. ``pytest -m fuzz`` runs the big fuzz:
TOYOPT_FUZZ_EXAMPLES gradient sets in total (lanes x steps, default 1 000 000), split evenly over the
methods; the count actually checked is printed at the end of the session.
"""

from __future__ import annotations

import math
import os

import pytest
import torch
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from toyopt.methods import METHODS, MethodSpec, StepInput, draw_random, lane_params

F64 = torch.float64
NAMES = sorted(METHODS)
LANES = 64
STEPS = 2  # consecutive steps for stateful methods (stateless methods take one)
SAMPLE_EXAMPLES = 25
FUZZ_TOTAL = int(os.environ.get("TOYOPT_FUZZ_EXAMPLES", "1000000"))
LOG_NORM_RANGE = (-12.0, 12.0)

CATEGORIES = (
    "random norms",
    "common scale",
    "all zero",
    "one zero",
    "one zero, one huge",
    "parallel",
    "anti-parallel",
    "opposite",
    "nearly anti-parallel",
    "nearly parallel",
    "equal",
    "tiny and huge",
)
COS_NEAR = 1 - 1e-12  # |cos| of the nearly (anti-)parallel pairs

settings.register_profile(
    "toyopt-methods",
    deadline=None,
    database=None,
    phases=(Phase.explicit, Phase.generate),  # no shrinking: a smaller seed is not a simpler case
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


def log_uniform(gen: torch.Generator, shape, low: float, high: float) -> torch.Tensor:
    return 10.0 ** (low + (high - low) * torch.rand(shape, generator=gen, dtype=F64))


def orthonormal_pair(gen: torch.Generator, B: int, D: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Unit vectors u and w with <u, w> = 0, (B, D) each; w = 0 when D = 1 (no second direction)."""
    u = torch.randn((B, D), generator=gen, dtype=F64)
    u = u / u.norm(dim=-1, keepdim=True)
    w = torch.randn((B, D), generator=gen, dtype=F64)
    w = w - (w * u).sum(-1, keepdim=True) * u
    w = w / w.norm(dim=-1, keepdim=True).clamp_min(1e-300) if D > 1 else torch.zeros_like(u)
    return u, w


def adversarial_grads(gen: torch.Generator, B: int, K: int, D: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, K, D) float64 gradients and each lane's category index. Tasks 0 and 1 form the category's
    pair (in random order); further tasks are a random gradient, zero, a copy or the negative of
    task 0."""
    low, high = LOG_NORM_RANGE
    category = torch.randint(len(CATEGORIES), (B,), generator=gen)
    u, w = orthonormal_pair(gen, B, D)
    s = log_uniform(gen, (B, 1), low, high)
    ratio = log_uniform(gen, (B, 1), -6, 6)
    free = torch.randn((B, K, D), generator=gen, dtype=F64)
    free = free / free.norm(dim=-1, keepdim=True) * log_uniform(gen, (B, K, 1), low, high)
    sin_near = math.sqrt(1 - COS_NEAR**2)
    near_ratio = torch.where(torch.rand((B, 1), generator=gen) < 0.5, 1.0, ratio)
    zero = torch.zeros_like(u)
    pairs = [
        (free[:, 0], free[:, 1]),
        (
            s * free[:, 0] / free[:, 0].norm(dim=-1, keepdim=True),
            s * free[:, 1] / free[:, 1].norm(dim=-1, keepdim=True),
        ),
        (zero, zero),
        (zero, s * u),
        (zero, 10.0**high * u),
        (s * u, s * ratio * u),
        (s * u, -s * ratio * u),
        (s * u, -s * u),
        (s * u, s * near_ratio * (-COS_NEAR * u + sin_near * w)),
        (s * u, s * (1 + 1e-9) * (COS_NEAR * u + sin_near * w)),
        (s * u, s * u),
        (10.0**low * u, 10.0**high * free[:, 1] / free[:, 1].norm(dim=-1, keepdim=True)),
    ]
    first = torch.stack([a for a, _ in pairs])[category, torch.arange(B)]
    second = torch.stack([b for _, b in pairs])[category, torch.arange(B)]
    swap = (torch.rand((B, 1), generator=gen) < 0.5).to(F64)
    grads = free.clone()
    grads[:, 0] = swap * second + (1 - swap) * first
    grads[:, 1] = swap * first + (1 - swap) * second
    if K > 2:
        mode = torch.randint(4, (B, K - 2, 1), generator=gen)
        g0 = grads[:, :1].expand(B, K - 2, D)
        extra = torch.where(
            mode == 0, 0.0, torch.where(mode == 1, g0, torch.where(mode == 2, -g0, free[:, 2:]))
        )
        all_zero = (category == CATEGORIES.index("all zero")).view(B, 1, 1)
        grads[:, 2:] = torch.where(all_zero, 0.0, extra)
    return grads, category


def adversarial_losses(gen: torch.Generator, B: int, K: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Lower bounds (0, the toy's -2.1 / -21, or uniform in [-30, 30]) and losses at, below, just
    above (1e-12 .. 1) or far above (1 .. 1e8) them, (B, K) float64 each."""
    pick = torch.randint(4, (B, K), generator=gen)
    spread = 60 * torch.rand((B, K), generator=gen, dtype=F64) - 30
    lower = torch.where(pick == 0, 0.0, torch.where(pick == 1, -2.1, torch.where(pick == 2, -21.0, spread)))
    kind = torch.randint(4, (B, K), generator=gen)
    gap = torch.where(
        kind == 0,
        0.0,
        torch.where(
            kind == 1,
            -log_uniform(gen, (B, K), -12, 6),
            torch.where(kind == 2, log_uniform(gen, (B, K), -12, 0), log_uniform(gen, (B, K), 0, 8)),
        ),
    )
    return lower, lower + gap


def random_parameters(spec: MethodSpec, gen: torch.Generator, B: int, ints: dict, choices: dict) -> dict:
    """Bounded float parameters drawn per lane over their whole range (unbounded ones keep their
    default); ints and choices as given."""
    values = dict(ints, **choices)
    for p in spec.params:
        if p.kind == "float" and p.low is not None and p.high is not None:
            values[p.name] = (p.low + (p.high - p.low) * torch.rand(B, generator=gen, dtype=F64)).tolist()
    return values


def guarantee_parameters(spec: MethodSpec, gen: torch.Generator, B: int) -> dict:
    """Defaults, except c (if the method has one) drawn per lane over its range and CAGrad's raw
    update (rescale 'none') for the in_ball check."""
    values = {}
    if "in_ball" in spec.guarantees and any(p.name == "rescale" for p in spec.params):
        values["rescale"] = "none"
    for p in spec.params:
        if p.name == "c" and p.kind == "float" and p.low is not None and p.high is not None:
            values["c"] = (p.low + (p.high - p.low) * torch.rand(B, generator=gen, dtype=F64)).tolist()
    return values


@st.composite
def fuzz_setups(draw, spec: MethodSpec):
    ints, choices = {}, {}
    mode = draw(st.sampled_from(["guarantees", "random parameters"]))
    if mode == "random parameters":
        for p in spec.params:
            if p.kind == "int":  # iteration counts go up to 1e5: stay within twice the default
                low = p.low if p.low is not None else 0
                top = 2 * max(p.default, 1) if p.high is None else min(p.high, 2 * max(p.default, 1))
                ints[p.name] = draw(st.integers(low, max(top, low)))
            elif p.kind == "choice":
                # loss_shift none evaluates the published formulas unguarded on purpose (a non-finite
                # value stops the engine's lane); test_loss_and_state_methods pins it instead.
                allowed = [c for c in p.choices if (p.name, c) != ("loss_shift", "none")]
                choices[p.name] = draw(st.sampled_from(allowed))
    return {
        "seed": draw(st.integers(0, 2**62)),
        "K": draw(st.sampled_from([2, 2, 3])),
        "D": draw(st.sampled_from([1, 2, 2, 3, 5])),
        "dtype": draw(st.sampled_from([F64, F64, torch.float32])),
        "mode": mode,
        "ints": ints,
        "choices": choices,
    }


def describe(
    setup: dict, inp: StepInput, category: torch.Tensor, params: dict, lanes: list[int], step: int
) -> str:
    """The failing lanes, enough to reproduce each one as a single-lane call."""
    K, D = inp.grads.shape[1:]
    rows = [f"  seed {setup['seed']}, K={K}, D={D}, {inp.grads.dtype}, mode {setup['mode']!r}:"]
    for i in lanes[:3]:
        lane_params_text = {k: (v[i].item() if isinstance(v, torch.Tensor) else v) for k, v in params.items()}
        rows.append(
            f"  step {step} lane {i} [{CATEGORIES[int(category[i])]}]: grads={inp.grads[i].tolist()} "
            f"losses={inp.losses[i].tolist()} lower={inp.lower_bounds[i].tolist()} params={lane_params_text}"
        )
    return "\n".join(rows)


def fuzz_example(checks, spec: MethodSpec, setup: dict) -> int:
    """Run one example; return the number of gradient sets checked."""
    gen = torch.Generator().manual_seed(setup["seed"])
    K, D, dtype = setup["K"], setup["D"], setup["dtype"]
    if setup["mode"] == "guarantees":
        values = guarantee_parameters(spec, gen, LANES)
    else:
        values = random_parameters(spec, gen, LANES, setup["ints"], setup["choices"])
    params = lane_params(spec, values, LANES, dtype)
    state = spec.init_state(LANES, K, D, params, dtype)
    steps = STEPS if spec.stateful else 1
    for t in range(steps):
        grads, category = adversarial_grads(gen, LANES, K, D)
        lower, losses = adversarial_losses(gen, LANES, K)
        progress = torch.rand((), generator=gen, dtype=F64)
        random = draw_random(spec, LANES, K, D, gen, dtype)
        inp = StepInput(grads.to(dtype), losses.to(dtype), lower.to(dtype), random, progress.to(dtype))
        out = spec.step(inp, state, params)
        errors = checks.contract_errors(spec, out, LANES, K, D, dtype)
        assert not errors, f"{spec.name} {setup}: {errors}"
        bad = checks.nonfinite_lanes(out).nonzero().flatten().tolist()
        assert not bad, f"{spec.name}: non-finite output\n{describe(setup, inp, category, params, bad, t)}"
        if spec.weights_exact:
            off = checks.weights_mismatch(inp, out).nonzero().flatten().tolist()
            where = describe(setup, inp, category, params, off, t)
            assert not off, f"{spec.name}: direction != sum_i weights_i g_i\n{where}"
        if setup["mode"] == "guarantees":
            for guarantee, lanes in checks.check_guarantees(spec, params, inp, out).failures().items():
                raise AssertionError(
                    f"{spec.name}: {guarantee} violated\n{describe(setup, inp, category, params, lanes, t)}"
                )
        state = out.state
    return LANES * steps


def run_fuzz(checks, name: str, examples: int) -> None:
    spec = METHODS[name]

    @settings(
        settings.get_profile("toyopt-methods"), max_examples=examples, derandomize=examples <= SAMPLE_EXAMPLES
    )
    @given(setup=fuzz_setups(spec))
    def check(setup):
        checks.fuzz_cases[name] += fuzz_example(checks, spec, setup)

    check()


@pytest.mark.parametrize("name", NAMES)
def test_fuzz_sample(checks, name):
    run_fuzz(checks, name, SAMPLE_EXAMPLES)


@pytest.mark.fuzz
@pytest.mark.parametrize("name", NAMES)
def test_fuzz_full(checks, name):
    per_example = LANES * (STEPS if METHODS[name].stateful else 1)
    run_fuzz(checks, name, math.ceil(FUZZ_TOTAL / len(NAMES) / per_example))
