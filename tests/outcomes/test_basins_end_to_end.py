"""A small grid (8 x 8, 300 steps, LS and MGDA) end to end: the map, the table, the CSV/JSON
exports and the figure agree with each other; the CLI's file and error handling; the app's caps."""

from __future__ import annotations

import csv
import io
import json
from collections import Counter

import numpy as np
import pytest

from toyopt.cli import main
from toyopt.figures.basins import basin_maps_figure, save_basin_figure
from toyopt.figures.embed import read_embedded
from toyopt.methods import METHODS
from toyopt.outcomes import (
    APP_MAX_GRID,
    APP_MAX_STEPS,
    CATEGORIES,
    Starts,
    outcomes_csv,
    outcomes_dict,
    run_basins,
    success_table,
    with_param_sweep,
)
from toyopt.setups import get_setup
from toyopt.ui.basins import DEFAULT_GRID, SLOW_SECONDS, BasinRequest, request_from_query

N = 8
BOX = ((-10.0, 10.0), (-10.0, 10.0))


@pytest.fixture(scope="module")
def small():
    base = get_setup("nashmtl2022").config(["ls", "mgda"], steps=300)
    outcomes, result = run_basins(base, Starts("grid", N, BOX))
    return outcomes, result


def test_one_batch_with_three_records(small):
    outcomes, result = small
    assert len(result.lanes) == 2 * N * N
    assert len(result.recorded_steps) == 3 and result.recorded_steps[-1] == 300


def test_map_cells_are_their_starts(small):
    outcomes, _ = small
    centres = -10 + (np.arange(N) + 0.5) * 20 / N
    for k in range(2):
        assert outcomes.map(k).shape == (N, N)
        for row, col in ((0, 0), (3, 5), (7, 7)):
            lane = outcomes.lane_at(k, row, col)
            np.testing.assert_allclose(outcomes.init[lane], [centres[col], centres[row]])


def test_table_agrees_with_the_map(small):
    outcomes, _ = small
    table = success_table(outcomes)
    for k, row in enumerate(table):
        counts = Counter(outcomes.map(k).ravel().tolist())
        for c in CATEGORIES:
            assert row[c] * N * N == pytest.approx(counts.get(c, 0))
        assert row["pareto_set"] == pytest.approx(row["global_min"] + row["pareto"])
        steps = outcomes.steps_to_pareto[outcomes.series[k].lanes]
        on = steps[steps >= 0]
        assert (row["median_steps_pareto_set"] is None) == (len(on) == 0)
        if len(on):
            assert row["median_steps_pareto_set"] == float(np.median(on))


def test_csv_and_json_agree_with_the_map(small):
    outcomes, _ = small
    text = outcomes_csv(outcomes)
    lines = text.splitlines()
    assert lines[0].startswith("# toyopt config: ") and lines[1].startswith("# toyopt basins: ")
    rows = list(csv.DictReader(io.StringIO("\n".join(lines[2:]))))
    assert len(rows) == 2 * N * N
    data = json.loads(json.dumps(outcomes_dict(outcomes)))
    for k, s in enumerate(outcomes.series):
        grid = np.array(data["series"][k]["map"])
        np.testing.assert_array_equal(grid, outcomes.map(k))
        for lane in s.lanes[[0, 9, 63]]:
            row = rows[lane]
            assert row["outcome"] == outcomes.category[lane] == data["lanes"]["outcome"][lane]
            assert float(row["init_x1"]) == outcomes.init[lane][0]
            assert row["method"] == s.method
    on_set = [r for r in rows if r["outcome"] in ("global_min", "pareto")]
    assert all(r["pareto_l"] != "" for r in on_set)
    assert all(r["pareto_l"] == "" for r in rows if r not in on_set)


@pytest.fixture(scope="module")
def figure(small):
    return basin_maps_figure(small[0])


def test_figure_draws_the_map(small, figure):
    outcomes, _ = small
    images = [ax.images[0] for ax in figure.axes if ax.images]
    assert len(images) == 2
    for k, image in enumerate(images):
        np.testing.assert_array_equal(np.asarray(image.get_array()), outcomes.codes(k))


@pytest.mark.parametrize("suffix,magic", [(".pdf", b"%PDF-"), (".svg", b"<?xml"), (".png", b"\x89PNG")])
def test_figure_export_embeds_the_config(small, figure, suffix, magic):
    outcomes, _ = small
    data = save_basin_figure(figure, f"x{suffix}", outcomes, dpi=60)
    assert data.startswith(magic)
    config, _ = read_embedded(data)
    assert config == outcomes.config


