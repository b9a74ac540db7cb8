"""Worked examples: every registered method declares reference cases (``MethodSpec.references``)
and its ``step`` must reproduce them.

The declared numbers are recomputed here by ``independent.py`` (numpy on the gradient vectors:
brute-force searches, face enumeration, closed forms, torch.optim replays of the reference codes'
loops), never by toyopt, and a deliberately wrong formula must fail its method's cases.
"""

from __future__ import annotations

import dataclasses

import independent as ind
import numpy as np
import pytest
import torch

from toyopt.methods import (
    METHODS,
    MethodOutput,
    MethodSpec,
    ReferenceCase,
    StepInput,
    get_method,
    lane_params,
)

F64 = torch.float64
CASES = [(name, i) for name in sorted(METHODS) for i in range(len(METHODS[name].references))]
IDS = [f"{name}-{i}" for name, i in CASES]


def run_case(spec: MethodSpec, case: ReferenceCase) -> MethodOutput:
    """``case.steps`` steps of ``spec`` from its initial state on the case's inputs (one lane)."""
    grads = torch.tensor([case.grads], dtype=F64)
    _, K, D = grads.shape
    params = lane_params(spec, case.params, 1, F64)
    state = spec.init_state(1, K, D, params, F64)
    lower = None if case.lower_bounds is None else torch.tensor([case.lower_bounds], dtype=F64)
    random = None if case.random is None else torch.tensor([case.random], dtype=F64)
    for t in range(case.steps):
        losses = torch.tensor([case.losses[t]], dtype=F64) if case.losses else None
        progress = torch.tensor(t / max(case.steps - 1, 1), dtype=F64)
        out = spec.step(StepInput(grads, losses, lower, random, progress), state, params)
        state = out.state
    return out


def case_errors(spec: MethodSpec, case: ReferenceCase) -> list[str]:
    """How ``spec`` misses ``case``: entries of the direction or weights off by more than the tolerance."""
    out = run_case(spec, case)
    errors = []
    for what, got, want in [
        ("direction", out.direction[0], case.direction),
        ("weights", out.weights[0], case.weights),
    ]:
        off = (got - torch.tensor(want, dtype=F64)).abs().max().item()
        if not off <= case.tolerance:
            errors.append(f"{what} {got.tolist()} != {list(want)} (off by {off:.3g} > {case.tolerance:g})")
    return errors


def test_every_method_declares_a_reference_case():
    missing = [name for name, spec in METHODS.items() if not spec.references]
    assert not missing, f"methods without a worked example (MethodSpec.references): {missing}"


def test_cases_give_losses_exactly_to_methods_that_read_them():
    """A method that does not read losses runs its cases with losses None, so a case also checks
    that ``reads_losses`` is not understated."""
    for name, spec in METHODS.items():
        assert all(bool(case.losses) == spec.reads_losses for case in spec.references), name


@pytest.mark.parametrize(("name", "index"), CASES, ids=IDS)
def test_step_reproduces_reference_case(name, index):
    spec = METHODS[name]
    errors = case_errors(spec, spec.references[index])
    assert not errors, f"{name} case {index} ({spec.references[index].derivation}): {errors}"


def _grads(case: ReferenceCase) -> np.ndarray:
    return np.array(case.grads)


def _lower(case: ReferenceCase) -> np.ndarray:
    return np.array(case.lower_bounds)


def _orders(case: ReferenceCase) -> list[list[int]]:
    """PCGrad's visiting orders: row i is the argsort of the i-th K random numbers (K = 2: fixed)."""
    K = len(case.grads)
    if case.random is None:
        return [[i, 1 - i] for i in range(2)]
    return [list(np.argsort(case.random[i * K : (i + 1) * K])) for i in range(K)]


#: One independent derivation per method, fed with the case's own inputs and parameters.
DERIVE = {
    "ls": lambda c: ind.ls(_grads(c), c.params.get("reduction", "mean")),
    "stl": lambda c: ind.stl(_grads(c), c.params["task"]),
    "si": lambda c: ind.si(_grads(c), c.losses[-1], _lower(c)),
    "rlw": lambda c: ind.rlw(_grads(c), c.random),
    "normalized_sum": lambda c: ind.normalized_sum(_grads(c)),
    "uw": lambda c: ind.uw(_grads(c), c.losses, _lower(c), c.params["lr"]),
    "dwa": lambda c: ind.dwa(_grads(c), c.losses, _lower(c), 2.0),
    "famo": lambda c: ind.famo(_grads(c), c.losses, _lower(c), c.params["w_lr"]),
    "gradnorm": lambda c: ind.gradnorm(_grads(c), c.losses, _lower(c), 1.5, c.params["lr"]),
    "mgda": lambda c: ind.mgda(_grads(c)),
    "mgda_avg_argmin": lambda c: ind.mgda_avg_argmin(_grads(c), c.params["iterations"]),
    "mgda_softmax": lambda c: ind.mgda_softmax(_grads(c), c.params["steps"], 1.0),
    "sdmgrad": lambda c: ind.sdmgrad(_grads(c), c.params["lmbda"]),
    "cagrad": lambda c: ind.cagrad(_grads(c), c.params["c"], c.params["rescale"]),
    "conicgrad_exact": lambda c: ind.conicgrad_exact(_grads(c), c.params["c"]),
    "conicgrad": lambda c: ind.conicgrad_sgd(
        _grads(c), c.params["c"], 1.0, c.params["sign"], c.params["solver_steps"], c.params["solver_lr"]
    ),
    "upgrad": lambda c: ind.upgrad(_grads(c)),
    "pcgrad": lambda c: ind.pcgrad(_grads(c), _orders(c), "sum"),
    "gradops": lambda c: ind.gradops(_grads(c), c.params.get("project_when", "conflict")),
    "gradvac": lambda c: ind.gradvac(_grads(c), c.steps, 0.5),
    "graddrop": lambda c: ind.graddrop(_grads(c), c.random, "mean"),
    "imtlg": lambda c: ind.imtlg(_grads(c)),
    "nashmtl": lambda c: ind.nashmtl(_grads(c)),
    "aligned_mtl": lambda c: ind.aligned_mtl(_grads(c), c.params.get("preference", "ones")),
}


