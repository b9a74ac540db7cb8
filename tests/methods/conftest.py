"""Fixtures shared by the cross-method suites (test_properties.py, test_fuzz.py).

Both suites run over every entry of ``toyopt.methods.METHODS``. The guarantee checks live here so the
hand-picked property cases and the random fuzz batches judge a method by the same rules and the same
tolerances.

Tolerances are relative to the inputs' own scale S = max_i ||g_i|| (per lane), so they mean the same at
gradient norms 1e-12 and 1e12, and they widen where the data is ill-conditioned: a method that works
from the Gram matrix knows ||g0||^2 = u^T Gamma u only up to about eps * S^2 (cancellation), hence
||g0|| only up to min(eps S^2 / ||g0||, sqrt(eps) S) (``g0_error`` below).
"""

from __future__ import annotations

import itertools
from collections import Counter
from dataclasses import dataclass

import pytest
import torch

from toyopt.methods import MethodOutput, MethodSpec, StepInput, draw_random

#: Gradient sets (lanes x steps) the fuzz checked, per method; printed at the end of the session.
FUZZ_CASES: Counter = Counter()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "fuzz: the large fuzz run over every method (>= 1e5 cases); run with -m fuzz"
    )
    config.addinivalue_line("markers", "slow: long-running tests that still belong to the default suite")


def pytest_terminal_summary(terminalreporter) -> None:
    if FUZZ_CASES:
        per_method = ", ".join(f"{name} {count}" for name, count in sorted(FUZZ_CASES.items()))
        terminalreporter.write_line(
            f"toyopt method fuzz: {sum(FUZZ_CASES.values())} gradient sets checked ({per_method})"
        )


def step_input(
    spec: MethodSpec,
    grads: torch.Tensor,
    generator: torch.Generator,
    losses: torch.Tensor | None = None,
    lower_bounds: torch.Tensor | None = None,
    progress: float = 0.5,
) -> StepInput:
    """A StepInput for ``grads`` (B, K, D). Lower bounds default to random values in [-25, 5] and
    losses to 0.1 .. 30 above them; ``random`` is drawn as the engine would."""
    B, K, D = grads.shape
    dtype = grads.dtype
    if lower_bounds is None:
        lower_bounds = -25.0 + 30.0 * torch.rand((B, K), generator=generator, dtype=torch.float64)
    if losses is None:
        gaps = 10.0 ** (-1.0 + 2.5 * torch.rand((B, K), generator=generator, dtype=torch.float64))
        losses = lower_bounds.to(torch.float64) + gaps
    random = None if spec.random is None else draw_random(spec, B, K, D, generator, dtype)
    return StepInput(
        grads, losses.to(dtype), lower_bounds.to(dtype), random, torch.tensor(progress, dtype=dtype)
    )


def output_tensors(out: MethodOutput) -> dict[str, torch.Tensor]:
    """Every tensor a step returns, by name: direction, weights, each state field and each flag."""
    tensors = {"direction": out.direction, "weights": out.weights}
    for field_name, value in zip(type(out.state)._fields, out.state):
        tensors[f"state.{field_name}"] = value
    for flag_name, value in out.flags.items():
        tensors[f"flag.{flag_name}"] = value
    return tensors


def nonfinite_lanes(out: MethodOutput) -> torch.Tensor:
    """(B,) True where the direction, weights or any floating state entry is NaN or infinite."""
    bad = ~torch.isfinite(out.direction).all(-1) | ~torch.isfinite(out.weights).all(-1)
    for value in out.state:
        if torch.is_floating_point(value):
            bad = bad | ~torch.isfinite(value.reshape(value.shape[0], -1)).all(-1)
    return bad


def contract_errors(
    spec: MethodSpec, out: MethodOutput, B: int, K: int, D: int, dtype: torch.dtype
) -> list[str]:
    """Breaches of the step interface: shapes, dtypes, declared (B,) bool flags, (B, ...) state."""
    errors = []
    if tuple(out.direction.shape) != (B, D) or out.direction.dtype != dtype:
        errors.append(
            f"direction has shape {tuple(out.direction.shape)} {out.direction.dtype}, want ({B}, {D}) {dtype}"
        )
    if tuple(out.weights.shape) != (B, K) or out.weights.dtype != dtype:
        errors.append(
            f"weights has shape {tuple(out.weights.shape)} {out.weights.dtype}, want ({B}, {K}) {dtype}"
        )
    for flag_name, value in out.flags.items():
        if flag_name not in spec.flags:
            errors.append(f"flag {flag_name!r} is not declared in SPEC.flags")
        if not isinstance(value, torch.Tensor) or value.dtype != torch.bool or tuple(value.shape) != (B,):
            errors.append(f"flag {flag_name!r} is not a ({B},) bool tensor")
    for field_name, value in zip(type(out.state)._fields, out.state):
        if not isinstance(value, torch.Tensor) or value.ndim == 0 or value.shape[0] != B:
            errors.append(f"state.{field_name} is not a ({B}, ...) tensor")
        elif torch.is_floating_point(value) and value.dtype != dtype:
            errors.append(f"state.{field_name} has dtype {value.dtype}, want {dtype}")
    return errors


