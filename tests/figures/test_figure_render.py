"""Rendered files are valid PDF / SVG / PNG, byte-reproducible, carry their config, and the geometry
they draw matches independent computations."""

import math
import re
import struct
import xml.etree.ElementTree as ET

import matplotlib
import numpy as np
import pytest
import torch

from toyopt import geometry
from toyopt.config import Config, MethodEntry
from toyopt.engine import run
from toyopt.figures import FigureSpec, read_embedded, render
from toyopt.figures.draw import default_point, directions_at, gap_series, region_c, thin
from toyopt.figures.style import RC
from toyopt.geometry import dual_cone_arc
from toyopt.methods import METHODS
from toyopt.problems import get_problem
from toyopt.setups import get_setup

SVG = "{http://www.w3.org/2000/svg}"
DPI = 60


@pytest.fixture(scope="module")
def config():
    return get_setup("nashmtl2022").config(methods=["ls", "mgda"], steps=300)


@pytest.fixture(scope="module")
def result(config):
    return run(config)


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    length, kind = struct.unpack(">I4s", data[8:16])
    assert kind == b"IHDR" and length == 13
    return struct.unpack(">II", data[16:24])


def check_pdf(data: bytes) -> None:
    assert data.startswith(b"%PDF-")
    assert data.rstrip().endswith(b"%%EOF")
    assert len(re.findall(rb"/Type\s*/Page(?![a-zA-Z])", data)) == 1
    assert b"/FontFile2" in data  # TrueType programs embedded
    assert not re.search(rb"/Type3\b|/Subtype\s*/Type3", data)


def check_svg(data: bytes) -> None:
    root = ET.fromstring(data)
    assert root.tag == f"{SVG}svg"
    texts = root.findall(f".//{SVG}text")
    assert texts  # svg.fonttype 'none': labels stay text, not glyph paths
    contents = {re.sub(r"\s", "", "".join(t.itertext())) for t in texts}
    assert contents & {"x1", "d1", "L1"}  # a mathtext axis label ($x_1$ ...) kept as text


@pytest.mark.parametrize("layout", ["paper", "landscape", "front", "regions"])
@pytest.mark.parametrize("fmt", ["pdf", "svg", "png"])
def test_every_layout_gives_a_valid_file(result, layout, fmt):
    data = render(result, layout, "single", fmt, DPI)
    if fmt == "pdf":
        check_pdf(data)
    elif fmt == "svg":
        check_svg(data)
    else:
        width, height = png_size(data)
        assert width == round(3.25 * DPI)
        assert 0.5 * width < height < 3 * width  # landscape: map, front and Pareto close-up stacked


def test_png_has_the_requested_custom_size(config):
    data = render(config, "regions", 4.0, "png", 50)
    assert png_size(data)[0] == 200
    data = render(config, "regions", "double", "png", 100)
    assert png_size(data)[0] == 675


def test_same_config_gives_byte_identical_files_and_leaves_rcparams_alone(config, result):
    before = dict(matplotlib.rcParams)
    again = run(config)
    for layout, fmt in (("paper", "pdf"), ("landscape", "svg"), ("landscape", "png")):
        assert render(result, layout, "single", fmt, DPI) == render(again, layout, "single", fmt, DPI)
    assert dict(matplotlib.rcParams) == before


@pytest.mark.parametrize("fmt", ["pdf", "svg", "png"])
def test_embedded_config_reruns_to_identical_trajectories(result, fmt):
    data = render(result, "front", 3.5, fmt, DPI)
    config, spec = read_embedded(data)
    assert config == result.config
    assert spec == FigureSpec(layout="front", width=3.5, dpi=DPI).validated()
    rerun = run(config)
    assert np.array_equal(rerun.x, result.x)
    assert np.array_equal(rerun.losses, result.losses)
    assert np.array_equal(rerun.recorded_steps, result.recorded_steps)


def test_regions_draws_every_registered_method():
    config = get_setup("nashmtl2022").config(methods=sorted(METHODS), steps=10)
    grads, dirs = directions_at(config, (9.0, -1.0))
    assert [d.method for d in dirs] == sorted(METHODS)
    assert all(np.all(np.isfinite(d.d)) for d in dirs)
    assert png_size(render(config, "regions", "single", "png", 50))[0] == round(3.25 * 50)


