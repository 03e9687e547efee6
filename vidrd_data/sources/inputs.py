"""Where inputs come from: brace patterns, fsspec URLs, and text files (CSV, lists) read in a given encoding.

- `expand_braces("a-{00000..00009}.tar")` / `{x,y}`: the notation of img2dataset and of the paper template;
  expanded as strings, never touching the files (10 000 tars cost 10 000 strings, not 10 000 stats).
- `is_url` / `open_input`: inputs may be fsspec URLs (file://, http(s)://, s3://, gs://); the workers open them.
- `text_lines(path, encoding)`: (line number, text) of a CSV or list file; a BOM selects utf-8-sig; a byte that is
  not valid in the encoding is an error naming the file, the line and the byte.
"""

from __future__ import annotations

import codecs
import io
import re
from pathlib import Path
from typing import IO, Iterator

_RANGE = re.compile(r"\{(-?\d+)\.\.(-?\d+)\}")
_BRACE = re.compile(r"\{([^{}]*)\}")


def expand_braces(pattern: str) -> Iterator[str]:
    """`{a..b}` zero-padded numeric ranges (width of the wider bound) and `{x,y,z}` lists, left to right, lazily."""
    m = _BRACE.search(pattern)
    if m is None:
        yield pattern
        return
    head, body, tail = pattern[: m.start()], m.group(1), pattern[m.end():]
    rng = _RANGE.fullmatch(m.group(0))
    if rng:
        lo, hi = int(rng[1]), int(rng[2])
        width = max(len(rng[1]), len(rng[2])) if rng[1].startswith("0") or rng[2].startswith("0") else 0
        step = 1 if hi >= lo else -1
        choices = (f"{i:0{width}d}" for i in range(lo, hi + step, step))
    elif "," in body:
        choices = iter(body.split(","))
    else:  # a literal brace pair ({} or {name}): keep it
        for rest in expand_braces(tail):
            yield head + m.group(0) + rest
        return
    for choice in choices:
        yield from expand_braces(head + choice + tail)


def is_url(path: str) -> bool:
    return "://" in str(path)


def open_input(path: str, mode: str = "rb") -> IO:
    """A local path or an fsspec URL, opened for reading (a missing backend names the extra to install)."""
    if not is_url(path):
        from vidrd_data.item_guard import open_regular

        f = open_regular(path)  # a FIFO / device named like a tar or a list never blocks: NotRegularFile (OSError)
        return f if "b" in mode else io.TextIOWrapper(f)
    import fsspec

    try:
        return fsspec.open(path, mode).open()
    except ImportError as exc:
        proto = str(path).split("://", 1)[0]
        extra = {"s3": "s3", "gs": "gcs", "gcs": "gcs", "http": "http", "https": "http"}.get(proto)
        hint = f"pip install 'vidrd[{extra}]'" if extra else "install the fsspec backend for this protocol"
        raise OSError(f"cannot open {path}: {exc} ({hint})") from None


def url_exists(path: str) -> bool:
    if not is_url(path):
        return Path(path).exists()
    import fsspec

    fs, p = fsspec.core.url_to_fs(path)
    return fs.exists(p)


def glob_inputs(pattern: str) -> list[str]:
    """Sorted matches of a glob (local or fsspec URL, protocol kept)."""
    import fsspec

    fs, p = fsspec.core.url_to_fs(pattern)
    found = sorted(fs.glob(p))
    if not is_url(pattern):
        return found
    return [fs.unstrip_protocol(f) for f in found]


def detect_encoding(head: bytes, encoding: str) -> str:
    """The encoding to decode with: a UTF-8 byte-order mark wins over plain utf-8 (Excel's "CSV UTF-8")."""
    if head.startswith(codecs.BOM_UTF8) and encoding.lower().replace("_", "-") in ("utf-8", "utf8"):
        return "utf-8-sig"
    return encoding


def text_lines(path: str, encoding: str = "utf-8", start_byte: int = 0, start_line: int = 1,
               name: str | None = None) -> Iterator[tuple[int, int, str]]:
    """(line number, byte offset just after the line, text with its newline) from `start_byte`, line by line."""
    try:
        codecs.lookup(encoding)
    except LookupError:
        raise ValueError(f"input.encoding {encoding!r} is not a known encoding (e.g. utf-8, utf-8-sig, cp1252, latin-1)") from None
    name = name or str(path)
    with open_input(path) as f:
        if start_byte:
            f.seek(start_byte)
            enc = encoding
        else:
            head = f.read(3)
            f.seek(0)
            enc = detect_encoding(head, encoding)
        decoder = codecs.getincrementaldecoder(enc)()
        offset, lineno = start_byte, start_line
        for raw in f:
            try:
                text = decoder.decode(raw)
            except UnicodeDecodeError as exc:
                col = exc.start
                raise ValueError(f"{name} line {lineno}: byte 0x{raw[col]:02x} at column {col + 1} is not valid "
                                 f"{enc}; set input.encoding to the file's encoding (e.g. cp1252, latin-1)") from None
            offset += len(raw)
            yield lineno, offset, text
            lineno += 1
