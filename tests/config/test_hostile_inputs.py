"""Hostile and malformed input (issue 6), the cases tests/config/test_config.py, tests/cli/test_cli.py
and tests/ui/test_state.py do not cover yet.

- Config files: wrong types for every kind of field, hostile raw JSON text, keys that other
  serialisers treat as object tags, very long strings; and a scan of the package for code that would
  execute or unpickle anything (nothing beyond plain data may be read).
- URL query parameters: every parameter the app understands, fed hostile strings, either keeps its
  default with one error naming it or takes a value in its range that survives the URL round trip;
  a hostile link renders and is rewritten clean; a link asking for the most work waits for a click;
  a basins link's bad values keep their defaults with one error each naming the parameter and its
  range, and the page runs only on Run.
- CLI: the basins and figure subcommands' bad arguments exit 2 with one line, before anything runs;
  input files are read with a hard size cap (/dev/zero included); an existing output file (figure,
  data files beside it, basins output, a directory) is never replaced without --force, not even one
  that appears while the command runs.
- Error messages show a bad value shortened (40 characters), however long it is.

Issue 12 (second round): caps on the product of the inputs (recorded memory, work with inner-solver
iterations; ``toyopt.budget``) in the core, CLI, ``figure --from`` and app; runs stop when their
session goes away; one-line errors for long --out names, a missing C++ compiler and a full stdout;
FIFOs, dangling symlinks and directories refused before the work; SIGTERM cleans up; one
"diverged" rule; figure metadata read only where its format keeps it, with bounded memory; link
text escaped in the app's banners and silent link changes reported there.
"""

from __future__ import annotations

import ast
import json
import math
import resource
import subprocess
import sys
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from toyopt import config as cfgmod
from toyopt.cli import main
from toyopt.config import Config
from toyopt.methods import METHODS
from toyopt.ui import state

ROOT = Path(__file__).resolve().parents[2]
APP = str(ROOT / "app.py")
PACKAGE = ROOT / "toyopt"


def base_dict() -> dict:
    return {"methods": [{"name": "ls"}, {"name": "mgda"}], "inits": [[0.0, 0.0]], "steps": 10}


# -- config files ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "pattern"),
    [
        ({"lr": "0.1"}, r"^lr must be a number"),
        ({"lr": [0.1]}, r"^lr must be a number"),
        ({"lr": {"value": 0.1}}, r"^lr must be a number"),
        ({"seed": 1.5}, r"^seed must be an integer"),
        ({"noise": "0"}, r"^noise must be a number"),
        ({"momentum": None}, r"^momentum must be a number"),
        ({"record_every": True}, r"^record_every must be an integer"),
        ({"optimizer": 3}, r"^optimizer must be a non-empty string"),
        ({"dtype": ["float64"]}, r"^dtype must be a non-empty string"),
        ({"backend": None}, r"^backend must be a non-empty string"),
        ({"setup": 3}, r"^setup must be a non-empty string"),
        ({"problem": None}, r"^problem must be a non-empty string"),
        ({"methods": [{"name": 3}]}, r"^methods\[0\] must be an object with a string 'name'"),
        ({"methods": [{"name": "ls", "params": "abc"}]}, r"methods\[0\]\(ls\)\.params must be an object"),
        ({"methods": [{"name": "ls", "params": [1]}]}, r"methods\[0\]\(ls\)\.params must be an object"),
        ({"methods": [{"name": "mgda", "params": {"fw_iters": "3"}}]}, r"fw_iters must be an integer"),
        ({"methods": [{"name": "ls", "params": {"reduction": 3}}]}, r"params\.reduction must be one of"),
        ({"methods": [{"name": "ls", "output_scale": "1"}]}, r"methods\[0\]\(ls\)\.output_scale must be"),
        ({"methods": [{"name": "ls", "clip_norm": [1]}]}, r"methods\[0\]\(ls\)\.clip_norm must be"),
        ({"inits": [[0, None]]}, r"^inits\[0\]\[1\] must be a number"),
        ({"inits": [[True, 0]]}, r"^inits\[0\]\[0\] must be a number"),
        ({"inits": [[]]}, r"^inits\[0\] must have 2 coordinates, got 0"),
        ({"inits": [{"x1": 0, "x2": 0}]}, r"^inits must be a list of \[x1, x2\] points"),
        ({"lower_bounds": ["a", 0]}, r"^lower_bounds\[0\] must be a number"),
        ({"lower_bounds": [None, 0]}, r"^lower_bounds\[0\] must be a number"),
        ({"problem_params": {"scale": "1"}}, r"^problem_params\.scale must be a number"),
        ({"problem_params": {"scale": None}}, r"^problem_params\.scale must be a number"),
        ({"problem_params": {"scale": [1]}}, r"^problem_params\.scale must be a number"),
    ],
)
def test_wrong_types_name_the_field(change, pattern):
    with pytest.raises(ValueError, match=pattern):
        Config.from_dict({**base_dict(), **change})


@pytest.mark.skipif("cagrad" not in METHODS, reason="needs a method with a float parameter c")
@pytest.mark.parametrize("bad", [True, None, "0.5", [0.1, "a"], [[0.1]], {"v": 0.5}])
def test_wrong_types_in_a_float_parameter_and_its_grid(bad):
    with pytest.raises(ValueError, match=r"^methods\[0\]\(cagrad\)\.params\.c must be"):
        Config.from_dict({**base_dict(), "methods": [{"name": "cagrad", "params": {"c": bad}}]})


@pytest.mark.parametrize(
    ("text", "pattern"),
    [
        ('{"steps": 1e400}', r"^steps must be an integer in \[1, 200000\], got inf"),
        ('{"lr": -Infinity}', r"^lr must be a number"),
        ('{"noise": NaN}', r"^noise must be a number"),
        ('{"steps": 5, "steps": "x"}', r"^steps must be an integer"),  # duplicate keys: the last counts
        ('{"steps": 5} {"steps": 6}', r"^config is not valid JSON"),
        ('{"steps": 5}\x00', r"^config is not valid JSON"),
        ("\ufeff{}", r"^config is not valid JSON"),
        ('{"problem": "\\ud800"}', r"^unknown problem"),
        (
            '{"methods": [{"name": "ls", "params": {"reduction": "\\u0000"}}]}',
            r"params\.reduction must be one",
        ),
        ('{"steps": ' + "9" * 300 + "}", r"^steps must be an integer"),
    ],
)
def test_hostile_json_text(text, pattern):
    with pytest.raises(ValueError, match=pattern):
        Config.from_json(text)


def test_integer_literal_beyond_pythons_digit_limit_is_a_value_error():
    """An integer literal of more than 4300 digits: a ValueError (the CLI reports it in one line),
    not another exception type."""
    text = '{"steps": ' + "1" * 5000 + "}"
    with pytest.raises(ValueError) as info:
        Config.from_json(text)
    assert "\n" not in str(info.value)


def test_integer_literal_beyond_the_digit_limit_names_the_problem():
    with pytest.raises(ValueError, match=r"config is not valid JSON|steps"):
        Config.from_json('{"steps": ' + "1" * 5000 + "}")


