"""Download buttons: the files hold what the view shows (same methods, starts and parameter values),
the config is embedded, and the basins view is reachable from the app's navigation."""

from __future__ import annotations

import csv
import io

import numpy as np
from app_figures import decode, figures, traces

from toyopt.figures import FigureSpec, read_embedded
from toyopt.ui import downloads, runs, state

QUERY = {
    "view": "trajectories",
    "setup": "conicgrad2025",
    "methods": "conicgrad_exact",
    "conicgrad_exact.c": "0.7",
    "steps": "30",
    "lr": "0.05",
    "inits": "-8.5,7.5;9.0,9.0",
}


def _download_labels(at) -> list[str]:
    return [el.proto.label for el in at.get("download_button")]


def _csv_paths(text: str) -> dict[tuple[float, float], np.ndarray]:
    rows = list(csv.DictReader(line for line in io.StringIO(text) if not line.startswith("#")))
    paths: dict[tuple[float, float], list] = {}
    for r in rows:
        paths.setdefault((float(r["init_x1"]), float(r["init_x2"])), []).append(
            (float(r["x1"]), float(r["x2"]))
        )
    return {k: np.array(v) for k, v in paths.items()}


def test_trajectory_downloads_hold_the_lanes_on_screen(app):
    at = app(**QUERY)
    assert not at.exception
    on_screen = {
        (float(decode(t["x"])[0]), float(decode(t["y"])[0])): np.c_[decode(t["x"]), decode(t["y"])]
        for t in traces(figures(at)[0], "lane-")
    }
    assert len(on_screen) == 2
    assert _download_labels(at) == []  # nothing is prepared before the click
    at.button(key="download_prepare_paper").click().run()
    assert not at.exception
    assert _download_labels(at) == ["PDF", "SVG", "PNG", "CSV", "JSON", "CONFIG JSON"]

    values, errors = state.parse_query(QUERY)
    assert not errors
    config = runs.build_config(values, grids=False)
    assert [m.params["c"] for m in config.methods] == [0.7]  # the slider's value, not the grid
    spec = FigureSpec(layout="paper").validated()
    files = downloads.prepared_files(config.to_json(), spec.to_json())
    for suffix in (".pdf", ".svg", ".png"):
        embedded, embedded_spec = read_embedded(files[suffix][0])
        assert embedded.to_json() == config.to_json()
        assert embedded_spec == spec
    paths = _csv_paths(files[".csv"][0].decode())
    assert set(paths) == set(on_screen)
    for start, xy in on_screen.items():
        np.testing.assert_allclose(paths[start], xy, rtol=1e-9, atol=1e-12)


def test_landscape_and_regions_offer_their_figures(app):
    at = app(view="landscape", methods="ls,mgda", steps="50")
    at.button(key="download_prepare_landscape").click().run()
    assert not at.exception
    assert _download_labels(at) == ["PDF", "SVG", "PNG", "CONFIG JSON"]
    at = app(view="regions", methods="ls,mgda", steps="50", point="-2.0,2.0")
    at.button(key="download_prepare_regions").click().run()
    assert not at.exception
    assert _download_labels(at) == ["PDF", "SVG", "PNG", "CONFIG JSON"]
    values, _ = state.parse_query({"methods": "ls,mgda", "steps": "50"})
    spec = FigureSpec(layout="regions", point=(-2.0, 2.0), ball_c=0.5, cone_c=0.5).validated()
    files = downloads.prepared_files(runs.build_config(values, grids=False).to_json(), spec.to_json())
    assert read_embedded(files[".svg"][0])[1].point == (-2.0, 2.0)


def test_basins_view_is_in_the_navigation_and_keeps_its_link(app):
    at = app(view="basins", setup="nashmtl2022", methods="ls", basin_grid=3, steps=10)
    assert not at.exception
    assert not at.error
    assert len(at.dataframe) == 1
    assert at.query_params["basin_grid"] == "3"
    assert at.query_params["view"] == "basins"
