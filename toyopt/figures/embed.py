"""The run's Config and the FigureSpec, written into a figure file and read back from it.

Where each is stored (both as JSON text):

    format  Config (``toyopt-config``)           FigureSpec (``toyopt-figure``)
    PDF     Info dictionary /Keywords             Info dictionary /Subject
    SVG     <metadata> dc:description             <metadata> dc:subject, item "toyopt-figure:{...}"
    PNG     tEXt chunk "toyopt-config"            tEXt chunk "toyopt-figure"
    GIF     comment extension, line "toyopt-config:{...}", line "toyopt-figure:{...}"
    MP4     moov/udta/meta/ilst "\xa9cmt" (ffmpeg ``-metadata comment=``), the same two lines

Dates are left out (PDF CreationDate None, SVG Date None; PNG has none), so the same figure gives
the same bytes. Reading a file is one function per format (``READERS``), each returning the two
texts and reading only where its format keeps them, with bounded memory:

* PDF: the trailer's /Info object, found through the cross-reference table that ``startxref``
  points to (a string that merely looks like metadata elsewhere in the file is never read);
  string reading stops at MAX_TEXT_BYTES.
* SVG: parsed as a stream (``XMLPullParser``, 64 KB at a time) that stops at the end of
  <metadata>, with the texts capped at MAX_TEXT_BYTES.
* PNG: the chunks are walked with Pillow's chunk reader (checksums checked), and only the two
  toyopt text chunks are read and inflated, together at most MAX_TEXT_BYTES.
* GIF, MP4: the blocks (boxes) are walked to the comment, which may hold MAX_TEXT_BYTES.

Nothing is evaluated.
"""

from __future__ import annotations

import io
import re
import struct
import xml.etree.ElementTree as ET
import zlib

from PIL import PngImagePlugin

from ..config import MAX_JSON_BYTES, Config
from .spec import FigureSpec

CONFIG_KEY = "toyopt-config"
FIGURE_KEY = "toyopt-figure"
TITLE = "toyopt figure"
#: Figures larger than this are not searched for metadata.
MAX_FIGURE_BYTES = 200_000_000
#: The config and figure texts of one file together (a config alone may have MAX_JSON_BYTES):
#: reading stops beyond it, so a zip bomb, an endless PDF string or SVG text is refused early.
MAX_TEXT_BYTES = 2 * MAX_JSON_BYTES


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
        config_text, figure_text = READERS[fmt](data)
    except (IndexError, struct.error, zlib.error, SyntaxError, EOFError) as exc:  # truncated or corrupt
        raise ValueError(f"this {fmt.upper()} file's metadata is malformed ({exc})") from None
    if config_text is None:
        raise ValueError(f"this {fmt.upper()} file carries no toyopt config (was it written by toyopt?)")
    config = Config.from_json(config_text)
    figure = None if figure_text is None else FigureSpec.from_json(figure_text)
    return config, figure


def _too_long(what: str) -> ValueError:
    return ValueError(f"the {what} is longer than {MAX_TEXT_BYTES} bytes")


# -- PDF ------------------------------------------------------------------------------------------

_PDF_ESCAPES = {ord("n"): b"\n", ord("r"): b"\r", ord("t"): b"\t", ord("b"): b"\b", ord("f"): b"\f"}
_PDF_SPECIAL = re.compile(rb"[\\()]")
_STARTXREF = re.compile(rb"startxref\s+(\d{1,12})\s+%%EOF")
_XREF_SECTION = re.compile(rb"\s*(\d{1,10}) (\d{1,10})[ \t]*\r?\n")
_TRAILER = re.compile(rb"\s*trailer\s*<<")
_INFO_REF = re.compile(rb"/Info\s+(\d{1,10})\s+(\d{1,5})\s+R")
_PREV = re.compile(rb"/Prev\s+(\d{1,12})")
_DICT_KEY = re.compile(rb"\s*/([^\s/()<>\[\]{}%]+)\s*")
_DICT_END = re.compile(rb"\s*>>")
_DICT_SKIP = re.compile(rb"[^/>]*")  # a value other than a literal string: up to the next key or >>
#: Incremental updates followed back through /Prev (a PDF re-saved this often is not ours).
MAX_PDF_UPDATES = 16


