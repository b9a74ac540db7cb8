"""The app's backend: it opens on the published settings, runs compiled where every method's
compiled step is ready and eager with a visible notice where not, and starts one background
warm-up per server (never in tests unless asked). Nothing here compiles: readiness is faked."""

from __future__ import annotations

import shutil
import sys
import threading

import pytest

from toyopt import budget
from toyopt.cli import build_parser
from toyopt.config import Config
from toyopt.methods import METHODS
from toyopt.setups import DEFAULT_SETUP, get_setup
from toyopt.ui import runs, state, warmup

FAST = {"view": "trajectories", "methods": "ls,mgda", "steps": 120, "lr": 0.05}


def test_the_app_opens_on_the_published_lr_and_steps(app):
    at = app(view="landscape")
    setup = get_setup(DEFAULT_SETUP)
    assert at.number_input(key="w:steps").value == setup.steps
    assert at.number_input(key="w:lr").value == pytest.approx(setup.lr)
    assert not any(b.label == "Quick" for b in at.button)
    values, _ = state.parse_query({})
    config = runs.build_config(values)
    assert (config.steps, config.lr) == (setup.steps, setup.lr)


def test_a_method_not_compiled_yet_runs_eager_with_a_notice(app, monkeypatch):
    monkeypatch.setattr(runs, "missing", lambda config: ["mgda"])
    at = app(**FAST)
    assert not at.exception
    notices = [i.value for i in at.info if "not ready" in i.value]
    assert notices == [f"Compiled step of {METHODS['mgda'].label} not ready (warming up): runs eager."]
    shown = next(c.value for c in at.caption if "steps of adam" in c.value)
    assert shown.startswith("120 steps"), "the run itself went ahead"


def test_without_a_compiler_the_app_runs_eager_and_says_so(app, monkeypatch):
    monkeypatch.setattr(runs, "compiler_missing", lambda: "no C++ compiler found")
    at = app(**FAST)
    assert any("No C++ compiler found" in i.value for i in at.info)
    assert any(c.value.startswith("120 steps") for c in at.caption)


def test_a_ready_run_is_compiled_and_estimated_as_compiled(app, monkeypatch):
    """Between the two backends' estimates, the gate opens for the compiled run only."""
    ran = []
    monkeypatch.setattr(runs, "compiler_missing", lambda: None)
    monkeypatch.setattr(runs, "missing", lambda config: [])
    monkeypatch.setattr(runs, "cached_run", lambda config_json: ran.append(config_json))
    config = runs.build_config(state.parse_query({k: str(v) for k, v in FAST.items()})[0])
    low, high = budget.estimated_seconds(config, "compiled"), budget.estimated_seconds(config, "eager")
    assert low < high
    monkeypatch.setattr(runs, "SLOW_SECONDS", (low + high) / 2)
    at = app(**FAST)
    assert not at.exception
    assert not any(b.label.startswith("Run anyway") for b in at.button)
    assert not [i.value for i in at.info]
    assert [Config.from_json(j).backend for j in ran] == ["compiled"]
    monkeypatch.setattr(runs, "missing", lambda config: ["ls", "mgda"])  # eager: the gate closes
    at = app(**FAST)
    assert any(b.label.startswith("Run anyway") for b in at.button)
    assert len(ran) == 1


def test_the_warmup_command_compiles_the_default_presets_methods():
    cmd = warmup.command()
    if shutil.which("nice"):
        assert cmd[:3] == [shutil.which("nice"), "-n", str(warmup.WARMUP_NICE)]
        cmd = cmd[3:]
    assert cmd[:3] == [sys.executable, "-m", "toyopt"]
    args = build_parser().parse_args(cmd[3:])
    assert args.setup == DEFAULT_SETUP
    assert args.method == list(state.setup_methods(DEFAULT_SETUP)) == list(get_setup(DEFAULT_SETUP).methods)
    assert args.handler.__module__ == "toyopt.cli.warmup"


def test_the_warmup_is_disabled_by_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("TOYOPT_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("TOYOPT_WARMUP", "0")
    assert warmup.disabled() == "$TOYOPT_WARMUP is 0"
    assert warmup.start() is None
    assert not any(tmp_path.rglob("*")), "nothing started, nothing written"


def test_the_warmup_runs_in_the_background_logs_and_is_reaped(monkeypatch, tmp_path):
    monkeypatch.setenv("TOYOPT_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("TOYOPT_WARMUP", "1")
    monkeypatch.setattr(warmup, "compiler_missing", lambda: None)
    script = "import os; print('warm', os.environ['OMP_NUM_THREADS'])"
    monkeypatch.setattr(warmup, "command", lambda setup=DEFAULT_SETUP: [sys.executable, "-c", script])
    proc = warmup.start()
    assert proc is not None
    reapers = [t for t in threading.enumerate() if t.name == "toyopt-warmup-reaper"]
    assert reapers
    for t in reapers:
        t.join(timeout=60)
    assert proc.returncode == 0, "reaped by the thread: no zombie"
    assert warmup.log_path().read_text().split() == ["warm", "1"]
    monkeypatch.setattr(warmup, "compiler_missing", lambda: "no C++ compiler found")
    assert warmup.start() is None


def test_a_run_of_many_lanes_goes_eager_without_a_notice(monkeypatch):
    """A basin-sized run is estimated faster eagerly (compiled pays more per lane): eager, and no
    "not ready" notice, even with nothing compiled; a few lanes go compiled once ready."""
    monkeypatch.setattr(runs, "compiler_missing", lambda: None)
    monkeypatch.setattr(runs, "missing", lambda config: [entry.name for entry in config.methods])
    setup = get_setup("nashmtl2022")
    grid = tuple((x / 2, y / 2) for x in range(-18, 19) for y in range(-18, 19))  # 1369 starts
    many = setup.config(methods=["ls", "mgda"], inits=grid, steps=1000).validated()
    assert budget.faster_backend(many) == "eager"
    chosen, notice = runs.choose_backend(many)
    assert chosen.backend == "eager" and notice is None
    few = setup.config(methods=["ls", "mgda"], steps=1000).validated()
    assert budget.faster_backend(few) == "compiled"
    monkeypatch.setattr(runs, "missing", lambda config: [])
    chosen, notice = runs.choose_backend(few)
    assert chosen.backend == "compiled" and notice is None
