"""The compiled backend (segment.py, AOTInductor packages from compiled.py) against the eager
reference loop.

Compiling a method's segment costs tens of seconds on a quiet 2-core machine (minutes on a
loaded one), so the default suite compiles one structure (ls on the Nash-MTL preset) and the
notices; the comparison over every registered method and structure switch is marked ``compile``
(run with -m compile).
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest

from toyopt import compiled
from toyopt.engine import run
from toyopt.methods import METHODS
from toyopt.setups import SETUPS, get_setup

NASH = get_setup("nashmtl2022")


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
    record; at lr 0.1 four lanes reach the minimum within the run, so first hits are compared too."""
    config = NASH.config(methods=["ls"], steps=1400, record_every=70, lr=0.1)
    eager = run(config)
    reached = eager.first_global_min >= 0
    assert reached.sum() == 4, "the comparison needs lanes that reach the minimum"
    compiled_result = run(replace(config, backend="compiled"))
    # At ten times the published lr the lane still travelling amplifies last-bit differences of
    # the fused kernels (measured 5e-6 after 1400 steps); the lanes at the minimum agree to 1e-9.
    assert_same_run(compiled_result, eager, atol=1e-4)
    np.testing.assert_allclose(compiled_result.final_x[reached], eager.final_x[reached], rtol=0, atol=1e-9)


@pytest.mark.slow
def test_one_compiled_segment_serves_other_lane_counts_and_settings():
    """Lanes, lr, steps and starts are runtime inputs: a second run changing them compiles nothing,
    and a single start (padded to two lanes inside) runs the same package."""
    config = replace(NASH.config(methods=["ls"], steps=300, record_every=100), backend="compiled")
    run(config)
    before = compiled.compiles
    for other in (
        replace(config, inits=NASH.inits[:3], lr=0.002, steps=250, record_every=50),
        replace(config, inits=NASH.inits[:1], steps=40, record_every=1),
    ):
        assert_same_run(run(other), run(replace(other, backend="eager")))
    assert compiled.compiles == before