def test_param_sweep_makes_one_series_per_value():
    base = get_setup("conicgrad2025").config(["cagrad", "ls"], steps=5)
    swept = with_param_sweep(base, "c", (0.1, 0.5, 0.9))
    outcomes, result = run_basins(swept, Starts("grid", 2, BOX))
    assert len(result.lanes) == (3 + 1) * 4
    assert [s.label for s in outcomes.series] == ["cagrad c=0.1", "cagrad c=0.5", "cagrad c=0.9", "ls"]
    with pytest.raises(ValueError):
        with_param_sweep(get_setup("nashmtl2022").config(["ls"]), "c")


def test_cli_writes_refuses_overwrite_and_rejects_bad_input(tmp_path, capsys):
    out = tmp_path / "b.csv"
    args = ["basins", "--setup", "nashmtl2022", "--method", "ls", "--grid", "4", "--steps", "20", "--quiet"]
    assert main([*args, "--out", str(out)]) == 0
    rows = out.read_text().splitlines()
    assert len(rows) == 2 + 1 + 16
    assert main([*args, "--out", str(out)]) == 2
    assert main([*args, "--out", str(out), "--force"]) == 0
    capsys.readouterr()
    for bad in (
        ["--grid", "1"],
        ["--grid", "500"],
        ["--inits", "0,0"],
        ["--out-of-place"],
    ):
        assert main(["basins", "--method", "ls", "--steps", "5", "--out", str(tmp_path / "x.csv"), *bad]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("toyopt: error:")
    assert main(["basins", "--method", "ls", "--steps", "5", "--out", str(tmp_path / "x.txt")]) == 2
    rnd = ["basins", "--method", "ls", "--steps", "5", "--random", "5", "--quiet"]
    assert main([*rnd, "--out", str(tmp_path / "x.png")]) == 2
    assert main([*rnd, "--out", str(tmp_path / "r.json")]) == 0
    table = json.loads((tmp_path / "r.json").read_text())["table"][0]
    assert table["starts"] == 5 and len(table["global_min_ci95"]) == 2


def test_app_and_url_caps():
    req, errors = request_from_query(
        {"basins.grid": "100000", "basins.steps": "999999999", "basins.methods": "ls,nope"}
    )
    assert (req.n, req.steps, req.methods) == (DEFAULT_GRID, None, ()), "out of range: the defaults"
    assert errors == [
        "basins.methods: unknown ['nope']; allowed: " + str(sorted(METHODS)),
        f"basins.grid must be an integer in [2, {APP_MAX_GRID}], got '100000'",
        f"basins.steps must be an integer in [1, {APP_MAX_STEPS}], got '999999999'",
    ]
    req, errors = request_from_query({"basins.grid": "abc"})
    assert req.n == DEFAULT_GRID and errors == [
        f"basins.grid must be an integer in [2, {APP_MAX_GRID}], got 'abc'"
    ]
    req, errors = request_from_query({"basins.grid": str(APP_MAX_GRID), "basins.steps": str(APP_MAX_STEPS)})
    assert (req.n, req.steps, errors) == (APP_MAX_GRID, APP_MAX_STEPS, []), "the caps themselves are allowed"
    with pytest.raises(ValueError):
        BasinRequest(n=APP_MAX_GRID + 1).validated()
    with pytest.raises(ValueError, match="lanes"):  # 19 c values x 100^2 starts is over the page's cap
        BasinRequest("conicgrad2025", ("cagrad",), n=100, steps=10, sweep_c=True).build()
    config, starts = BasinRequest("nashmtl2022", ("ls",), n=3, steps=10).build()
    assert len(config.inits) == 9 and config.record_every == 9
    for req in (
        BasinRequest("nashmtl2022", ("ls", "mgda"), n=7, steps=50),
        BasinRequest("conicgrad2025", (), "random", 20, seed=5, sweep_c=True),
    ):
        assert request_from_query(req.to_query()) == (req, [])


def _basins_app(script: str = "basins_view()", **query):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_string("from toyopt.ui.basins import basins_view\n" + script, default_timeout=120)
    for key, value in query.items():
        at.query_params[key] = value
    return at.run()


def test_view_lists_bad_link_parameters_and_uses_the_defaults():
    at = _basins_app(**{"basins.grid": "1e9", "basins.steps": "-3", "basins.methods": "ls", "basins.x": "1"})
    assert not at.exception
    assert len(at.error) == 1
    message = at.error[0].value
    assert "basins.grid must be an integer in [2, 100], got '1e9'" in message
    assert "basins.steps must be an integer in [1, 100000], got '-3'" in message
    assert "basins.x: unknown parameter" in message
    assert at.number_input(key="basins_grid").value == DEFAULT_GRID
    assert at.multiselect(key="basins_methods").value == ["ls"], "the valid parameters are kept"
    assert any("press Run" in i.value for i in at.info), "the rest of the page works"


def test_a_run_rewrites_the_basins_link_clean():
    query = {"basins.setup": "nashmtl2022", "basins.methods": "ls", "basins.grid": "3", "basins.steps": "10"}
    at = _basins_app(**query, **{"basins.random": "5", "basins.x": "1"})
    assert len(at.error) == 1 and "not both" in at.error[0].value and "basins.x" in at.error[0].value
    at.button(key="basins_run").click().run()
    assert not at.exception and len(at.dataframe) == 1
    assert not at.error, "the bad parameters are gone from the link"
    assert {k for k in at.query_params} == {
        "basins.setup",
        "basins.methods",
        "basins.grid",
        "basins.seed",
        "basins.steps",
    }


def test_the_estimate_comes_from_the_config_alone(monkeypatch):
    """The page's estimate (toyopt.budget) runs nothing: it grows with the starts and the steps."""
    import toyopt.engine as engine_module
    from toyopt import budget

    def no_run(*args, **kwargs):
        raise AssertionError("the estimate must not run the engine")

    monkeypatch.setattr(engine_module, "run", no_run)
    small, _ = BasinRequest("nashmtl2022", ("ls", "mgda"), n=30, steps=1200).build()
    large, _ = BasinRequest("nashmtl2022", ("ls", "mgda"), n=60, steps=2400).build()
    assert 0 < budget.estimated_seconds(small) < budget.estimated_seconds(large)


def test_a_slow_run_waits_for_a_second_click():
    """100^2 starts x 100 000 steps of two methods: estimated far above the limit, so Run shows the
    estimate and a "Run anyway" button and runs nothing."""
    query = {"basins.setup": "nashmtl2022", "basins.methods": "ls,mgda", "basins.grid": "100"}
    at = _basins_app(**query, **{"basins.steps": "100000"})
    at.button(key="basins_run").click().run()
    assert not at.exception and not at.error
    warning = next(w.value for w in at.warning if "This run would take roughly" in w.value)
    seconds = float(warning.split("roughly ")[1].split(" s")[0])
    assert seconds > SLOW_SECONDS and "20000 lanes x 100000 steps" in warning
    assert at.button(key="basins_run_anyway").label == f"Run anyway (~{seconds:.0f} s)"
    assert not at.dataframe and "basins_outcomes" not in at.session_state
    at.number_input(key="basins_steps").set_value(60).run()  # changed controls drop the pending run
    assert not any("would take" in w.value for w in at.warning)
    assert not [b for b in at.button if b.key == "basins_run_anyway"]


def test_run_anyway_runs_the_estimated_request():
    """With a limit of 0 s every run longer than the probes asks first; the second click runs exactly
    the estimated request."""
    query = {"basins.setup": "nashmtl2022", "basins.methods": "ls", "basins.grid": "3", "basins.steps": "100"}
    at = _basins_app("basins_view(slow_seconds=0.0)", **query)
    at.button(key="basins_run").click().run()
    assert not at.exception and not at.dataframe
    assert any("This run would take roughly" in w.value for w in at.warning)
    at.button(key="basins_run_anyway").click().run()
    assert not at.exception and len(at.dataframe) == 1
    assert not any("would take" in w.value for w in at.warning)
    assert at.session_state["basins_outcomes"].config.steps == 100
    assert at.query_params["basins.steps"] == "100" and at.query_params["basins.grid"] == "3"


def test_view_renders_and_runs_a_tiny_grid():
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_string("from toyopt.ui.basins import basins_view\nbasins_view()", default_timeout=60)
    at.query_params["basins.setup"] = "nashmtl2022"
    at.query_params["basins.methods"] = "ls"
    at.query_params["basins.grid"] = "3"
    at.query_params["basins.steps"] = "10"
    at.run()
    assert not at.exception
    at.button(key="basins_run").click().run()
    assert not at.exception
    assert len(at.dataframe) == 1
