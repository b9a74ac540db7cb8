"""The trajectory engine against independent one-point-at-a-time reference loops, and its
bookkeeping (recording, outcomes, guards, early stop) against brute recomputation."""

from __future__ import annotations

from dataclasses import replace
from typing import NamedTuple

import numpy as np
import pytest
import torch

from toyopt import geometry
from toyopt.config import Config, MethodEntry
from toyopt.engine import run
from toyopt.methods import METHODS, get_method, lane_params
from toyopt.methods.base import MethodOutput, MethodSpec, ParamSpec, StepInput
from toyopt.problems import get_problem
from toyopt.setups import get_setup

PROBLEM = get_problem("liu2021")
NASH = get_setup("nashmtl2022")
STANDARD5 = NASH.inits


def reference_run(
    config: Config, entry: MethodEntry, combo: dict, init, steps: int, grads_by: str = "autograd"
):
    """One lane, one point at a time: per-task gradients by autograd on ``problem.losses`` (or the
    analytic ones), the method's step on a batch of one, the entry's output scale and clip
    (torch.nn.utils.clip_grad_norm_), and a torch.optim optimizer on a single parameter.
    Returns x_0..x_steps (steps + 1, D), the directions and the clip decisions."""
    dtype = getattr(torch, config.dtype)
    pparams = config.problem_params
    spec = get_method(entry.name)
    params = lane_params(spec, combo, 1, dtype)
    state = spec.init_state(1, PROBLEM.n_tasks, PROBLEM.dim, params, dtype)
    lower = torch.tensor(config.resolved_lower_bounds(), dtype=dtype)[None]
    x = torch.nn.Parameter(torch.tensor(init, dtype=dtype))
    if config.optimizer == "adam":
        opt = torch.optim.Adam([x], lr=config.lr)
    else:
        opt = torch.optim.SGD([x], lr=config.lr, momentum=config.momentum)
    xs, ds, clipped = [x.detach().clone()], [], []
    for t in range(steps):
        if grads_by == "autograd":
            losses = PROBLEM.losses(x[None], pparams)
            grads = torch.stack(
                [torch.autograd.grad(losses[0, k], x, retain_graph=True)[0] for k in range(PROBLEM.n_tasks)]
            )[None]
            losses = losses.detach()
        else:
            losses, grads = PROBLEM.losses_and_grads(x.detach()[None], pparams)
        progress = torch.tensor(t / max(config.steps - 1, 1), dtype=dtype)
        out = spec.step(StepInput(grads, losses, lower, None, progress), state, params)
        state = out.state
        x.grad = (out.direction[0] * entry.output_scale).clone()
        if entry.clip_norm is not None:
            norm = x.grad.norm()
            torch.nn.utils.clip_grad_norm_([x], entry.clip_norm)
            clipped.append(bool(entry.clip_norm / (norm + 1e-6) < 1))
        ds.append(x.grad.clone())
        opt.step()
        xs.append(x.detach().clone())
    return torch.stack(xs).numpy(), torch.stack(ds).numpy(), clipped


def same_result(a, b) -> None:
    """Every array of two Results identical (NaN where NaN)."""
    for name in (
        "recorded_steps",
        "x",
        "losses",
        "directions",
        "weights",
        "first_global_min",
        "first_pareto",
        "stop_step",
    ):
        assert np.array_equal(getattr(a, name), getattr(b, name), equal_nan=True), name
    assert a.stop_reason == b.stop_reason
    for name in a.flags:
        assert np.array_equal(a.flags[name], b.flags[name]), name
        assert np.array_equal(a.flag_counts[name], b.flag_counts[name]), name
        assert np.array_equal(a.flag_first[name], b.flag_first[name]), name


# -- reference loops ------------------------------------------------------------------------------


