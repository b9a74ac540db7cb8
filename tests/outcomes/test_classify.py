"""Outcome classification against starts whose outcome is known independently: points on the
Pareto set (computed by Newton's method for a chosen weight), a start next to the minimum, a
Pareto-stationary point (anti-parallel autograd gradients), a start in task 2's log valley, a run
that overflows; plus the helpers (grid starts, region clustering, Pareto weight) against closed
forms and brute force."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from toyopt import geometry
from toyopt.config import MethodEntry
from toyopt.engine import run
from toyopt.outcomes import (
    Starts,
    _project_on_polyline,
    classify,
    cluster_cells,
    point_kinds,
    stall_window,
    wilson_interval,
)
from toyopt.problems import get_problem
from toyopt.setups import get_setup

PROBLEM = get_problem("liu2021")
NASH = get_setup("nashmtl2022")
PARAMS = PROBLEM.validate_params(NASH.problem_params)
BOX = ((-10.0, 10.0), (-10.0, 10.0))


def autograd_grads(x) -> torch.Tensor:
    """(K, D) per-task gradients at one point by autograd on ``problem.losses``."""
    p = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    losses = PROBLEM.losses(p[None], PARAMS)[0]
    return torch.stack([torch.autograd.grad(losses[k], p, retain_graph=True)[0] for k in range(2)])


def test_grid_starts_are_cell_centres_row_major():
    pts = np.array(Starts("grid", 4, BOX).points())
    centres = [-7.5, -2.5, 2.5, 7.5]
    assert pts.shape == (16, 2)
    np.testing.assert_allclose(pts[:4, 0], centres)  # x1 varies fastest
    np.testing.assert_allclose(pts[:4, 1], [-7.5] * 4)
    np.testing.assert_allclose(pts[::4, 1], centres)


def test_random_starts_are_seeded_and_inside_the_box():
    a = np.array(Starts("random", 500, BOX, seed=3).points())
    b = np.array(Starts("random", 500, BOX, seed=3).points())
    c = np.array(Starts("random", 500, BOX, seed=4).points())
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    assert (a >= -10).all() and (a <= 10).all()
    # Uniform: each quadrant holds about a quarter (binomial sd ~ 10 of 125).
    quadrant = (a[:, 0] > 0) * 2 + (a[:, 1] > 0)
    assert np.all(np.abs(np.bincount(quadrant, minlength=4) - 125) < 50)


@pytest.mark.parametrize("kind,n", [("grid", 1), ("grid", 201), ("random", 0), ("cube", 4)])
def test_starts_reject_bad_sizes(kind, n):
    with pytest.raises(ValueError):
        Starts(kind, n, BOX).validated()


def _brute_components(points: np.ndarray, cell: float) -> list[set]:
    keys = np.floor(points / cell).astype(int)
    n = len(points)
    parent = list(range(n))

    def find(i):
        while parent[i] != i:
            i = parent[i]
        return i

    for i in range(n):
        for j in range(i + 1, n):
            if np.abs(keys[i] - keys[j]).max() <= 1:
                parent[find(i)] = find(j)
    groups: dict[int, set] = {}
    for i in range(n):
        groups.setdefault(find(i), set()).add(i)
    return sorted(groups.values(), key=lambda g: min(g))


def test_cluster_cells_matches_brute_force_single_linkage():
    rng = np.random.default_rng(0)
    points = np.concatenate(
        [rng.normal((5, 4), 0.3, (60, 2)), rng.normal((-5, 1), 0.2, (30, 2)), rng.uniform(-10, 10, (40, 2))]
    )
    labels = cluster_cells(points, 0.5)
    ours = sorted(
        ({i for i in range(len(points)) if labels[i] == k} for k in set(labels)), key=lambda g: min(g)
    )
    assert ours == _brute_components(points, 0.5)
    sizes = np.bincount(labels)
    assert list(sizes) == sorted(sizes, reverse=True)  # R1 is the largest


def test_projection_recovers_the_pareto_weight():
    pareto = geometry.pareto_set(PROBLEM, PARAMS)
    chosen = torch.tensor([0.05, 0.37, 0.5, 0.9], dtype=torch.float64)
    # Stationary points of l f1 + (1 - l) f2 at weights that are not nodes of the polyline.
    pts = geometry.stationary_points(PROBLEM, PARAMS, chosen).numpy()
    l_, x1 = _project_on_polyline(pts, pareto.points.numpy(), pareto.lmbda.numpy())
    np.testing.assert_allclose(l_, chosen.numpy(), atol=2e-3)
    np.testing.assert_allclose(x1, pts[:, 0], atol=1e-3)


def test_wilson_interval_closed_form():
    lo, hi = wilson_interval(30, 100)
    # Wilson 95% for 30/100: 0.2189..0.3958 (standard table value).
    assert abs(lo - 0.2189) < 1e-3 and abs(hi - 0.3958) < 1e-3
    assert wilson_interval(0, 10)[0] == 0.0


@pytest.fixture(scope="module")
def known():
    """LS and MGDA (Nash-MTL conventions, f1 x 0.1, Adam 1e-3) for 400 steps from starts whose
    outcome is known without running anything."""
    gmin = geometry.global_minimum(PROBLEM, PARAMS).numpy()
    on_set = geometry.stationary_points(
        PROBLEM, PARAMS, torch.tensor([0.2, 0.8], dtype=torch.float64)
    ).numpy()
    starts = {
        "pareto_0.2": tuple(on_set[0]),
        "pareto_0.8": tuple(on_set[1]),
        "next_to_min": (gmin[0] + 0.01, gmin[1]),
        "near_min": (gmin[0] + 0.3, gmin[1]),
        "stationary": (7.0, 0.0),
        "valley_f2": (5.0, 5.0),
        "far_top_left": (-8.5, 7.5),
    }
    # Recorded as basin_config records: the start, the state stall_window steps before the end, the end.
    config = NASH.config(
        ["ls", "mgda"], inits=tuple(starts.values()), steps=400, record_every=400 - stall_window(400)
    )
    result = run(config)
    out = classify(result)
    names = list(starts)
    lane = {(lane.method, names[i % len(names)]): lane.index for i, lane in enumerate(result.lanes)}
    return out, lane, starts, result


def test_records_start_window_and_end(known):
    out, _, _, result = known
    assert list(result.recorded_steps) == [0, 360, 400]
    assert out.window == 40


def test_mgda_on_the_pareto_set_stays_and_reports_its_weight(known):
    out, lane, _, _ = known
    for name, weight in (("pareto_0.2", 0.2), ("pareto_0.8", 0.8)):
        i = lane[("mgda", name)]
        assert out.category[i] == "pareto"
        assert abs(out.pareto_l[i] - weight) < 2e-3
        assert out.steps_to_pareto[i] == 0 and out.steps_to_min[i] == -1


def test_start_next_to_the_minimum(known):
    out, lane, _, _ = known
    i = lane[("ls", "next_to_min")]
    assert out.category[i] == "global_min"
    assert out.steps_to_min[i] == 0 and out.steps_to_pareto[i] == 0
    j = lane[("ls", "near_min")]
    assert out.category[j] == "global_min"
    # 0.25 to cover at Adam's ~lr = 1e-3 per step (at most lr (1 - b1) / sqrt(1 - b2) ~ 3.2e-3).
    assert 0.25 / 3.2e-3 <= out.steps_to_min[j] <= 400


def test_mgda_at_an_anti_parallel_kink_is_stalled(known):
    out, lane, starts, _ = known
    g = autograd_grads(starts["stationary"])
    cos = float(g[0] @ g[1] / (g[0].norm() * g[1].norm()))
    assert cos < -0.999  # independent: anti-parallel task gradients at (7, 0), so MGDA's d = 0
    i = lane[("mgda", "stationary")]
    assert out.category[i] == "stalled"
    assert out.moved_last[i] == 0.0
    np.testing.assert_array_equal(out.final[i], [7.0, 0.0])
    # (7, 0) is also where f2's log term bottoms out (|0.5(-x1 + 3) + tanh(-x2) + 2| = 0): a valley
    # of task 2, which takes precedence over "pareto_stationary" in the kind.
    assert out.kind[i] == "valley_f2"


class _Quadratics:
    """f_i = |x - a_i|^2 with a_1 = (-1, 0), a_2 = (1, 0): the Pareto set is the segment."""

    centres = torch.tensor([[-1.0, 0.0], [1.0, 0.0]], dtype=torch.float64)

    def losses(self, x, params):
        return ((x[:, None, :] - self.centres[None]) ** 2).sum(-1)

    def losses_and_grads(self, x, params):
        return self.losses(x, params), 2 * (x[:, None, :] - self.centres[None])


def test_point_kinds_on_quadratics():
    q = _Quadratics()
    x = np.array([[0.3, 0.0], [0.3, 2.0], [-1.0, 0.02], [5.0, 5.0]])
    kinds = point_kinds(q, {}, x, 0.05)
    # On the segment the gradients cancel; above it they do not; within h of a_1 along g_1 lies
    # f_1's minimum (valley_f1); far away: a slope.
    assert list(kinds) == ["pareto_stationary", "slope", "valley_f1", "slope"]


def test_lane_in_task2_valley_ends_there_and_its_motion_decides_its_category(known):
    out, lane, starts, result = known
    i = lane[("ls", "valley_f2")]
    assert out.kind[i] == "valley_f2"
    # In 400 steps LS slides slowly along the valley, so whether it counts as stalled or moving is
    # decided by its displacement over the last window, recomputed here from every recorded step.
    full = run(
        replace(
            result.config, inits=(starts["valley_f2"],), methods=result.config.methods[:1], record_every=1
        )
    )
    xs = full.x[:, 0]
    moved = np.linalg.norm(xs[400] - xs[400 - out.window])
    assert out.category[i] == ("stalled" if moved < out.stall_tol else "moving"), (moved, out.stall_tol)
    # Independent: along x1 through the final point, f2 is lowest within 0.05 of it (dense search).
    x1, x2 = out.final[i]
    line = torch.tensor([[x1 + d, x2] for d in np.linspace(-1, 1, 20001)], dtype=torch.float64)
    f2 = PROBLEM.losses(line, PARAMS)[:, 1].numpy()
    assert abs(np.linspace(-1, 1, 20001)[np.argmin(f2)]) <= 0.05


def test_travelling_lane_is_moving_and_its_window_displacement_is_right(known):
    out, lane, starts, result = known
    i = lane[("ls", "far_top_left")]
    assert out.category[i] == "moving"
    # Reference: the same lane recorded at every step.
    full = run(
        replace(
            result.config, inits=(starts["far_top_left"],), methods=result.config.methods[:1], record_every=1
        )
    )
    xs = full.x[:, 0]
    assert abs(out.moved_last[i] - np.linalg.norm(xs[400] - xs[360])) < 1e-12
    assert out.moved_last[i] >= out.stall_tol


def test_overflowing_run_is_diverged():
    # SGD with lr 100 on the quadratic part (x2 < 0): x1 - 7 is multiplied by 1 - 100 * 0.2 * s ... per
    # step for task 1 and grows geometrically until the loss overflows.
    config = NASH.config(["ls"], inits=((0.0, -5.0), (-5.7, -8.4)), optimizer="sgd", lr=100.0, steps=300)
    out = classify(run(config))
    assert list(out.category) == ["diverged", "diverged"]


def test_point_kinds_slope_on_the_toy_and_plateau_on_flat_quadratics():
    assert point_kinds(PROBLEM, PARAMS, np.array([[0.0, -5.0]]), 0.05)[0] == "slope"  # the bowl's side

    class Flat(_Quadratics):
        def losses(self, x, params):
            return 1e-6 * super().losses(x, params)

        def losses_and_grads(self, x, params):
            losses, grads = super().losses_and_grads(x, params)
            return 1e-6 * losses, 1e-6 * grads

    # |g_i| = 2e-6 |x - a_i| <= 1e-4 within 50 of both centres.
    assert point_kinds(Flat(), {}, np.array([[5.0, 5.0]]), 0.05)[0] == "plateau"


def test_duplicate_method_entries_get_distinct_series_labels():
    config = NASH.config(["ls"], inits=((0.0, -8.0),), steps=5)
    config = replace(config, methods=(MethodEntry("ls"), MethodEntry("ls"))).validated()
    out = classify(run(config))
    assert len({s.title for s in out.series}) == 2