@pytest.mark.parametrize(
    ("text", "pattern"),
    [
        (
            '{"steps": ' + "1" * 5000 + "}",
            r"^steps must be an integer in \[1, 200000\], got an integer of 5000 digits$",
        ),
        (
            '{"seed": -' + "1" * 4301 + "}",
            r"^seed must be an integer in \[0, \d+\], got an integer of 4301 digits$",
        ),
        (
            '{"lr": ' + "1" * 5000 + "}",
            r"^lr must be a number in \[1e-09, 100\], got an integer of 5000 digits$",
        ),
        ('{"inits": [[0, ' + "1" * 5000 + "]]}", r"^inits\[0\]\[1\] must be a number .*5000 digits$"),
        ('{"problem": ' + "1" * 5000 + "}", r"^problem must be a non-empty string.*5000 digits$"),
        (
            '{"methods": [{"name": "mgda", "params": {"fw_iters": ' + "1" * 5000 + "}}]}",
            r"^methods\[0\]\(mgda\)\.params\.fw_iters must be an integer .*5000 digits$",
        ),
    ],
    ids=["steps", "negative seed", "lr", "inits", "problem", "method parameter"],
)
def test_integer_literal_beyond_the_digit_limit_names_the_field(text, pattern):
    with pytest.raises(ValueError, match=pattern) as info:
        Config.from_json(text)
    assert "set_int_max_str_digits" not in str(info.value)


def test_a_long_integer_literal_in_every_json_reader_names_the_field(tmp_path, capsys):
    from toyopt.figures.embed import read_embedded
    from toyopt.figures.spec import FigureSpec

    long = "1" * 5000
    with pytest.raises(
        ValueError, match=r"^dpi must be an integer in \[50, 1200\], got an integer of 5000 digits"
    ):
        FigureSpec.from_json('{"dpi": ' + long + "}")
    png = _png_with_text({"toyopt-config": '{"steps": ' + long + "}"})
    with pytest.raises(ValueError, match=r"^steps must be an integer .*5000 digits$"):
        read_embedded(png)
    (tmp_path / "fig.png").write_bytes(png)
    (tmp_path / "c.json").write_text('{"seed": ' + long + "}")
    for argv, field in (
        (["figure", "--from", tmp_path / "fig.png", "--out", tmp_path / "o.png"], "steps must be an integer"),
        (["run", "--config", tmp_path / "c.json", "--out", tmp_path / "o.json"], "seed must be an integer"),
    ):
        code, err = cli(argv, capsys)
        assert code == 2 and len(err.strip().splitlines()) == 1 and field in err, err[-300:]
        assert "set_int_max_str_digits" not in err


def _png_with_text(chunks: dict[str, str]) -> bytes:
    import struct
    import zlib

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return (
            struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))
        )

    body = b"".join(chunk(b"tEXt", k.encode() + b"\0" + v.encode("latin-1")) for k, v in chunks.items())
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0)) + body


@pytest.mark.parametrize(
    "key", ["__class__", "py/object", "$type", "!!python/object:os.system", "__reduce__"]
)
def test_object_tags_are_just_unknown_keys(key):
    """Keys other serialisers use to rebuild objects (jsonpickle, YAML, .NET, pickle) mean nothing
    here: they are unknown keys, at the top level and in a method entry."""
    with pytest.raises(ValueError, match=r"unknown config key\(s\)"):
        Config.from_dict({**base_dict(), key: "os.system"})
    with pytest.raises(ValueError, match=r"methods\[0\]: unknown key\(s\)"):
        Config.from_dict({**base_dict(), "methods": [{"name": "ls", key: "os.system"}]})


def test_code_in_strings_is_never_run(tmp_path):
    marker = tmp_path / "ran"
    payload = f"__import__('pathlib').Path({str(marker)!r}).touch()"
    for change in (
        {"problem": payload},
        {"methods": [payload]},
        {"methods": [{"name": "ls", "params": {"reduction": payload}}]},
        {"optimizer": payload},
        {"dtype": payload},
    ):
        with pytest.raises(ValueError):
            Config.from_dict({**base_dict(), **change})
    assert not marker.exists()


UNSAFE_CALLS = {
    "eval",
    "exec",
    "compile",
    "__import__",
    "pickle.load",
    "pickle.loads",
    "pickle.Unpickler",
    "marshal.load",
    "marshal.loads",
    "shelve.open",
    "yaml.load",
    "yaml.unsafe_load",
    "yaml.full_load",
    "torch.load",
    "np.load",
    "numpy.load",
    "jsonpickle.decode",
    "dill.loads",
}


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return ""