@pytest.mark.parametrize("grads_by", ["analytic", "autograd"])
def test_engine_reproduces_reference_loop(grads_by):
    """Nash-MTL setup (f1 x 0.1, ls with reduction sum, mgda with output scale 2), 5 starts."""
    steps = 300
    config = NASH.config(methods=["ls", "mgda"], steps=steps)
    result = run(config)
    assert result.x.shape == (steps + 1, 10, 2)
    for lane in result.lanes:
        entry = config.methods[lane.entry]
        ref_x, ref_d, _ = reference_run(config, entry, lane.params, lane.init, steps, grads_by)
        if grads_by == "analytic":
            assert np.array_equal(result.x[:, lane.index], ref_x), lane
            assert np.array_equal(result.directions[:-1, lane.index], ref_d), lane
        else:
            # Autograd's gradients differ from the analytic ones by rounding only.
            np.testing.assert_allclose(result.x[:, lane.index], ref_x, rtol=1e-12, atol=1e-12)
        assert np.abs(ref_x[-1] - ref_x[0]).max() > 0.1  # the lane really moved


def test_sgd_momentum_reproduces_reference_loop():
    config = NASH.config(methods=["ls"], steps=150, optimizer="sgd", lr=0.05, momentum=0.9)
    result = run(config)
    for lane in result.lanes:
        ref_x, _, _ = reference_run(config, config.methods[0], lane.params, lane.init, 150, "analytic")
        assert np.array_equal(result.x[:, lane.index], ref_x), lane


def test_clip_norm_matches_clip_grad_norm():
    entry = MethodEntry("ls", {"reduction": "sum"}, output_scale=3.0, clip_norm=0.5)
    config = NASH.config(methods=["ls"], steps=200, lr=0.01)
    config = replace(config, methods=(entry,)).validated()
    result = run(config)
    n_clipped = 0
    for lane in result.lanes:
        ref_x, ref_d, clipped = reference_run(
            config, config.methods[0], lane.params, lane.init, 200, "analytic"
        )
        np.testing.assert_allclose(result.x[:, lane.index], ref_x, rtol=1e-14, atol=1e-14)
        np.testing.assert_allclose(result.directions[:-1, lane.index], ref_d, rtol=1e-14, atol=1e-14)
        assert result.flags["clipped"][:-1, lane.index].tolist() == clipped
        assert result.flag_counts["clipped"][lane.index] == sum(clipped)
        n_clipped += sum(clipped)
        assert np.linalg.norm(result.directions[:-1, lane.index], axis=-1).max() <= 0.5
    assert 0 < n_clipped < 200 * len(result.lanes)  # both branches exercised


def test_output_scale():
    """ls mean with output scale 2 is ls sum (bit for bit: scaling by 2 is exact); scale 3
    matches the reference loop."""
    base = NASH.config(methods=["ls"], steps=120)
    doubled = replace(base, methods=(MethodEntry("ls", {"reduction": "mean"}, output_scale=2.0),))
    summed = replace(base, methods=(MethodEntry("ls", {"reduction": "sum"}),))
    a, b = run(doubled), run(summed)
    assert np.array_equal(a.x, b.x) and np.array_equal(a.directions, b.directions, equal_nan=True)
    tripled = replace(base, methods=(MethodEntry("ls", {"reduction": "mean"}, output_scale=3.0),)).validated()
    c = run(tripled)
    for lane in c.lanes:
        ref_x, ref_d, _ = reference_run(tripled, tripled.methods[0], lane.params, lane.init, 120, "analytic")
        assert np.array_equal(c.x[:, lane.index], ref_x)
        assert np.array_equal(c.directions[:-1, lane.index], ref_d)
    # Under Adam a constant factor changes the path only through eps: close, not equal.
    assert not np.array_equal(c.x, b.x)
    np.testing.assert_allclose(c.x, b.x, atol=1e-4)


# -- determinism and batching -------------------------------------------------------------------


