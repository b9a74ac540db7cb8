"""Properties every registered aggregation method must have.

Every test runs over the entries of ``toyopt.methods.METHODS`` (test ids are method names), so a new
method module is covered without editing this file. The checks themselves (interface contract,
guarantees with scale-relative tolerances, independent references such as the convex hull's min-norm
point by face enumeration and a dense simplex grid) are in conftest.py, shared with test_fuzz.py.
"""

from __future__ import annotations

import math

import pytest
import torch

from toyopt.methods import METHODS, MethodSpec, StepInput, lane_params

F64 = torch.float64
NAMES = sorted(METHODS)
STATEFUL = [n for n in NAMES if METHODS[n].stateful]
CLAIMS = [(n, g) for n in NAMES for g in sorted(METHODS[n].guarantees) if g != "permutation_invariant"]
PERMUTATION_INVARIANT = [n for n in NAMES if "permutation_invariant" in METHODS[n].guarantees]
FLOAT_PARAMS = [(n, p.name) for n in NAMES for p in METHODS[n].params if p.kind == "float"]
SCALES = (1e-8, 1e-4, 1.0, 1e4, 1e8)


def rotate(v: torch.Tensor, angle: float) -> torch.Tensor:
    c, s = math.cos(angle), math.sin(angle)
    return torch.stack([c * v[0] - s * v[1], s * v[0] + c * v[1]])


def adversarial_cases(K: int) -> dict[str, torch.Tensor]:
    """Named (K, 2) gradient sets at unit scale: zeros, parallel, opposite, nearly opposite, ..."""
    v = torch.tensor([0.6, 0.8], dtype=F64)
    zero = torch.zeros(2, dtype=F64)
    nearly_opposite = math.pi - math.sqrt(2e-12)  # cos = -1 + 1e-12
    if K == 2:
        cases = {
            "both zero": [zero, zero],
            "first zero": [zero, v],
            "second zero": [v, zero],
            "equal": [v, v],
            "parallel": [v, 3 * v],
            "anti-parallel": [v, -2 * v],
            "opposite": [v, -v],
            "nearly opposite": [v, rotate(v, nearly_opposite)],
            "nearly opposite, unequal": [v, 3 * rotate(v, nearly_opposite)],
            "nearly equal": [v, (1 + 1e-9) * rotate(v, 1e-9)],
            "orthogonal": [v, 2 * rotate(v, math.pi / 2)],
            "obtuse": [v, 0.5 * rotate(v, 2.5)],
            "acute": [v, 4 * rotate(v, 0.3)],
            "tiny and huge": [1e-8 * v, 1e8 * rotate(v, 2.0)],
            "huge and tiny": [1e8 * v, 1e-8 * rotate(v, -2.0)],
        }
    else:
        cases = {
            "all zero": [zero, zero, zero],
            "one zero": [zero, v, rotate(v, 2.0)],
            "two zero": [zero, v, zero],
            "all parallel": [v, 2 * v, 0.5 * v],
            "collinear, mixed signs": [v, -v, 2 * v],
            "120 degrees": [v, rotate(v, 2 * math.pi / 3), rotate(v, 4 * math.pi / 3)],
            "opposite and orthogonal": [v, -v, rotate(v, math.pi / 2)],
            "nearly opposite and small": [v, rotate(v, nearly_opposite), 1e-3 * rotate(v, 1.0)],
            "duplicate": [v, v, rotate(v, 1.0)],
            "tiny, huge, unit": [1e-8 * v, 1e8 * rotate(v, 2.0), rotate(v, -2.0)],
        }
    return {name: torch.stack(gs) for name, gs in cases.items()}


def adversarial_batch(K: int) -> tuple[list[str], torch.Tensor]:
    """Every adversarial case at every scale in SCALES, as labels and grads (B, K, 2)."""
    labels, grads = [], []
    for scale in SCALES:
        for name, g in adversarial_cases(K).items():
            labels.append(f"{name} x{scale:g}")
            grads.append(scale * g)
    return labels, torch.stack(grads)