def test_landscape_without_trajectories_needs_no_run():
    config = get_setup("nashmtl2022").config(methods=["ls"], steps=200_000)  # would take minutes to run
    data = render(config, "landscape", "single", "png", 50, trajectories=False)
    assert png_size(data)[0] == round(3.25 * 50)


@pytest.mark.parametrize("width", ["single", "double"])
def test_landscape_export_shows_the_views_three_panels_filling_the_width(width):
    from toyopt.figures.draw import landscape

    config = get_setup("nashmtl2022").config(methods=["ls"], steps=5)
    with matplotlib.rc_context(RC):  # the fonts render_spec draws with
        fig = landscape(
            config, None, FigureSpec(layout="landscape", trajectories=False, width=width).validated()
        )
        fig.draw_without_rendering()  # runs the constrained layout
    maps, fronts, zoom = fig.axes
    problem = get_problem("liu2021")
    params = problem.validate_params(config.problem_params)
    pareto = geometry.pareto_set(problem, params)
    assert np.allclose(fronts.lines[0].get_xydata(), pareto.front.numpy()), "the Pareto front, as in the view"
    # The close-up: the Pareto set on its own x2 scale (15 % margins), where its bend shows.
    x2 = pareto.points.numpy()[:, 1]
    assert any(
        line.get_xydata().shape == x2.shape + (2,) and np.allclose(line.get_xydata(), pareto.points.numpy())
        for line in zoom.lines
    )
    margin = 0.15 * np.ptp(x2)
    assert np.allclose(zoom.get_ylim(), (x2.min() - margin, x2.max() + margin))
    assert np.ptp(zoom.get_ylim()) < 0.02 * np.ptp(maps.get_ylim())
    boxes = [ax.get_position() for ax in (maps, fronts, zoom)]
    if width == "double":  # map and front side by side above the close-up, each row most of the width
        assert boxes[0].x1 <= boxes[1].x0 and boxes[0].width + boxes[1].width > 0.7
        assert boxes[2].y1 <= min(boxes[0].y0, boxes[1].y0) and boxes[2].width > 0.8
    else:  # stacked, each most of the width
        assert boxes[2].y1 <= boxes[1].y0 <= boxes[1].y1 <= boxes[0].y0
        assert min(b.width for b in boxes) > 0.7
    _assert_legend_inside(fig)


def _assert_legend_inside(fig) -> None:
    """The figure legend lies within the figure and under every panel."""
    legend = fig.legends[0].get_window_extent().transformed(fig.transFigure.inverted())
    assert legend.x0 >= 0 and legend.x1 <= 1 and legend.y0 >= 0
    assert legend.y1 <= min(ax.get_position().y0 for ax in fig.axes)


@pytest.mark.parametrize("width", ["single", "double"])
def test_regions_export_fills_its_width_and_labels_each_d_with_its_c(width):
    from toyopt.figures.draw import regions

    config = get_setup("conicgrad2025").config(
        methods=["famo", "cagrad", "conicgrad", "conicgrad_exact"], steps=5
    )
    spec = FigureSpec(layout="regions", width=width, point=(9.0, -1.0)).validated()
    with matplotlib.rc_context(RC):
        fig = regions(config, spec)
        fig.draw_without_rendering()
    _assert_legend_inside(fig)
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "$d$ CAGrad (c = 0.4)" in labels
    assert any(label.startswith("$d$ ConicGrad, exact cone solution (c = 0.5)") for label in labels)
    boxes = [ax.get_position() for ax in fig.axes]
    if width == "single":
        assert len(boxes) == 1 and boxes[0].width > 0.7
        return
    whole, close = fig.axes
    assert boxes[0].x1 <= boxes[1].x0 and boxes[0].width + boxes[1].width > 0.8
    # The close-up holds every d and the ball, and is smaller than the whole view (g2 left out).
    grads, dirs = directions_at(config, (9.0, -1.0))
    (x0, x1), (y0, y1) = close.get_xlim(), close.get_ylim()
    g0, radius = grads.mean(0), 0.4 * np.linalg.norm(grads.mean(0))
    for d in [d.d for d in dirs] + [g0 - radius, g0 + radius]:
        assert x0 <= d[0] <= x1 and y0 <= d[1] <= y1
    assert np.ptp(close.get_xlim()) < np.ptp(whole.get_xlim())


