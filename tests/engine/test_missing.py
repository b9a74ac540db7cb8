"""``compiled.missing``: which method entries of a config would need compiling now. No test here
compiles anything: ``segment_for`` is replaced by a stand-in that records the structure as
loaded, and the cache directory is empty."""

from __future__ import annotations

from dataclasses import replace

import pytest

from toyopt import compiled
from toyopt.engine import run
from toyopt.setups import get_setup


class _Called(Exception):
    """The stand-in segment was called: every entry's segment had been looked up before."""


@pytest.fixture
def stand_in(monkeypatch, tmp_path):
    monkeypatch.setenv(compiled.CACHE_ENV, str(tmp_path))
    monkeypatch.setattr(compiled, "_SEGMENTS", {})
    monkeypatch.setattr(compiled, "compiler_missing", lambda: None)

    def fake_segment_for(key, build, example):
        def call(*args):
            raise _Called

        compiled._SEGMENTS[key] = call
        return call

    monkeypatch.setattr(compiled, "segment_for", fake_segment_for)


def test_missing_names_the_entries_whose_structure_is_not_compiled(stand_in):
    config = get_setup("conicgrad2025").config(steps=4, backend="compiled")
    names = [m.name for m in config.methods]
    assert compiled.missing(config) == names
    with pytest.raises(_Called):
        run(config)  # the engine looks up (here: "compiles") every entry's segment first
    assert compiled.missing(config) == []
    # Float values (lr, c, starts, steps) are runtime inputs: still nothing to compile.
    other = replace(config, lr=0.3, steps=9, inits=((1.0, 1.0),)).validated()
    assert compiled.missing(other) == []
    # A new structure (gradient noise on; another optimizer) is missing again.
    assert compiled.missing(replace(config, noise=0.1)) == names
    assert compiled.missing(replace(config, optimizer="sgd")) == names


def test_missing_lists_a_method_once(stand_in):
    config = get_setup("nashmtl2022").config(["ls", "mgda"], steps=2)
    twice = replace(config, methods=(*config.methods, config.methods[0])).validated()
    assert compiled.missing(twice) == ["ls", "mgda"]
