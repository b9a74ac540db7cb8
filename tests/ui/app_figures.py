"""Helpers for the AppTest suite: read the plotly figures an app run drew."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parents[2] / "app.py")


def decode(value):
    """plotly >= 6 stores arrays as {dtype, bdata (base64)} in a figure's JSON: decode to numpy."""
    if isinstance(value, dict) and "bdata" in value:
        raw = np.frombuffer(base64.b64decode(value["bdata"]), dtype=np.dtype(value["dtype"]))
        shape = value.get("shape")
        if isinstance(shape, str):
            shape = [int(n) for n in shape.split(",")]
        return raw.reshape(shape) if shape else raw
    return np.asarray(value) if isinstance(value, list) else value


def figures(at: AppTest) -> list[dict]:
    return [json.loads(el.proto.spec) for el in at.get("plotly_chart")]


def traces(figure: dict, meta_prefix: str = "") -> list[dict]:
    return [t for t in figure["data"] if str(t.get("meta", "")).startswith(meta_prefix)]