def _closest_on_segment(a: torch.Tensor, b: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    edge = b - a
    length2 = (edge * edge).sum(-1)
    t = ((q - a) * edge).sum(-1) / length2.clamp_min(torch.finfo(q.dtype).tiny)
    return a + t.clamp(0.0, 1.0).unsqueeze(-1) * edge


def _closest_in_triangle(a, b, c, q) -> tuple[torch.Tensor, torch.Tensor]:
    """Orthogonal projection of q onto the plane of (a, b, c) and whether it falls inside. The
    barycentric coordinates come from a least-squares solve (float64, SVD-based), which stays
    accurate for thin triangles; a degenerate one is covered by the segments anyway."""
    e = torch.stack([a - c, b - c], dim=-1).to(torch.float64)  # (B, D, 2)
    r = (q - c).to(torch.float64).unsqueeze(-1)
    st = torch.linalg.lstsq(e, r, rcond=1e-15, driver="gelsd").solution.squeeze(-1)  # (B, 2)
    s, t = st[:, 0], st[:, 1]
    inside = torch.isfinite(st).all(-1) & (s >= 0) & (t >= 0) & (s + t <= 1)
    closest = c.to(torch.float64) + (e @ st.unsqueeze(-1)).squeeze(-1)
    return closest.to(q.dtype), inside


def hull_distance(points: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Distance from q (B, D) to conv{points_1..K} (points (B, K, D), K <= 3), by enumerating the
    hull's faces: every vertex pair (segments cover the vertices) and, for K = 3, the triangle. Every
    candidate is a true hull point, so degenerate cases can only overestimate the distance."""
    B, K, _ = points.shape
    assert K <= 3, "hull_distance enumerates faces for K <= 3 only"
    scale = points.norm(dim=-1).amax(-1).clamp_min(torch.finfo(points.dtype).tiny).unsqueeze(-1)
    p, q = points / scale.unsqueeze(-1), q / scale
    best = torch.full((B,), torch.inf, dtype=points.dtype)
    for i, j in itertools.combinations(range(K), 2):
        best = torch.minimum(best, (q - _closest_on_segment(p[:, i], p[:, j], q)).norm(dim=-1))
    if K == 3:
        closest, inside = _closest_in_triangle(p[:, 0], p[:, 1], p[:, 2], q)
        best = torch.where(inside, torch.minimum(best, (q - closest).norm(dim=-1)), best)
    return best * scale.squeeze(-1)


def simplex_grid(K: int, steps: int, dtype: torch.dtype) -> torch.Tensor:
    """All w >= 0 with sum 1 whose entries are multiples of 1/steps, (M, K)."""
    if K == 2:
        x = torch.linspace(0, 1, steps + 1, dtype=dtype)
        return torch.stack([x, 1 - x], -1)
    assert K == 3
    i, j = torch.meshgrid(torch.arange(steps + 1), torch.arange(steps + 1), indexing="ij")
    keep = i + j <= steps
    i, j = i[keep].to(dtype), j[keep].to(dtype)
    return torch.stack([i, j, steps - i - j], -1) / steps


def grid_min_norm(grads: torch.Tensor, steps: int) -> torch.Tensor:
    """min over a dense simplex grid of ||sum_i w_i g_i||, (B,): an upper bound of the min norm."""
    w = simplex_grid(grads.shape[1], steps, grads.dtype)
    return torch.einsum("mk,bkd->bmd", w, grads).norm(dim=-1).amin(-1)


@dataclass
class GuaranteeReport:
    violated: dict[str, torch.Tensor]  # guarantee -> (B,) bool
    checked: torch.Tensor  # (B,) lanes the guarantees were evaluated on

    def failures(self) -> dict[str, list[int]]:
        return {name: torch.nonzero(v).flatten().tolist() for name, v in self.violated.items() if v.any()}


def ball_applies(spec: MethodSpec, params: dict) -> bool:
    """in_ball bounds the raw CAGrad update, so it is checked only with rescaling switched off."""
    has_rescale = any(p.name == "rescale" for p in spec.params)
    return not has_rescale or params["rescale"] == "none"


def unconverged_lanes(out: MethodOutput, B: int) -> torch.Tensor:
    """(B,) lanes where the method itself reported that its solver did not converge."""
    hit = torch.zeros(B, dtype=torch.bool)
    for flag_name, value in out.flags.items():
        if "not_converged" in flag_name:
            hit = hit | value
    return hit


def check_guarantees(
    spec: MethodSpec, params: dict, inp: StepInput, out: MethodOutput, grid_steps: int = 0
) -> GuaranteeReport:
    """Evaluate every guarantee ``spec`` claims on every lane (except non-finite outputs, checked
    elsewhere, and lanes whose solver reported non-convergence). ``grid_steps`` > 0 adds a dense
    simplex grid to the min-norm reference."""
    dtype = out.direction.dtype
    eps = torch.finfo(dtype).eps
    rel = max(1e-6, 1e4 * eps)  # relative slack for iterative solvers
    floor = 1e3 * eps  # rounding, in units of S
    g, d = inp.grads.to(torch.float64), out.direction.to(torch.float64)
    B = g.shape[0]
    norms = g.norm(dim=-1)
    S = norms.amax(-1)
    g0 = g.mean(1)
    n0 = g0.norm(dim=-1)
    nd = d.norm(dim=-1)
    g0_error = torch.minimum(100 * eps * S**2 / n0.clamp_min(1e-300), 10 * eps**0.5 * S)
    checked = ~nonfinite_lanes(out) & ~unconverged_lanes(out, B)
    if spec.guarantees & {"in_ball", "in_cone"}:
        assert "c" in params, f"{spec.name} claims in_ball/in_cone but has no parameter c"
    violated = {}
    if "non_conflicting" in spec.guarantees:
        # A direction assembled from Gram-matrix quantities is resolved only to ~sqrt(eps) S (e.g. the
        # rounding residue left when every projected gradient cancels), hence that floor.
        inner = (g @ d.unsqueeze(-1)).squeeze(-1)
        slack = rel * norms * nd.unsqueeze(-1) + eps**0.5 * norms * S.unsqueeze(-1)
        violated["non_conflicting"] = (inner < -slack).any(-1)
    if "in_ball" in spec.guarantees and ball_applies(spec, params):
        c = params["c"].to(torch.float64)
        radius = c * (n0 + g0_error) * (1 + rel) + g0_error + floor * S
        violated["in_ball"] = (d - g0).norm(dim=-1) > radius
    if "in_cone" in spec.guarantees:
        c = params["c"].to(torch.float64)
        inner = (d * g0).sum(-1)
        violated["in_cone"] = inner < (c - rel) * nd * n0 - (g0_error + floor * S) * nd
    if "norm_g0" in spec.guarantees:
        violated["norm_g0"] = (nd - n0).abs() > rel * n0 + g0_error + floor * S
    if "min_norm" in spec.guarantees:
        slack = 10 * eps**0.5 * S  # the min-norm point of nearly coincident g_i is ill-conditioned
        reference = hull_distance(g, torch.zeros_like(d))
        if grid_steps:
            reference = torch.minimum(reference, grid_min_norm(g, grid_steps))
        too_long = nd > reference * (1 + rel) + slack
        outside = hull_distance(g, d) > rel * nd + slack
        violated["min_norm"] = too_long | outside
    return GuaranteeReport({k: v & checked for k, v in violated.items()}, checked)


def weights_mismatch(inp: StepInput, out: MethodOutput) -> torch.Tensor:
    """(B,) True where direction != sum_i weights_i g_i beyond rounding (finite lanes only)."""
    eps = torch.finfo(out.direction.dtype).eps
    g, w, d = inp.grads.to(torch.float64), out.weights.to(torch.float64), out.direction.to(torch.float64)
    combined = (w.unsqueeze(-1) * g).sum(1)
    size = (w.abs() * g.norm(dim=-1)).sum(-1)
    # the floor: float32 results in the subnormal range are resolved only to its spacing
    floor = torch.finfo(out.direction.dtype).smallest_normal
    return ((d - combined).norm(dim=-1) > 1e3 * eps * size + floor) & ~nonfinite_lanes(out)


class MethodChecks:
    """The helpers above, handed to the test modules by the ``checks`` fixture (a conftest is not
    imported by test modules)."""

    step_input = staticmethod(step_input)
    output_tensors = staticmethod(output_tensors)
    nonfinite_lanes = staticmethod(nonfinite_lanes)
    contract_errors = staticmethod(contract_errors)
    check_guarantees = staticmethod(check_guarantees)
    weights_mismatch = staticmethod(weights_mismatch)
    unconverged_lanes = staticmethod(unconverged_lanes)
    fuzz_cases = FUZZ_CASES


@pytest.fixture(scope="session")
def checks() -> type[MethodChecks]:
    return MethodChecks
