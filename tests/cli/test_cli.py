"""``python -m toyopt``: output formats and clean one-line errors (exit 2, no traceback)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from toyopt.cli import main
from toyopt.config import Config
from toyopt.engine import run
from toyopt.export import CSV_COLUMNS
from toyopt.methods import METHODS
from toyopt.setups import get_setup

ROOT = Path(__file__).resolve().parents[2]
RECORD_FIELDS = {
    "method",
    "params",
    "init",
    "final",
    "final_losses",
    "outcome",
    "first_global_min_step",
    "first_pareto_step",
    "trajectory",
}
SMALL = ["--setup", "nashmtl2022", "--method", "ls", "--method", "mgda", "--steps", "20"]


def cli(argv, capsys) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def python_m(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "toyopt", *args], cwd=ROOT, capture_output=True, text=True, timeout=120
    )


def test_methods_text(capsys):
    code, out, err = cli(["methods"], capsys)
    assert code == 0 and err == ""
    names = [line.split()[0] for line in out.splitlines()]
    assert names == list(METHODS)
    # the parameters start in one column, after the longest label ("MGDA (Su, averaged argmin)")
    longest = max(METHODS.values(), key=lambda spec: len(spec.label))
    lines = dict(zip(names, out.splitlines()))
    start = lines[longest.name].index(longest.label) + len(longest.label) + 2
    for name, line in lines.items():
        assert line[start - 2 : start] == "  " and (not METHODS[name].params or line[start] != " "), line


def test_methods_json_subprocess():
    proc = python_m("methods", "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert [m["name"] for m in data] == list(METHODS)
    mgda = next(m for m in data if m["name"] == "mgda")
    assert mgda["params"][0]["name"] == "fw_iters" and mgda["params"][0]["kind"] == "int"
    assert "pareto_stationary" in mgda["flags"]
    expected = {"name", "label", "paper", "params", "flags", "guarantees", "stateful", "random", "references"}
    assert expected | {"reads_losses", "weights_exact", "weights_note"} <= set(mgda)
    assert mgda["weights_exact"] is True and mgda["reads_losses"] is False
    assert next(m for m in data if m["name"] == "graddrop")["weights_exact"] is False


def test_run_writes_documented_json(tmp_path, capsys):
    out_file = tmp_path / "run.json"
    code, out, err = cli(["run", *SMALL, "--record-every", "5", "--out", out_file], capsys)
    assert code == 0, err
    assert len(out.splitlines()) == 10  # one summary line per lane
    data = json.loads(out_file.read_text())
    assert data["format"] == "toyopt-run"
    config = Config.from_dict(data["config"])
    assert config.steps == 20 and config.record_every == 5 and config.setup == "nashmtl2022"
    assert data["recorded_steps"] == [0, 5, 10, 15, 20]
    records = data["records"]
    assert len(records) == 10
    # Independent re-run of the embedded config gives the same numbers.
    result = run(config)
    for i, rec in enumerate(records):
        assert RECORD_FIELDS <= set(rec)
        assert rec["method"] == ("ls" if i < 5 else "mgda")
        assert rec["init"] == list(get_setup("nashmtl2022").inits[i % 5])
        assert len(rec["trajectory"]) == 5
        assert rec["trajectory"][0] == rec["init"]
        assert rec["trajectory"][-1] == rec["final"]
        assert rec["final"] == result.final_x[i].tolist()
        assert rec["final_losses"] == result.final_losses[i].tolist()
        assert rec["outcome"] in ("global_min", "pareto", "other", "diverged")
        assert rec["outcome"] == result.outcome(i)
        for key in ("first_global_min_step", "first_pareto_step"):
            assert rec[key] is None or (isinstance(rec[key], int) and 0 <= rec[key] <= 20)
    assert records[0]["params"] == {"reduction": "sum"}


def test_run_subprocess_and_csv(tmp_path):
    out_file = tmp_path / "t.csv"
    proc = python_m("run", *SMALL, "--backend", "eager", "--quiet", "--out", str(out_file))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "" and proc.stderr == ""
    lines = out_file.read_text().splitlines()
    assert lines[0].startswith("# toyopt config: ")
    config = Config.from_json(lines[0].removeprefix("# toyopt config: "))
    assert config.steps == 20
    assert lines[1].split(",") == CSV_COLUMNS
    assert len(lines) == 2 + 10 * 21


def test_run_from_config_file_with_grid(tmp_path, capsys):
    config = get_setup("nashmtl2022").config(methods=["ls"], steps=15, inits=((0.0, 0.0), (9.0, -1.0)))
    cfg_file = tmp_path / "c.json"
    cfg_file.write_text(config.to_json())
    out_file = tmp_path / "o.json"
    code, _, err = cli(["run", "--config", cfg_file, "--quiet", "--out", out_file], capsys)
    assert code == 0, err
    data = json.loads(out_file.read_text())
    assert Config.from_dict(data["config"]) == config
    expected = run(config)
    assert [r["final"] for r in data["records"]] == expected.final_x.tolist()
    if "cagrad" in METHODS:
        out2 = tmp_path / "g.json"
        code, _, err = cli(
            [
                "run",
                "--config",
                cfg_file,
                "--method",
                "cagrad",
                "--set",
                "cagrad.c=0.2|0.5",
                "--quiet",
                "--out",
                out2,
            ],
            capsys,
        )
        assert code == 0, err
        recs = json.loads(out2.read_text())["records"]
        assert [r["params"]["c"] for r in recs] == [0.2, 0.2, 0.5, 0.5]


@pytest.mark.parametrize("command", ["run", "basins"])
def test_backend_flag_reaches_the_config(command, tmp_path):
    from toyopt.cli import build_parser
    from toyopt.cli._common import config_from_args

    argv = [command, "--setup", "nashmtl2022", "--method", "ls", "--out", str(tmp_path / "o.json")]
    eager = config_from_args(build_parser().parse_args([*argv, "--backend", "eager"]))
    assert eager.backend == "eager"
    compiled = config_from_args(build_parser().parse_args([*argv, "--backend", "compiled"]))
    assert compiled.backend == "compiled"
    assert Config.from_json(compiled.to_json()) == compiled


@pytest.fixture
def no_compiler(tmp_path, monkeypatch):
    """No C++ compiler on the PATH (nor $CXX), and the cached answer to that question cleared."""
    from toyopt.compiled import compiler_missing

    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("CXX", raising=False)
    compiler_missing.cache_clear()
    yield
    compiler_missing.cache_clear()


@pytest.mark.parametrize("command", ["run", "figure", "basins"])
def test_the_default_backend_is_compiled(command, tmp_path, monkeypatch):
    from toyopt.cli import build_parser
    from toyopt.cli._common import config_from_args
    from toyopt.compiler import find_cxx

    monkeypatch.undo()  # tests/conftest.py makes in-process CLI runs eager
    if find_cxx() is None:
        pytest.skip("no C++ compiler here: the default is eager (the next test)")
    argv = [command, "--setup", "nashmtl2022", "--method", "ls", "--out", str(tmp_path / "o.json")]
    assert config_from_args(build_parser().parse_args(argv)).backend == "compiled"


def test_the_default_backend_of_a_large_basin_map_is_eager(monkeypatch, tmp_path, capsys):
    """10^4 starts run faster eagerly (budget.faster_backend): basins' default picks eager there, a
    small map compiled; the map itself is not run here."""
    import toyopt.cli.basins as basins
    from toyopt.compiler import find_cxx

    monkeypatch.undo()  # tests/conftest.py makes in-process CLI runs eager
    chosen = []

    def stop(config, starts, progress=None):
        chosen.append((starts.count, config.backend))
        raise KeyboardInterrupt

    monkeypatch.setattr(basins, "run_basins", stop)
    for grid in ("100", "4"):
        argv = ["basins", "--setup", "nashmtl2022", "--method", "ls", "--grid", grid, "--quiet"]
        cli([*argv, "--out", tmp_path / f"m{grid}.json"], capsys)
    assert chosen[0] == (10_000, "eager")
    assert chosen[1] == (16, "compiled" if find_cxx() else "eager")


@pytest.mark.parametrize("command", ["run", "figure", "basins"])
def test_the_default_backend_without_a_compiler_runs_eager_with_one_line(
    command, tmp_path, capsys, monkeypatch, no_compiler
):
    monkeypatch.setattr("toyopt.cli._common.DEFAULT_BACKEND", "compiled")
    suffix = ".svg" if command == "figure" else ".json"
    args = [command, *SMALL, "--out", tmp_path / f"o{suffix}"]
    if command == "basins":
        args = [command, "--setup", "nashmtl2022", "--method", "ls", "--grid", "2", "--steps", "5"]
        args += ["--quiet", "--out", tmp_path / "o.json"]
    code, _, err = cli(args, capsys)
    assert code == 0, err
    notes = [line for line in err.splitlines() if line.startswith("toyopt: note:")]
    assert len(notes) == 1 and "no C++ compiler found" in notes[0], err
    assert "Traceback" not in err
    if command == "run":
        assert json.loads((tmp_path / "o.json").read_text())["config"]["backend"] == "eager"


def test_refuses_overwrite_without_force(tmp_path, capsys):
    out_file = tmp_path / "keep.json"
    out_file.write_text("precious")
    code, _, err = cli(["run", *SMALL, "--out", out_file], capsys)
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and "--force" in err
    assert out_file.read_text() == "precious"
    code, _, err = cli(["run", *SMALL, "--quiet", "--force", "--out", out_file], capsys)
    assert code == 0, err
    assert json.loads(out_file.read_text())["format"] == "toyopt-run"
    assert [p.name for p in tmp_path.iterdir()] == ["keep.json"]  # no temporary file left


def bad_cases(tmp: Path) -> list[tuple[list[str], str]]:
    """(argv, a phrase the one-line message must contain)."""
    (tmp / "bad.json").write_text("{not json")
    (tmp / "unknown_key.json").write_text('{"stepz": 3}')
    (tmp / "binary.json").write_bytes(b"\xff\xfe\x00\x81")
    (tmp / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    out = str(tmp / "o.json")
    base = ["run", "--setup", "nashmtl2022", "--method", "ls", "--steps", "5"]
    return [
        (["run", "--setup", "nashmtl2022", "--method", "nope", "--out", out], "unknown method 'nope'"),
        ([*base, "--set", "ls.bogus=1", "--out", out], "unknown parameter 'bogus'"),
        ([*base, "--set", "ls.reduction=max", "--out", out], "reduction must be one of"),
        (
            [*base, "--method", "mgda", "--set", "mgda.fw_iters=0", "--out", out],
            "fw_iters must be an integer in [1, 1000]",
        ),
        ([*base, "--set", "mgda.fw_iters=3", "--out", out], "not in the run"),
        ([*base, "--inits", "nan,1", "--out", out], "--inits[0][0] must be a number"),
        ([*base, "--inits", "1,2,3", "--out", out], "must be 'x,y'"),
        ([*base, "--inits", "", "--out", out], "at least one point"),
        (
            ["run", "--setup", "nashmtl2022", "--method", "ls", "--steps", "0", "--out", out],
            "steps must be an integer in [1, 200000]",
        ),
        (["run", "--setup", "nashmtl2022", "--method", "ls", "--steps", "-4", "--out", out], "steps must be"),
        (
            ["run", "--setup", "nashmtl2022", "--method", "ls", "--steps", "200001", "--out", out],
            "steps must be",
        ),
        (
            ["run", "--setup", "nashmtl2022", "--method", "ls", "--steps", "1" + "0" * 400, "--out", out],
            "steps",
        ),
        (
            ["run", "--setup", "nashmtl2022", "--method", "ls", "--steps", "ten", "--out", out],
            "invalid int value",
        ),
        ([*base, "--lr", "nan", "--out", out], "lr must be a number"),
        ([*base, "--lr", "-1", "--out", out], "lr must be a number"),
        ([*base, "--record-every", "0", "--out", out], "record_every must be"),
        ([*base, "--backend", "jit", "--out", out], "backend must be one of ['eager', 'compiled']"),
        (["run", "--config", str(tmp / "missing.json"), "--out", out], "cannot read config"),
        (["run", "--config", str(tmp), "--out", out], "cannot read config"),
        (["run", "--config", str(tmp / "bad.json"), "--out", out], "not valid JSON"),
        (["run", "--config", str(tmp / "binary.json"), "--out", out], "config"),
        (["run", "--config", str(tmp / "deep.json"), "--out", out], "config"),
        (["run", "--config", str(tmp / "unknown_key.json"), "--out", out], "unknown config key(s) ['stepz']"),
        (["run", "--config", str(tmp / "bad.json"), "--setup", "nashmtl2022", "--out", out], "config"),
        ([*base, "--set", "ls=1", "--out", out], "--set takes METHOD.PARAM=VALUE"),
        ([*base, "--set", "ls.reduction", "--out", out], "--set takes METHOD.PARAM=VALUE"),
        ([*base, "--set", ".reduction=sum", "--out", out], "--set takes METHOD.PARAM=VALUE"),
        ([*base, "--out", str(tmp / "o.txt")], "--out must end in one of"),
        ([*base, "--out", str(tmp / "no" / "such" / "o.json")], "folder does not exist"),
        (["run", "--setup", "nope", "--out", out], "unknown setup 'nope'"),
        ([*base], "--out"),
        (["frobnicate"], "invalid choice"),
        ([], "command"),
    ]


def test_bad_input_one_line_exit_2(tmp_path, capsys):
    failures = []
    for argv, phrase in bad_cases(tmp_path):
        try:
            code, out, err = cli(argv, capsys)
        except BaseException as exc:  # noqa: B036 - SystemExit or a leaked exception is a failure
            failures.append((argv[-4:], f"raised {type(exc).__name__}: {exc}"))
            capsys.readouterr()
            continue
        lines = err.strip().splitlines()
        if (
            code != 2
            or len(lines) != 1
            or "Traceback" in err
            or phrase not in err
            or not err.startswith("toyopt: error:")
        ):
            failures.append((argv[-4:], code, err[-300:]))
    assert not (tmp_path / "o.json").exists()
    assert not failures, failures


def test_bad_input_subprocess(tmp_path):
    """The whole program, interpreter start to exit: an integer too large for a float."""
    out = str(tmp_path / "o.json")
    proc = python_m(
        "run", "--setup", "nashmtl2022", "--method", "ls", "--steps", "1" + "0" * 400, "--out", out
    )
    assert proc.returncode == 2, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert not (tmp_path / "o.json").exists()


@pytest.mark.parametrize("suffix", [".JSON", ".Csv"])
def test_out_suffix_case_insensitive(tmp_path, capsys, suffix):
    out_file = tmp_path / f"o{suffix}"
    code, _, err = cli(
        ["run", "--setup", "nashmtl2022", "--method", "ls", "--steps", "3", "--quiet", "--out", out_file],
        capsys,
    )
    assert code == 0, err
    text = out_file.read_text()
    assert text.startswith("{") == (suffix.lower() == ".json")
    np.testing.assert_equal(text.startswith("# toyopt config"), suffix.lower() == ".csv")


@pytest.mark.parametrize("command", ["run", "basins", "figure"])
def test_method_takes_several_names_or_repeats(command):
    """``--method a b c`` is the same run as ``--method a --method b --method c``, and both
    forms mix."""
    from toyopt.cli import build_parser
    from toyopt.cli._common import config_from_args

    def config(*methods):
        argv = [command, "--setup", "nashmtl2022", *methods, "--steps", "5", "--out", "o.png"]
        args = build_parser().parse_args(argv)
        return config_from_args(args)

    listed = config("--method", "ls", "mgda", "cagrad")
    assert [m.name for m in listed.methods] == ["ls", "mgda", "cagrad"]
    assert listed == config("--method", "ls", "--method", "mgda", "--method", "cagrad")
    assert listed == config("--method", "ls", "mgda", "--method", "cagrad")
