"""HTTP/1.x (RFC 9112) and HTTP/2 (RFC 9113) facts from one decrypted record.

HTTP/1.x: a request line (method, target) or status line (code) at the start of a record, and
the ``Connection`` header of the same header block (RFC 9112 9.6: ``close`` ends the connection
after this response). HTTP/2: the client's connection preface (RFC 9113 3.4) and the frames of a
record that starts at a frame boundary (9-byte header, 4.1): SETTINGS (6.5), GOAWAY (6.8: last
stream id and error code) and RST_STREAM (6.4: error code). Frames followed across records, and
header blocks (HPACK), are :mod:`.h2`'s."""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["H2_ERRORS", "PREFACE", "AppFact", "control_fact", "http1_facts", "http2_facts"]

H2_ERRORS = {
    0: "NO_ERROR", 1: "PROTOCOL_ERROR", 2: "INTERNAL_ERROR", 3: "FLOW_CONTROL_ERROR", 4: "SETTINGS_TIMEOUT",
    5: "STREAM_CLOSED", 6: "FRAME_SIZE_ERROR", 7: "REFUSED_STREAM", 8: "CANCEL", 9: "COMPRESSION_ERROR",
    10: "CONNECT_ERROR", 11: "ENHANCE_YOUR_CALM", 12: "INADEQUATE_SECURITY", 13: "HTTP_1_1_REQUIRED",
}  # fmt: skip
"""RFC 9113 7."""

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
_REQUEST = re.compile(rb"([A-Z]{3,10}) (\S{1,200}) HTTP/(1\.[01])\r\n")
_STATUS = re.compile(rb"HTTP/(1\.[01]) (\d{3})[^\r\n]{0,100}\r\n")
_CONNECTION = re.compile(rb"\r\nconnection:[ \t]*([^\r\n]{1,60})", re.IGNORECASE)
_GOAWAY, _RST_STREAM, _SETTINGS = 7, 3, 4


@dataclass(frozen=True, slots=True)
class AppFact:
    kind: str
    """request, response, preface, settings, goaway, rst_stream."""
    text: str
    """What to show (method and target, status, error code...)."""
    code: int | None = None
    """HTTP status, or the HTTP/2 error code."""
    closes: bool = False
    """This message announces the end of the connection (Connection: close, GOAWAY)."""
    unreadable: bool = False
    """An HTTP/2 request or response whose header block could not be read (see :mod:`.h2`)."""


def http1_facts(data: bytes) -> list[AppFact]:
    head = data[:4096]
    end = head.find(b"\r\n\r\n")
    block = head if end < 0 else head[: end + 2]
    conn = _CONNECTION.search(block)
    value = conn.group(1).decode("ascii", "replace").strip().lower() if conn else None
    closes = value is not None and "close" in value.split(",")[0]
    suffix = f", Connection: {value}" if value else ""
    if m := _REQUEST.match(head):
        method, target = m.group(1).decode(), m.group(2).decode("ascii", "replace")
        return [AppFact("request", f"{method} {target} HTTP/{m.group(3).decode()}{suffix}", None, closes)]
    if m := _STATUS.match(head):
        status = int(m.group(2))
        return [AppFact("response", f"HTTP/{m.group(1).decode()} {status}{suffix}", status, closes)]
    return []


def control_fact(ftype: int, flags: int, stream: int, body: bytes) -> AppFact | None:
    """The fact of one HTTP/2 control frame that can explain a close (None for the others)."""
    if ftype == _GOAWAY and len(body) >= 8:
        last = int.from_bytes(body[0:4], "big") & 0x7FFFFFFF
        code = int.from_bytes(body[4:8], "big")
        name = H2_ERRORS.get(code, f"error {code}")
        return AppFact("goaway", f"GOAWAY (last stream {last}, {name})", code, True)
    if ftype == _RST_STREAM and len(body) == 4:
        code = int.from_bytes(body, "big")
        return AppFact("rst_stream", f"RST_STREAM on stream {stream} ({H2_ERRORS.get(code, code)})", code)
    if ftype == _SETTINGS and not flags & 1:
        return AppFact("settings", f"SETTINGS ({len(body) // 6} parameters)")
    return None


def http2_facts(data: bytes) -> list[AppFact]:
    """One record read on its own, as if it started at a frame boundary: for a connection whose
    frames could not be followed from the start (see :mod:`.h2`)."""
    out: list[AppFact] = []
    at = 0
    if data.startswith(PREFACE):
        out.append(AppFact("preface", "HTTP/2 connection preface"))
        at = len(PREFACE)
    while at + 9 <= len(data):
        length = int.from_bytes(data[at : at + 3], "big")
        ftype, stream = data[at + 3], int.from_bytes(data[at + 5 : at + 9], "big") & 0x7FFFFFFF
        body = data[at + 9 : at + 9 + length]
        if len(body) < length or ftype > 9:
            break  # not at a frame boundary, or a frame continuing in the next record
        fact = control_fact(ftype, data[at + 4], stream, body)
        if fact is not None:
            out.append(fact)
        at += 9 + length
    return out