@pytest.mark.slow
def test_missing_names_the_entries_a_new_process_would_compile(tmp_path, monkeypatch):
    """missing() lists an entry until its package is on disk; a new process then sees none."""
    monkeypatch.setenv(compiled.CACHE_ENV, str(tmp_path))
    monkeypatch.setattr(compiled, "_SEGMENTS", {})
    config = NASH.config(methods=["ls", "mgda"], steps=2, backend="compiled")
    assert compiled.missing(config) == ["ls", "mgda"]
    run(replace(config, methods=config.methods[:1]))
    assert compiled.missing(config) == ["mgda"]  # ls: loaded
    compiled._SEGMENTS.clear()
    assert compiled.missing(config) == ["mgda"]  # ls: packaged on disk
    code = (
        "from toyopt import compiled; from toyopt.setups import get_setup; "
        "print(compiled.missing(get_setup('nashmtl2022').config(methods=['ls', 'mgda'])))"
    )
    env = {**os.environ, compiled.CACHE_ENV: str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "['mgda']"


def test_no_compiler_runs_eager_with_a_notice(monkeypatch):
    monkeypatch.setattr(compiled, "compiler_missing", lambda: "no C++ compiler found")
    config = NASH.config(methods=["ls"], steps=20, backend="compiled")
    result = run(config)
    assert result.backend == "eager"
    assert result.notices == ("no C++ compiler found",)
    np.testing.assert_array_equal(result.x, run(replace(config, backend="eager")).x)


def test_a_package_that_fails_to_build_runs_eager_with_a_notice(monkeypatch, tmp_path):
    monkeypatch.setenv(compiled.CACHE_ENV, str(tmp_path))
    monkeypatch.setattr(compiled, "_SEGMENTS", {})

    def failing(segment, example, path):
        raise RuntimeError("export failed here\nsecond line")

    monkeypatch.setattr(compiled, "_compile_package", failing)
    config = NASH.config(methods=["ls"], steps=20, backend="compiled")
    result = run(config)
    assert result.backend == "eager"
    assert result.notices == (
        "building the compiled segment of ls failed (RuntimeError: export failed here): the run ran eagerly",
    )
    np.testing.assert_array_equal(result.x, run(replace(config, backend="eager")).x)


def test_early_stop_runs_eager_with_a_notice():
    result = run(NASH.config(methods=["ls"], steps=20, early_stop_tol=1e-3, backend="compiled"))
    assert result.backend == "eager"
    assert len(result.notices) == 1 and "early stop" in result.notices[0]


def test_cache_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(compiled.CACHE_ENV, str(tmp_path))
    assert compiled.cache_dir().parent == tmp_path


def _home_setup(method: str) -> str:
    """The first preset that runs ``method`` (its published settings), else Nash-MTL's."""
    return next((name for name, setup in SETUPS.items() if method in setup.methods), "nashmtl2022")


def _structures():
    """Every registered method on its preset, then the switches a structure is made of."""
    for method in sorted(METHODS):
        setup = _home_setup(method)
        yield pytest.param(get_setup(setup).config(methods=[method], steps=300, record_every=30), id=method)
    ls = NASH.entry("ls")
    yield pytest.param(
        NASH.config(methods=["rlw"], noise=0.05, inits=NASH.inits[:1], steps=60, record_every=1),
        id="noise-own-draws-one-lane-one-step-segments",
    )
    yield pytest.param(
        replace(
            NASH.config(methods=["ls"], steps=300), methods=(replace(ls, output_scale=2.0, clip_norm=0.05),)
        ),
        id="output-scale-and-clipping",
    )
    yield pytest.param(
        NASH.config(methods=["mgda"], optimizer="sgd", momentum=0.9, lr=0.01, steps=300), id="sgd-momentum"
    )
    yield pytest.param(NASH.config(methods=["ls"], dtype="float32", steps=300), id="float32")


def _sensitivity(config) -> np.ndarray:
    """(B,) how far each lane's final point moves in the eager reference when every start moves
    by 1e-13: lanes on a chaotic path amplify rounding, so no two implementations agree there."""
    moved = replace(config, inits=tuple(tuple(v + 1e-13 for v in init) for init in config.inits))
    a, b = run(config), run(moved)
    return np.abs(a.final_x - b.final_x).max(axis=-1)


@pytest.mark.compile
@pytest.mark.parametrize("config", list(_structures()))
def test_compiled_equals_eager(config):
    """Final points within 1e-9 (float32: 1e-4), identical stops, outcome classes, flag counts and
    first steps, first hits, on every lane whose eager result is itself stable to rounding;
    chaotic lanes within 100 times their own sensitivity."""
    eager = run(config)
    result = run(replace(config, backend="compiled"))
    atol = 1e-9 if config.dtype == "float64" else 1e-4
    sensitive = _sensitivity(config)
    stable = sensitive <= atol / 100
    assert result.backend == "compiled" and not result.notices
    assert result.recorded_steps.tolist() == eager.recorded_steps.tolist()
    err = np.abs(result.final_x - eager.final_x).max(axis=-1)
    assert (err <= np.where(stable, atol, 100 * sensitive + atol)).all(), (err, sensitive)
    np.testing.assert_allclose(result.x[:, stable], eager.x[:, stable], rtol=0, atol=atol)
    lanes = np.flatnonzero(stable)
    assert [result.outcome(i) for i in lanes] == [eager.outcome(i) for i in lanes]
    for name in ("stop_step", "first_global_min", "first_pareto"):
        assert np.array_equal(getattr(result, name)[stable], getattr(eager, name)[stable]), name
    for name in eager.flag_counts:
        assert np.array_equal(result.flag_counts[name][stable], eager.flag_counts[name][stable]), name
        assert np.array_equal(result.flag_first[name][stable], eager.flag_first[name][stable]), name
        assert np.array_equal(result.flags[name][:, stable], eager.flags[name][:, stable]), name
    assert stable.sum() >= len(stable) // 2, "too few stable lanes to compare"


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
