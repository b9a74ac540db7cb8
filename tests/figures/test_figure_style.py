"""The method palette: fixed, colour-blind safe, distinguishable without colour."""

import itertools
import json
import os
import subprocess
import sys

from toyopt.figures import style
from toyopt.figures.style import FIXED, OKABE_ITO, method_style
from toyopt.methods import METHODS

CONICGRAD_FIGURE = ("famo", "nashmtl", "cagrad", "conicgrad")


def test_every_registered_method_gets_an_okabe_ito_colour_and_valid_styles():
    palette = set(OKABE_ITO.values())
    for name in list(METHODS) + ["not_a_method", "x"]:
        style = method_style(name)
        assert style.color in palette
        assert style.dash in {"solid", "dash", "dashdot", "dot", "longdash", "longdashdot"}
        assert style.marker in "osDv^PXph"


def test_fixed_methods_differ_by_more_than_colour():
    # Grayscale readers: any two fixed methods differ in dash or marker, never only in colour.
    for a, b in itertools.combinations(FIXED, 2):
        sa, sb = method_style(a), method_style(b)
        assert (sa.dash, sa.marker) != (sb.dash, sb.marker), (a, b)
        assert (sa.color, sa.dash, sa.marker) != (sb.color, sb.dash, sb.marker)


def test_the_conicgrad_figure_methods_differ_in_colour_dash_and_marker():
    styles = [method_style(m) for m in CONICGRAD_FIGURE]
    for field in ("color", "dash", "marker"):
        assert len({getattr(s, field) for s in styles}) == len(styles), field


def test_hashed_styles_do_not_depend_on_the_python_process():
    names = ["gradvac", "upgrad", "alignedmtl", "some_new_method"]
    # style.py imports only the standard library: load it alone, without torch, to keep this fast.
    code = (
        "import importlib.util, json, sys; "
        f"spec = importlib.util.spec_from_file_location('style', {style.__file__!r}); "
        "mod = sys.modules['style'] = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod); "
        "print(json.dumps([[s.color, s.dash, s.symbol] for s in map(mod.method_style, sys.argv[1:])]))"
    )
    outputs = []
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        done = subprocess.run(
            [sys.executable, "-c", code, *names], capture_output=True, text=True, env=env, check=True
        )
        outputs.append(json.loads(done.stdout))
    here = [[s.color, s.dash, s.symbol] for s in map(method_style, names)]
    assert outputs[0] == outputs[1] == here


def test_hashed_styles_never_share_dash_and_marker_with_a_fixed_method():
    fixed_shapes = {(method_style(m).dash, method_style(m).marker) for m in FIXED}
    for name in [*METHODS, *(f"method_{i}" for i in range(200))]:
        if name not in FIXED:
            style = method_style(name)
            assert (style.dash, style.marker) not in fixed_shapes, name