def _pdf_literal(data: bytes, start: int, limit: int = MAX_TEXT_BYTES) -> tuple[str, int]:
    """The PDF literal string whose opening '(' is at ``start`` (balanced parentheses, escapes),
    and the position after its closing ')'. Runs between special characters are copied whole;
    a string longer than ``limit`` is refused as soon as it gets there."""
    out = bytearray()
    depth = 0
    i = start
    while True:
        m = _PDF_SPECIAL.search(data, i)
        if m is None:
            raise ValueError("unterminated string in the PDF metadata")
        if len(out) + m.start() - i > limit:
            raise _too_long("PDF metadata string")
        if depth:
            out += data[i : m.start()]
        i = m.start()
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
        else:  # )
            depth -= 1
            if depth == 0:
                return out.decode("latin-1"), i + 1
            out.append(c)
        i += 1


def _pdf_dictionary(data: bytes, start: int) -> dict[str, str]:
    """The literal-string entries of the dictionary whose '<<' ends at ``start`` (other values,
    such as names, numbers and references, are skipped)."""
    out: dict[str, str] = {}
    pos = start
    while True:
        m = _DICT_KEY.match(data, pos)
        if m is None:
            if _DICT_END.match(data, pos):
                return out
            raise ValueError("the PDF Info dictionary does not parse")
        key, pos = m.group(1).decode("latin-1"), m.end()
        if data[pos : pos + 1] == b"(":
            out[key], pos = _pdf_literal(data, pos, MAX_TEXT_BYTES - sum(map(len, out.values())))
        else:
            pos = _DICT_SKIP.match(data, pos).end()


def _pdf_xref_offset(data: bytes, xref: int, number: int) -> tuple[int | None, int]:
    """Where object ``number`` starts according to the cross-reference table at ``xref`` (None
    when this table does not list it as in use), and where the table ends (its trailer)."""
    if not data.startswith(b"xref", xref):
        raise ValueError("startxref does not point to a cross-reference table (re-saved by another tool?)")
    pos, found = xref + 4, None
    while m := _XREF_SECTION.match(data, pos):
        first, count = int(m.group(1)), int(m.group(2))
        if first <= number < first + count:
            entry = data[m.end() + 20 * (number - first) : m.end() + 20 * (number - first + 1)]
            if entry[17:18] == b"n":
                found = int(entry[:10])
        pos = m.end() + 20 * count
    return found, pos


def pdf_info(data: bytes) -> dict[str, str]:
    """The string entries of the PDF's document Info dictionary, located as the format says: the
    last ``startxref`` names the cross-reference table, whose trailer names /Info, whose offset
    that table (or an earlier one, through /Prev) gives. {} when the file has no Info."""
    ends = list(_STARTXREF.finditer(data, max(0, len(data) - 1024)))
    if not ends:
        raise ValueError("no startxref at the end of the PDF (truncated?)")
    xref, info, hops = int(ends[-1].group(1)), None, 0
    while True:
        _, trailer_at = _pdf_xref_offset(data, xref, -1)
        trailer = _TRAILER.match(data, trailer_at)
        if trailer is None:
            raise ValueError("the PDF trailer does not parse")
        body = data[trailer.end() : data.find(b"startxref", trailer.end())]
        info = info or _INFO_REF.search(body)
        if info is None:
            return {}
        offset, _ = _pdf_xref_offset(data, xref, int(info.group(1)))
        if offset is not None:
            break
        prev = _PREV.search(body)
        hops += 1
        if prev is None or hops > MAX_PDF_UPDATES:
            raise ValueError("the PDF Info object is not in its cross-reference tables")
        xref = int(prev.group(1))
    head = re.compile(rb"\s*" + info.group(1) + rb"\s+" + info.group(2) + rb"\s+obj\s*<<").match(data, offset)
    if head is None:
        raise ValueError("the PDF Info object is not where its cross-reference table says")
    return _pdf_dictionary(data, head.end())


def _read_pdf(data: bytes) -> tuple[str | None, str | None]:
    info = pdf_info(data)
    return info.get("Keywords"), info.get("Subject")


# -- SVG ------------------------------------------------------------------------------------------

_DC = "{http://purl.org/dc/elements/1.1/}"
_RDF = "{http://www.w3.org/1999/02/22-rdf-syntax-ns#}"
_SVG_FEED = 65_536
FIGURE_PREFIX = FIGURE_KEY + ":"


