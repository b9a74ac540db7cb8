"""The animation downloads of the Trajectories and Teaching views: the file holds the run on screen
(the sliders' values, the view's layout) with the config embedded."""

from __future__ import annotations

import io

from PIL import Image

from toyopt.figures import FigureSpec, read_embedded
from toyopt.ui import downloads, runs, state

QUERY = {
    "view": "trajectories",
    "setup": "nashmtl2022",
    "methods": "ls,cagrad",
    "steps": "12",
    "inits": "-8.5,7.5;9.0,9.0",
    "layout": "overlay",
}


def test_trajectories_offers_an_animation_of_the_runs_on_screen(app):
    at = app(**QUERY)
    assert not at.exception
    at.button(key="animation_prepare_trajectories").click().run()
    assert not at.exception
    labels = [el.proto.label for el in at.get("download_button")]
    assert "GIF" in labels

    values, errors = state.parse_query(QUERY)
    assert not errors
    config = runs.build_config(values, grids=False)
    spec = FigureSpec(layout="animation", width="slide", overlay=True).validated()
    data = downloads.prepared_animation(config.to_json(), spec.to_json(), "gif")
    assert read_embedded(data) == (config, spec)
    gif = Image.open(io.BytesIO(data))
    assert gif.size == (1280, 720)
    assert gif.n_frames == 13  # one frame per recorded state of the 12-step run


def test_teaching_offers_an_animation(app):
    at = app(view="teaching")
    assert not at.exception
    assert at.button(key="animation_prepare_teaching") is not None