def random_grads(gen: torch.Generator, B: int, K: int, D: int, dtype=F64) -> torch.Tensor:
    """Gaussian directions with norms spread over two decades per task."""
    scale = 10.0 ** (2 * torch.rand((B, K, 1), generator=gen, dtype=F64) - 1)
    return (torch.randn((B, K, D), generator=gen, dtype=F64) * scale).to(dtype)


def param_values(spec: MethodSpec, B: int, dtype=F64, **values) -> dict:
    return lane_params(spec, values, B, dtype)


def run_steps(spec, inputs: list[StepInput], params: dict):
    """Outputs of consecutive steps from the initial state."""
    B, K, D = inputs[0].grads.shape
    state = spec.init_state(B, K, D, params, inputs[0].grads.dtype)
    outs = []
    for inp in inputs:
        out = spec.step(inp, state, params)
        outs.append(out)
        state = out.state
    return outs


def named(labels: list[str], mask: torch.Tensor) -> list[str]:
    """The labels of the lanes where mask (B,) is True."""
    return [labels[i] for i in mask.nonzero().flatten().tolist()]


def assert_sound(checks, spec, params, inp, out, labels, guarantees=True, grid_steps=0):
    """Contract, finiteness, weights identity and (optionally) the claimed guarantees, lane by lane."""
    B, K, D = inp.grads.shape
    errors = checks.contract_errors(spec, out, B, K, D, inp.grads.dtype)
    assert not errors, f"{spec.name}: {errors}"
    bad = checks.nonfinite_lanes(out)
    assert not bad.any(), f"{spec.name}: non-finite output on {named(labels, bad)}"
    if spec.weights_exact:
        off = checks.weights_mismatch(inp, out)
        assert not off.any(), f"{spec.name}: direction != sum_i weights_i g_i on {named(labels, off)}"
    if guarantees:
        report = checks.check_guarantees(spec, params, inp, out, grid_steps=grid_steps)
        failures = {g: [labels[i] for i in lanes] for g, lanes in report.failures().items()}
        assert not failures, f"{spec.name}: guarantee violated: {failures}"


def guarantee_params(spec: MethodSpec, B: int) -> dict:
    """Default parameters, with in_ball's raw update (rescale 'none') and, for methods with a float
    parameter c, a grid of c over its whole range across the lanes."""
    values = {}
    if "in_ball" in spec.guarantees and any(p.name == "rescale" for p in spec.params):
        values["rescale"] = "none"
    c_spec = next((p for p in spec.params if p.name == "c" and p.kind == "float"), None)
    if c_spec is not None and c_spec.low is not None and c_spec.high is not None:
        grid = torch.linspace(c_spec.low, c_spec.high, 7, dtype=F64).tolist()
        values["c"] = [grid[i % len(grid)] for i in range(B)]
    return param_values(spec, B, **values)


# --------------------------------------------------------------------------------------- contract


def steps_for(spec: MethodSpec) -> int:
    """Consecutive steps worth running: the state must be exercised, a stateless step need not repeat."""
    return 2 if spec.stateful else 1


@pytest.mark.parametrize("name", NAMES)
def test_random_inputs_shapes_flags_finite(checks, name):
    spec = METHODS[name]
    gen = torch.Generator().manual_seed(1)
    B = 32
    for K, D in [(2, 1), (2, 2), (3, 2), (3, 5)]:
        inp = checks.step_input(spec, random_grads(gen, B, K, D), gen)
        params = param_values(spec, B)
        (out,) = run_steps(spec, [inp], params)
        labels = [f"random K={K} D={D} lane {i}" for i in range(B)]
        assert_sound(checks, spec, params, inp, out, labels, guarantees=False)


@pytest.mark.parametrize("name", NAMES)
def test_adversarial_inputs_finite(checks, name):
    spec = METHODS[name]
    gen = torch.Generator().manual_seed(7)
    for K in (2, 3):
        labels, grads = adversarial_batch(K)
        inp = checks.step_input(spec, grads, gen)
        params = param_values(spec, len(labels))
        (out,) = run_steps(spec, [inp], params)
        assert_sound(checks, spec, params, inp, out, labels, guarantees=False)


