"""View 4, teaching mode: scrub or play a story's trajectory step by step with the vectors and
regions at that step (the engine's recorded directions and weights), and short explanations."""

from __future__ import annotations

import textwrap
from typing import Any

import numpy as np
import streamlit as st
import torch

from .. import geometry
from ..methods import METHODS
from ..problems import get_problem
from . import controls, downloads, figures, regions, runs, state
from .stories import STORIES

CONFLICT_TEXT = (
    "**Gradient conflict.** Each task pulls x along minus its own gradient g_i. When cos(g1, g2) < 0 the "
    "tasks disagree: a step that helps one hurts the other to first order. The mean g0 = (g1 + g2)/2 "
    "follows whichever gradient is larger; MGDA takes the shortest vector in the hull of g1 and g2 and "
    "stops when it is 0 (a Pareto-stationary point); CAGrad keeps d in a ball around g0 while helping "
    "the worse task; ConicGrad keeps d in a cone of angle arccos(c) around g0."
)


def story_values(values: dict[str, Any]) -> dict[str, Any]:
    """The story's run: its setup's defaults (problem variant, conventions) with the story's
    overrides; the seed stays the user's."""
    story = STORIES[values["story"]]
    out = state.defaults(story.setup)
    out.update(story.overrides(), seed=values["seed"])
    if not out["methods"]:
        out["methods"] = state.setup_methods(story.setup)
    return out


def _effect(dot: float) -> str:
    return "improves" if dot > 0 else "gets worse" if dot < 0 else "is unchanged"


def step_text(grads: np.ndarray, d: np.ndarray, weights: np.ndarray, label: str) -> str:
    g1, g2 = grads
    g0 = grads.mean(0)
    cos12 = float(g1 @ g2) / max(float(np.linalg.norm(g1) * np.linalg.norm(g2)), 1e-300)
    nd, n0 = float(np.linalg.norm(d)), float(np.linalg.norm(g0))
    parts = [
        f"cos(g1, g2) = {cos12:.3f}: the tasks {'conflict' if cos12 < 0 else 'agree'}; "
        f"||g1|| = {np.linalg.norm(g1):.3g}, ||g2|| = {np.linalg.norm(g2):.3g}."
    ]
    if np.all(np.isfinite(d)):
        cos_d = float(d @ g0) / (nd * n0) if nd > 0 and n0 > 0 else float("nan")
        helps = [f"task {i + 1} {_effect(float(g @ d))}" for i, g in enumerate(grads)]
        parts.append(
            f"{label} weights w = ({', '.join(f'{w:.3g}' for w in weights)}), ||d|| = {nd:.3g}, "
            f"cos(d, g0) = {cos_d:.3f}; to first order {', '.join(helps)}."
        )
        if nd <= 1e-8 * max(float(np.linalg.norm(grads, axis=-1).max()), 1e-300):
            parts.append("d is (almost) 0: the method has stopped here.")
    else:
        parts.append("This is the final state: no update is computed here.")
    return " ".join(parts)


#: At most this many animation frames (evenly spaced recorded states, the last one included).
MAX_FRAMES = 100
TEXT_WIDTH = 150


def frame_indices(recorded: int, around: int) -> np.ndarray:
    """Recorded-state indices of the animation: at most MAX_FRAMES evenly spaced from the first to
    the last, plus ``around`` (the state a link asks for)."""
    picks = np.linspace(0, recorded - 1, min(recorded, MAX_FRAMES)).round().astype(int)
    return np.unique(np.r_[picks, around])


def _on_story_change() -> None:
    """A story starts at its beginning."""
    st.session_state[controls.VALUES]["teach_step"] = 0


@st.cache_resource(max_entries=8, show_spinner="Drawing the animation...")
def animation(config_json: str, _result, follow: int, step: int, cone_c: float, ball_c: float):
    """The animated figure of the ``follow``-th method's first lane of ``_result`` (the run of
    ``config_json``, the cache key), opening at the recorded state nearest optimizer step ``step``:
    frames, the gradients there and the read-outs. Cached: building the frames takes seconds."""
    result = _result
    panel = runs.shown_series(result, {})[follow]
    lane = panel.lanes[0]
    steps = result.recorded_steps
    around = int(np.argmin(np.abs(steps - step)))
    frames = frame_indices(len(steps), around)
    xs = result.x[frames, lane, :2]
    _, grads = get_problem(result.config.problem).losses_and_grads(
        torch.as_tensor(xs, dtype=torch.float64), dict(result.config.problem_params)
    )
    grads = grads.numpy()
    texts = [
        "<br>".join(
            textwrap.wrap(
                step_text(grads[f], result.directions[t, lane], result.weights[t, lane], panel.title),
                TEXT_WIDTH,
            )
        )
        for f, t in enumerate(frames)
    ]
    active = int(np.searchsorted(frames, around))
    return figures.teaching_figure(result, lane, panel.title, frames, grads, texts, cone_c, ball_c, active)


def view(values: dict[str, Any]) -> None:
    st.markdown(CONFLICT_TEXT)
    controls.bound(
        st.selectbox,
        "story",
        "Story",
        values,
        options=list(STORIES),
        format_func=lambda k: STORIES[k].label,
        on_change=_on_story_change,
    )
    story = STORIES[values["story"]]
    st.info(story.text)
    svals = story_values(values)
    missing = [m[0] for m in story.methods if not any(c in METHODS for c in m)]
    if missing:
        st.warning(f"Not registered, left out of this story: {missing}")
    result = runs.get_result(svals, grids=False)
    if result is None:
        return
    panels = runs.shown_series(result, svals)
    pick = st.radio("Follow", range(len(panels)), format_func=lambda i: panels[i].title, horizontal=True)
    cone_c, ball_c = regions.region_c(svals, "cone_c"), regions.region_c(svals, "ball_c")
    config_json = result.config.to_json()
    fig = animation(config_json, result, pick, values["teach_step"], cone_c, ball_c)
    st.plotly_chart(fig, key=f"teach_{values['story']}_{pick}")
    outcome = result.outcome(panels[pick].lanes[0])
    st.caption(
        f"Play, pause and the speed buttons run in the browser; the slider counts optimizer steps (every "
        f"{result.config.record_every}th is recorded). Story run: setup {svals['setup']}, start "
        f"{svals['inits'][0]}, lr {svals['lr']:g}, {svals['steps']} steps; the followed run ends at: "
        f"{outcome}. Regions drawn with the story methods' c where they have one (cone c = {cone_c:g}, "
        f"ball c = {ball_c:g}; else the 'Cone vs ball' view's sliders); d is the engine's recorded update "
        "(after the setup's output scale and clipping). Cone half-angle: "
        f"{np.degrees(geometry.cone_half_angle(cone_c)):.1f} deg."
    )
    downloads.offer_animation(svals, "teaching", overlay=True, regions_start=0, ball_c=ball_c, cone_c=cone_c)