@pytest.mark.parametrize(("name", "index"), CASES, ids=IDS)
def test_declared_numbers_match_independent_derivation(name, index):
    """The numbers a module declares are what an independent derivation gives (so they were not
    copied from the module's own output)."""
    if name not in DERIVE:
        pytest.skip(f"no independent derivation of {name} in tests/methods/independent.py")
    case = METHODS[name].references[index]
    direction, weights = DERIVE[name](case)
    assert np.abs(direction - np.array(case.direction)).max() <= case.tolerance
    assert np.abs(weights - np.array(case.weights)).max() <= case.tolerance


def test_the_derivations_cover_every_method():
    assert sorted(DERIVE) == sorted(METHODS)


def _mutant(spec: MethodSpec, change) -> MethodSpec:
    """``spec`` with its step's weights replaced by change(weights, grads) and d rebuilt from them."""

    def step(inp, state, params):
        out = spec.step(inp, state, params)
        weights = change(out.weights, inp.grads)
        return out._replace(direction=(weights.unsqueeze(-1) * inp.grads).sum(-2), weights=weights)

    return dataclasses.replace(spec, step=step)


@pytest.mark.parametrize("name", sorted(METHODS))
def test_a_wrong_formula_fails_the_reference_cases(name):
    """Weights 0.1 % too large, or handed to the wrong tasks, are caught by the method's cases."""
    spec = METHODS[name]
    scaled = _mutant(spec, lambda w, g: 1.001 * w)
    assert any(case_errors(scaled, case) for case in spec.references), f"{name}: a 0.1% error passes"
    if any(len(set(case.weights)) > 1 for case in spec.references):
        swapped = _mutant(spec, lambda w, g: w.roll(1, dims=-1))
        assert any(case_errors(swapped, case) for case in spec.references), f"{name}: swapped tasks pass"


def test_a_plausible_wrong_dwa_fails():
    """DWA with the loss ratio upside down (older / newer instead of newer / older), a slip that
    keeps every automatic property (finite, permutation-invariant, weights summing to 1), fails its
    worked example. With a one-step window, feeding 1 / L inverts the ratio exactly."""
    spec = get_method("dwa")

    def inverted_ratio(inp, state, params):
        shifted = inp.losses - inp.lower_bounds
        return spec.step(inp._replace(losses=inp.lower_bounds + 1 / shifted), state, params)

    wrong = dataclasses.replace(spec, step=inverted_ratio)
    assert all(case.params.get("window") == 1 for case in spec.references)
    assert all(case_errors(wrong, case) for case in spec.references)


# Convergence of the iterative solvers to the exact MGDA point (4/13, 6/13) declared by mgda, and the
# CAGrad toy's 1e-4 guards, which move the result by less than 2e-4 on these gradients.
G_SPEC = ((1.0, 0.0), (-0.5, 1.0))
MGDA_POINT = (4 / 13, 6 / 13)
CONVERGENCE = [
    ("mgda_avg_argmin", {"iterations": 5000}, MGDA_POINT, 1e-3),
    ("mgda_softmax", {"steps": 2000}, MGDA_POINT, 5e-5),
    ("sdmgrad", {"lmbda": 0.0}, MGDA_POINT, 1e-12),
    ("cagrad", {"c": 0.5, "rescale": "1+c", "eps": 1e-4}, get_method("cagrad").references[1].direction, 2e-4),
]


@pytest.mark.parametrize(("name", "params", "expected", "tol"), CONVERGENCE, ids=[c[0] for c in CONVERGENCE])
def test_converges_to_the_exact_point(name, params, expected, tol):
    spec = get_method(name)
    g = torch.tensor([G_SPEC], dtype=F64)
    out = spec.step(StepInput(g), spec.init_state(1, 2, 2, {}, F64), lane_params(spec, params, 1, F64))
    assert torch.allclose(out.direction[0], torch.tensor(expected, dtype=F64), atol=tol, rtol=0)


def test_cagrad_dual_weight():
    """CAGrad's dual solution on G_SPEC, w1 = 0.6173 (from the brute-force d: d_raw = g0 + lam g_w
    with w = (x, 1 - x), so x = (beta_1 - 1/2) / (beta_1 + beta_2 - 1))."""
    beta = get_method("cagrad").references[0].weights
    x = (beta[0] - 0.5) / (beta[0] + beta[1] - 1)
    spec = get_method("cagrad")
    g = torch.tensor([G_SPEC], dtype=F64)
    out = spec.step(StepInput(g), None, lane_params(spec, {"rescale": "none"}, 1, F64))
    w = out.weights[0] - 0.5  # lam * (x, 1 - x)
    assert abs(float(w[0] / w.sum()) - x) < 1e-9
    assert abs(x - 0.6173) < 5e-5