@pytest.mark.parametrize("name", NAMES)
def test_every_parameter_bound_and_choice(checks, name):
    """Each choice value and int params at their low bound and twice their default, in turn
    (others at defaults); float params at their low and high
    bounds in alternating lanes. Random and adversarial inputs keep the contract and stay finite
    (guarantees are claimed for the default conventions, e.g. CAGrad's in_ball needs eps = 0)."""
    spec = METHODS[name]
    labels, adv = adversarial_batch(2)
    gen = torch.Generator().manual_seed(3)
    grads = torch.cat([adv, random_grads(gen, 16, 2, 2)])
    labels = labels + [f"random lane {i}" for i in range(16)]
    B = len(labels)
    floats = {
        p.name: [p.low if i % 2 else p.high for i in range(B)]
        for p in spec.params
        if p.kind == "float" and p.low is not None and p.high is not None
    }
    variants = [{}]
    for p in spec.params:
        if p.kind == "choice":
            variants += [{p.name: choice} for choice in p.choices]
        elif p.kind == "int":  # iteration counts go up to 1e5: stop at twice the default
            top = min(p.high if p.high is not None else math.inf, 2 * max(p.default, 1))
            variants += [{p.name: v} for v in (p.low, top) if v is not None]
    for variant in variants:
        params = param_values(spec, B, **floats, **variant)
        inp = checks.step_input(spec, grads, gen)
        outs = run_steps(spec, [inp] * steps_for(spec), params)
        for out in outs:
            try:
                assert_sound(checks, spec, params, inp, out, labels, guarantees=False)
            except AssertionError as err:
                raise AssertionError(f"with {variant} and float params at their bounds: {err}") from None


@pytest.mark.parametrize("name", NAMES)
def test_losses_at_and_below_lower_bounds(checks, name):
    """Losses equal to, just below and far below their lower bounds keep the output finite, and a
    method that reads losses raises some flag for those lanes (no silent fallback)."""
    spec = METHODS[name]
    lower = torch.tensor(
        [[-2.1, -21.0], [0.0, 0.0], [5.0, -3.0], [-2.1, -21.0], [0.0, 0.0], [1.0, 1.0]], dtype=F64
    )
    gap = torch.tensor(
        [[0.0, 0.0], [0.0, 0.0], [-1e-12, 2.0], [-1.0, -1e6], [-1e-300, 3.0], [1e8, 1e-3]], dtype=F64
    )
    at_or_below = (gap <= 0).any(-1)
    gen = torch.Generator().manual_seed(5)
    B = lower.shape[0]
    params = param_values(spec, B)
    inputs = [
        checks.step_input(spec, random_grads(gen, B, 2, 2), gen, losses=lower + gap, lower_bounds=lower)
        for _ in range(30 if spec.stateful else 1)
    ]
    labels = [f"losses - lower = {gap[i].tolist()}" for i in range(B)]
    flagged = torch.zeros(B, dtype=torch.bool)
    for inp, out in zip(inputs, run_steps(spec, inputs, params)):
        assert_sound(checks, spec, params, inp, out, labels)
        for value in out.flags.values():
            flagged |= value
    if spec.reads_losses:
        silent = at_or_below & ~flagged
        assert not silent.any(), f"{name}: no flag for losses at/below bound: {named(labels, silent)}"


@pytest.mark.parametrize("name", NAMES)
def test_reads_losses_is_declared_truthfully(checks, name):
    """A method that does not declare ``reads_losses`` runs without losses and lower bounds (None)
    and gives what it gives with them; one that declares it answers differently to other losses."""
    spec = METHODS[name]
    gen = torch.Generator().manual_seed(13)
    B, K, D = 8, 3, 2
    grads = random_grads(gen, B, K, D)
    params = param_values(spec, B)
    T = 30 if spec.stateful else 1  # past DWA's default 25-step window
    first = [checks.step_input(spec, grads, gen, progress=t / T) for t in range(T)]
    other = [
        inp._replace(losses=inp.lower_bounds + 1.5 * (inp.losses - inp.lower_bounds) ** 2) for inp in first
    ]
    with_losses = run_steps(spec, first, params)
    if spec.reads_losses:
        changed = run_steps(spec, other, params)
        assert any(not torch.equal(a.weights, b.weights) for a, b in zip(with_losses, changed)), (
            f"{name} declares reads_losses but ignores the losses"
        )
    else:
        without = run_steps(spec, [inp._replace(losses=None, lower_bounds=None) for inp in first], params)
        for a, b in zip(with_losses, without):
            assert torch.equal(a.direction, b.direction) and torch.equal(a.weights, b.weights)


