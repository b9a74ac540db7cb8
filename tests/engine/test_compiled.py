"""The compiled backend (segment.py under torch.compile) against the eager reference loop.

Compiling a method's segment costs tens of seconds on a quiet 2-core machine (minutes on a
loaded one), so the default suite compiles one structure (ls on the Nash-MTL preset) and the
notices; the full preset x method x start comparison is marked ``compile`` (run with -m compile).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from toyopt import compiled
from toyopt.engine import run
from toyopt.setups import SETUPS, get_setup

NASH = get_setup("nashmtl2022")
#: Steps of the all-presets comparison: long enough for every method to leave its start region
#: and for most lanes to reach the Pareto set, short enough to keep -m compile's cost bounded.
COMPARE_STEPS = 3000


def assert_same_run(compiled_result, eager, atol=1e-9):
    """Final points within atol, identical outcome classes, stops, flags and first hits."""
    assert compiled_result.backend == "compiled" and not compiled_result.notices
    assert compiled_result.recorded_steps.tolist() == eager.recorded_steps.tolist()
    np.testing.assert_allclose(compiled_result.final_x, eager.final_x, rtol=0, atol=atol)
    np.testing.assert_allclose(compiled_result.x, eager.x, rtol=0, atol=atol)
    lanes = range(len(eager.lanes))
    assert [compiled_result.outcome(i) for i in lanes] == [eager.outcome(i) for i in lanes]
    assert compiled_result.stop_reason == eager.stop_reason
    assert np.array_equal(compiled_result.stop_step, eager.stop_step)
    assert np.array_equal(compiled_result.first_global_min, eager.first_global_min)
    assert np.array_equal(compiled_result.first_pareto, eager.first_pareto)
    for name in eager.flag_counts:
        assert np.array_equal(compiled_result.flag_counts[name], eager.flag_counts[name]), name
        assert np.array_equal(compiled_result.flag_first[name], eager.flag_first[name]), name
        assert np.array_equal(compiled_result.flags[name], eager.flags[name]), name


@pytest.mark.slow
def test_compiled_matches_eager_with_records_and_first_hits():
    """Records every 70 steps (the app's interval at 35k steps, here at 1400): one segment per
    record; lanes reach the Pareto set within the run, so first hits are compared too."""
    config = NASH.config(methods=["ls"], steps=1400, record_every=70)
    eager = run(config)
    assert (eager.first_pareto >= 0).any(), "the comparison needs lanes that reach the Pareto set"
    assert_same_run(run(replace(config, backend="compiled")), eager)


@pytest.mark.slow
def test_one_compiled_segment_serves_other_lane_counts_and_settings():
    """Lanes, lr, steps and starts are runtime inputs: a second run changing them compiles nothing."""
    from torch._dynamo.utils import counters

    config = replace(NASH.config(methods=["ls"], steps=300, record_every=100), backend="compiled")
    run(config)
    before = counters["stats"]["unique_graphs"]
    other = replace(config, inits=NASH.inits[:3], lr=0.002, steps=250, record_every=50)
    result = run(other)
    assert counters["stats"]["unique_graphs"] == before
    assert_same_run(result, run(replace(other, backend="eager")))


def test_no_compiler_runs_eager_with_a_notice(monkeypatch):
    monkeypatch.setattr(compiled, "compiler_missing", lambda: "no C++ compiler found")
    config = NASH.config(methods=["ls"], steps=20, backend="compiled")
    result = run(config)
    assert result.backend == "eager"
    assert result.notices == ("no C++ compiler found",)
    np.testing.assert_array_equal(result.x, run(replace(config, backend="eager")).x)


def test_early_stop_runs_eager_with_a_notice():
    result = run(NASH.config(methods=["ls"], steps=20, early_stop_tol=1e-3, backend="compiled"))
    assert result.backend == "eager"
    assert len(result.notices) == 1 and "early stop" in result.notices[0]


def test_cache_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(compiled.CACHE_ENV, str(tmp_path))
    assert compiled.cache_dir().parent == tmp_path


def _preset_cases():
    for name, setup in SETUPS.items():
        for method in setup.methods:
            yield pytest.param(name, method, id=f"{name}-{method}")


@pytest.mark.compile
@pytest.mark.parametrize(("setup", "method"), list(_preset_cases()))
def test_every_preset_method_and_start_compiled_equals_eager(setup, method):
    config = get_setup(setup).config(methods=[method], steps=COMPARE_STEPS, record_every=COMPARE_STEPS // 10)
    assert_same_run(run(replace(config, backend="compiled")), run(config))


def test_warmup_without_a_compiler_says_so_in_one_line(monkeypatch, capsys):
    from toyopt.cli import main, warmup

    monkeypatch.setattr(warmup, "compiler_missing", lambda: "no C++ compiler found")
    assert main(["warmup", "--method", "ls"]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["toyopt: no C++ compiler found; nothing to warm up"]


def test_warmup_refuses_an_unknown_method(capsys):
    from toyopt.cli import main

    assert main(["warmup", "--method", "nope"]) == 2
    assert "unknown method 'nope'" in capsys.readouterr().err
