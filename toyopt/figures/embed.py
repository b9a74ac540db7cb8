"""The run's Config and the FigureSpec, written into a figure file and read back from it.

Where each is stored (both as JSON text):

    format  Config (``toyopt-config``)           FigureSpec (``toyopt-figure``)
    PDF     Info dictionary /Keywords             Info dictionary /Subject
    SVG     <metadata> dc:description             <metadata> dc:subject, item "toyopt-figure:{...}"
    PNG     tEXt chunk "toyopt-config"            tEXt chunk "toyopt-figure"
    GIF     comment extension, line "toyopt-config:{...}", line "toyopt-figure:{...}"
    MP4     moov/udta/meta/ilst "\xa9cmt" (ffmpeg ``-metadata comment=``), the same two lines

Dates are left out (PDF CreationDate None, SVG Date None; PNG has none), so the same figure gives
the same bytes. Reading parses only the few structures above; nothing is evaluated.
"""

from __future__ import annotations

import re
import struct
import xml.etree.ElementTree as ET
import zlib

from ..config import Config
from .spec import FigureSpec

CONFIG_KEY = "toyopt-config"
FIGURE_KEY = "toyopt-figure"
TITLE = "toyopt figure"
#: Figures larger than this are not searched for metadata.
MAX_FIGURE_BYTES = 200_000_000
#: A compressed PNG text chunk may not inflate to more than this (a zip bomb is refused).
MAX_TEXT_BYTES = 16_000_000


def savefig_metadata(fmt: str, config_json: str, figure_json: str) -> dict:
    """The ``metadata`` argument of ``Figure.savefig`` for ``fmt``."""
    if fmt == "pdf":
        return {"Title": TITLE, "Keywords": config_json, "Subject": figure_json, "CreationDate": None}
    if fmt == "svg":
        return {
            "Title": TITLE,
            "Description": config_json,
            "Keywords": [f"{FIGURE_KEY}:{figure_json}"],
            "Date": None,
        }
    if fmt == "png":
        return {"Title": TITLE, CONFIG_KEY: config_json, FIGURE_KEY: figure_json}
    raise ValueError(f"format must be one of pdf, svg, png, got {fmt!r}")


def animation_comment(config_json: str, figure_json: str) -> str:
    """The comment an animation (GIF, MP4) carries: two lines, "toyopt-config:" + the Config's
    JSON and "toyopt-figure:" + the FigureSpec's (compact JSON holds no newline)."""
    return f"{CONFIG_KEY}:{config_json}\n{FIGURE_KEY}:{figure_json}"


def detect_format(data: bytes) -> str:
    if data.startswith(b"%PDF-"):
        return "pdf"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "gif"
    if data[4:8] == b"ftyp":
        return "mp4"
    if b"<svg" in data[:4096]:
        return "svg"
    raise ValueError("not a PDF, SVG or PNG file (nor a GIF or MP4 animation)")


def read_embedded(data: bytes) -> tuple[Config, FigureSpec | None]:
    """The Config (validated) and FigureSpec (None when the figure carries none) embedded in a
    figure file's bytes; ValueError when there is no toyopt config in it."""
    if len(data) > MAX_FIGURE_BYTES:
        raise ValueError(f"figure file is larger than {MAX_FIGURE_BYTES} bytes")
    fmt = detect_format(data)
    try:
        reader = {"pdf": _read_pdf, "svg": _read_svg, "png": _read_png, "gif": _read_gif, "mp4": _read_mp4}
        config_text, figure_text = reader[fmt](data)
    except (IndexError, struct.error, zlib.error) as exc:  # truncated or corrupt metadata
        raise ValueError(f"this {fmt.upper()} file's metadata is malformed ({exc})") from None
    if config_text is None:
        raise ValueError(f"this {fmt.upper()} file carries no toyopt config (was it written by toyopt?)")
    config = Config.from_json(config_text)
    figure = None if figure_text is None else FigureSpec.from_json(figure_text)
    return config, figure