def test_deterministic_with_noise():
    config = NASH.config(methods=["ls", "mgda"], steps=150, noise=0.2, seed=7)
    a, b = run(config), run(config)
    same_result(a, b)
    other = run(replace(config, seed=8))
    assert not np.array_equal(a.x, other.x)


RANDOM_METHODS = sorted(name for name, spec in METHODS.items() if spec.random is not None)


@pytest.mark.skipif(not RANDOM_METHODS, reason="no registered method draws random numbers")
@pytest.mark.parametrize("method", RANDOM_METHODS or ["none"])
def test_deterministic_random_method(method):
    config = NASH.config(methods=[method], steps=120, seed=3)
    same_result(run(config), run(config))


def test_noise_is_per_gradient_entry_with_the_configured_std():
    """d - (g1 + g2) at the recorded x is the sum of two N(0, sigma^2) entries for ls (sum)."""
    sigma = 0.2
    inits = tuple((float(a), float(b)) for a in np.linspace(-9, 9, 20) for b in (-6.0, 5.0))
    config = NASH.config(methods=["ls"], steps=100, noise=sigma, inits=inits)
    result = run(config)
    x = torch.tensor(result.x[:-1].reshape(-1, 2))
    _, g = PROBLEM.losses_and_grads(x, config.problem_params)
    resid = result.directions[:-1].reshape(-1, 2) - g.sum(1).numpy()
    # 4000 samples per coordinate: bounds at 4 standard errors (std 1.1%, mean 0.0045, corr 0.016).
    std = resid.std(axis=0)
    np.testing.assert_allclose(std, np.sqrt(2) * sigma, rtol=0.045)
    assert abs(resid.mean()) < 0.013
    assert abs(np.corrcoef(resid.T)[0, 1]) < 0.065


def test_entry_random_stream_does_not_depend_on_other_entries():
    """Each entry draws from its own generator: the first entry's noisy lanes are the same
    whatever the second entry is."""
    a = run(NASH.config(methods=["ls"], steps=80, noise=0.3, seed=5))
    b = run(NASH.config(methods=["ls", "mgda"], steps=80, noise=0.3, seed=5))
    assert np.array_equal(a.x, b.x[:, :5])


def test_batching_equals_one_lane_at_a_time():
    steps = 150
    config = NASH.config(methods=["ls", "mgda"], steps=steps)
    together = run(config)
    assert len(together.lanes) == 10
    for lane in together.lanes:
        alone = run(replace(config, methods=(config.methods[lane.entry],), inits=(lane.init,)))
        assert len(alone.lanes) == 1
        for name in ("x", "losses", "directions", "weights"):
            assert np.array_equal(
                getattr(together, name)[:, lane.index], getattr(alone, name)[:, 0], equal_nan=True
            )
        assert together.stop_reason[lane.index] == alone.stop_reason[0]
        assert together.first_pareto[lane.index] == alone.first_pareto[0]


class _Count(NamedTuple):
    t: torch.Tensor


def _fake_step(inp: StepInput, state: _Count, params) -> MethodOutput:
    """d = gain * (g1 + g2) / 2, NaN from step ``nan_at`` on (counted in the state)."""
    B, K, _ = inp.grads.shape
    w = params["gain"][:, None] * torch.full((B, K), 0.5, dtype=inp.grads.dtype)
    d = (w[..., None] * inp.grads).sum(1)
    armed = state.t >= params["nan_at"]
    d = torch.where(armed[:, None], torch.full_like(d, float("nan")), d)
    return MethodOutput(d, w, _Count(state.t + 1), {"armed": armed})


FAKE = MethodSpec(
    name="fake_nan",
    label="fake",
    paper="test double",
    step=_fake_step,
    params=(
        ParamSpec("nan_at", 1e9, "first step with a NaN direction", low=0, high=1e9),
        ParamSpec("gain", 1.0, "direction multiplier", low=0, high=1e300),
    ),
    init=lambda B, K, D, params, dtype: _Count(torch.zeros(B, dtype=dtype)),
    flags={"armed": "the NaN direction was returned"},
)


