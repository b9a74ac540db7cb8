"""Animations (``toyopt.figures.animation``, ``figure --layout animation``): frame count and size,
the last frame drawing the static figure's trajectories, the gradient-space panels against finite
differences, the embedded config, byte-identical files, and bad options (one line, exit 2)."""

from __future__ import annotations

import io
import shutil
import subprocess

import numpy as np
import pytest
import torch
from matplotlib import rc_context
from PIL import Image

from toyopt.cli import main
from toyopt.engine import run
from toyopt.figures import FigureSpec, animation, draw, read_embedded, render_spec
from toyopt.figures.embed import gif_comments
from toyopt.figures.style import RC, method_style
from toyopt.problems import get_problem
from toyopt.setups import get_setup

HAS_FFMPEG = shutil.which("ffmpeg") is not None
#: A small run: three methods (one with CAGrad's ball, one with ConicGrad's cone), 40 steps.
CONFIG = get_setup("conicgrad2025").config(
    ["ls", "cagrad", "conicgrad"], steps=40, inits=((-8.5, 7.5), (9.0, 9.0))
)
SMALL = dict(layout="animation", width=3.0, dpi=50, frames=8)
CLI = [
    "figure",
    "--setup",
    "nashmtl2022",
    "--method",
    "ls",
    "--steps",
    "30",
    "--quiet",
    "--layout",
    "animation",
]


@pytest.fixture(scope="module")
def result():
    return run(CONFIG)


def _gif_frames(data: bytes) -> list[np.ndarray]:
    im = Image.open(io.BytesIO(data))
    frames = []
    for k in range(im.n_frames):
        im.seek(k)
        frames.append(np.asarray(im.convert("RGB")))
    return frames


def _durations(data: bytes) -> list[int]:
    im = Image.open(io.BytesIO(data))
    out = []
    for k in range(im.n_frames):
        im.seek(k)
        out.append(im.info["duration"])
    return out


def test_the_gif_has_the_frames_and_size_asked_for_and_carries_its_config(result):
    spec = FigureSpec(**SMALL, regions_start=1).validated()
    data = render_spec(result, spec, "gif")
    frames = _gif_frames(data)
    layout = animation.grid(CONFIG, spec)
    assert len(frames) == 8
    assert frames[0].shape == (layout.pixels[1], layout.pixels[0], 3)
    assert layout.pixels[0] == 150  # 3 in at 50 dpi
    assert _durations(data) == [80, 90, 80, 80, 90, 80, 80, 90]  # 12 fps in whole 1/100 s
    assert not all(np.array_equal(frames[0], f) for f in frames[1:])  # it moves
    assert read_embedded(data) == (CONFIG, spec)
    assert render_spec(result, spec, "gif") == data  # byte-identical a second time
    assert len(gif_comments(data)) == 1


def test_a_short_run_gives_one_frame_per_recorded_state(result):
    steps = animation.frame_indices(result, 600)
    assert steps.tolist() == list(range(len(result.recorded_steps)))
    assert animation.frame_indices(result, 3).tolist() == [0, 20, 40]


def _drawn_paths(fig) -> list[tuple[str, np.ndarray]]:
    """(colour, xy) of every trajectory line of the landscape panels (a method's colour, a line
    style, drawn at the trajectories' z-order 3, above the Pareto set)."""
    colours = {method_style(m).color.lower() for m in ("ls", "cagrad", "conicgrad")}
    out = []
    for ax in fig.axes:
        if ax.get_xlabel() != "$x_1$":
            continue
        for line in ax.get_lines():
            colour = str(line.get_color()).lower()
            if colour in colours and line.get_linestyle() != "None" and line.get_zorder() == 3:
                out.append((str(line.get_color()).lower(), np.asarray(line.get_xydata())))
    return out


def test_the_last_frame_draws_the_static_figures_trajectories_and_the_first_only_the_starts(result):
    spec = FigureSpec(**SMALL).validated()
    with rc_context(RC):
        anim = animation.build(result, spec)
        static = draw.paper(result, FigureSpec(layout="paper").validated())
    anim.show(len(anim.frame_steps) - 1)
    assert anim.counter.get_text() == "step 40 of 40"
    moving, still = _drawn_paths(anim.fig), _drawn_paths(static)
    assert len(moving) == len(still) == 6  # 3 methods x 2 starts
    for (c1, a), (c2, b) in zip(moving, still):
        assert c1 == c2
        np.testing.assert_array_equal(a, b)
    anim.show(0)
    assert anim.counter.get_text() == "step 0 of 40"
    for _, xy in _drawn_paths(anim.fig):
        assert xy.shape == (1, 2) and tuple(xy[0]) in CONFIG.inits


def _fd_grads(x: np.ndarray) -> np.ndarray:
    """Task gradients (K, 2) at x by central differences of the losses."""
    problem = get_problem(CONFIG.problem)
    params = problem.validate_params(CONFIG.problem_params)
    h = 1e-6
    cols = []
    for j in range(2):
        e = np.zeros(2)
        e[j] = h
        pts = torch.tensor(np.stack([x + e, x - e]), dtype=torch.float64)
        losses = problem.losses(pts, params).numpy()
        cols.append((losses[0] - losses[1]) / (2 * h))
    return np.stack(cols, axis=-1)