def test_package_never_evaluates_or_unpickles():
    """Static scan of toyopt/: no call that executes text or deserialises objects, no import of
    pickle-like modules."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and _dotted(node.func) in UNSAFE_CALLS:
                found.append(f"{path.relative_to(ROOT)}:{node.lineno} {_dotted(node.func)}()")
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] + (
                    [node.module] if isinstance(node, ast.ImportFrom) else []
                )
                bad = {n.split(".")[0] for n in names if n} & {"pickle", "marshal", "shelve", "dill", "yaml"}
                if bad:
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno} import {sorted(bad)}")
    assert not found, found


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"problem": "x" * 100_000}, "problem"),
        ({"optimizer": "x" * 100_000}, "optimizer"),
        ({"methods": ["x" * 100_000]}, "unknown method"),
        ({"methods": [{"name": "ls", "params": {"reduction": "x" * 100_000}}]}, r"params\.reduction"),
        ({"x" * 100_000: 1}, r"unknown config key"),
    ],
)
def test_very_long_strings_are_rejected_naming_the_field(change, field):
    with pytest.raises(ValueError, match=field) as info:
        Config.from_dict({**base_dict(), **change})
    assert "\n" not in str(info.value)
    assert "x" * 41 not in str(info.value) and len(str(info.value)) < 600, str(info.value)[:200]


@pytest.mark.parametrize(
    "change",
    [
        {"problem": "x" * 150},
        {"optimizer": "y" * 150},
        {"dtype": "x" * 150},
        {"backend": "x" * 150},
        {"setup": "x" * 100_000},
        {"lr": "x" * 100_000},
        {"seed": "x" * 100_000},
        {"seed": 10**5000},
        {"inits": [[0.0, "x" * 100_000]]},
        {"methods": [{"name": "ls", "params": {"x" * 100_000: 1}}]},
        {"methods": [{"name": "ls", "x" * 100_000: 1}]},
        {"methods": [{"name": "mgda", "params": {"fw_iters": "x" * 100_000}}]},
        {"methods": [{"name": "ls", "params": {"reduction": ["x" * 100_000]}}]},
        {"problem_params": {"x" * 100_000: 1}},
        {**{f"{i}" + "x" * 1000: 1 for i in range(1000)}},
    ],
)
def test_error_messages_show_bad_values_shortened(change):
    with pytest.raises(ValueError) as info:
        Config.from_dict({**base_dict(), **change})
    message = str(info.value)
    assert "\n" not in message and "x" * 41 not in message and len(message) < 600, message[:300]


def test_parse_inits_shows_bad_points_shortened():
    with pytest.raises(ValueError, match=r"^inits: point 0 must be 'x,y', got '1,2,3") as info:
        cfgmod.parse_inits("1,2,3" + ",4" * 50_000)
    assert len(str(info.value)) < 200


@pytest.mark.parametrize("params", [[], 0, "", None, False, [["reduction", "sum"]]])
def test_method_params_must_be_an_object(params):
    with pytest.raises(ValueError, match=r"^methods\[0\]\(ls\)\.params must be an object, got "):
        Config.from_dict({**base_dict(), "methods": [{"name": "ls", "params": params}]})
    with pytest.raises(ValueError, match=r"params must be an object"):
        Config.from_json(json.dumps({**base_dict(), "methods": [{"name": "ls", "params": params}]}))


def test_method_params_absent_or_empty_object_are_the_defaults():
    for entry in ({"name": "ls"}, {"name": "ls", "params": {}}, "ls"):
        assert Config.from_dict({**base_dict(), "methods": [entry]}).methods[0].params == {}


@pytest.mark.parametrize("value", [None, [], 0, ""])
def test_problem_params_must_be_an_object(value):
    with pytest.raises(ValueError, match=r"^problem_params must be an object, got "):
        Config.from_dict({**base_dict(), "problem_params": value})


def test_config_module_docstring_names_only_what_exists():
    """Every ``name`` the config module's docstring mentions is a real attribute (no
    ``from_query``, which never existed)."""
    import builtins
    import importlib
    import re

    names = re.findall(r"``([A-Za-z_][\w.]*)``", cfgmod.__doc__)
    assert "to_json" in names and "to_query" in names and "from_query" not in names
    for name in names:
        if "." in name:
            module, _, attr = name.rpartition(".")
            assert hasattr(importlib.import_module(module), attr), name
        else:
            assert hasattr(Config, name) or hasattr(cfgmod, name) or hasattr(builtins, name), name


@pytest.mark.parametrize("seed", [2**53 + 1, 2**62 + 1, 2**63 - 1])
def test_large_seeds_are_kept_exactly(seed):
    assert Config.from_dict({**base_dict(), "seed": seed}).seed == seed
    config = Config.from_json(Config.from_dict({**base_dict(), "seed": seed}).to_json())
    assert config.seed == seed and type(config.seed) is int


@pytest.mark.parametrize(
    ("field", "value", "pattern"),
    [
        ("seed", 2**63, r"^seed must be an integer in \[0, 9223372036854775807\], got 9223372036854775808$"),
        ("seed", -1, r"^seed must be an integer in \[0, 9223372036854775807\], got -1$"),
        ("seed", True, r"^seed must be an integer in \[0, 9223372036854775807\], got True$"),
        ("seed", 0.5, r"^seed must be an integer in \[0, 9223372036854775807\], got 0.5$"),
        ("seed", 2.0**60, r"^seed must be an integer .* written without a decimal point or exponent"),
        ("seed", float("nan"), r"^seed must be an integer in \[0, "),
        ("steps", 200_001, r"^steps must be an integer in \[1, 200000\], got 200001$"),
        ("steps", False, r"^steps must be an integer in \[1, 200000\], got False$"),
        ("steps", 10.5, r"^steps must be an integer in \[1, 200000\], got 10.5$"),
        ("record_every", 0, r"^record_every must be an integer in \[1, 200000\], got 0$"),
    ],
)
def test_integer_fields_are_exact_ints(field, value, pattern):
    with pytest.raises(ValueError, match=pattern):
        Config.from_dict({**base_dict(), field: value})


def test_integral_floats_up_to_2_53_are_integers():
    config = Config.from_dict({**base_dict(), "seed": float(2**53), "steps": 12.0, "record_every": 3.0})
    assert (config.seed, config.steps, config.record_every) == (2**53, 12, 3)
    assert all(type(v) is int for v in (config.seed, config.steps, config.record_every))
    assert Config.from_json('{"seed": 9007199254740993}').seed == 2**53 + 1  # a JSON integer: exact


def test_a_large_seed_runs_and_is_kept_by_the_cli(tmp_path, capsys):
    out = tmp_path / "r.json"
    code, err = cli(["run", *SMALL, "--seed", 2**63 - 1, "--quiet", "--out", out], capsys)
    assert code == 0, err
    assert Config.from_json(json.dumps(json.loads(out.read_text())["config"])).seed == 2**63 - 1


# -- URL query parameters -------------------------------------------------------------------------

HOSTILE_TEXTS = [
    "",
    "   ",
    "nan",
    "-inf",
    "1e999",
    "-1e999",
    "1e-400",
    "0x10",
    "1.5",
    "-0",
    "\x00",
    "<script>alert(1)</script>",
    "'; DROP TABLE runs; --",
    "💥",
    ",,,;;;",
    "1,2,3",
    "nan,0",
    "1e9,1e9",
    ";".join(["1,1"] * 500),
    "ls," * 500,
    "9" * 5000,
    "x" * 20_000,
]


def _in_range(f: state.Field, value) -> bool:
    if f.kind in ("int", "float"):
        ok = isinstance(value, (int, float)) and math.isfinite(value) and f.low <= value <= f.high
        return ok and (f.kind == "float" or isinstance(value, int))
    if f.kind == "choice":
        return value in f.choices
    if f.kind == "bool":
        return isinstance(value, bool)
    if f.kind == "names":
        return 1 <= len(value) <= f.max_items and set(value) <= set(f.choices)
    points = [value] if f.kind == "point" else list(value)
    if f.kind == "points" and not 1 <= len(points) <= f.max_items:
        return False
    return all(
        len(p) == 2 and all(math.isfinite(v) and abs(v) <= state.COORD_LIMIT for v in p) for p in points
    )


@pytest.mark.parametrize("name", sorted(state.fields()))
def test_every_url_parameter_survives_hostile_text(name):
    """Each hostile value either keeps the default with exactly one error that names the parameter,
    or gives a value within the parameter's range that survives the URL round trip. Nothing raises,
    and no other value changes."""
    f = state.fields()[name]
    base = state.defaults()
    for raw in HOSTILE_TEXTS:
        values, errors = state.parse_query({name: raw})
        where = f"{name}={raw[:30]!r}"
        if name == "setup":
            assert errors or raw.strip() in f.choices, where
        elif errors:
            assert len(errors) == 1 and errors[0].startswith(name), (where, errors)
            assert values[name] == base[name], where
        else:
            assert _in_range(f, values[name]), (where, values[name])
            assert f.parse(f.format(values[name])) == values[name], where
        if name != "setup":
            assert {k: v for k, v in values.items() if k != name} == {
                k: v for k, v in base.items() if k != name
            }, where


def test_repeated_url_parameters_use_the_last_value():
    values, errors = state.parse_query({"steps": ["abc", "250"], "cone_c": ["0.1", "nan"]})
    assert values["steps"] == 250
    assert values["cone_c"] == state.defaults()["cone_c"]
    assert len(errors) == 1 and errors[0].startswith("cone_c")


@pytest.mark.parametrize(
    "raw",
    ["x" * 100_000, ",".join(f"x{i}" + "x" * 50 for i in range(2000)), "1," * 50_000],
    ids=["one-long-value", "many-long-names", "many-numbers"],
)
def test_url_errors_show_bad_values_shortened(raw):
    query = {name: raw for name in state.fields()}
    query["y" * 100_000] = "1"
    _, errors = state.parse_query(query)
    assert len(errors) >= len(state.fields())
    for message in errors:
        assert "x" * 41 not in message and "y" * 41 not in message and len(message) < 700, message[:300]
    assert f"{'y' * 37}...: unknown parameter" in errors


def test_a_huge_link_gives_one_short_error_per_parameter():
    query = {name: "x" * 100_000 for name in state.fields()}
    query.update({f"junk{i}": "1" for i in range(2000)})
    values, errors = state.parse_query(query)
    assert max(len(e) for e in errors) < 700
    assert len(errors) == len(query)  # one per parameter, the setup's included
    assert values["steps"] == state.defaults()["steps"]


def _app(**query) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=180)
    at.query_params.update({k.replace("__", "."): str(v) for k, v in query.items()})
    return at.run()


def test_hostile_link_renders_and_is_rewritten_clean():
    hostile = {
        "view": "regions",
        "methods": "ls,mgda",
        "cone_c": "nan",
        "ball_c": "1e999",
        "angle": "<script>alert(1)</script>",
        "point": "1e9,1e9",
        "inits": ";".join(["1,1"] * 500),
        "steps": "9" * 400,
        "mgda__fw_iters": "-1",
        "problem__scale": "inf",
        "evil": "'; DROP TABLE runs; --",
    }
    at = _app(**hostile)
    assert not at.exception
    assert len(at.error) == 1
    message = at.error[0].value.replace("\\", "")  # the banner's markdown escapes removed
    for name in (
        "cone_c",
        "ball_c",
        "angle",
        "point",
        "inits",
        "steps",
        "mgda.fw_iters",
        "problem.scale",
        "evil",
    ):
        assert name in message, name
    assert at.get("plotly_chart"), "the page still draws its figure (defaults used)"
    written = dict(at.query_params)
    assert "evil" not in written
    for name in ("cone_c", "ball_c", "angle", "point", "inits", "steps", "mgda.fw_iters", "problem.scale"):
        assert name not in written, f"{name} should be back at its default (not in the URL): {written}"


def test_a_link_asking_for_the_most_work_waits_for_a_click(monkeypatch):
    """The largest run a link can request (URL caps: steps, methods, starts; c grids included)
    is estimated from the config alone (no engine call) and waits for 'Run anyway'."""
    import toyopt.ui.runs as runs_module

    calls = []
    monkeypatch.setattr(runs_module, "run", lambda *a, **k: calls.append(1))
    heavy = [
        m for m in ("conicgrad_exact", "cagrad", "conicgrad", "nashmtl", "upgrad", "mgda") if m in METHODS
    ]
    heavy += [m for m in METHODS if m not in heavy][: state.URL_MAX_METHODS - len(heavy)]
    inits = ";".join(f"{x},{y}" for x, y in [(i - 6, (-1) ** i * 3) for i in range(state.URL_MAX_POINTS)])
    at = _app(view="trajectories", methods=",".join(heavy), steps=state.URL_MAX_STEPS, inits=inits)
    assert not at.exception
    assert not at.error, [e.value for e in at.error]
    assert any(b.label.startswith("Run anyway") for b in at.button)
    assert any("This run would take roughly" in w.value for w in at.warning)
    assert not any(h.value == "Outcomes" for h in at.subheader), "the run must not have started"
    assert not at.get("plotly_chart")
    assert not calls, "nothing ran before the click"


def test_basins_link_errors_name_the_parameter_and_keep_the_defaults():
    from toyopt.outcomes import APP_MAX_GRID, APP_MAX_RANDOM

    values, errors = state.parse_query(
        {"basin_grid": "1000000000", "basin_random": "1e9", "basin_starts": "spiral", "basin_sweep": "yes"}
    )
    base = state.defaults()
    assert [values[k] == base[k] for k in ("basin_grid", "basin_random", "basin_starts", "basin_sweep")] == [
        True
    ] * 4, "defaults, not clamped"
    assert [e.split(" ")[0] for e in errors] == ["basin_grid", "basin_random", "basin_starts", "basin_sweep"]
    assert f"[2, {APP_MAX_GRID}]" in errors[0] and f"[1, {APP_MAX_RANDOM}]" in errors[1]
    for raw in HOSTILE_TEXTS:
        for key in ("basin_grid", "basin_random", "basin_starts", "basin_sweep"):
            _, errors = state.parse_query({key: raw})
            assert len(errors) <= 1 and all(e.startswith(key) and len(e) < 400 for e in errors), (
                key,
                raw[:30],
            )
    at = _app(view="basins", basin_grid="1000000000", steps="100000", methods="ls")
    assert not at.exception
    shown = at.error[0].value.replace("\\", "")  # the banner escapes markdown
    assert len(at.error) == 1 and f"basin_grid must be an integer in [2, {APP_MAX_GRID}]" in shown
    assert at.number_input(key="w:basin_grid").value == state.BASIN_GRID


# -- CLI ------------------------------------------------------------------------------------------


def cli(argv, capsys) -> tuple[int, str]:
    code = main([str(a) for a in argv])
    return code, capsys.readouterr().err


SMALL = ["--setup", "nashmtl2022", "--method", "ls", "--steps", "3"]


def cli_bad_cases(tmp: Path) -> list[tuple[list, str]]:
    (tmp / "not_a_figure.png").write_text("hello")
    (tmp / "big.json").write_text(" " * (cfgmod.MAX_JSON_BYTES + 10))
    b, f = tmp / "b.csv", tmp / "f.png"
    return [
        (["basins", *SMALL, "--grid", "1", "--out", b], "--grid must be an integer in [2, "),
        (["basins", *SMALL, "--grid", "1000000", "--out", b], "--grid must be an integer"),
        (["basins", *SMALL, "--random", "0", "--out", b], "--random must be an integer"),
        (["basins", *SMALL, "--random", "1000000000", "--out", b], "--random must be an integer"),
        (["basins", *SMALL, "--grid", "3", "--random", "3", "--out", b], "not allowed with argument"),
        (["basins", *SMALL, "--inits", "1,2", "--out", b], "instead of --inits"),
        (["basins", *SMALL, "--record-every", "2", "--out", b], "--record-every does not apply"),
        (["basins", *SMALL, "--grid", "3", "--out", tmp / "b.txt"], "--out must end in one of"),
        (["basins", *SMALL, "--grid", "ten", "--out", b], "invalid int value"),
        (["figure", *SMALL, "--dpi", "0", "--out", f], "dpi must be an integer in [50, 1200]"),
        (["figure", *SMALL, "--dpi", "100000", "--out", f], "dpi must be an integer"),
        (["figure", *SMALL, "--width", "bogus", "--out", f], "width must be"),
        (["figure", *SMALL, "--width", "1e9", "--out", f], "width (inches) must be a number"),
        (["figure", *SMALL, "--layout", "regions", "--point=1", "--out", f], "point must be 'x1,x2'"),
        (["figure", *SMALL, "--layout", "regions", "--point=nan,1", "--out", f], "point must be a number"),
        (["figure", *SMALL, "--layout", "regions", "--cone-c", "5", "--out", f], "cone_c must be"),
        (["figure", *SMALL, "--layout", "bogus", "--out", f], "invalid choice"),
        (["figure", "--from", tmp / "not_a_figure.png", "--out", f], "not a PDF, SVG or PNG file"),
        (["figure", "--from", tmp / "missing.png", "--out", f], "cannot read --from"),
        (["figure", "--from", tmp / "not_a_figure.png", "--steps", "3", "--out", f], "drop --steps"),
        (["run", "--config", tmp / "big.json", "--out", tmp / "r.json"], "larger than 1000000 bytes"),
        (["run", *SMALL, "--bogus", "--out", tmp / "r.json"], "unrecognized arguments: --bogus"),
        (["run", *SMALL, "--lr", "inf", "--out", tmp / "r.json"], "lr must be a number"),
        (["run", *SMALL, "--seed", "-1", "--out", tmp / "r.json"], "seed must be an integer"),
        (["run", *SMALL, "--set", "ls.reduction=", "--out", tmp / "r.json"], "reduction must be one of"),
    ]


def test_basins_and_figure_bad_arguments_exit_2_with_one_line(tmp_path, capsys):
    failures = []
    for argv, phrase in cli_bad_cases(tmp_path):
        try:
            code, err = cli(argv, capsys)
        except BaseException as exc:  # noqa: B036 - SystemExit or a leaked exception is a failure
            capsys.readouterr()
            failures.append((argv, f"raised {type(exc).__name__}: {exc}"))
            continue
        lines = err.strip().splitlines()
        if code != 2 or len(lines) != 1 or not lines[0].startswith("toyopt: error:") or phrase not in err:
            failures.append((argv[:1] + argv[-4:], code, err[-300:]))
    assert not failures, failures
    written = {p.name for p in tmp_path.iterdir()}
    assert written == {"not_a_figure.png", "big.json"}, written


def test_existing_outputs_are_never_replaced_without_force(tmp_path, capsys):
    precious = b"precious"
    targets = {
        "basins": tmp_path / "b.csv",
        "figure": tmp_path / "f.svg",
        "run": tmp_path / "r.json",
    }
    for path in targets.values():
        path.write_bytes(precious)
    for command, out in targets.items():
        extra = ["--grid", "3"] if command == "basins" else []
        code, err = cli([command, *SMALL, *extra, "--out", out], capsys)
        assert code == 2 and "--force" in err and len(err.strip().splitlines()) == 1, (command, err)
    # figure --data: a data file beside the figure exists -> nothing at all is written.
    (tmp_path / "g.csv").write_bytes(precious)
    code, err = cli(["figure", *SMALL, "--data", "--out", tmp_path / "g.svg"], capsys)
    assert code == 2 and "g.csv" in err and "--force" in err, err
    assert not (tmp_path / "g.svg").exists() and not (tmp_path / "g.json").exists()
    assert not (tmp_path / "g.config.json").exists()
    for path in [*targets.values(), tmp_path / "g.csv"]:
        assert path.read_bytes() == precious, path
    assert {p.name for p in tmp_path.iterdir()} == {"b.csv", "f.svg", "r.json", "g.csv"}


def test_a_directory_is_never_replaced_even_with_force(tmp_path, capsys):
    target = tmp_path / "out.json"
    target.mkdir()
    (target / "keep").write_text("x")
    code, err = cli(["run", *SMALL, "--force", "--quiet", "--out", target], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "not a regular file" in err
    assert (target / "keep").read_text() == "x"
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]  # no temporary file left


def test_an_output_file_created_during_the_run_is_not_replaced(tmp_path, capsys, monkeypatch):
    import toyopt.cli.run as run_command

    out = tmp_path / "r.json"
    real_run = run_command.run

    def run_and_race(config, *args, **kwargs):
        out.write_text("written by someone else meanwhile")
        return real_run(config, *args, **kwargs)

    monkeypatch.setattr(run_command, "run", run_and_race)
    code, err = cli(["run", *SMALL, "--quiet", "--out", out], capsys)
    assert out.read_text() == "written by someone else meanwhile"
    assert code == 2
    assert (
        len(err.strip().splitlines()) == 1 and "appeared while this command ran" in err and "--force" in err
    )
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]  # no temporary file left


def test_figure_and_data_files_created_during_the_run_are_not_replaced(tmp_path, capsys, monkeypatch):
    """figure --data writes four files; one of them appearing during the run leaves the other file
    alone and none of the four is written (those already in place are taken back)."""
    import toyopt.cli.figure as figure_command

    real_run = figure_command.run
    for racer in ("g.svg", "g.csv", "g.config.json"):
        for p in tmp_path.iterdir():
            p.unlink()

        def run_and_race(config, *args, racer=racer, **kwargs):
            (tmp_path / racer).write_text("someone else's")
            return real_run(config, *args, **kwargs)

        monkeypatch.setattr(figure_command, "run", run_and_race)
        code, err = cli(["figure", *SMALL, "--data", "--quiet", "--out", tmp_path / "g.svg"], capsys)
        assert code == 2 and len(err.strip().splitlines()) == 1 and racer in err and "--force" in err, err
        assert [p.name for p in tmp_path.iterdir()] == [racer], racer
        assert (tmp_path / racer).read_text() == "someone else's"
    code, err = cli(["figure", *SMALL, "--data", "--force", "--quiet", "--out", tmp_path / "g.svg"], capsys)
    assert code == 0, err
    assert (tmp_path / "g.config.json").read_text() != "someone else's"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.config.json", "g.csv", "g.json", "g.svg"]


def test_a_basins_output_created_during_the_run_is_not_replaced(tmp_path, capsys, monkeypatch):
    import toyopt.cli.basins as basins_command

    out = tmp_path / "b.csv"
    real = basins_command.run_basins

    def run_and_race(*args, **kwargs):
        out.write_text("someone else's")
        return real(*args, **kwargs)

    monkeypatch.setattr(basins_command, "run_basins", run_and_race)
    code, err = cli(["basins", *SMALL, "--grid", "3", "--quiet", "--out", out], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "appeared while" in err, err
    assert out.read_text() == "someone else's" and [p.name for p in tmp_path.iterdir()] == ["b.csv"]
    code, err = cli(["basins", *SMALL, "--grid", "3", "--quiet", "--force", "--out", out], capsys)
    assert code == 0 and out.read_text().startswith("# toyopt config: "), err


def test_without_hard_links_outputs_are_still_created_exclusively(tmp_path, capsys, monkeypatch):
    import os

    import toyopt.cli.run as run_command

    def no_link(src, dst):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_link)
    out = tmp_path / "r.json"
    assert cli(["run", *SMALL, "--quiet", "--out", out], capsys)[0] == 0
    assert json.loads(out.read_text())["config"]["steps"] == 3
    real_run = run_command.run
    race = tmp_path / "s.json"

    def run_and_race(config, *args, **kwargs):
        race.write_text("someone else's")
        return real_run(config, *args, **kwargs)

    monkeypatch.setattr(run_command, "run", run_and_race)
    code, err = cli(["run", *SMALL, "--quiet", "--out", race], capsys)
    assert code == 2 and "appeared while this command ran" in err and race.read_text() == "someone else's"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json", "s.json"]


def test_outputs_keep_the_usual_file_mode(tmp_path, capsys):
    import os

    out = tmp_path / "r.json"
    assert cli(["run", *SMALL, "--quiet", "--out", out], capsys)[0] == 0
    umask = os.umask(0)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o666 & ~umask


@pytest.mark.parametrize(
    ("argv", "phrase"),
    [
        (["run", "--steps", "9" * 100_000], "--steps: invalid int value: '9999"),
        (["run", "--lr", "x" * 100_000], "--lr: invalid float value: 'xxxx"),
        (["run", "--" + "b" * 100_000], "unrecognized arguments: --bbbb"),
        (["basins", "--grid", "g" * 100_000], "--grid: invalid int value: 'gggg"),
        (["figure", "--layout", "l" * 100_000], "--layout: invalid choice: 'llll"),
    ],
    ids=["int", "float", "unknown-flag", "basins-grid", "choice"],
)
def test_cli_errors_show_long_arguments_shortened(tmp_path, capsys, argv, phrase):
    code, err = cli([*argv, "--out", tmp_path / "o.json"], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and phrase in err and len(err) < 400, err[:300]


def test_basins_maps_of_random_starts_are_refused_before_running(tmp_path, capsys, monkeypatch):
    import toyopt.cli.basins as basins_command

    def no_run(*args, **kwargs):
        raise AssertionError("the run started")

    monkeypatch.setattr(basins_command, "run_basins", no_run)
    for suffix in (".png", ".pdf", ".svg"):
        code, err = cli(["basins", *SMALL, "--random", "5", "--out", tmp_path / f"x{suffix}"], capsys)
        assert code == 2 and err.strip() == (
            "toyopt: error: maps need --grid starts; write --random starts as .csv or .json"
        ), err
    assert not list(tmp_path.iterdir())


def test_a_paper_figure_with_too_many_panels_is_refused_before_running(tmp_path, capsys, monkeypatch):
    import toyopt.cli.figure as figure_command

    def no_run(*args, **kwargs):
        raise AssertionError("the run started")

    monkeypatch.setattr(figure_command, "run", no_run)
    grid = "|".join(str(c / 20) for c in range(1, 14))  # 13 values: 13 panels, one over the cap
    argv = ["figure", "--setup", "conicgrad2025", "--method", "cagrad", "--set", f"cagrad.c={grid}"]
    code, err = cli([*argv, "--steps", "3", "--out", tmp_path / "f.png"], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "at most 12 panels" in err, err
    assert "this run has 13" in err and not list(tmp_path.iterdir())


def test_input_files_are_read_with_a_hard_size_cap(tmp_path, capsys, monkeypatch):
    import toyopt.cli.figure as figure_command

    monkeypatch.setattr(figure_command, "MAX_FIGURE_BYTES", 1000)
    big = tmp_path / "big.png"
    big.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 1000)
    code, err = cli(["figure", "--from", big, "--out", tmp_path / "o.png"], capsys)
    assert code == 2 and err.strip() == f"toyopt: error: --from {str(big)!r} is larger than 1000 bytes", err
    for path, phrase in ((tmp_path, "not a regular file"), (tmp_path / "nope.json", "No such file")):
        code, err = cli(["run", "--config", path, "--out", tmp_path / "o.json"], capsys)
        assert (
            code == 2 and len(err.strip().splitlines()) == 1 and "cannot read config" in err and phrase in err
        )
    (tmp_path / "latin1.json").write_bytes(b'{"setup": "\xe9"}')
    code, err = cli(["run", "--config", tmp_path / "latin1.json", "--out", tmp_path / "o.json"], capsys)
    assert code == 2 and "not UTF-8 text" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "data",
    [
        b"%PDF-1.4 /Keywords (abc\\",  # a backslash at the very end of a PDF string
        b"%PDF-1.4 /Keywords (abc",  # an unterminated PDF string
        _png_with_text({}) + b"\0\0\0\x05zTXtk\0\0xy0000",  # a zTXt chunk that is not zlib data
        _png_with_text({}) + b"\0\0\0\x02iTXtk\x000000",  # an iTXt chunk cut short
        b"<svg><unclosed",
    ],
    ids=["pdf-backslash-at-end", "pdf-unterminated", "png-ztxt-not-zlib", "png-itxt-short", "svg-unclosed"],
)
def test_malformed_figure_metadata_is_one_line_exit_2(tmp_path, capsys, data):
    from toyopt.figures.embed import read_embedded

    with pytest.raises(ValueError):
        read_embedded(data)
    (tmp_path / "bad.fig").write_bytes(data)
    code, err = cli(["figure", "--from", tmp_path / "bad.fig", "--out", tmp_path / "o.png"], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "--from" in err, err


def test_a_png_text_chunk_that_inflates_beyond_the_cap_is_refused():
    import struct
    import zlib

    from toyopt.figures.embed import MAX_TEXT_BYTES, read_embedded

    payload = b"toyopt-config\0\0" + zlib.compress(b" " * (MAX_TEXT_BYTES + 1), 9)
    crc = struct.pack(">I", zlib.crc32(b"zTXt" + payload))
    data = _png_with_text({}) + struct.pack(">I", len(payload)) + b"zTXt" + payload + crc
    with pytest.raises(ValueError, match=f"inflates to more than {MAX_TEXT_BYTES} bytes"):
        read_embedded(data)


def _limit_memory() -> None:  # runs in the child before exec
    resource.setrlimit(resource.RLIMIT_AS, (2 * 2**30, 2 * 2**30))


@pytest.mark.parametrize("flag", ["--config", "--from"])
def test_an_endless_input_file_is_one_line_exit_2(tmp_path, flag):
    command = "run" if flag == "--config" else "figure"
    out = tmp_path / ("o.json" if command == "run" else "o.png")
    proc = subprocess.run(
        [sys.executable, "-m", "toyopt", command, flag, "/dev/zero", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=_limit_memory,
    )
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr[-500:]


# -- issue 12: caps on the product of the inputs (toyopt.budget) ----------------------------------


def test_a_grid_of_grids_is_refused_before_any_work(tmp_path, capsys, monkeypatch):
    """101 x 101 c/eps values x 200 000 steps: every input within its own cap, the product not."""
    import toyopt.cli.run as run_command
    import toyopt.engine as engine_module

    calls = []
    monkeypatch.setattr(engine_module, "_make_step", lambda *a, **k: calls.append(a))
    grid = "|".join(str(0.01 * i) for i in range(101))
    eps = "|".join(str(0.001 * (i + 1)) for i in range(101))
    argv = ["run", "--method", "cagrad", "--set", f"cagrad.c={grid}", "--set", f"cagrad.eps={eps}"]
    code, err = cli([*argv, "--steps", "200000", "--out", tmp_path / "r.json"], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "would record" in err and "the cap is 1 GB" in err and "record_every" in err
    assert not calls and not list(tmp_path.iterdir()), "refused before the engine stepped anything"
    assert run_command.run is engine_module.run


def test_many_starts_for_many_steps_are_refused_in_the_core():
    from toyopt import budget

    big = Config(inits=((0.0, 0.0),) * 40_000, steps=200_000)
    with pytest.raises(ValueError, match="lanes x recorded states = 40000 x 200001"):
        budget.check(big.validated())
    # Recording 3 states per lane (as basin maps do) is fine for memory, but not for the work of
    # the most lanes (40 000 starts x 5 values of c) for the most steps.
    most = Config(
        methods=(cfgmod.MethodEntry("cagrad", {"c": [0.1, 0.2, 0.3, 0.4, 0.5]}),),
        inits=((0.0, 0.0),) * 40_000,
        steps=200_000,
        record_every=200_000,
    ).validated()
    with pytest.raises(ValueError, match="work units"):
        budget.check(most)
    from toyopt.engine import run

    with pytest.raises(ValueError, match="would record"):
        run(big)


def test_recorded_bytes_match_a_real_run():
    """The memory estimate is the size of the arrays a run really records."""
    from toyopt import budget
    from toyopt.engine import run

    config = Config(
        methods=(cfgmod.MethodEntry("cagrad", {"c": [0.2, 0.5]}), cfgmod.MethodEntry("mgda")),
        inits=((1.0, 2.0), (-3.0, 1.0), (0.5, 0.5)),
        steps=57,
        record_every=5,
    ).validated()
    result = run(config)
    arrays = [result.x, result.losses, result.directions, result.weights, *result.flags.values()]
    assert budget.recorded_bytes(config) == sum(a.nbytes for a in arrays)
    assert budget.recorded_states(config) == len(result.recorded_steps)


def test_inner_solver_iterations_count_as_work(tmp_path, capsys):
    """The issue's multi-day job (MGDA-softmax with 100 000 inner steps for 200 000 steps) is one
    line, exit 2; the same method at its default iterations is far cheaper."""
    from toyopt import budget

    argv = ["run", "--method", "mgda_softmax", "--set", "mgda_softmax.steps=100000", "--steps", "200000"]
    code, err = cli([*argv, "--out", tmp_path / "r.json"], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "work units" in err and "days" in err, err
    default = Config(methods=(cfgmod.MethodEntry("mgda_softmax"),)).validated()
    heavy = Config(methods=(cfgmod.MethodEntry("mgda_softmax", {"steps": 100_000}),)).validated()
    assert budget.work(heavy) / budget.work(default) == pytest.approx((1 + 0.15 * 100_000) / (1 + 0.15 * 100))
    for name, spec in METHODS.items():  # every declared cost is a plain step or more
        assert spec.cost(spec.defaults()) >= 1.0, name


def test_figure_from_a_small_file_asking_for_a_huge_run_is_refused(tmp_path, capsys):
    """A figure file whose embedded config asks for a run beyond the caps is refused before it runs."""
    from toyopt.figures.embed import savefig_metadata

    huge = Config(inits=((0.0, 0.0),) * 40_000, steps=200_000).validated()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(1, 1))
    path = tmp_path / "small.png"
    fig.savefig(path, metadata=savefig_metadata("png", huge.to_json(), '{"layout": "front"}'))
    plt.close(fig)
    code, err = cli(["figure", "--from", path, "--out", tmp_path / "o.png"], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "would record" in err, err


def test_a_link_beyond_the_work_cap_is_refused_at_once_without_probe_runs(monkeypatch):
    """The issue's link (MGDA-softmax with 100 000 inner steps, 100 000 steps) used to run probe runs
    for minutes; now the page answers from the declared cost, with no engine call at all."""
    import toyopt.ui.runs as runs_module

    at = AppTest.from_file(APP, default_timeout=180)
    at.query_params.update(
        {"view": "trajectories", "methods": "mgda_softmax", "mgda_softmax.steps": "100000", "steps": "100000"}
    )
    calls = []
    original = runs_module.run
    monkeypatch.setattr(runs_module, "run", lambda *a, **k: calls.append(1) or original(*a, **k))
    at.run()
    assert not at.exception
    assert any("This run is too large" in e.value and "work units" in e.value for e in at.error)
    assert not calls


def test_a_run_stops_when_its_session_goes_away(monkeypatch):
    """The app's progress callback ends the run (StopException) at the first chunk after the
    browser session disappeared; chunks are short (about PROGRESS_SECONDS of estimated work)."""
    from streamlit.runtime.scriptrunner_utils.exceptions import StopException

    import toyopt.ui.runs as runs_module
    from toyopt.engine import run

    class Bar:
        def progress(self, *args, **kwargs):
            pass

    import toyopt.ui.cache as cache_module

    alive = iter([True, True, False])
    monkeypatch.setattr(cache_module, "session_active", lambda: next(alive))
    config = Config(methods=(cfgmod.MethodEntry("mgda_softmax", {"steps": 5000}),), steps=5000).validated()
    chunk = runs_module.progress_chunk(config)
    assert 1 <= chunk < runs_module.PROGRESS_CHUNK, "an expensive step gets short chunks"
    seen = []
    report = runs_module.progress_reporter(Bar(), "")
    with pytest.raises(StopException):
        run(config, progress=lambda f: seen.append(f) or report(f), chunk=chunk)
    assert len(seen) == 3 and seen[-1] == pytest.approx(3 * chunk / config.steps)


def test_session_active_asks_the_streamlit_runtime(monkeypatch):
    import toyopt.ui.cache as runs_module

    class Ctx:
        session_id = "abc"

    class FakeRuntime:
        active = {"abc"}

        @classmethod
        def exists(cls):
            return True

        @classmethod
        def instance(cls):
            return cls

        @classmethod
        def is_active_session(cls, session_id):
            return session_id in cls.active

    monkeypatch.setattr(runs_module, "Runtime", FakeRuntime)
    monkeypatch.setattr(runs_module, "get_script_run_ctx", lambda suppress_warning=False: Ctx)
    assert runs_module.session_active()
    FakeRuntime.active = set()
    assert not runs_module.session_active()


# -- issue 12: one line instead of a traceback, checks before the work, clean-up ------------------


def _no_engine(monkeypatch):
    import toyopt.engine as engine_module

    def refuse(*args, **kwargs):
        raise AssertionError("the engine must not run")

    monkeypatch.setattr(engine_module, "_make_step", refuse)


def test_an_out_name_beyond_the_file_system_limit_is_one_line(tmp_path, capsys, monkeypatch):
    _no_engine(monkeypatch)
    long = "x" * 300
    cases = [
        ["run", *SMALL, "--out", tmp_path / f"{long}.json"],
        ["basins", *SMALL, "--grid", "3", "--out", tmp_path / f"{long}.csv"],
        # the figure's own name fits; its .config.json companion does not
        ["figure", *SMALL, "--data", "--out", tmp_path / f"{'y' * 245}.png"],
    ]
    for argv in cases:
        code, err = cli(argv, capsys)
        assert code == 2 and len(err.strip().splitlines()) == 1 and "longer than 255 bytes" in err, err
    assert not list(tmp_path.iterdir())


def test_the_compiled_backend_without_a_compiler_is_one_line(tmp_path, capsys, monkeypatch):
    from toyopt.compiler import find_cxx

    _no_engine(monkeypatch)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("CXX", raising=False)
    assert find_cxx() is None
    code, err = cli(["run", *SMALL, "--backend", "compiled", "--out", tmp_path / "r.json"], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "needs a C++ compiler" in err, err


def test_a_full_stdout_is_one_line_exit_2():
    with open("/dev/full", "w") as full:
        proc = subprocess.run(
            [sys.executable, "-m", "toyopt", "methods"],
            cwd=ROOT,
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
        )
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip() == "toyopt: error: No space left on device", proc.stderr


@pytest.mark.parametrize("flag", ["--config", "--from"])
def test_a_fifo_as_input_is_refused_without_waiting(tmp_path, flag):
    import os

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    command = "run" if flag == "--config" else "figure"
    out = tmp_path / ("o.json" if command == "run" else "o.png")
    proc = subprocess.run(
        [sys.executable, "-m", "toyopt", command, flag, str(fifo), "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,  # a hang (the bug) fails here instead of blocking the suite
    )
    assert proc.returncode == 2 and "not a regular file" in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_a_dangling_symlink_out_is_refused_before_the_run(tmp_path, capsys, monkeypatch):
    _no_engine(monkeypatch)
    link = tmp_path / "r.json"
    link.symlink_to(tmp_path / "missing" / "target.json")
    for force in ([], ["--force"]):
        code, err = cli(["run", *SMALL, *force, "--out", link], capsys)
        assert code == 2 and "dangling symbolic link" in err and len(err.strip().splitlines()) == 1, err
    assert link.is_symlink()


def test_sigterm_removes_the_temporary_files(tmp_path):
    """SIGTERM while the outputs are being placed: exit 143, no .NAME.PID-XXXX.tmp left behind."""
    import signal

    script = (
        "import sys, time\n"
        "import toyopt.cli._common as common\n"
        "def slow(tmp, path, force):\n"
        "    print('placing', flush=True)\n"
        "    time.sleep(60)\n"
        "common._place = slow\n"
        "from toyopt.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    argv = ["figure", *SMALL, "--data", "--out", str(tmp_path / "f.svg")]
    proc = subprocess.Popen(
        [sys.executable, "-c", script, *argv],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout.readline().strip() == "placing"
        assert [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")], "temporary files exist meanwhile"
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=60)
    finally:
        proc.kill()
    assert code == 143 and "toyopt: terminated" in proc.stderr.read()
    assert not list(tmp_path.iterdir())


# -- issue 12: one outcome classification ---------------------------------------------------------


def test_a_lane_that_runs_off_is_diverged_everywhere():
    """A lane sent to ~1e14 by SGD completes with finite values: the engine, the exports and the
    basin classification all call it diverged (it used to be "other" in the run's outcome)."""
    from toyopt.engine import run
    from toyopt.export import lane_record
    from toyopt.outcomes import classify

    config = Config(
        methods=(cfgmod.MethodEntry("ls", output_scale=1e6),),
        optimizer="sgd",
        lr=100,
        steps=10,
        inits=((1, 1),),
    )
    result = run(config)
    assert result.stop_reason == ["completed"] and abs(result.final_x).max() > 1e12
    assert result.outcome(0) == "diverged"
    assert lane_record(result, 0, trajectory=False)["outcome"] == "diverged"
    assert list(classify(result).category) == ["diverged"]


# -- issue 12: figure files read where the format keeps the config, with bounded memory ------------


def _pdf_with_info(entries: bytes, before: bytes = b"") -> bytes:
    head = b"%PDF-1.4\n" + before + b"\n"
    obj = b"1 0 obj\n<< " + entries + b" >>\nendobj\n"
    xref = len(head) + len(obj)
    table = b"xref\n0 2\n0000000000 65535 f \n" + b"%010d 00000 n \n" % len(head)
    return head + obj + table + b"trailer\n<< /Size 2 /Info 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % xref


def test_a_pdf_string_before_the_info_dictionary_is_not_the_config():
    from toyopt.figures.embed import read_embedded

    real = Config(steps=12).validated()
    decoy = b'% /Keywords ({"steps": 7, "methods": ["mgda"]})'
    data = _pdf_with_info(b"/Keywords (" + real.to_json().encode() + b")", before=decoy)
    assert read_embedded(data)[0] == real


def test_an_oversized_pdf_string_is_refused_at_the_cap():
    from toyopt.figures.embed import MAX_TEXT_BYTES, read_embedded

    data = _pdf_with_info(b"/Keywords (" + b"x" * (MAX_TEXT_BYTES + 10) + b")")
    with pytest.raises(ValueError, match=f"longer than {MAX_TEXT_BYTES} bytes"):
        read_embedded(data)


def test_png_text_chunks_other_than_the_config_are_not_inflated():
    """Ten zip bombs under other keywords beside the config: only the config chunk is read (they
    used to be inflated, up to 16 MB each, and kept)."""
    import struct
    import zlib

    from toyopt.figures.embed import read_embedded

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return (
            struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))
        )

    bomb = zlib.compress(b" " * 50_000_000, 9)
    config = Config(steps=12).validated()
    data = (
        _png_with_text({"toyopt-config": config.to_json()})
        + b"".join(chunk(b"zTXt", f"bomb{i}".encode() + b"\0\0" + bomb) for i in range(10))
        + chunk(b"IEND", b"")
    )
    assert read_embedded(data)[0] == config


