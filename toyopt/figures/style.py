"""One look for every figure: the method palette, the page sizes and the matplotlib settings.

Colours come from the Okabe-Ito palette (Okabe & Ito 2008, "Color Universal Design"), which stays
distinguishable under the common colour-vision deficiencies. Every method keeps the same colour,
line style and marker in every figure (and in the app, which reads ``method_style`` too), so a
reader can follow a method from panel to panel. Line styles and markers differ as well as
colours, so the figures still read in grayscale.

The mapping depends only on the registry name: the methods of the published setups have fixed
entries (chosen so that the four methods of the ConicGrad figure differ in colour, dash and
marker); any other name gets a combination picked by a hash of the name (SHA-256, so the
same on every machine and every Python run), never by the order in which methods were loaded.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

#: Okabe-Ito colours (yellow #F0E442 is left out: it vanishes on white paper and in grayscale).
OKABE_ITO = {
    "black": "#000000",
    "orange": "#E69F00",
    "sky_blue": "#56B4E9",
    "bluish_green": "#009E73",
    "blue": "#0072B2",
    "vermillion": "#D55E00",
    "reddish_purple": "#CC79A7",
}

#: Dash patterns as (matplotlib linestyle, plotly dash) pairs.
DASHES = {
    "solid": ("-", "solid"),
    "dashed": ((0, (4.0, 1.5)), "dash"),
    "dashdot": ((0, (4.0, 1.2, 1.0, 1.2)), "dashdot"),
    "dotted": ((0, (1.0, 1.2)), "dot"),
    "longdash": ((0, (7.0, 1.5)), "longdash"),
    "longdashdot": ((0, (7.0, 1.2, 1.0, 1.2)), "longdashdot"),
}

#: Filled markers as (matplotlib marker, plotly symbol) pairs.
MARKERS = {
    "circle": ("o", "circle"),
    "square": ("s", "square"),
    "triangle_up": ("^", "triangle-up"),
    "diamond": ("D", "diamond"),
    "triangle_down": ("v", "triangle-down"),
    "plus": ("P", "cross"),
    "x": ("X", "x"),
    "pentagon": ("p", "pentagon"),
    "hexagon": ("h", "hexagon"),
}

#: The methods of the published setups (toyopt.setups) and the exact ConicGrad: colour, dash, marker.
FIXED = {
    "conicgrad": ("vermillion", "solid", "circle"),
    "cagrad": ("blue", "dashed", "square"),
    "nashmtl": ("bluish_green", "dashdot", "triangle_up"),
    "famo": ("reddish_purple", "dotted", "diamond"),
    "mgda": ("orange", "longdash", "triangle_down"),
    "ls": ("black", "solid", "plus"),
    "pcgrad": ("sky_blue", "longdashdot", "x"),
    "sdmgrad": ("orange", "dotted", "pentagon"),
    "imtlg": ("sky_blue", "dashed", "hexagon"),
    "conicgrad_exact": ("vermillion", "longdash", "hexagon"),
}

#: Every other name draws from the combinations no fixed method uses and that differ from every
#: fixed method in dash or marker, so a hashed style is never confused with a fixed one.
_TAKEN_SHAPES = {(dash, marker) for _, dash, marker in FIXED.values()}
_FREE = [
    (colour, dash, marker)
    for colour in OKABE_ITO
    for dash in DASHES
    for marker in MARKERS
    if (dash, marker) not in _TAKEN_SHAPES
]


@dataclass(frozen=True)
class MethodStyle:
    """How a method is drawn: ``color`` (hex), ``linestyle``/``marker`` for matplotlib and
    ``dash``/``symbol`` for plotly (the same pattern and shape in both)."""

    color: str
    linestyle: object
    marker: str
    dash: str
    symbol: str


def method_style(name: str) -> MethodStyle:
    """The fixed style of the method registered as ``name`` (any string works: unknown names get
    a deterministic hashed combination)."""
    if name in FIXED:
        colour, dash, marker = FIXED[name]
    else:
        h = int.from_bytes(hashlib.sha256(name.encode("utf-8")).digest()[:8], "big")
        colour, dash, marker = _FREE[h % len(_FREE)]
    linestyle, plotly_dash = DASHES[dash]
    mpl_marker, plotly_symbol = MARKERS[marker]
    return MethodStyle(OKABE_ITO[colour], linestyle, mpl_marker, plotly_dash, plotly_symbol)


#: Page widths in inches: one column and the full text width of a two-column paper, and a 16:9
#: slide (10 x 5.625 in; an animation at this width is exactly 16:9, 1280 x 720 pixels at 128 dpi).
WIDTHS = {"single": 3.25, "double": 6.75, "slide": 10.0}
SLIDE_ASPECT = 9 / 16
MIN_WIDTH, MAX_WIDTH = 1.5, 20.0

#: Marks that are not methods.
PARETO_COLOR = "#000000"
START_STYLE = {"marker": "o", "facecolor": "#FFFFFF", "edgecolor": "#000000"}
GLOBAL_MIN_STYLE = {"marker": "*", "facecolor": "#FFFFFF", "edgecolor": "#000000"}
#: Light grays for the loss landscape, so coloured trajectories stay readable on top of it.
LANDSCAPE_GRAYS = ("#FFFFFF", "#C8C8C8")

#: Settings every figure is drawn and saved under (inside ``matplotlib.rc_context``: nothing
#: global changes). TrueType fonts in PDF (no Type 3), text kept as text in SVG, matplotlib's
#: own mathtext (no LaTeX) in the bundled DejaVu Sans so every machine draws the same glyphs, and
#: a fixed SVG id salt so that the same figure gives the same bytes.
RC = {
    "pdf.fonttype": 42,
    "ps.fonttype": 42,
    "svg.fonttype": "none",
    "svg.hashsalt": "toyopt",
    "text.usetex": False,
    "font.family": "sans-serif",
    "font.sans-serif": ["DejaVu Sans"],
    "mathtext.fontset": "dejavusans",
    "font.size": 7.0,
    "axes.titlesize": 7.0,
    "axes.labelsize": 7.0,
    "xtick.labelsize": 6.0,
    "ytick.labelsize": 6.0,
    "legend.fontsize": 6.0,
    "axes.linewidth": 0.6,
    "xtick.major.width": 0.6,
    "ytick.major.width": 0.6,
    "xtick.major.size": 2.5,
    "ytick.major.size": 2.5,
    "lines.linewidth": 1.0,
    "legend.frameon": False,
    "legend.handlelength": 2.6,
    "figure.dpi": 100,
    "savefig.facecolor": "white",
    "path.simplify": True,
}