# -- PDF ------------------------------------------------------------------------------------------

_PDF_ESCAPES = {ord("n"): b"\n", ord("r"): b"\r", ord("t"): b"\t", ord("b"): b"\b", ord("f"): b"\f"}


def _pdf_literal(data: bytes, start: int) -> str:
    """The PDF literal string whose opening '(' is at ``start`` (balanced parentheses, escapes)."""
    out = bytearray()
    depth = 0
    i = start
    while i < len(data):
        c = data[i]
        if c == 0x5C:  # backslash
            i += 1
            nxt = data[i]
            if nxt in _PDF_ESCAPES:
                out += _PDF_ESCAPES[nxt]
            elif 0x30 <= nxt <= 0x37:
                digits = re.match(rb"[0-7]{1,3}", data[i : i + 3]).group()
                out.append(int(digits, 8) & 0xFF)
                i += len(digits) - 1
            elif nxt in (0x0A, 0x0D):  # line continuation
                pass
            else:
                out.append(nxt)
        elif c == 0x28:  # (
            if depth:
                out.append(c)
            depth += 1
        elif c == 0x29:  # )
            depth -= 1
            if depth == 0:
                return out.decode("latin-1")
            out.append(c)
        else:
            out.append(c)
        i += 1
    raise ValueError("unterminated string in the PDF metadata")


def _pdf_entry(data: bytes, key: bytes) -> str | None:
    m = re.search(rb"/" + key + rb"\s*\(", data)
    return None if m is None else _pdf_literal(data, m.end() - 1)


def _read_pdf(data: bytes) -> tuple[str | None, str | None]:
    return _pdf_entry(data, b"Keywords"), _pdf_entry(data, b"Subject")


# -- SVG ------------------------------------------------------------------------------------------

_DC = "{http://purl.org/dc/elements/1.1/}"
_RDF = "{http://www.w3.org/1999/02/22-rdf-syntax-ns#}"


def _read_svg(data: bytes) -> tuple[str | None, str | None]:
    try:
        root = ET.fromstring(data)
    except ET.ParseError as exc:
        raise ValueError(f"the SVG file does not parse: {exc}") from None
    description = root.find(f".//{_DC}description")
    config_text = None if description is None else description.text
    figure_text = None
    for item in root.iterfind(f".//{_DC}subject/{_RDF}Bag/{_RDF}li"):
        if item.text and item.text.startswith(FIGURE_KEY + ":"):
            figure_text = item.text[len(FIGURE_KEY) + 1 :]
    return config_text, figure_text


# -- PNG ------------------------------------------------------------------------------------------


def png_chunks(data: bytes):
    """(type, payload) of every chunk of a PNG file, in order."""
    pos = 8
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        payload = data[pos + 8 : pos + 8 + length]
        if len(payload) != length:
            raise ValueError("truncated PNG chunk")
        yield kind, payload
        pos += 12 + length


def png_text(data: bytes) -> dict[str, str]:
    """The text chunks (tEXt, zTXt, iTXt) of a PNG file as keyword -> text."""
    out = {}
    for kind, payload in png_chunks(data):
        if kind == b"tEXt":
            key, _, text = payload.partition(b"\0")
            out[key.decode("latin-1")] = text.decode("latin-1")
        elif kind == b"zTXt":
            key, _, rest = payload.partition(b"\0")
            out[key.decode("latin-1")] = _inflate(rest[1:]).decode("latin-1")
        elif kind == b"iTXt":
            key, _, rest = payload.partition(b"\0")
            compressed, rest = rest[0], rest[2:]
            _, _, rest = rest.partition(b"\0")  # language tag
            _, _, text = rest.partition(b"\0")  # translated keyword
            out[key.decode("latin-1")] = (_inflate(text) if compressed else text).decode("utf-8")
    return out