@pytest.fixture
def fake_method(monkeypatch):
    monkeypatch.setitem(METHODS, FAKE.name, FAKE)
    return FAKE.name


def test_float_grid_equals_separate_runs(fake_method):
    inits = ((-8.5, 7.5), (0.0, 0.0), (9.0, -1.0))
    config = Config(
        methods=(MethodEntry(fake_method, {"gain": [0.5, 2.0, 1.0]}),), inits=inits, steps=120
    ).validated()
    grid = run(config)
    assert [lane.params["gain"] for lane in grid.lanes] == [0.5] * 3 + [2.0] * 3 + [1.0] * 3
    assert [lane.grid_index for lane in grid.lanes] == [0] * 3 + [1] * 3 + [2] * 3
    for lane in grid.lanes:
        single = run(
            replace(
                config, methods=(MethodEntry(fake_method, {"gain": lane.params["gain"]}),), inits=(lane.init,)
            )
        )
        assert np.array_equal(grid.x[:, lane.index], single.x[:, 0])
    # The gain really changes the trajectory.
    assert not np.array_equal(grid.x[:, 0], grid.x[:, 3])


@pytest.mark.skipif("cagrad" not in METHODS, reason="cagrad is not registered")
def test_cagrad_c_grid_equals_separate_runs():
    config = NASH.config(methods=["cagrad"], params={"cagrad": {"c": [0.2, 0.5]}}, steps=100)
    grid = run(config)
    assert len(grid.lanes) == 10
    for c_index, c in enumerate([0.2, 0.5]):
        single = run(NASH.config(methods=["cagrad"], params={"cagrad": {"c": c}}, steps=100))
        assert np.array_equal(grid.x[:, 5 * c_index : 5 * c_index + 5], single.x)


def test_nan_direction_stops_only_that_lane(fake_method):
    inits = ((-8.5, 7.5), (9.0, -1.0))
    steps = 60
    entry = MethodEntry(fake_method, {"nan_at": [5, 40, 1e9]})
    config = Config(methods=(entry, MethodEntry("ls")), inits=inits, steps=steps).validated()
    result = run(config, chunk=16)  # step 40 falls in the third chunk
    clean = run(replace(config, methods=(MethodEntry(fake_method),)))
    stop_at = {0: 5, 1: 5, 2: 40, 3: 40}
    for lane in result.lanes:
        i = lane.index
        if i in stop_at:
            s = stop_at[i]
            assert result.stop_reason[i] == "nonfinite_direction"
            assert result.stop_step[i] == s
            assert result.outcome(i) == "diverged"
            assert result.flag_first["nonfinite_direction"][i] == s
            assert result.flag_counts["nonfinite_direction"][i] == 1
            assert result.flag_first["armed"][i] == s and result.flag_counts["armed"][i] == 1
            # Up to the stop the lane is the clean trajectory; from there it stays at x_s.
            assert np.array_equal(result.x[: s + 1, i], clean.x[: s + 1, i % 2])
            assert np.array_equal(result.x[s:, i], np.broadcast_to(clean.x[s, i % 2], (steps + 1 - s, 2)))
            assert np.isfinite(result.directions[:s, i]).all() and np.isnan(result.directions[s:, i]).all()
            assert np.array_equal(result.final_losses[i], clean.losses[s, i % 2])
        else:
            assert result.stop_reason[i] == "completed" and result.stop_step[i] == steps
            assert result.flag_counts["nonfinite_direction"][i] == 0
            assert result.flag_first["nonfinite_direction"][i] == -1
    assert np.array_equal(result.x[:, 4:6], clean.x)
    ls_alone = run(replace(config, methods=(MethodEntry("ls"),)))
    assert np.array_equal(result.x[:, 6:], ls_alone.x)


