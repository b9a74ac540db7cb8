"""The AppTest fixture: run the app with URL parameters."""

from __future__ import annotations

import pytest
from app_figures import APP
from streamlit.testing.v1 import AppTest


@pytest.fixture
def app():
    def make(**query) -> AppTest:
        at = AppTest.from_file(APP, default_timeout=180)
        at.query_params.update({k.replace("__", "."): str(v) for k, v in query.items()})
        return at.run()

    return make