def _read_svg(data: bytes) -> tuple[str | None, str | None]:
    """Streamed: 64 KB at a time until </metadata> (or the end); the elements outside <metadata>
    are dropped as they close, and the metadata may hold at most MAX_TEXT_BYTES."""
    parser = ET.XMLPullParser(events=("start", "end"))
    config_text = figure_text = None
    inside = metadata_start = None
    try:
        for pos in range(0, len(data), _SVG_FEED):
            parser.feed(data[pos : pos + _SVG_FEED])
            for event, element in parser.read_events():
                if event == "start":
                    if element.tag.endswith("}metadata") and inside is None:
                        inside, metadata_start = True, pos
                    continue
                if element.tag == f"{_DC}description" and inside and config_text is None:
                    config_text = element.text
                elif (
                    element.tag == f"{_RDF}li"
                    and inside
                    and (element.text or "").startswith(FIGURE_KEY + ":")
                ):
                    figure_text = element.text[len(FIGURE_KEY) + 1 :]
                elif element.tag.endswith("}metadata") and inside:
                    return config_text, figure_text
                if not inside:
                    element.clear()
            if inside and pos + _SVG_FEED - metadata_start > MAX_TEXT_BYTES + _SVG_FEED:
                raise _too_long("SVG metadata")
        parser.close()
    except ET.ParseError as exc:
        raise ValueError(f"the SVG file does not parse: {exc}") from None
    return config_text, figure_text


# -- PNG ------------------------------------------------------------------------------------------

#: The text chunks read; every other chunk is skipped unread.
PNG_KEYS = (CONFIG_KEY, FIGURE_KEY)


def png_chunks(data: bytes):
    """(type, payload) of every chunk of a PNG file up to IEND (or the end of the data), in order,
    their checksums checked (Pillow's chunk reader); SyntaxError for a broken chunk."""
    stream = PngImagePlugin.ChunkStream(io.BytesIO(data))
    stream.fp.seek(8)
    while stream.fp.tell() < len(data):  # a file cut after a whole chunk ends there
        kind, _, length = stream.read()
        payload = stream.fp.read(length)
        if len(payload) != length:
            raise SyntaxError(f"truncated PNG chunk {kind!r}")
        stream.crc(kind, payload)
        yield kind, payload
        if kind == b"IEND":
            return


def png_text(data: bytes, keys: tuple[str, ...] = PNG_KEYS) -> dict[str, str]:
    """The text chunks (tEXt, zTXt, iTXt) named ``keys`` as keyword -> text. Other chunks are not
    decoded or inflated; the texts read may total MAX_TEXT_BYTES; a key twice is refused."""
    wanted = {key.encode("latin-1") for key in keys}
    out: dict[str, str] = {}
    budget = MAX_TEXT_BYTES
    for kind, payload in png_chunks(data):
        if kind not in (b"tEXt", b"zTXt", b"iTXt"):
            continue
        key, _, rest = payload.partition(b"\0")
        if key not in wanted:
            continue
        name = key.decode("latin-1")
        if name in out:
            raise ValueError(f"the PNG file has two {name!r} text chunks")
        if kind == b"tEXt":
            raw, encoding = rest, "latin-1"
        elif kind == b"zTXt":
            raw, encoding = _inflate(rest[1:], budget), "latin-1"
        else:
            compressed, rest = rest[0], rest[2:]
            _, _, rest = rest.partition(b"\0")  # language tag
            _, _, text = rest.partition(b"\0")  # translated keyword
            raw, encoding = (_inflate(text, budget) if compressed else text), "utf-8"
        if len(raw) > budget:
            raise _too_long("PNG text")
        budget -= len(raw)
        out[name] = raw.decode(encoding)
    return out


def _inflate(data: bytes, limit: int) -> bytes:
    """zlib-decompressed ``data``, refused as soon as it passes ``limit`` bytes."""
    inflater = zlib.decompressobj()
    out = inflater.decompress(data, limit + 1)
    if len(out) > limit:
        raise ValueError(f"the compressed PNG text inflates to more than {MAX_TEXT_BYTES} bytes")
    if not inflater.eof:
        raise ValueError("a compressed PNG text chunk is truncated")
    return out


def _read_png(data: bytes) -> tuple[str | None, str | None]:
    text = png_text(data)
    return text.get(CONFIG_KEY), text.get(FIGURE_KEY)


# -- GIF and MP4 (animations) ---------------------------------------------------------------------


def _comment_parts(comment: str | None) -> tuple[str | None, str | None]:
    """(config, figure) JSON texts of an ``animation_comment``."""
    if comment is not None and len(comment) > MAX_TEXT_BYTES:
        raise _too_long("animation comment")
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


#: One reader per format: bytes -> (config text, figure text), None where absent.
READERS = {"pdf": _read_pdf, "svg": _read_svg, "png": _read_png, "gif": _read_gif, "mp4": _read_mp4}