def test_nonfinite_loss_freezes_at_last_finite_point(fake_method):
    """A huge direction with SGD sends x to about 1e300 where the squared losses overflow."""
    config = Config(
        methods=(MethodEntry(fake_method, {"gain": [1e298, 1e300]}),),
        inits=((1.0, -3.0),),
        optimizer="sgd",
        lr=100.0,
        steps=10,
    ).validated()
    result = run(config)
    for i in range(2):
        assert result.stop_reason[i] == "nonfinite_loss"
        assert result.stop_step[i] == 1
        assert result.outcome(i) == "diverged"
        assert np.array_equal(result.final_x[i], [1.0, -3.0])
        assert np.isfinite(result.final_losses[i]).all()
        assert result.flag_first["nonfinite_loss"][i] == 1


# -- recording and bookkeeping ------------------------------------------------------------------


def test_record_every_picks_exactly_those_steps():
    full_cfg = NASH.config(methods=["ls", "mgda"], steps=100, record_every=1)
    full = run(full_cfg, chunk=16)
    assert full.recorded_steps.tolist() == list(range(101))
    for every in (7, 10, 100, 250):
        sub = run(replace(full_cfg, record_every=every), chunk=16)
        expected = sorted(set(range(0, 100, every)) | {100})
        assert sub.recorded_steps.tolist() == expected
        for name in ("x", "losses", "weights"):
            assert np.array_equal(getattr(sub, name), getattr(full, name)[expected], equal_nan=True), (
                every,
                name,
            )
        assert np.array_equal(sub.directions[:-1], full.directions[expected[:-1]])
        assert np.isnan(sub.directions[-1]).all()
        assert np.array_equal(sub.first_pareto, full.first_pareto)
        for name in full.flag_counts:
            assert np.array_equal(sub.flag_counts[name], full.flag_counts[name])
            assert np.array_equal(sub.flags[name], full.flags[name][expected])


def test_chunking_does_not_change_a_run():
    config = NASH.config(methods=["ls", "mgda"], steps=90, record_every=4)
    same_result(run(config, chunk=512), run(config, chunk=7))


@pytest.mark.parametrize("chunk", [64, 5])
def test_first_global_min_and_pareto_by_brute_force(chunk):
    """Short chunks exercise the engine's skip of lanes that cannot reach a target within a chunk
    (a stalled start at (9, 9), slow ones near both targets) against every recorded step."""
    inits = ((0.0, -6.0), (2.0, -8.0), (0.05, -8.35), (5.0, -3.0), (9.0, 9.0), (-6.0, -8.8), (-0.3, -8.3))
    tol = 0.3
    config = Config(
        methods=(MethodEntry("ls"), MethodEntry("mgda")),
        problem_params={"scale": 1.0},
        inits=inits,
        lr=0.02,
        steps=250,
        tolerance=tol,
    ).validated()
    result = run(config, chunk=chunk)
    pareto = geometry.pareto_set(PROBLEM, config.problem_params)
    gmin = geometry.global_minimum(PROBLEM, config.problem_params).numpy()
    T, B, _ = result.x.shape
    d_min = np.linalg.norm(result.x - gmin, axis=-1)
    d_par = pareto.distance(torch.tensor(result.x.reshape(-1, 2))).numpy().reshape(T, B)

    def first(hit):
        return np.where(hit.any(0), hit.argmax(0), -1)

    assert np.array_equal(result.first_global_min, first(d_min <= tol))
    assert np.array_equal(result.first_pareto, first(d_par <= tol))
    # The cases are not degenerate: reached at the start, later, and never.
    assert {0, -1} <= set(result.first_global_min.tolist())
    assert (result.first_global_min > 0).any() and (result.first_pareto > 0).any()
    for i in range(B):
        expected = "global_min" if d_min[-1, i] <= tol else "pareto" if d_par[-1, i] <= tol else "other"
        assert result.outcome(i) == expected
    assert {result.outcome(i) for i in range(B)} >= {"global_min", "other"}
    np.testing.assert_array_equal(result.global_min, gmin)


