"""AppTest of the basins view: one URL state, the sidebar's run, the one run cache and gate."""

from __future__ import annotations

from app_figures import decode, figures

from toyopt.methods import METHODS
from toyopt.outcomes import CATEGORIES, Starts, run_basins
from toyopt.setups import get_setup

LINK = {"view": "basins", "setup": "nashmtl2022", "methods": "ls,cagrad", "basin_grid": 5, "steps": 50}


def test_a_basins_link_brings_the_maps_back_with_the_sidebars_run(app):
    at = app(**LINK)
    assert not at.exception and not at.error
    maps = figures(at)
    cagrad_c = get_setup("nashmtl2022").entry("cagrad").params["c"]
    titles = [METHODS["ls"].label, f"{METHODS['cagrad'].label} (c = {cagrad_c:g})"]  # as the panels name it
    assert [f["layout"]["title"]["text"] for f in maps] == titles
    assert list(at.dataframe[0].value["series"]) == titles
    assert any("50 steps" in c.value for c in at.caption), "the sidebar's steps, not the setup's"
    keys = {w.key for kind in ("selectbox", "multiselect", "number_input") for w in at.get(kind)}
    assert not keys & {"basins_setup", "basins_methods", "basins_steps"}, "no second set of controls"
    # The cells are the outcomes of the same run made by the core directly.
    setup = get_setup("nashmtl2022")
    base = setup.config(
        ["ls", "cagrad"],
        steps=50,
        lr=setup.lr,
        params={"cagrad": {"c": setup.entry("cagrad").params["c"]}},
    )
    ref, _ = run_basins(base, Starts("grid", 5, ((-10.0, 10.0), (-10.0, 10.0))))
    for fig, series in zip(maps, ref.series):
        cells = next(t for t in fig["data"] if t["type"] == "heatmap")
        expect = [CATEGORIES.index(k) for k in ref.category[series.lanes]]
        assert decode(cells["z"]).ravel().tolist() == expect


def test_the_marks_are_drawn_above_the_cells(app):
    at = app(**LINK)
    for fig in figures(at):
        names = [t.get("name") for t in fig["data"]]
        assert names.index("outcome") < min(
            names.index(n) for n in ("mean loss", "Pareto set", "global minimum")
        )
        assert not [t for t in fig["data"] if t["type"].endswith("gl")], "WebGL is drawn above all SVG"
        click_layer = fig["data"][-1]
        assert click_layer["name"] == "starts" and click_layer["marker"]["color"] == "rgba(0,0,0,0.01)"
        assert fig["layout"].get("dragmode") != "select", "a click must select a start"


def test_the_c_sweep_and_the_lane_cap_are_link_values(app):
    at = app(**{**LINK, "methods": "cagrad", "basin_sweep": 1, "basin_grid": 2})
    assert not at.exception
    labels = list(at.dataframe[0].value["series"])
    assert labels[0] == f"{METHODS['cagrad'].label} (c = 0.05)" and len(labels) == 19
    at = app(**{**LINK, "methods": "cagrad", "basin_sweep": 1, "basin_grid": 100})
    assert "lanes" in at.error[0].value and not figures(at)
    assert at.checkbox(key="w:basin_sweep").value, "the rest of the page works"


def test_a_slow_basin_run_waits_at_the_apps_one_gate(app, monkeypatch):
    from toyopt.ui import runs

    monkeypatch.setattr(runs, "SLOW_SECONDS", -1.0)
    at = app(**LINK)
    assert any("would take" in w.value for w in at.warning) and not figures(at)
    next(b for b in at.button if b.label.startswith("Run anyway")).click().run()
    assert len(figures(at)) == 2 and not any("would take" in w.value for w in at.warning)
