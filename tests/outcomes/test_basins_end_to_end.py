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
    CATEGORIES,
    Starts,
    basin_config,
    outcomes_csv,
    outcomes_dict,
    run_basins,
    success_table,
    with_param_sweep,
)
from toyopt.setups import get_setup

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
    assert [s.title for s in outcomes.series] == [
        "CAGrad (c = 0.1)",
        "CAGrad (c = 0.5)",
        "CAGrad (c = 0.9)",
        METHODS["ls"].label,
    ]
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


def _grid_run(setup: str, methods: list[str], n: int, steps: int):
    base = get_setup(setup).config(methods, steps=steps)
    return basin_config(base, Starts("grid", n, BOX))


def test_the_estimate_comes_from_the_config_alone(monkeypatch):
    """The page's estimate (toyopt.budget) runs nothing: it grows with the starts and the steps."""
    import toyopt.engine as engine_module
    from toyopt import budget

    def no_run(*args, **kwargs):
        raise AssertionError("the estimate must not run the engine")

    monkeypatch.setattr(engine_module, "run", no_run)
    small = _grid_run("nashmtl2022", ["ls", "mgda"], 30, 1200)
    large = _grid_run("nashmtl2022", ["ls", "mgda"], 60, 2400)
    assert 0 < budget.estimated_seconds(small) < budget.estimated_seconds(large)
