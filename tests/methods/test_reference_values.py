"""One table of reference directions: the test vectors of docs/methods spec section 22 (and the
worked examples of section 2.4), g1 = (1, 0), g2 = (-0.5, 1), c = 0.5, lambda_SDM = 0.3.

Each value was computed independently of this code base (closed forms and numerical checks in the
specification); the spec prints 5 decimals, hence the tolerance.
"""

from __future__ import annotations

import pytest
import torch

from toyopt.methods import StepInput, get_method, lane_params

G_SPEC = ((1.0, 0.0), (-0.5, 1.0))
G_ACTIVE = ((3.0, 0.0), (-0.5, 0.4))  # spec 2.4 example 2: the cone constraint is active
CONVERGED = {"solver_steps": 1000, "solver_lr": 1.0}  # conicgrad's dual solved to convergence

# (method, params, gradients, expected d, tolerance)
REFERENCE = [
    ("mgda", {}, G_SPEC, (0.30769, 0.46154), 5e-5),
    ("mgda_avg_argmin", {"iterations": 20000}, G_SPEC, (0.30769, 0.46154), 1e-3),
    ("mgda_softmax", {"steps": 2000}, G_SPEC, (0.30769, 0.46154), 5e-5),
    ("cagrad", {"c": 0.5, "rescale": "none"}, G_SPEC, (0.45789, 0.68683), 5e-5),
    ("cagrad", {"c": 0.5, "rescale": "1+c"}, G_SPEC, (0.30526, 0.45789), 5e-5),
    ("cagrad", {"c": 0.5, "rescale": "1+c^2"}, G_SPEC, (0.36631, 0.54947), 5e-5),
    # toy.py's 1e-4 guards move the result by less than the printed precision here
    ("cagrad", {"c": 0.5, "rescale": "1+c", "eps": 1e-4}, G_SPEC, (0.30526, 0.45789), 2e-4),
    ("imtlg", {}, G_SPEC, (0.29180, 0.47214), 5e-5),
    ("upgrad", {}, G_SPEC, (0.4, 0.7), 5e-5),  # = PCGrad (mean)
    ("gradops", {}, G_SPEC, (0.8, 1.4), 5e-5),  # alpha = 0: sum of the PCGrad vectors = 2 PCGrad (mean)
    ("aligned_mtl", {"scale": "min", "preference": "ones"}, G_SPEC, (0.56810, 0.94683), 5e-5),
    ("sdmgrad", {"lmbda": 0.3}, G_SPEC, (0.30769, 0.46154), 5e-5),
    ("conicgrad_exact", {"c": 0.5}, G_SPEC, (0.31009, 0.46513), 5e-5),
    ("conicgrad_exact", {"c": 0.5}, G_ACTIVE, (0.452, 1.183), 1e-3),
    ("conicgrad", {"c": 0.5, "sign": "corrected", **CONVERGED}, G_SPEC, (0.310, 0.465), 1e-3),
    ("conicgrad", {"c": 0.5, "sign": "literal", **CONVERGED}, G_SPEC, (-0.310, -0.465), 1e-3),
    ("conicgrad", {"c": 0.5, "sign": "corrected", **CONVERGED}, G_ACTIVE, (1.040, 0.721), 2e-3),
    ("conicgrad", {"c": 0.5, "sign": "literal", **CONVERGED}, G_ACTIVE, (-1.040, -0.721), 2e-3),
]


@pytest.mark.parametrize(
    "name, params, grads, expected, tol",
    REFERENCE,
    ids=[f"{r[0]}-{i}" for i, r in enumerate(REFERENCE)],
)
def test_reference_direction(name, params, grads, expected, tol):
    spec = get_method(name)
    g = torch.tensor([grads], dtype=torch.float64)
    state = spec.init_state(1, 2, 2, spec.validate_params(params), torch.float64)
    out = spec.step(StepInput(g), state, lane_params(spec, params, 1, torch.float64))
    assert torch.allclose(out.direction[0], torch.tensor(expected, dtype=torch.float64), atol=tol, rtol=0)
    # the weights reproduce the direction
    assert torch.allclose((out.weights[0, :, None] * g[0]).sum(0), out.direction[0], atol=1e-12)


def test_cagrad_dual_weight_matches_spec():
    """The spec's CAGrad dual solution w1 = 0.6173: d_raw = g0 + lam g_w with w = (x, 1 - x)."""
    spec = get_method("cagrad")
    g = torch.tensor([G_SPEC], dtype=torch.float64)
    out = spec.step(StepInput(g), None, lane_params(spec, {"rescale": "none"}, 1, torch.float64))
    w = out.weights[0] - 0.5  # lam * (x, 1 - x)
    assert abs(float(w[0] / w.sum()) - 0.6173) < 5e-4