def test_two_config_chunks_in_a_png_are_refused():
    from toyopt.figures.embed import read_embedded

    text = Config(steps=12).validated().to_json()
    data = _png_with_text({"toyopt-config": text}) + _png_with_text({"toyopt-config": text})[8:]
    with pytest.raises(ValueError, match="two 'toyopt-config' text chunks"):
        read_embedded(data)


def test_an_svg_is_read_as_a_stream_up_to_its_metadata():
    """A 5 MB SVG (metadata first, as matplotlib writes it) is read with a few MB at most; parsing
    the whole tree took about 35 bytes of memory per byte of SVG."""
    import tracemalloc

    from toyopt.figures.embed import read_embedded

    config = Config(steps=12).validated()
    svg = (
        '<svg xmlns="http://www.w3.org/2000/svg"><metadata><rdf:RDF '
        'xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        f"<dc:description>{config.to_json()}</dc:description></rdf:RDF></metadata>"
        + '<path d="M 0 0 L 1 1"/>' * 200_000
        + "</svg>"
    ).encode()
    tracemalloc.start()
    try:
        assert read_embedded(svg)[0] == config
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2_000_000, peak


# -- issue 12: the app shows link text as text, and says what it changed -------------------------

INJECTION = {
    "view": "landscape",
    "[click](https://evil.example)": "1",
    "steps": "![x](https://evil.example/pixel.png)",
    "lr": "\n# SITE MOVED <b>now</b> :red[x] $x^2$ `code` *bold* a|b",
}


