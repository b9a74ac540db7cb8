"""Shared by every test directory."""

import pytest


@pytest.fixture(autouse=True)
def _cli_default_backend_eager(monkeypatch):
    """The CLI's default backend is compiled; tests that call the CLI in process run it eagerly so
    that they compile nothing (each method's first compiled run costs seconds of CPU). The tests of
    the default itself (tests/cli) put it back with ``monkeypatch.undo`` or ``setattr``."""
    monkeypatch.setattr("toyopt.cli._common.DEFAULT_BACKEND", "eager")


@pytest.fixture(autouse=True)
def _no_app_warmup(monkeypatch):
    """The app starts a background compile (``toyopt.ui.warmup``) on its first page; the tests
    (AppTest runs the app in this process) start none unless a test asks."""
    monkeypatch.setenv("TOYOPT_WARMUP", "0")