@pytest.mark.parametrize("name", STATEFUL)
def test_state_keeps_shapes_over_20_steps(checks, name):
    spec = METHODS[name]
    gen = torch.Generator().manual_seed(11)
    B, K, D = 8, 2, 2
    params = param_values(spec, B)
    state0 = spec.init_state(B, K, D, params, F64)
    shapes = [tuple(v.shape) for v in state0]
    inputs = [checks.step_input(spec, random_grads(gen, B, K, D), gen, progress=t / 19) for t in range(20)]
    for t, (inp, out) in enumerate(zip(inputs, run_steps(spec, inputs, params))):
        assert type(out.state) is type(state0), f"step {t}: state type changed"
        assert [tuple(v.shape) for v in out.state] == shapes, f"step {t}: state shapes changed"
        assert_sound(
            checks, spec, params, inp, out, [f"lane {i}, step {t}" for i in range(B)], guarantees=False
        )


# ------------------------------------------------------------------------------------- guarantees


def guarantee_inputs(checks, spec, gen) -> list[tuple[list[str], StepInput]]:
    sets = []
    for K, D in [(2, 2), (2, 5), (3, 2), (3, 5)]:
        sets.append(([f"random K={K} D={D} lane {i}" for i in range(64)], random_grads(gen, 64, K, D)))
    for K in (2, 3):
        sets.append(adversarial_batch(K))
    return [(labels, checks.step_input(spec, grads, gen)) for labels, grads in sets]


@pytest.mark.parametrize(("name", "guarantee"), CLAIMS, ids=[f"{n}-{g}" for n, g in CLAIMS])
def test_claimed_guarantee(checks, name, guarantee):
    """non_conflicting, in_ball, in_cone, norm_g0 and min_norm (the latter against a dense simplex
    grid and the exact hull projection of 0), on random and adversarial sets, K = 2 and 3."""
    spec = METHODS[name]
    gen = torch.Generator().manual_seed(17)
    checked = 0
    for labels, inp in guarantee_inputs(checks, spec, gen):
        params = guarantee_params(spec, len(labels))
        (out,) = run_steps(spec, [inp], params)
        report = checks.check_guarantees(
            spec, params, inp, out, grid_steps=200 if inp.grads.shape[1] == 3 else 5000
        )
        assert guarantee in report.violated, f"{name} claims {guarantee} but it was not checked"
        bad = report.violated[guarantee].nonzero().flatten().tolist()
        assert not bad, f"{name}: {guarantee} violated on {[labels[i] for i in bad]}"
        checked += int(report.checked.sum())
    assert checked > 0


def independent_lanes(grads: torch.Tensor) -> torch.Tensor:
    """(B,) lanes whose gradients are linearly independent (well-conditioned Gram matrix): only there
    are weights with d = sum_i w_i g_i unique, so only there must permuted tasks permute them."""
    unit = grads / grads.norm(dim=-1, keepdim=True).clamp_min(1e-300)
    return torch.linalg.eigvalsh(unit @ unit.transpose(-1, -2))[:, 0] > 1e-6


def embed(grads: torch.Tensor, D: int) -> torch.Tensor:
    """grads (B, K, 2) embedded in R^D (zero extra coordinates)."""
    return torch.nn.functional.pad(grads, (0, D - grads.shape[-1]))