def test_gradient_panels_show_the_scaled_gradients_regions_and_recorded_update(result):
    spec = FigureSpec(**SMALL, regions_start=0).validated()
    with rc_context(RC):
        anim = animation.build(result, spec)
    k = 3
    anim.show(k)
    t = int(anim.frame_steps[k])
    panels = [p for p in anim.parts if isinstance(p, animation._GradientPanel)]
    assert [p.region for p in panels] == [None, "ball", "cone"]
    for panel, lane in zip(panels, (0, 2, 4)):  # each method's lane from start 0
        grads = _fd_grads(result.x[t, lane, :2])
        scale = 1.0 / np.linalg.norm(grads, axis=-1).max()
        tips = [np.asarray(a._posA_posB[1]) for a in panel.arrows]
        np.testing.assert_allclose(tips, [*(grads * scale), grads.mean(0) * scale], atol=1e-6)
        np.testing.assert_allclose(panel.d_tip.get_xydata()[0], result.directions[t, lane] * scale, rtol=1e-7)
        corners = panel.dual.get_xy()[1:-1]  # the origin and the closing vertex left out
        assert np.all(corners @ grads.T >= -1e-9 * np.linalg.norm(corners, axis=-1)[:, None])
    g0 = _fd_grads(result.x[t, 2, :2]).mean(0)
    g0 = g0 / np.linalg.norm(_fd_grads(result.x[t, 2, :2]), axis=-1).max()
    ball = panels[1].shape
    np.testing.assert_allclose(ball.center, g0, atol=1e-6)
    assert ball.radius == pytest.approx(CONFIG.methods[1].params["c"] * np.linalg.norm(g0), rel=1e-5)
    anim.show(len(anim.frame_steps) - 1)  # the final state has no update
    assert not panels[0].d_line.get_visible()


def test_cli_writes_gif_that_redraws_from_itself_byte_for_byte(tmp_path):
    first, again = tmp_path / "talk.gif", tmp_path / "again.gif"
    assert main([*CLI, "--frames", "5", "--width", "2", "--dpi", "50", "--out", str(first)]) == 0
    assert main(["figure", "--quiet", "--from", str(first), "--out", str(again)]) == 0
    assert again.read_bytes() == first.read_bytes()
    assert len(_gif_frames(first.read_bytes())) == 5


@pytest.mark.skipif(not HAS_FFMPEG, reason="no system ffmpeg")
def test_mp4_has_the_frames_and_carries_its_config(tmp_path, result):
    spec = FigureSpec(**SMALL).validated()
    data = render_spec(result, spec, "mp4")
    assert read_embedded(data) == (CONFIG, spec)
    assert render_spec(result, spec, "mp4") == data
    path = tmp_path / "a.mp4"
    path.write_bytes(data)
    probe = subprocess.run(
        [
            "ffprobe",
            "-v",
            "error",
            "-count_frames",
            "-show_entries",
            "stream=nb_read_frames,width",
            "-of",
            "csv=p=0",
            str(path),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    width, count = probe.stdout.strip().split(",")
    assert (int(width), int(count)) == (150, 8)


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("toyopt: error: ") and "\n" not in err
    return err


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--frames", "1", "--out", "a.gif"], "frames must be an integer in [2, 600]"),
        (["--frames", "601", "--out", "a.gif"], "frames must be an integer in [2, 600]"),
        (["--fps", "0", "--out", "a.gif"], "fps must be an integer in [1, 50]"),
        (["--regions-start", "5", "--out", "a.gif"], "regions_start must be a start index in [0, 4]"),
        (["--width", "slide", "--dpi", "300", "--frames", "600", "--out", "a.gif"], "frames x pixels"),
        (["--width", "wide", "--out", "a.gif"], "width must be 'single', 'double', 'slide'"),
        (["--out", "a.pdf"], "the animation layout writes gif or mp4"),
        (["--layout", "paper", "--out", "a.gif"], "the paper layout writes pdf or svg or png"),
    ],
)
def test_bad_animation_options_exit_2_with_one_line_and_write_nothing(
    tmp_path, capsys, monkeypatch, extra, needle
):
    monkeypatch.chdir(tmp_path)
    assert main([*CLI, *extra]) == 2
    assert needle in _one_line_error(capsys)
    assert list(tmp_path.iterdir()) == []


def test_mp4_without_ffmpeg_names_what_is_missing(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(animation.shutil, "which", lambda name: None)
    assert main([*CLI, "--out", "a.mp4"]) == 2
    assert "MP4 needs the ffmpeg program" in _one_line_error(capsys)
    assert list(tmp_path.iterdir()) == []


def test_truncated_or_foreign_animations_are_refused_with_a_reason(result):
    spec = FigureSpec(**{**SMALL, "frames": 2}).validated()
    gif = render_spec(result, spec, "gif")
    with pytest.raises(ValueError, match="GIF"):
        read_embedded(gif[: len(gif) // 2])
    plain = io.BytesIO()
    Image.new("RGB", (4, 4)).save(plain, format="GIF", comment=b"made elsewhere")
    assert gif_comments(plain.getvalue()) == ["made elsewhere"]
    with pytest.raises(ValueError, match="carries no toyopt config"):
        read_embedded(plain.getvalue())
    mp4_header = b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2" + b"\x00\x00\x00\x30moov"
    with pytest.raises(ValueError, match="MP4"):
        read_embedded(mp4_header)