def test_early_stop_at_first_still_step():
    inits = ((0.5, -7.0), (-1.0, -9.0), (2.0, -8.0))
    tol = 2e-4
    base = Config(
        methods=(MethodEntry("ls"),),
        problem_params={"scale": 1.0},
        inits=inits,
        optimizer="sgd",
        lr=0.5,
        steps=400,
    ).validated()
    full = run(base, chunk=32)
    moved = np.linalg.norm(np.diff(full.x, axis=0), axis=-1).max(-1)  # (steps,) max over lanes
    t = int(np.argmax(moved < tol))
    assert moved[t] < tol and (moved[:t] >= tol).all() and 32 < t < 399
    stopped = run(replace(base, early_stop_tol=tol), chunk=32)
    assert stopped.steps_run == t + 1
    assert stopped.stop_reason == ["early_stop"] * 3
    assert stopped.stop_step.tolist() == [t + 1] * 3
    assert stopped.recorded_steps.tolist() == list(range(t + 2))
    assert np.array_equal(stopped.x, full.x[: t + 2])
    assert all(stopped.outcome(i) != "diverged" for i in range(3))


def test_progress_callback():
    seen = []
    run(NASH.config(methods=["ls"], steps=100), progress=seen.append, chunk=16)
    assert len(seen) == 7
    assert all(b > a for a, b in zip(seen, seen[1:]))
    assert seen[-1] == 1.0
    assert 0 < seen[0] < 1


def test_method_progress_input_runs_from_0_to_1(fake_method, monkeypatch):
    """inp.progress is t / (steps - 1): 0 at the first step, 1 at the last."""
    seen = []

    def spy(inp, state, params):
        seen.append(float(inp.progress))
        return _fake_step(inp, state, params)

    monkeypatch.setitem(METHODS, "spy", replace(FAKE, name="spy", step=spy))
    run(Config(methods=(MethodEntry("spy"),), inits=((1.0, 1.0),), steps=11).validated())
    assert seen == pytest.approx([t / 10 for t in range(11)], abs=1e-15)


def test_float32_run_close_to_float64():
    config = NASH.config(methods=["ls"], steps=100)
    a = run(config)
    b = run(replace(config, dtype="float32"))
    assert b.x.dtype == np.float32
    np.testing.assert_allclose(b.x, a.x, atol=1e-4)