@pytest.mark.parametrize("name", PERMUTATION_INVARIANT)
def test_permutation_invariance(checks, name):
    """Permuting the tasks (grads, losses and lower bounds together) leaves the direction unchanged and
    permutes the weights (where they are unique), over consecutive steps. A transposition and a
    cycle generate every permutation of 3 tasks. Lanes whose solver reports non-convergence are
    exempt: an unfinished iteration may depend on the order of ties."""
    spec = METHODS[name]
    gen = torch.Generator().manual_seed(23)
    T = steps_for(spec)
    linear = spec.weights_exact
    for K, perms in [(2, [[1, 0]]), (3, [[1, 0, 2], [1, 2, 0]])]:
        adv_labels, adv = adversarial_batch(K)
        grads = [torch.cat([random_grads(gen, 16, K, 5), embed(adv, 5)]) for _ in range(T)]
        inputs = [checks.step_input(spec, g, gen, progress=t / T) for t, g in enumerate(grads)]
        labels = [f"random D=5 lane {i}" for i in range(16)] + adv_labels
        B = len(labels)
        params = param_values(spec, B)
        reference = run_steps(spec, inputs, params)
        for p in perms:
            permuted = [inp._replace(grads=inp.grads[:, p], losses=inp.losses[:, p]) for inp in inputs]
            permuted = [inp._replace(lower_bounds=inp.lower_bounds[:, p]) for inp in permuted]
            for t, (ref, out) in enumerate(zip(reference, run_steps(spec, permuted, params))):
                norms = inputs[t].grads.norm(dim=-1)
                size = torch.maximum(norms.amax(-1), (ref.weights.abs() * norms).sum(-1))
                d_off = (out.direction - ref.direction).norm(dim=-1) > 1e-8 * size
                w_ref = ref.weights[:, p]
                w_off = ((out.weights - w_ref).abs() > 1e-8 * w_ref.abs().amax(-1, keepdim=True)).any(-1)
                if linear:
                    w_off &= independent_lanes(inputs[t].grads)
                exempt = checks.unconverged_lanes(ref, B) | checks.unconverged_lanes(out, B)
                bad = (d_off | w_off) & ~exempt
                assert not bad.any(), f"{name}: permutation {p} changed step {t} on {named(labels, bad)}"


# -------------------------------------------------------------------- batching, determinism, dtype


def lane_inputs(checks, spec, B, K, D, T, seed):
    gen = torch.Generator().manual_seed(seed)
    grads = random_grads(gen, B, K, D)
    grads[B - 1, 1] = -grads[B - 1, 0]  # a lane with opposite gradients
    if B > 2:
        grads[1] = 0.0
    return [checks.step_input(spec, grads * (1 + 0.1 * t), gen, progress=t / max(T - 1, 1)) for t in range(T)]


def lane(inp: StepInput, i: int) -> StepInput:
    return StepInput(*(v if v is None or v.ndim == 0 else v[i : i + 1] for v in inp))


def assert_lane_matches(batched, single, i: int, what: str) -> None:
    """Lane i of a batched output equals a single-lane output (bitwise or 1e-12 relative)."""
    for key, value in batched.items():
        got, want = value[i : i + 1], single[key]
        if got.dtype == torch.bool or not torch.is_floating_point(got):
            assert torch.equal(got, want), f"{what}: {key} differs in lane {i}"
        else:
            size = want.abs().max().clamp_min(torch.finfo(want.dtype).tiny)
            assert ((got - want).abs() <= 1e-12 * size).all(), (
                f"{what}: {key} differs in lane {i}: {got} vs {want}"
            )


@pytest.mark.parametrize("name", NAMES)
def test_batching_equals_single_lanes(checks, name):
    spec = METHODS[name]
    B, K, D, T = 4, 3, 2, steps_for(spec)
    inputs = lane_inputs(checks, spec, B, K, D, T, seed=31)
    batched = run_steps(spec, inputs, param_values(spec, B))
    for i in range(B):
        single = run_steps(spec, [lane(inp, i) for inp in inputs], param_values(spec, 1))
        for t in range(T):
            assert_lane_matches(
                checks.output_tensors(batched[t]), checks.output_tensors(single[t]), i, f"step {t}"
            )