def test_paper_layout_refuses_too_many_panels():
    config = get_setup("nashmtl2022").config(methods=["mgda"], steps=5)
    entries = tuple(MethodEntry("ls", {"reduction": r}) for r in ("mean", "sum")) * 7
    with pytest.raises(ValueError, match="at most 12 panels"):
        render(Config(methods=entries, steps=5, inits=config.inits[:1]), "paper", "single", "png", 50)


# -- geometry drawn, against independent references --------------------------------------------


def _feasible(grads: np.ndarray, angle: float) -> bool:
    d = np.array([math.cos(angle), math.sin(angle)])
    return all(g @ d >= 0 for g in grads)


@pytest.mark.parametrize("seed", range(6))
def test_dual_cone_arc_matches_a_dense_angle_search(seed):
    rng = np.random.default_rng(seed)
    grads = rng.normal(size=(2, 2)) * rng.uniform(0.01, 10, size=(2, 1))
    arc = dual_cone_arc(grads)
    assert arc is not None  # two generic vectors always leave a wedge
    lo, hi = arc
    for angle in np.linspace(-2 * math.pi, 2 * math.pi, 4001):
        inside = any(lo + 1e-9 <= angle + k * 2 * math.pi <= hi - 1e-9 for k in (-2, -1, 0, 1, 2))
        outside = not any(lo - 1e-9 <= angle + k * 2 * math.pi <= hi + 1e-9 for k in (-2, -1, 0, 1, 2))
        if inside:
            assert _feasible(grads, angle)
        if outside:
            assert not _feasible(grads, angle)


def test_dual_cone_of_opposite_gradients_is_a_line_and_of_one_gradient_a_half_plane():
    lo, hi = dual_cone_arc(np.array([[1.0, 0.0], [-2.0, 0.0]]))
    assert hi - lo == pytest.approx(0.0, abs=1e-12)
    lo, hi = dual_cone_arc(np.array([[0.0, 3.0], [0.0, 0.0]]))
    assert (lo, hi) == pytest.approx((0.0, math.pi))


def test_directions_at_a_point_match_autograd_and_a_brute_force_min_norm(config):
    point = (9.0, -1.0)
    problem = get_problem("liu2021")
    x = torch.tensor([point], dtype=torch.float64, requires_grad=True)
    losses = problem.losses(x, {"scale": 0.1})[0]
    g = np.stack([torch.autograd.grad(losses[k], x, retain_graph=True)[0][0].numpy() for k in range(2)])
    grads, dirs = directions_at(config, point)
    np.testing.assert_allclose(grads, g, rtol=1e-12, atol=1e-15)
    by_name = {d.method: d.d for d in dirs}
    np.testing.assert_allclose(by_name["ls"], g[0] + g[1], rtol=1e-12)  # reduction "sum" in this setup
    w = np.linspace(0, 1, 200_001)[:, None]
    best = np.linalg.norm(w * g[0] + (1 - w) * g[1], axis=-1).min()
    assert np.linalg.norm(by_name["mgda"]) == pytest.approx(best, rel=1e-6)


def test_default_point_is_a_start_with_conflicting_gradients(config):
    point = default_point(config)
    assert point in config.inits
    _, grads = get_problem("liu2021").losses_and_grads(
        torch.tensor([point], dtype=torch.float64), {"scale": 0.1}
    )
    assert float((grads[0, 0] * grads[0, 1]).sum()) < 0


def test_gap_is_zero_at_the_global_minimum_and_the_loss_difference_elsewhere():
    problem = get_problem("liu2021")
    xstar = geometry.global_minimum(problem, {"scale": 0.1})
    config = get_setup("nashmtl2022").config(
        methods=["ls"],
        params={"ls": {"reduction": "mean"}},
        steps=20,
        inits=(tuple(xstar.tolist()), (9.0, 9.0)),
        optimizer="sgd",  # Adam would blow the ~1e-17 gradient at x* up to a full step
    )
    res = run(config)
    assert np.all(np.abs(gap_series(res, (0,), "loss")) < 1e-10)
    assert np.all(gap_series(res, (0,), "distance") < 1e-8)
    start = problem.losses(torch.tensor([[9.0, 9.0]], dtype=torch.float64), {"scale": 0.1}).mean()
    best = problem.losses(xstar[None], {"scale": 0.1}).mean()
    assert gap_series(res, (1,), "loss")[0] == pytest.approx(float(start - best), rel=1e-12)
    assert gap_series(res, (1,), "distance")[0] == pytest.approx(
        float(np.hypot(*(np.array([9.0, 9.0]) - xstar.numpy())))
    )


