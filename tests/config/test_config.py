"""Config validation, JSON round trips and the published setups."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import pytest

from toyopt import config as cfgmod
from toyopt.config import Config, MethodEntry, parse_inits, parse_value
from toyopt.methods import METHODS
from toyopt.setups import DEFAULT_SETUP, SETUPS, get_setup


def base_dict() -> dict:
    return {
        "methods": [{"name": "ls", "params": {"reduction": "sum"}}, {"name": "mgda", "output_scale": 2.0}],
        "problem_params": {"scale": 0.1},
        "inits": [[-8.5, 7.5], [0.0, 0.0]],
        "steps": 500,
    }


def test_defaults_validate():
    c = Config().validated()
    assert c.problem_params == {"scale": 1.0}
    assert c.inits == cfgmod.STANDARD5
    assert c.resolved_lower_bounds() == (-21.0, -21.0)


def test_json_round_trip():
    c = Config.from_dict(
        {
            **base_dict(),
            "methods": [
                {"name": "ls", "params": {"reduction": "sum"}},
                {"name": "mgda", "params": {"fw_iters": 7}, "output_scale": 2.0, "clip_norm": 1.0},
            ],
            "lower_bounds": [-2.1, -21],
            "noise": 0.2,
            "seed": 12,
            "optimizer": "sgd",
            "momentum": 0.5,
            "record_every": 10,
            "dtype": "float32",
            "setup": "nashmtl2022",
        }
    )
    again = Config.from_json(c.to_json())
    assert again == c
    assert again.to_json() == c.to_json()
    assert Config.from_json(c.to_json(indent=2)) == c
    assert again.methods[1] == MethodEntry("mgda", {"fw_iters": 7}, 2.0, 1.0)
    assert again.lower_bounds == (-2.1, -21.0)
    assert Config.from_dict(json.loads(c.to_json())) == c


def test_json_round_trip_every_setup():
    for setup in SETUPS.values():
        names = [m for m in setup.methods if m in METHODS]
        if not names:
            continue
        c = setup.config(methods=names)
        assert Config.from_json(c.to_json()) == c, setup.name


def test_grid_lists():
    entry = MethodEntry("mgda", {"fw_iters": 3})
    assert entry.grid() == [{"fw_iters": 3}]
    if "cagrad" in METHODS:
        c = Config(
            methods=(MethodEntry("cagrad", {"c": [0.1, 0.2, 0.3]}),), inits=((0.0, 0.0), (1.0, 1.0))
        ).validated()
        combos = c.methods[0].grid()
        assert [combo["c"] for combo in combos] == [0.1, 0.2, 0.3]
        assert Config.from_json(c.to_json()) == c
        with pytest.raises(ValueError, match=r"a grid needs 1 to 101 values"):
            Config(methods=(MethodEntry("cagrad", {"c": [0.1] * 102}),)).validated()
        with pytest.raises(ValueError, match=r"a grid needs"):
            Config(methods=(MethodEntry("cagrad", {"c": []}),)).validated()
        with pytest.raises(ValueError, match=r"methods\[0\]\(cagrad\)\.params\.c"):
            Config(methods=(MethodEntry("cagrad", {"c": [0.1, float("nan")]}),)).validated()
    with pytest.raises(ValueError, match="only float parameters take a list"):
        Config(methods=(MethodEntry("mgda", {"fw_iters": [1, 2]}),)).validated()
    with pytest.raises(ValueError, match="only float parameters take a list"):
        Config(methods=(MethodEntry("ls", {"reduction": ["sum", "mean"]}),)).validated()


def test_grid_is_product_of_float_axes():
    """Two float grids give their Cartesian product, first axis slowest."""
    spec = next((s for s in METHODS.values() if sum(p.kind == "float" for p in s.params) >= 2), None)
    if spec is None:
        pytest.skip("no registered method with two float parameters")
    p, q = [p for p in spec.params if p.kind == "float"][:2]
    pv = [p.default, p.low if p.low is not None and p.low != p.default else p.default]
    qv = [q.default, q.high if q.high is not None and q.high != q.default else q.default, q.default]
    entry = MethodEntry(spec.name, {p.name: pv, q.name: qv}).validated("m")
    combos = entry.grid()
    assert [(c[p.name], c[q.name]) for c in combos] == [(a, b) for a in pv for b in qv]


@pytest.mark.parametrize(
    ("change", "pattern"),
    [
        ({"bogus": 1}, r"unknown config key\(s\) \['bogus'\]"),
        ({"methods": [{"name": "ls", "parms": {}}]}, r"unknown key\(s\) \['parms'\]"),
        ({"methods": [{"name": "nope"}]}, r"unknown method 'nope'"),
        ({"methods": [{"name": "ls", "params": {"bogus": 1}}]}, r"unknown parameter 'bogus' for method 'ls'"),
        (
            {"methods": [{"name": "ls", "params": {"reduction": "max"}}]},
            r"reduction must be one of \['mean', 'sum'\]",
        ),
        ({"methods": []}, r"methods must list 1 to 32"),
        ({"methods": "ls"}, r"methods must be a list"),
        ({"methods": [3]}, r"methods\[0\] must be an object"),
        (
            {"methods": [{"name": "mgda", "params": {"fw_iters": 0}}]},
            r"fw_iters must be an integer in \[1, 1000\]",
        ),
        ({"methods": [{"name": "mgda", "params": {"fw_iters": 2.5}}]}, r"fw_iters must be an integer"),
        (
            {"methods": [{"name": "ls", "output_scale": -1}]},
            r"output_scale must be a number in \[0, 1e\+06\]",
        ),
        ({"methods": [{"name": "ls", "clip_norm": 0}]}, r"clip_norm must be a number in"),
        ({"steps": 0}, r"steps must be an integer in \[1, 200000\], got 0"),
        ({"steps": cfgmod.MAX_STEPS + 1}, r"steps must be an integer in \[1, 200000\]"),
        ({"steps": 10.5}, r"steps must be an integer"),
        ({"steps": "100"}, r"steps must be an integer"),
        ({"steps": True}, r"steps must be an integer"),
        ({"steps": None}, r"steps must be an integer"),
        ({"lr": -0.001}, r"lr must be a number in \[1e-09, 100\], got -0.001"),
        ({"lr": 0}, r"lr must be a number in"),
        ({"momentum": 1.0}, r"momentum must be a number in \[0, 0.999\]"),
        ({"noise": -1}, r"noise must be a number in \[0, 1000\]"),
        ({"seed": -1}, r"seed must be an integer"),
        ({"record_every": 0}, r"record_every must be an integer in \[1, 200000\]"),
        ({"early_stop_tol": 2}, r"early_stop_tol must be a number in \[0, 1\]"),
        ({"tolerance": 0}, r"tolerance must be a number"),
        ({"optimizer": "rmsprop"}, r"optimizer must be one of \['adam', 'sgd'\]"),
        ({"dtype": "float16"}, r"dtype must be one of \['float64', 'float32'\]"),
        ({"backend": "jit"}, r"backend must be one of \['eager', 'compiled'\]"),
        ({"problem": "nope"}, r"unknown problem 'nope'"),
        ({"problem": 3}, r"problem must be a non-empty string"),
        ({"problem_params": {"scale": 0}}, r"problem_params.scale must be a number in \[0.001, 1000\]"),
        ({"problem_params": {"shift": 1}}, r"unknown parameter 'shift' for problem 'liu2021'"),
        ({"problem_params": [1]}, r"problem_params must be an object"),
        ({"inits": []}, r"inits must hold 1 to 40000 points"),
        ({"inits": [[1, 2, 3]]}, r"inits\[0\] must have 2 coordinates, got 3"),
        ({"inits": [[0, 0], [1, "a"]]}, r"inits\[1\]\[1\] must be a number"),
        ({"inits": [[0, 2e6]]}, r"inits\[0\]\[1\] must be a number in \[-1e\+06, 1e\+06\]"),
        ({"inits": "standard5"}, r"inits must be a list of \[x1, x2\] points"),
        ({"lower_bounds": [1]}, r"lower_bounds must have 2 values"),
        ({"lower_bounds": 1}, r"lower_bounds must be a list"),
        ({"setup": ""}, r"setup must be a non-empty string"),
    ],
)
def test_bad_values_name_the_field(change, pattern):
    with pytest.raises(ValueError, match=pattern):
        Config.from_dict({**base_dict(), **change})


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_values_rejected(bad):
    for change, field in (
        ({"inits": [[0.0, bad]]}, r"inits\[0\]\[1\]"),
        ({"lr": bad}, "lr"),
        ({"noise": bad}, "noise"),
        ({"lower_bounds": [bad, 0.0]}, r"lower_bounds\[0\]"),
        ({"problem_params": {"scale": bad}}, "problem_params.scale"),
        ({"methods": [{"name": "ls", "output_scale": bad}]}, "output_scale"),
    ):
        with pytest.raises(ValueError, match=field):
            Config.from_dict({**base_dict(), **change})
    # JSON spells them NaN / Infinity (Python's json accepts them): rejected all the same.
    text = json.dumps({**base_dict(), "inits": [[0.0, bad]]})
    with pytest.raises(ValueError, match=r"inits\[0\]\[1\] must be a number"):
        Config.from_json(text)


def test_work_caps():
    with pytest.raises(ValueError, match=r"inits must hold 1 to 40000 points"):
        Config(inits=((0.0, 0.0),) * (cfgmod.MAX_INITS + 1)).validated()
    assert len(Config(inits=((0.0, 0.0),) * cfgmod.MAX_INITS).validated().inits) == cfgmod.MAX_INITS
    # 32 methods x 40000 inits > 200000 lanes.
    with pytest.raises(ValueError, match=r"lanes; the cap is 200000"):
        Config(methods=(MethodEntry("ls"),) * 6, inits=((0.0, 0.0),) * cfgmod.MAX_INITS).validated()
    with pytest.raises(ValueError, match="methods must list 1 to 32"):
        Config(methods=(MethodEntry("ls"),) * 33, inits=((0.0, 0.0),)).validated()
    with pytest.raises(ValueError, match=r"larger than 1000000 bytes"):
        Config.from_json(" " * (cfgmod.MAX_JSON_BYTES + 1))


@pytest.mark.parametrize(
    "text",
    ["", "{", "{'steps': 1}", "[1, 2", "nul", '{"steps": 1,}', b"\xff\xfe\x00", "[]", "3", '"ls"', "null"],
)
def test_invalid_json(text):
    with pytest.raises(ValueError, match=r"config is not valid JSON|config must be a JSON object"):
        Config.from_json(text)


@pytest.mark.parametrize(
    "text",
    [
        "[" * 100_000 + "]" * 100_000,
        '{"a":' * 100_000 + "1" + "}" * 100_000,
        '{"methods": ' + "[" * 100_000 + "]" * 100_000 + "}",
    ],
)
def test_deeply_nested_json_is_a_clean_error(text):
    with pytest.raises(ValueError) as info:
        Config.from_json(text)
    assert not isinstance(info.value.__cause__, RecursionError)
    assert "RecursionError" not in type(info.value).__name__


@pytest.mark.parametrize(
    "change",
    [
        {"steps": 10**400},
        {"lr": 10**400},
        {"seed": 10**400},
        {"inits": [[10**400, 0]]},
        {"problem_params": {"scale": 10**400}},
        {"methods": [{"name": "mgda", "params": {"fw_iters": 10**400}}]},
        {"methods": [{"name": "ls", "output_scale": 10**400}]},
    ],
)
def test_huge_integers_are_a_clean_value_error(change):
    """JSON integers have no size limit; an integer too large for a float must be a ValueError
    naming the field, not an OverflowError."""
    text = json.dumps({**base_dict(), **change})
    with pytest.raises(ValueError):
        Config.from_json(text)


@pytest.mark.parametrize("change", [{"steps": 1e308 * 10}, {"lr": 1e300}, {"inits": [[1e300, 0.0]]}])
def test_huge_floats_rejected(change):
    with pytest.raises(ValueError, match="must be"):
        Config.from_json(json.dumps({**base_dict(), **change}))


def test_validated_normalises():
    c = Config.from_dict({**base_dict(), "steps": 100.0, "methods": ["ls"], "inits": [[1, 2]]})
    assert c.steps == 100 and isinstance(c.steps, int)
    assert c.inits == ((1.0, 2.0),) and all(isinstance(v, float) for v in c.inits[0])
    assert c.methods == (MethodEntry("ls", {}),)
    assert c.validated() == c


def test_parse_inits():
    assert parse_inits("standard5") == cfgmod.STANDARD5
    assert parse_inits("cagrad3") == cfgmod.CAGRAD3
    assert parse_inits("1,2; -3.5,4e-1;") == ((1.0, 2.0), (-3.5, 0.4))
    for bad, pattern in (
        ("1,2,3", r"point 0 must be 'x,y'"),
        ("1,a", r"point 0 must be two numbers"),
        ("nan,1", r"inits\[0\]\[0\] must be a number"),
        ("1,inf", r"inits\[0\]\[1\] must be a number"),
        ("", r"at least one point"),
        (";", r"at least one point"),
    ):
        with pytest.raises(ValueError, match=pattern):
            parse_inits(bad)


def test_parse_value():
    assert parse_value("3") == 3 and isinstance(parse_value("3"), int)
    assert parse_value("0.25") == 0.25
    assert parse_value("0.1|0.2|3") == [0.1, 0.2, 3]
    assert parse_value("sum") == "sum"
    assert math.isnan(parse_value("nan"))


def test_to_query_lists_grid_and_params():
    c = Config.from_dict(base_dict())
    q = c.to_query()
    assert q["methods"] == "ls,mgda"
    assert q["ls.reduction"] == "sum"
    assert q["problem.scale"] == "0.1"
    assert q["inits"] == "-8.5,7.5;0.0,0.0"
    assert parse_inits(q["inits"]) == c.inits
    assert all(isinstance(v, str) for v in q.values())


def test_to_query_writes_only_what_differs_from_the_defaults():
    assert Config().to_query() == {"methods": "ls"}
    q = Config(methods=(MethodEntry("cagrad", {"c": 0.5, "rescale": "none"}),), steps=10, seed=3).to_query()
    assert q == {"methods": "cagrad", "steps": "10", "seed": "3", "cagrad.rescale": "none"}


# -- setups -------------------------------------------------------------------------------------


def test_every_setup_validates_for_every_method():
    for setup in SETUPS.values():
        for name, spec in METHODS.items():
            c = setup.config(methods=[name])
            assert c.methods[0].name == name
            assert c.setup == setup.name
            # The setup's listed parameter values are applied.
            listed = setup.method_defaults.get(name, {}).get("params", {})
            for key, value in listed.items():
                assert c.methods[0].params[key] == spec.param(key).validate(value)


def test_setup_settings():
    assert DEFAULT_SETUP in SETUPS
    nash = get_setup("nashmtl2022")
    c = nash.config(methods=["ls", "mgda"])
    assert c.problem_params == {"scale": 0.1} and c.steps == 35_000 and c.lr == 1e-3
    assert c.inits == cfgmod.STANDARD5
    assert c.methods[0].params == {"reduction": "sum"} and c.methods[1].output_scale == 2.0
    sdm = get_setup("sdmgrad2024").config(methods=["ls"])
    assert sdm.noise == 0.2 and sdm.lr == 2e-3 and sdm.inits == cfgmod.CAGRAD3
    assert get_setup("famo2023").config(methods=["ls"]).steps == 50_000
    overridden = nash.config(methods=["ls"], params={"ls": {"reduction": "mean"}}, steps=10, seed=4)
    assert (
        overridden.methods[0].params == {"reduction": "mean"}
        and overridden.steps == 10
        and overridden.seed == 4
    )
    with pytest.raises(ValueError, match="not in the run"):
        nash.config(methods=["ls"], params={"mgda": {"fw_iters": 3}})
    with pytest.raises(ValueError, match="unknown setup"):
        get_setup("nope")
    with pytest.raises(ValueError, match="unknown method"):
        nash.entry("nope")
    with pytest.raises(ValueError, match="steps must be"):
        nash.config(methods=["ls"], steps=0)
    assert replace(c, steps=5).validated().steps == 5


def test_a_task_index_is_bounded_by_the_problems_tasks():
    """stl.task's bound depends on K (ParamSpec.high_for_tasks): 1 is the last task of the 2-task toy."""
    entry = MethodEntry("stl", {"task": 1})
    assert Config(methods=(entry,)).validated().methods[0].params == {"task": 1}
    with pytest.raises(
        ValueError, match=r"methods\[0\]\(stl\)\.params\.task must be an integer in \[0, 1\], got 2"
    ):
        Config(methods=(MethodEntry("stl", {"task": 2}),)).validated()
    task = METHODS["stl"].param("task")
    assert (
        task.validate(5, n_tasks=6) == 5 and task.range_text(6) == "[0, 5]" and task.range_text() == "[0, 15]"
    )


