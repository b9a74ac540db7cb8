"""AppTest for each view: renders, sliders act, starts can be added, bad links fail softly."""

from __future__ import annotations

import math

import numpy as np
import pytest
from app_figures import decode, figures, traces

from toyopt.engine import run
from toyopt.methods import METHODS
from toyopt.setups import DEFAULT_SETUP, get_setup

FAST = {"methods": "ls,mgda", "steps": 120, "lr": 0.05}


@pytest.mark.parametrize("view", ["landscape", "trajectories", "regions", "teaching"])
def test_each_view_renders(app, view):
    at = app(view=view, story="mgda_front", **FAST)
    approve(at)  # the story's run may wait for a click on a loaded machine
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


def test_landscape_shows_the_curvature_of_the_pareto_set(app):
    at = app(view="landscape")
    zoom = next(f for f in figures(at) if "own x2 scale" in f["layout"]["title"]["text"])
    pareto = next(t for t in zoom["data"] if t["name"] == "Pareto set")
    x, y = decode(pareto["x"]), decode(pareto["y"])
    low, high = zoom["layout"]["yaxis"]["range"]
    assert low <= y.min() and y.max() <= high and high - low <= 1.5 * (y.max() - y.min()), (
        "x2 zoomed to the set"
    )
    # Away from the straight line between its ends by a visible share of the axis.
    chord = y[0] + (y[-1] - y[0]) * (x - x[0]) / (x[-1] - x[0])
    assert np.abs(y - chord).max() > 0.2 * (high - low)


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


def test_trajectory_panels_keep_their_axis_titles_clear(app):
    at = app(view="trajectories", methods="ls,mgda,cagrad", steps=20, lr=0.05)
    layout = figures(at)[0]["layout"]
    titled = [k for k in layout if k.startswith("yaxis") and layout[k].get("title", {}).get("text")]
    assert titled == ["yaxis"], "x2 titles only left of column 1, not over the next panel"
    assert layout["legend"]["yanchor"] == "bottom" and layout["legend"]["y"] >= 1.0, (
        "legend off the x1 titles"
    )


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
    # The rest of the page works with the defaults: the published steps, whose run (all of the
    # default preset's methods) waits for a click when it is estimated slow (eager, here).
    assert at.number_input(key="w:steps").value == get_setup(DEFAULT_SETUP).steps
    assert figures(at) or any(b.label.startswith("Run anyway") for b in at.button)


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


def test_the_trajectory_step_slider_counts_optimizer_steps(app):
    """1200 steps are recorded every ceil(1200 / 500) = 3 steps: the slider offers 0, 3, ..., 1200 and
    its 6th position (a link's at_step=5) is optimizer step 15, as the text beside it says."""
    at = app(view="regions", source="trajectory", at_step=5, methods="ls,mgda", steps=1200, lr=0.05)
    approve(at)
    assert not at.exception
    slider = at.select_slider(key="w:at_step")
    assert slider.label == "optimizer step"
    assert slider.options == [str(step) for step in range(0, 1201, 3)]
    assert slider.options[slider.value] == "15"
    assert any(m.value.startswith("At step 15 of LS") for m in at.markdown)


def approve(at) -> None:
    """Click "Run anyway" if a loaded machine made the run's estimate exceed the slow-run gate."""
    for button in at.button:
        if button.label.startswith("Run anyway"):
            button.click().run()
            return


def _slider(fig: dict) -> tuple[list[int], int]:
    slider = fig["layout"]["sliders"][0]
    return [int(step["label"]) for step in slider["steps"]], slider["active"]


