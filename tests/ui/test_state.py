"""The URL state: parsing with per-parameter errors and caps, and the round trip."""

from toyopt.methods import METHODS
from toyopt.setups import SETUPS
from toyopt.ui import runs, state


def test_defaults_round_trip_through_the_url():
    values, errors = state.parse_query({})
    assert errors == []
    assert state.encode(values) == {"view": "landscape", "setup": values["setup"]}
    changed = dict(values, steps=123, lr=0.05, inits=((1.0, 2.0), (-3.5, 4.0)), view="regions", cone_c=-0.25)
    back, errors = state.parse_query(state.encode(changed))
    assert errors == []
    for key in ("steps", "lr", "inits", "view", "cone_c"):
        assert back[key] == changed[key]


def test_each_bad_parameter_is_named_and_keeps_its_default():
    query = {"steps": "abc", "lr": "5", "foo": "1", "methods": "ls,nope", "inits": "1,2;3", "cone_c": "0.5"}
    values, errors = state.parse_query(query)
    text = " | ".join(errors)
    for name in ("steps", "lr", "foo", "methods", "inits"):
        assert name in text
    assert len(errors) == 5
    base = state.defaults()
    for name in ("steps", "lr", "methods", "inits"):
        assert values[name] == base[name]
    assert values["cone_c"] == 0.5


def test_work_requested_by_a_link_is_capped():
    too_many = ";".join(f"{i % 10},{i // 10}" for i in range(state.URL_MAX_POINTS + 1))
    methods = ",".join(list(METHODS)[: state.URL_MAX_METHODS + 1])
    _, errors = state.parse_query(
        {"steps": str(state.URL_MAX_STEPS + 1), "inits": too_many, "methods": methods}
    )
    assert len(errors) == (3 if len(METHODS) > state.URL_MAX_METHODS else 2)
    assert any(e.startswith("steps") for e in errors) and any(e.startswith("inits") for e in errors)


def test_method_parameters_come_from_the_registry():
    table = state.fields()
    for name, spec in METHODS.items():
        for p in spec.params:
            field = table[f"{name}.{p.name}"]
            assert field.kind == p.kind
            if p.kind == "choice":
                assert field.choices == p.choices


def test_slider_grids_hold_the_setup_value_and_stay_in_range():
    for setup in SETUPS.values():
        for name in METHODS:
            p = runs.grid_spec(name)
            if p is None:
                continue
            grid = runs.slider_grid(setup.name, name)
            assert grid == sorted(grid) and len(grid) <= runs.GRID_VALUES + 1
            assert all(p.low <= v <= p.high for v in grid)
            own = setup.entry(name).params.get(p.name, p.default)
            assert min(abs(v - own) for v in grid) < 1e-9