def other_value(p) -> float:
    """A value of float parameter p in its range that differs from the default."""
    high = p.high if p.high is not None else abs(p.default) * 4 + 1
    low = p.low if p.low is not None else -high
    return (p.default + high) / 2 if p.default < high else (p.default + low) / 2


@pytest.mark.parametrize(("name", "param"), FLOAT_PARAMS, ids=[f"{n}-{p}" for n, p in FLOAT_PARAMS])
def test_per_lane_float_parameter(checks, name, param):
    """Two lanes carrying different values of one float parameter each equal a one-lane run with
    that value: the method reads its parameter per lane. Stateful methods run 30 steps, past DWA's
    default 25-step window; a parameter that changes nothing on these inputs is reported as skipped."""
    spec = METHODS[name]
    values = [spec.param(param).default, other_value(spec.param(param))]
    T = 30 if spec.stateful else 1
    inputs = lane_inputs(checks, spec, 2, 2, 2, T, seed=37)
    # Both lanes see the same conflicting pair of unequal norms (MGDA's direction is 84 degrees from
    # g0, so cone and ball constraints are active): only the parameter differs between them.
    conflicting = torch.tensor([[10.0, 0.0], [-1.0, 0.5]], dtype=F64)
    for t in range(T):
        same = StepInput(*(v if v is None or v.ndim == 0 else v[:1].expand_as(v).clone() for v in inputs[t]))
        inputs[t] = same._replace(grads=(1 + 0.1 * t) * conflicting.expand(2, 2, 2).clone())
    batched = run_steps(spec, inputs, param_values(spec, 2, **{param: values}))
    for i, value in enumerate(values):
        single = run_steps(spec, [lane(inp, i) for inp in inputs], param_values(spec, 1, **{param: value}))
        for t in range(T):
            what = f"{param}={value} step {t}"
            assert_lane_matches(checks.output_tensors(batched[t]), checks.output_tensors(single[t]), i, what)
    if all(torch.equal(v[0], v[1]) for out in batched for v in checks.output_tensors(out).values()):
        pytest.skip(f"{name}.{param} = {values} changes nothing on these inputs (other params at defaults)")


@pytest.mark.parametrize("name", NAMES)
def test_deterministic(checks, name):
    spec = METHODS[name]
    inputs = lane_inputs(checks, spec, 8, 3, 2, steps_for(spec), seed=41)
    first = run_steps(spec, inputs, param_values(spec, 8))
    second = run_steps(spec, inputs, param_values(spec, 8))
    for t, (a, b) in enumerate(zip(first, second)):
        ta, tb = checks.output_tensors(a), checks.output_tensors(b)
        assert ta.keys() == tb.keys()
        for key in ta:
            assert torch.equal(ta[key], tb[key]), f"{name}: {key} differs between identical runs at step {t}"


@pytest.mark.parametrize("name", NAMES)
def test_float32(checks, name):
    """float32 in, float32 out (direction, weights, state), finite, and close to the float64 result
    on random inputs (3 independent gradients in R^5, one pair opposite)."""
    spec = METHODS[name]
    inputs64 = lane_inputs(checks, spec, 8, 3, 5, steps_for(spec), seed=43)
    inputs32 = [StepInput(*(v if v is None else v.float() for v in inp)) for inp in inputs64]
    outs32 = run_steps(spec, inputs32, param_values(spec, 8, torch.float32))
    outs64 = run_steps(spec, inputs64, param_values(spec, 8))
    labels = [f"lane {i}" for i in range(8)]
    for inp, out32, out64 in zip(inputs32, outs32, outs64):
        assert_sound(checks, spec, param_values(spec, 8, torch.float32), inp, out32, labels, guarantees=False)
        scale = inp.grads.double().norm(dim=-1).amax(-1, keepdim=True)
        off = ((out32.direction.double() - out64.direction).abs() > 1e-3 * scale).any(-1)
        assert not off.any(), (
            f"{name}: float32 differs from float64 in lanes {off.nonzero().flatten().tolist()}"
        )