def _unescaped_markdown(text: str) -> list[str]:
    """Inline-markdown characters in ``text`` not preceded by a backslash escape."""
    import re

    return re.findall(r"(?<!\\)(?:\\\\)*[\[\]<>!`*_$&~:|]", text)


def test_link_text_in_the_error_banner_is_escaped():
    """Keys and values of a crafted link go into the banner as text: no link, image, heading,
    HTML, directive or math survives (each markdown character is escaped, lines joined)."""
    at = _app(**INJECTION)
    assert not at.exception and len(at.error) == 1
    banner = at.error[0].value
    head, _, body = banner.partition(": ")
    assert head == "Ignored invalid link parameters (their defaults are used instead)"
    assert _unescaped_markdown(body) == [], body
    assert "\n" not in banner
    for text in ("https://evil.example", "SITE MOVED", "pixel.png"):
        assert text in banner.replace("\\", "")


def test_escape_markdown_keeps_the_text():
    raw = "a_b [x](y) ![i](j) <b> :red[z] $m$ `c` *e* ~s~ a|b & \\ end"
    escaped = state.escape_markdown(raw)
    assert _unescaped_markdown(escaped) == []
    assert escaped.replace("\\", "") == raw.replace("\\", "")


def test_silent_link_changes_are_reported():
    values, errors = state.parse_query(
        {
            "methods": "ls,mgda",
            "traj_method": "cagrad",
            "cagrad.c": "0.3",
            "steps": "100",
            "at_step": "5000",
            "teach_step": "99999",
        }
    )
    assert values["traj_method"] == "ls" and values["at_step"] == 100
    assert values["teach_step"] == 99999, "an optimizer step of the story's run: Teaching shows the nearest"
    assert values["cagrad.c"] == state.defaults()["cagrad.c"]
    assert errors == [
        "cagrad.c is ignored: cagrad is not among the selected methods",
        "traj_method cagrad is not selected; ls is used",
        "at_step 5000 is beyond the run's last recorded step 100, used instead",
    ]


def test_the_last_recorded_step_of_a_link_is_the_runs():
    """The bound used for at_step is the index of the run's final recorded state."""
    from toyopt.ui import runs

    for steps in (1, 7, 500, 501, 1234):
        values, _ = state.parse_query({"steps": str(steps), "at_step": str(10**5)})
        config = runs.build_config(values)
        assert values["at_step"] == runs.budget.recorded_states(config) - 1, steps


def test_integer_ranges_are_written_as_integers():
    _, errors = state.parse_query({"seed": "-1"})
    assert errors == ["seed must be an integer in [0, 2147483647], got '-1'"]
