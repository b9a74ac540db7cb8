"""View 4, teaching mode: scrub or play a story's trajectory step by step with the vectors and
regions at that step (the engine's recorded directions and weights), and short explanations."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import streamlit as st

from .. import geometry
from ..methods import METHODS
from . import controls, downloads, figures, runs, state
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


def view(values: dict[str, Any]) -> None:
    st.markdown(CONFLICT_TEXT)
    controls.bound(
        st.selectbox, "story", "Story", values, options=list(STORIES), format_func=lambda k: STORIES[k].label
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
    panels = runs.series(result, svals)
    last = len(result.recorded_steps) - 1
    values["teach_step"] = min(values["teach_step"], last)
    a, b = st.columns([4, 1], vertical_alignment="bottom")
    controls.bound(
        st.slider,
        "teach_step",
        "recorded step",
        values,
        a,
        min_value=0,
        max_value=last,
        help=f"Steps are recorded every {result.config.record_every} optimizer steps.",
    )
    play = b.button("Play", help="Animate from this step to the end")
    pick = st.radio("Follow", range(len(panels)), format_func=lambda i: panels[i].title, horizontal=True)
    left, right = st.columns(2)
    map_slot, regions_slot = left.empty(), right.empty()
    text_slot = st.empty()

    def draw(t: int) -> None:
        s = panels[pick]
        lane = s.lanes[0]
        x = tuple(float(v) for v in result.x[t, lane])
        _, grads, _ = runs.toy_point(svals, x)
        map_slot.plotly_chart(figures.teaching_map_figure(result, lane, t, grads), key=f"teach_map_{t}")
        d = result.directions[t, lane]
        updates = {s.title: d} if np.all(np.isfinite(d)) else {}
        fig = figures.regions_figure(grads[0], grads[1], values["cone_c"], values["ball_c"], updates)
        fig.update_layout(title=f"Gradient space at step {int(result.recorded_steps[t])}")
        regions_slot.plotly_chart(fig, key=f"teach_regions_{t}")
        text_slot.markdown(step_text(grads, d, result.weights[t, lane], s.title))

    t0 = values["teach_step"]
    if play:
        frames = np.unique(np.linspace(t0, last, 25).astype(int))
        for t in frames:
            draw(int(t))
            time.sleep(0.15)
        values["teach_step"] = int(frames[-1])
        st.session_state.pop(controls.widget_key("teach_step"), None)
    else:
        draw(t0)
    outcome = result.outcome(panels[pick].lanes[0])
    st.caption(
        f"Story run: setup {svals['setup']}, start {svals['inits'][0]}, lr {svals['lr']:g}, "
        f"{svals['steps']} steps; the followed run ends at: {outcome}. Regions drawn with the c sliders of "
        f"the 'Cone vs ball' view (cone c = {values['cone_c']:g}, ball c = {values['ball_c']:g}); d is the "
        "engine's recorded update (after the setup's output scale and clipping). Cone half-angle: "
        f"{np.degrees(geometry.cone_half_angle(values['cone_c'])):.1f} deg."
    )
    downloads.offer_animation(
        svals, "teaching", overlay=True, regions_start=0, ball_c=values["ball_c"], cone_c=values["cone_c"]
    )
