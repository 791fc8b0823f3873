"""Request bodies: gzip (bounded), then a JSON array or JSON lines of events.

`decode_events(body, content_encoding, max_bytes)` returns a list of items, one per event: the
parsed JSON value, or a `Rejection('malformed', ...)` for a JSON line that does not parse (the other
lines still count). A body that cannot be read at all raises `BodyError` with the HTTP status to
answer (400 unreadable, 413 too large) and a message saying what to send instead.

Shapes accepted:
- a JSON array of objects: `[{...}, {...}]`
- JSON lines: one object per line, blank lines ignored (a single object is one line)
- either one gzip-compressed (`Content-Encoding: gzip`, or the gzip magic bytes without the header)
"""

from __future__ import annotations

import json
import zlib
from typing import Any

from pipeline.validation import MALFORMED, Rejection

GZIP_MAGIC = b"\x1f\x8b"


class BodyError(Exception):
    """The body as a whole is unusable: `status` (400 or 413) and a message for the developer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def decompress(body: bytes, content_encoding: str | None, max_bytes: int) -> bytes:
    """The body without its gzip layer, at most `max_bytes` long (413 beyond, 400 if corrupt)."""
    encoding = (content_encoding or "").strip().lower()
    if encoding in ("", "identity") and not body.startswith(GZIP_MAGIC):
        return body
    if encoding not in ("", "identity", "gzip", "x-gzip"):
        raise BodyError(400, f"Content-Encoding {encoding!r} is not supported; send gzip or no encoding")
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        data = inflater.decompress(body, max_bytes + 1)
    except zlib.error:
        raise BodyError(400, "the body is not valid gzip; compress it with gzip or drop Content-Encoding") from None
    if len(data) > max_bytes or inflater.unconsumed_tail:
        raise BodyError(413, f"the body is larger than {max_bytes} bytes once decompressed "
                             "(collector_max_body_bytes); send fewer events per request")
    if not inflater.eof:
        raise BodyError(400, "the gzip body is truncated; send the whole compressed body")
    return data


def parse_events(data: bytes) -> list[Any]:
    """Items of a JSON array or of JSON lines; see the module docstring."""
    text = _text(data)
    start = text.lstrip()[:1]
    if not start:
        raise BodyError(400, "the body is empty; send a JSON array of events or one JSON object per line")
    if start == "[":
        return _parse_array(text)
    if start == "{":
        return _parse_lines(text)
    raise BodyError(400, "the body is neither a JSON array nor JSON lines; send [{...}, ...] or one {...} per line")


def decode_events(body: bytes, content_encoding: str | None, max_bytes: int) -> list[Any]:
    if len(body) > max_bytes:
        raise BodyError(413, f"the body is larger than {max_bytes} bytes (collector_max_body_bytes); "
                             "send fewer events per request")
    return parse_events(decompress(body, content_encoding, max_bytes))


def parse_object(body: bytes, content_encoding: str | None, max_bytes: int, what: str) -> dict[str, Any]:
    """One JSON object (a gateway post), gzip allowed; BodyError when it is anything else."""
    if len(body) > max_bytes:
        raise BodyError(413, f"the body is larger than {max_bytes} bytes (collector_max_body_bytes)")
    text = _text(decompress(body, content_encoding, max_bytes))
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise BodyError(400, f"the body is not valid JSON ({_where(exc)}); send one {what} JSON object") from None
    if type(value) is not dict:
        raise BodyError(400, f"expected one {what} JSON object, got a JSON {_json_type(value)}")
    return value


def _text(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise BodyError(400, "the body is not UTF-8; send JSON encoded as UTF-8") from None


def _parse_array(text: str) -> list[Any]:
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise BodyError(400, f"the body is not valid JSON ({_where(exc)}); send a JSON array of event "
                             "objects, or one JSON object per line") from None
    if type(value) is not list:
        raise BodyError(400, f"expected a JSON array of events, got a JSON {_json_type(value)}")
    return value


def _parse_lines(text: str) -> list[Any]:
    lines = [line for line in text.splitlines() if line.strip()]
    items: list[Any] = []
    for number, line in enumerate(lines, start=1):
        try:
            items.append(json.loads(line))
        except ValueError as exc:
            if number == 1 and len(lines) > 1:
                whole = _whole_object(text)
                if whole is not None:  # one pretty-printed object, not JSON lines
                    return [whole]
            items.append(Rejection(MALFORMED, f"line {number} is not valid JSON ({_where(exc)}); "
                                              "send one JSON object per line"))
    return items


def _whole_object(text: str) -> dict[str, Any] | None:
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if type(value) is dict else None


def _where(exc: ValueError) -> str:
    if isinstance(exc, json.JSONDecodeError):
        return f"{exc.msg} at line {exc.lineno} column {exc.colno}"
    return "cannot decode"


def _json_type(value: Any) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}.get(
        type(value), "number")