def test_swept_parameters_come_from_the_specs():
    from toyopt.outcomes import with_param_sweep

    swept = {name: spec.swept().name for name, spec in METHODS.items() if spec.swept() is not None}
    assert swept == {"cagrad": "c", "conicgrad": "c", "conicgrad_exact": "c"}
    config = get_setup(DEFAULT_SETUP).config(["cagrad", "mgda"], steps=5)
    entries = with_param_sweep(config).methods
    assert entries[0].params["c"] == list(METHODS["cagrad"].param("c").sweep) and "c" not in entries[1].params
    with pytest.raises(ValueError, match="no method in the run has a swept parameter"):
        with_param_sweep(get_setup(DEFAULT_SETUP).config(["mgda"], steps=5))


@pytest.mark.parametrize(
    ("value", "integer", "message"),
    [
        (True, False, "x must be a number in [0, 1], got True"),
        ("1", False, "x must be a number in [0, 1], got '1'"),
        (10**400, False, "x must be a number in [0, 1], got 1000"),
        (float("nan"), False, "x must be a number in [0, 1], got nan"),
        (0.5, True, "x must be an integer in [0, 1], got 0.5"),
        (2.0**60, True, "written without a decimal point"),
    ],
)
def test_one_number_validator(value, integer, message):
    """Config fields and method/problem parameters share toyopt.validation.check_number."""
    from toyopt.validation import check_number

    with pytest.raises(ValueError) as err:
        check_number(value, "x", 0, 1, integer=integer)
    assert message in str(err.value)
    assert check_number(1.0, "x", 0, 1, integer=True) == 1 and check_number(1, "x", 0, 1) == 1.0
