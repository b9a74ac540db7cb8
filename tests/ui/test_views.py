"""AppTest for each view: renders, sliders act, starts can be added, bad links fail softly."""

from __future__ import annotations

import math

import numpy as np
import pytest
from app_figures import decode, figures, traces

from toyopt.engine import run
from toyopt.methods import METHODS
from toyopt.setups import get_setup

FAST = {"methods": "ls,mgda", "steps": 120, "lr": 0.05}


@pytest.mark.parametrize("view", ["landscape", "trajectories", "regions", "teaching"])
def test_each_view_renders(app, view):
    at = app(view=view, story="mgda_front", **FAST)
    assert not at.exception
    assert not at.error
    assert figures(at), "every view draws at least one plotly figure"


def test_landscape_surface_switch_changes_the_contours(app):
    at = app(view="landscape")
    z_mean = decode(figures(at)[0]["data"][0]["z"])
    at.segmented_control(key="w:surface").set_value("f2").run()
    z_f2 = decode(figures(at)[0]["data"][0]["z"])
    assert z_mean.shape == z_f2.shape and not np.allclose(z_mean, z_f2)
    at.toggle(key="w:surface3d").set_value(True).run()
    assert any(t["type"] == "surface" for f in figures(at) for t in f["data"])


def _lane_xy(at) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    fig = figures(at)[0]
    return {t["meta"]: (decode(t["x"]), decode(t["y"])) for t in traces(fig, "lane-")}


def test_changing_c_changes_the_conicgrad_trajectory(app):
    method = next((m for m in ("conicgrad", "conicgrad_exact") if m in METHODS), None)
    if method is None:
        pytest.skip("no ConicGrad method registered")
    query = {
        "view": "trajectories",
        "setup": "conicgrad2025",
        "methods": method,
        "steps": 30,
        "lr": 0.05,
        "inits": "-8.5,7.5;9.0,9.0",
    }
    at = app(**query)
    assert not at.exception
    before = _lane_xy(at)
    assert len(before) == 2
    at.select_slider(key=f"w:{method}.c").set_value(0.9).run()
    after = _lane_xy(at)
    assert set(before) != set(after), "the slider picks other lanes of the same run"
    for (bx, by), (ax, ay) in zip(before.values(), after.values()):
        assert bx[0] == ax[0] and by[0] == ay[0]  # same starts
        assert not np.allclose(np.c_[bx, by], np.c_[ax, ay])
    # The lanes shown for c = 0.9 are the trajectories of a run with c = 0.9 alone.
    setup = get_setup("conicgrad2025")
    ref = run(
        setup.config(
            methods=[method],
            params={method: {"c": 0.9}},
            steps=30,
            lr=0.05,
            inits=((-8.5, 7.5), (9.0, 9.0)),
            record_every=1,
        )
    )
    for k, (ax, ay) in enumerate(after.values()):
        np.testing.assert_allclose(np.c_[ax, ay], ref.x[:, k], rtol=1e-9, atol=1e-12)


def test_adding_a_start_adds_a_trajectory_per_method(app):
    at = app(view="trajectories", **FAST)
    n_before = len(_lane_xy(at))
    at.number_input(key="new_x1").set_value(2.5)
    at.number_input(key="new_x2").set_value(-4.0)
    at.button[[b.label for b in at.button].index("Add start")].click().run()
    assert not at.exception
    lanes = _lane_xy(at)
    assert len(lanes) == n_before + 2  # both methods' panels gain the new start
    starts = [(float(x[0]), float(y[0])) for x, y in lanes.values()]
    assert starts.count((2.5, -4.0)) == 2
    assert "2.5,-4.0" in at.query_params["inits"]


def test_invalid_link_gives_an_error_and_a_working_page(app):
    at = app(
        view="trajectories",
        steps="abc",
        lr="-1",
        foo="1",
        methods="ls,nope",
        mgda__fw_iters="0",
        inits="1,2;x",
    )
    assert not at.exception
    assert len(at.error) == 1
    message = at.error[0].value.replace("\\", "")  # markdown escapes removed
    for name in ("steps", "lr", "foo", "methods", "mgda.fw_iters", "inits"):
        assert name in message
    # The defaults' run may be long enough on a loaded machine to wait for a click first.
    approve = [b for b in at.button if b.label.startswith("Run anyway")]
    if approve:
        approve[0].click().run()
    assert figures(at), "the rest of the page still works (defaults used)"


def test_huge_step_request_is_capped(app):
    at = app(view="landscape", steps=10**9)
    assert "steps" in at.error[0].value
    assert int(at.query_params.get("steps", "0") or 0) <= 100_000


def _wedge_half_angle(fig: dict) -> float:
    """The largest angle between g0 (as drawn) and a point of the drawn cone."""
    cone = next(t for t in fig["data"] if str(t.get("name", "")).startswith("ConicGrad cone"))
    g0 = next(t for t in fig["data"] if str(t.get("name", "")).startswith("g0"))
    g = np.array([decode(g0["x"])[1], decode(g0["y"])[1]])
    pts = np.c_[decode(cone["x"])[1:-1], decode(cone["y"])[1:-1]]
    cos = pts @ g / (np.linalg.norm(pts, axis=1) * np.linalg.norm(g))
    return float(np.arccos(np.clip(cos, -1, 1)).max())


def test_regions_cone_slider_and_readouts_match_closed_forms(app):
    at = app(view="regions", source="synthetic", angle=120, g1_norm=1, g2_norm=1, methods="mgda,ls")
    assert not at.exception
    assert _wedge_half_angle(figures(at)[0]) == pytest.approx(math.acos(0.5), abs=1e-6)
    at.slider(key="w:cone_c").set_value(-0.5).run()
    assert _wedge_half_angle(figures(at)[0]) == pytest.approx(math.acos(-0.5), abs=1e-6)
    assert any("non-convex" in c.value for c in at.caption)
    assert at.query_params["cone_c"] == "-0.5"
    rows = at.dataframe[0].value
    mgda = rows[rows["method"] == "MGDA"].iloc[0]
    # Two unit gradients 120 deg apart: the min-norm point of their hull is their mean, length cos(60 deg).
    assert mgda["||d||"] == pytest.approx(0.5, abs=1e-9)
    assert mgda["cos(d, g0)"] == pytest.approx(1.0, abs=1e-9)
    assert bool(mgda["non-conflicting"])


def test_regions_at_a_trajectory_step(app):
    at = app(view="regions", source="trajectory", at_step=5, **FAST)
    assert not at.exception
    assert any("step" in m.value and "x = (" in m.value for m in at.markdown)


def test_teaching_scrub_moves_the_step(app):
    at = app(view="teaching", story="mean_stuck")
    assert not at.exception
    first = figures(at)[0]["layout"]["title"]["text"]
    at.slider(key="w:teach_step").set_value(100).run()
    assert not at.exception
    assert figures(at)[0]["layout"]["title"]["text"] != first
    assert at.query_params["teach_step"] == "100"