@pytest.mark.slow
def test_compiled_backend_close_to_eager():
    """One method keeps the compile short; 200 steps = 12 full blocks of 16 and a padded one."""
    config = NASH.config(methods=["ls"], steps=200, record_every=1)
    eager = run(config)
    compiled = run(replace(config, backend="compiled"))
    assert compiled.recorded_steps.tolist() == eager.recorded_steps.tolist()
    np.testing.assert_allclose(compiled.x, eager.x, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(compiled.directions[:-1], eager.directions[:-1], rtol=1e-9, atol=1e-9)
    assert np.array_equal(compiled.first_pareto, eager.first_pareto)
    assert compiled.stop_reason == eager.stop_reason


@pytest.mark.slow
def test_compiled_backend_guards_match_eager(fake_method):
    """The compiled blocks test finiteness by one in-kernel sum; the guards must still stop each
    lane at the same step and freeze it at the same point as eager: a NaN direction inside a block
    and at a block's first step, across chunks (chunk 32 = two blocks of 16), and a loss that
    overflows (SGD, huge direction)."""
    entry = MethodEntry(fake_method, {"nan_at": [5, 16, 40, 1e9]})
    config = Config(
        methods=(entry, MethodEntry("ls")), inits=((-8.5, 7.5), (9.0, -1.0)), steps=60
    ).validated()
    overflow = Config(
        methods=(MethodEntry(fake_method, {"gain": [1.0, 1e298, 1e300]}),),
        inits=((1.0, -3.0),),
        optimizer="sgd",
        lr=100.0,
        steps=40,
    ).validated()
    for cfg in (config, overflow):
        eager = run(cfg, chunk=32)
        compiled = run(replace(cfg, backend="compiled"), chunk=32)
        assert compiled.stop_reason == eager.stop_reason
        assert np.array_equal(compiled.stop_step, eager.stop_step)
        np.testing.assert_allclose(compiled.final_x, eager.final_x, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(compiled.final_losses, eager.final_losses, rtol=1e-12, atol=1e-12)
        for name in eager.flag_counts:
            assert np.array_equal(compiled.flag_counts[name], eager.flag_counts[name]), name
            assert np.array_equal(compiled.flag_first[name], eager.flag_first[name]), name
    assert eager.stop_reason[1:] == ["nonfinite_loss", "nonfinite_loss"]
    stops = run(config, chunk=32)
    assert stops.stop_step[:8].tolist() == [5, 5, 16, 16, 40, 40, 60, 60]


def test_an_entrys_random_draws_do_not_depend_on_the_other_methods():
    """Gradient noise and a method's own draws come from a generator seeded by the method's name
    and occurrence, not its position: adding a method in front leaves the others' lanes as they were."""
    base = Config(
        methods=(MethodEntry("rlw"), MethodEntry("graddrop")),
        inits=((-8.5, 7.5), (9.0, -1.0)),
        steps=60,
        lr=0.05,
        noise=0.2,
        record_every=1,
    )
    alone = run(base)
    behind = run(replace(base, methods=(MethodEntry("ls"), *base.methods)))
    np.testing.assert_array_equal(behind.x[:, 2:], alone.x)
    twice = run(replace(base, methods=(MethodEntry("rlw"), MethodEntry("rlw"))))
    assert not np.array_equal(twice.x[:, :2], twice.x[:, 2:]), "a repeated entry draws its own numbers"


def test_series_regroups_lanes_by_entry_and_grid_value():
    base = get_setup("conicgrad2025").config(
        ["cagrad", "ls"], params={"cagrad": {"c": [0.2, 0.5, 0.8]}}, inits=((1.0, 2.0), (-3.0, 4.0)), steps=3
    )
    config = replace(base, methods=(*base.methods, MethodEntry("ls"))).validated()
    result = run(config)
    got = result.series()
    # The manual regroup: every (entry, grid value) pair of the config, its lanes by brute force.
    pairs = [(e, gi) for e, entry in enumerate(config.methods) for gi in range(len(entry.grid()))]
    assert [(s.entry, s.grid_index) for s in got] == pairs == [(0, 0), (0, 1), (0, 2), (1, 0), (2, 0)]
    for s in got:
        manual = [
            lane.index for lane in result.lanes if (lane.entry, lane.grid_index) == (s.entry, s.grid_index)
        ]
        assert s.lanes.tolist() == manual and len(manual) == len(config.inits)
        assert [result.lanes[i].init for i in s.lanes] == [tuple(p) for p in config.inits]
        assert all(result.lanes[i].params == s.params for i in s.lanes)
        assert s.method == config.methods[s.entry].name
    assert [s.params["c"] for s in got[:3]] == [0.2, 0.5, 0.8]
    cagrad, ls = METHODS["cagrad"].label, METHODS["ls"].label
    assert [s.title for s in got] == [
        f"{cagrad} (c = 0.2)",
        f"{cagrad} (c = 0.5)",
        f"{cagrad} (c = 0.8)",
        f"{ls} (reduction = sum) #1",
        f"{ls} #2",
    ]
    # The same regrouping from the config alone (before a run), as figures count their panels.
    from toyopt.engine import series

    assert [(s.entry, s.grid_index, s.title, s.lanes.tolist()) for s in series(config)] == [
        (s.entry, s.grid_index, s.title, s.lanes.tolist()) for s in got
    ]
