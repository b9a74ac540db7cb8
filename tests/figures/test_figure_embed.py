"""Reading the embedded config back: PDF literal strings, PNG text chunks, SVG metadata, options."""

import struct
import zlib

import pytest

from toyopt.config import Config
from toyopt.figures import FigureSpec, read_embedded
from toyopt.figures.embed import pdf_info, png_text
from toyopt.figures.spec import parse_point, parse_width


@pytest.mark.parametrize(
    ("literal", "text"),
    [
        (rb"(plain)", "plain"),
        (rb"(a \(b\) c)", "a (b) c"),
        (rb"(nested (balanced) parens)", "nested (balanced) parens"),
        (rb"(back\\slash)", "back\\slash"),
        (rb"(tab\tnl\n)", "tab\tnl\n"),
        (rb"(oct\101\60)", "octA0"),
        (b"(join\\\nlines)", "joinlines"),
    ],
)
def test_pdf_literal_strings_follow_the_pdf_escape_rules(literal, text):
    data = pdf_with_info(b"/Keywords " + literal + b" /Subject (s)")
    assert pdf_info(data) == {"Keywords": text, "Subject": "s"}


def pdf_with_info(entries: bytes, before: bytes = b"") -> bytes:
    """A minimal PDF whose trailer names object 1 as /Info, that object holding ``entries``;
    ``before`` goes between the header and the object."""
    head = b"%PDF-1.4\n" + before + b"\n"
    obj = b"1 0 obj\n<< " + entries + b" >>\nendobj\n"
    xref = len(head) + len(obj)
    table = b"xref\n0 2\n0000000000 65535 f \n" + b"%010d 00000 n \n" % len(head)
    return head + obj + table + b"trailer\n<< /Size 2 /Info 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % xref


def _chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def test_png_text_reads_text_ztxt_and_itxt_chunks():
    png = (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0))
        + _chunk(b"tEXt", b"plain\0latin \xe9")
        + _chunk(b"zTXt", b"packed\0\0" + zlib.compress(b"squeezed"))
        + _chunk(b"iTXt", b"intl\0\0\0en\0\0" + "ü ok".encode())
        + _chunk(b"iTXt", b"intlz\0\1\0\0\0" + zlib.compress("zü".encode()))
        + _chunk(b"IEND", b"")
    )
    keys = ("plain", "packed", "intl", "intlz")
    assert png_text(png, keys) == {"plain": "latin é", "packed": "squeezed", "intl": "ü ok", "intlz": "zü"}
    assert png_text(png) == {}, "only the toyopt chunks are read by default"


def test_files_without_a_toyopt_config_are_refused_with_a_reason():
    with pytest.raises(ValueError, match="not a PDF, SVG or PNG"):
        read_embedded(b"hello")
    with pytest.raises(ValueError, match="carries no toyopt config"):
        read_embedded(pdf_with_info(b"/Title (x)"))
    bad = pdf_with_info(b'/Keywords ({"steps": -3})')
    with pytest.raises(ValueError, match="steps"):
        read_embedded(bad)


def test_svg_metadata_round_trip_by_hand():
    cfg = Config(steps=12).validated()
    svg = (
        '<svg xmlns="http://www.w3.org/2000/svg"><metadata><rdf:RDF '
        'xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        f"<dc:description>{cfg.to_json().replace('&', '&amp;')}</dc:description>"
        '<dc:subject><rdf:Bag><rdf:li>toyopt-figure:{"layout": "front", "width": 4.0}</rdf:li></rdf:Bag>'
        "</dc:subject></rdf:RDF></metadata></svg>"
    )
    config, spec = read_embedded(svg.encode())
    assert config == cfg
    assert spec == FigureSpec(layout="front", width=4.0).validated()


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"layout": "poster"}, "layout"),
        ({"width": "triple"}, "width"),
        ({"width": 0.5}, "width"),
        ({"dpi": 10}, "dpi"),
        ({"dpi": 1200, "width": 19.0}, "pixels"),
        ({"point": (1.0,)}, "point"),
        ({"gap": "ratio"}, "gap"),
        ({"cone_c": 2.0}, "cone_c"),
        ({"convergence": "yes"}, "convergence"),
    ],
)
def test_bad_figure_options_name_the_field(kwargs, field):
    with pytest.raises(ValueError, match=field):
        FigureSpec(**kwargs).validated()


def test_widths_and_points_parse_from_text():
    assert parse_width("single") == "single"
    assert parse_width("4.5") == 4.5
    assert FigureSpec(width="double").validated().inches == 6.75
    assert FigureSpec(width="single").validated().inches == 3.25
    assert parse_point("-7.5,-0.5") == (-7.5, -0.5)
    with pytest.raises(ValueError, match="x1,x2"):
        parse_point("1;2")
    spec = FigureSpec(layout="regions", point=(9.0, -1.0), ball_c=0.4).validated()
    assert FigureSpec.from_json(spec.to_json()) == spec