def test_teaching_plays_in_the_browser_in_optimizer_steps(app):
    at = app(view="teaching", story="mean_stuck", teach_step=1001)
    assert not at.exception
    fig = figures(at)[0]
    labels, active = _slider(fig)
    # The slider counts optimizer steps (the story runs 3500; every 7th is recorded) and opens at the link's.
    assert labels[0] == 0 and labels[-1] == 3500 and labels[active] == 1001
    assert all(b % 7 == 0 for b in labels) and labels == sorted(labels)
    assert [f["name"] for f in fig["frames"]] == [str(s) for s in labels]
    buttons = fig["layout"]["updatemenus"][0]["buttons"]
    plays = [b for b in buttons if b["args"][0] is None]
    durations = {b["args"][1]["frame"]["duration"] for b in plays}
    assert len(durations) >= 3, "play at several speeds"
    assert all(b["args"][1]["fromcurrent"] for b in plays)
    assert any(b["args"][0] == [None] for b in buttons), "a pause button"
    # Every frame's titles name its step, and its path so far ends at the run's point at that step.
    whole = next(t for t in fig["data"] if t.get("name") == "whole run")
    xs, ys = decode(whole["x"]), decode(whole["y"])
    moving = fig["frames"][0]["traces"]
    so_far = moving.index(next(i for i, t in enumerate(fig["data"]) if t.get("name") == "so far"))
    for frame, step in zip(fig["frames"], labels):
        assert f"step {step}:" in frame["layout"]["annotations"][0]["text"]
        path = frame["data"][so_far]
        assert decode(path["x"])[-1] == xs[step // 7] and decode(path["y"])[-1] == ys[step // 7]
    assert f"step {labels[active]}:" in fig["layout"]["annotations"][0]["text"]


def test_a_new_story_starts_at_its_beginning(app):
    at = app(view="teaching", story="mean_stuck", teach_step=1001)
    at.selectbox(key="w:story").set_value("conic_minimum").run()
    approve(at)
    assert not at.exception
    labels, active = _slider(figures(at)[0])
    assert active == 0 and labels[0] == 0
    assert "teach_step" not in at.query_params


def _ball(fig: dict) -> tuple[np.ndarray, float]:
    """Centre and radius of the drawn CAGrad ball."""
    ball = next(t for t in fig["data"] if str(t.get("name", "")).startswith("CAGrad ball"))
    pts = np.c_[decode(ball["x"]), decode(ball["y"])]
    centre = pts[:-1].mean(0)
    return centre, float(np.linalg.norm(pts - centre, axis=1).mean())


def test_regions_are_drawn_with_the_c_of_their_methods(app):
    at = app(
        view="regions",
        setup="cagrad2021",
        methods="cagrad,conicgrad_exact",
        cagrad__c=0.3,
        conicgrad_exact__c=0.7,
    )
    assert not at.exception
    fig = figures(at)[0]
    centre, radius = _ball(fig)
    cagrad_c = 0.3  # the view's own ball slider stays at its default, 0.5
    assert radius == pytest.approx(cagrad_c * np.linalg.norm(centre), rel=1e-6)
    assert _wedge_half_angle(fig) == pytest.approx(math.acos(0.7), abs=1e-6)
    rows = at.dataframe[0].value
    assert f"in ball (c={cagrad_c:g})" in rows.columns and "in cone (c=0.7)" in rows.columns
    exact = rows[rows["method"].str.startswith(METHODS["conicgrad_exact"].label)].iloc[0]
    assert bool(exact["in cone (c=0.7)"]), "the exact cone solution lies in the cone drawn"
    assert "w:cone_c" not in [s.key for s in at.slider], "no second c for the cone"


def test_regions_open_where_the_tasks_conflict(app):
    at = app(view="regions", methods="mgda")
    assert not at.exception
    text = next(m.value for m in at.markdown if "cos(g1, g2)" in m.value)
    cos = float(text.split("cos(g1, g2) = ")[1].split(" ")[0])
    assert cos < 0 and "(conflicting)" in text


def test_regions_readouts_fill_the_width_at_four_digits(app):
    at = app(view="regions", source="synthetic", angle=100, g1_norm=1.2345678, g2_norm=3.1, methods="mgda,ls")
    assert not at.exception
    assert all(len(col.dataframe) == 0 for col in at.columns), "the table is not squeezed into a column"
    rows = at.dataframe[0].value
    for name in ("||d||", "cos(d, g0)", "<g1, d>", "<g2, d>"):
        for v in rows[name]:
            assert v == float(f"{v:.4g}")
    from toyopt.ui.runs import synthetic_gradients

    exact = float(np.linalg.norm(synthetic_gradients(100, 1.2345678, 3.1).sum(0)))
    shown = rows[rows["method"] == METHODS["ls"].label].iloc[0]["||d||"]
    assert shown == float(f"{exact:.4g}") != exact  # LS: d = g1 + g2, rounded


def test_run_anyway_leaves_no_warning_above_the_plots(app, monkeypatch):
    from toyopt.ui import runs

    monkeypatch.setattr(runs, "SLOW_SECONDS", -1.0)
    at = app(view="trajectories", **FAST)
    assert at.warning and not figures(at)
    approve(at)
    assert not at.exception
    assert figures(at)
    assert not [w for w in at.warning if "would take" in w.value]