def _inflate(data: bytes) -> bytes:
    """zlib-decompressed ``data``, refused beyond MAX_TEXT_BYTES."""
    inflater = zlib.decompressobj()
    out = inflater.decompress(data, MAX_TEXT_BYTES + 1)
    if len(out) > MAX_TEXT_BYTES:
        raise ValueError(f"a compressed PNG text chunk inflates to more than {MAX_TEXT_BYTES} bytes")
    if not inflater.eof:
        raise ValueError("a compressed PNG text chunk is truncated")
    return out


def _read_png(data: bytes) -> tuple[str | None, str | None]:
    text = png_text(data)
    return text.get(CONFIG_KEY), text.get(FIGURE_KEY)


# -- GIF and MP4 (animations) ---------------------------------------------------------------------


def _comment_parts(comment: str | None) -> tuple[str | None, str | None]:
    """(config, figure) JSON texts of an ``animation_comment``."""
    found: dict[str, str] = {}
    for line in (comment or "").split("\n"):
        key, sep, text = line.partition(":")
        if sep and key in (CONFIG_KEY, FIGURE_KEY):
            found[key] = text
    return found.get(CONFIG_KEY), found.get(FIGURE_KEY)


def _gif_subblocks(data: bytes, pos: int) -> tuple[bytes, int]:
    """The joined data sub-blocks starting at ``pos`` and the position after their terminator."""
    out = bytearray()
    while True:
        size = data[pos]
        if size == 0:
            return bytes(out), pos + 1
        if pos + 1 + size > len(data):
            raise ValueError("truncated GIF block")
        out += data[pos + 1 : pos + 1 + size]
        pos += 1 + size


def gif_comments(data: bytes) -> list[str]:
    """The texts of every comment extension of a GIF file, in order (blocks are walked, not decoded)."""
    flags = data[10]
    pos = 13 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0)  # header, screen, global colours
    comments = []
    while pos < len(data):
        kind = data[pos]
        if kind == 0x3B:  # trailer
            break
        if kind == 0x21:  # extension: label, then sub-blocks
            label = data[pos + 1]
            block, pos = _gif_subblocks(data, pos + 2)
            if label == 0xFE:
                comments.append(block.decode("utf-8", errors="replace"))
        elif kind == 0x2C:  # image: descriptor, local colours, LZW code size, sub-blocks
            flags = data[pos + 9]
            pos += 10 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0) + 1
            _, pos = _gif_subblocks(data, pos)
        else:
            raise ValueError(f"unknown GIF block 0x{kind:02x}")
    return comments


def _read_gif(data: bytes) -> tuple[str | None, str | None]:
    for comment in gif_comments(data):
        found = _comment_parts(comment)
        if found[0] is not None:
            return found
    return None, None


#: The MP4 boxes that lead to the comment: (box type, bytes of header fields to skip inside it).
_MP4_COMMENT_PATH = ((b"moov", 0), (b"udta", 0), (b"meta", 4), (b"ilst", 0), (b"\xa9cmt", 0), (b"data", 8))


def mp4_boxes(data: bytes, start: int, end: int):
    """(type, payload start, payload end) of the ISO-BMFF boxes between ``start`` and ``end``."""
    pos = start
    while pos + 8 <= end:
        size, kind = struct.unpack(">I4s", data[pos : pos + 8])
        header = 8
        if size == 1:  # 64-bit size after the type
            size = struct.unpack(">Q", data[pos + 8 : pos + 16])[0]
            header = 16
        elif size == 0:  # to the end of the enclosing box
            size = end - pos
        if size < header or pos + size > end:
            raise ValueError("malformed MP4 box")
        yield kind, pos + header, pos + size
        pos += size


def _read_mp4(data: bytes) -> tuple[str | None, str | None]:
    start, end = 0, len(data)
    for kind, skip in _MP4_COMMENT_PATH:
        for found, payload, stop in mp4_boxes(data, start, end):
            if found == kind:
                start, end = payload + skip, stop
                break
        else:
            return None, None
    return _comment_parts(data[start:end].decode("utf-8", errors="replace"))