def test_thin_keeps_the_ends_and_one_point_per_step_of_arc_length():
    xy = np.column_stack([np.linspace(0, 1, 10_001), np.zeros(10_001)])
    kept = thin(xy, 0.01)
    assert np.array_equal(kept[0], xy[0]) and np.array_equal(kept[-1], xy[-1])
    assert 100 <= len(kept) <= 102
    assert np.diff(kept[:, 0]).max() <= 0.01 + 1e-9
    xy[5] = np.nan
    assert np.isfinite(thin(xy, 0.01)).all()


def test_region_c_prefers_the_option_then_the_run_then_the_default():
    config = get_setup("nashmtl2022").config(
        methods=["cagrad"], params={"cagrad": {"c": [0.3, 0.6]}}, steps=5
    )
    assert region_c(config, ("cagrad",), 0.9, 0.5) == 0.9
    assert region_c(config, ("cagrad",), None, 0.5) == 0.3
    assert region_c(config, ("not_registered",), None, 0.25) == 0.25
    default = METHODS["cagrad"].defaults()["c"]
    assert (
        region_c(get_setup("nashmtl2022").config(methods=["ls"], steps=5), ("cagrad",), None, 0.1) == default
    )


@pytest.mark.parametrize("surface", ["f1", "f2"])
def test_landscape_export_draws_the_surface_the_view_shows(surface):
    from toyopt.figures.draw import landscape

    config = get_setup("conicgrad2025").config(methods=["ls"], steps=5)
    spec = FigureSpec(layout="landscape", trajectories=False, surface=surface, width=4.0).validated()
    with matplotlib.rc_context(RC):
        fig = landscape(config, None, spec)
    maps = fig.axes[0]
    # The filled contours' levels are quantiles of task k's loss on the map's grid (brute force).
    problem = get_problem("liu2021")
    params = problem.validate_params(config.problem_params)
    x1 = np.linspace(-10, 10, 241)
    xx1, xx2 = np.meshgrid(x1, x1)
    points = torch.tensor(np.c_[xx1.ravel(), xx2.ravel()])
    task = problem.losses(points, params)[:, int(surface[1]) - 1].numpy()
    levels = np.unique(np.quantile(task, np.linspace(0.0, 1.0, 17)))
    filled = next(c for c in maps.collections if hasattr(c, "levels"))
    np.testing.assert_allclose(filled.levels, levels, rtol=1e-9, atol=1e-12)
    assert maps.get_title() == f"task {surface[1]} loss $L_{surface[1]}$"
    assert FigureSpec.from_json(spec.to_json()).surface == surface


def test_surface_is_checked_and_written_only_for_the_landscape():
    with pytest.raises(ValueError, match=r"surface must be one of \['mean', 'f1', 'f2'\]"):
        FigureSpec(layout="landscape", surface="f3").validated()
    assert "surface" not in FigureSpec(layout="paper").to_dict()
    assert FigureSpec(layout="landscape").to_dict()["surface"] == "mean"


@pytest.mark.parametrize("width", ["single", "double"])
def test_paper_titles_and_legend_fit_with_long_method_names(width):
    """The ConicGrad labels with their c are long: panel titles wrap instead of running into the next
    panel's, and the legend takes as many columns as fit the width."""
    from toyopt.figures.draw import paper

    methods = ["famo", "nashmtl", "cagrad", "conicgrad", "conicgrad_exact"]
    result = run(get_setup("conicgrad2025").config(methods=methods, steps=4))
    with matplotlib.rc_context(RC):
        fig = paper(result, FigureSpec(layout="paper", width=width).validated())
        fig.draw_without_rendering()
        titles = [ax.title.get_window_extent() for ax in fig.axes if ax.get_title()]
        legend = fig.legends[0].get_window_extent()
    assert "ConicGrad, exact cone solution (c = 0.5)" in [t.get_text() for t in fig.legends[0].get_texts()]
    figure = fig.bbox
    assert figure.x0 <= legend.x0 and legend.x1 <= figure.x1
    for i, a in enumerate(titles):
        assert figure.x0 <= a.x0 and a.x1 <= figure.x1
        assert not any(a.overlaps(b) for b in titles[i + 1 :])
