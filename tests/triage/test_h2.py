"""HTTP/2 followed across records (analysis/app/h2.py): frames split over records, DATA skipped
unread, header blocks decoded in order with HPACK, and "cannot tell" once a record that may
hold a header block was missed. The frames are made with the ``hpack`` encoder (RFC 7541) and
RFC 9113 4.1 frame headers; the real captures are in test_http.py (nginx and curl)."""

from __future__ import annotations

import hpack

from capdebug.analysis.app import AppFact, H2Direction, H2Watch
from capdebug.analysis.app.http import PREFACE

Slot = list[list[AppFact] | None]


def _frame(ftype: int, flags: int, stream: int, body: bytes) -> bytes:
    return len(body).to_bytes(3, "big") + bytes([ftype, flags]) + stream.to_bytes(4, "big") + body


def _headers(
    enc: hpack.Encoder, stream: int, fields: list[tuple[str, str]], end_stream: bool = False
) -> bytes:
    return _frame(1, 0x4 | (0x1 if end_stream else 0), stream, enc.encode(fields))


def _responses(enc: hpack.Encoder, statuses: list[int]) -> list[bytes]:
    """Each response's HEADERS (with a date and a server name the encoder indexes, so later
    blocks refer to earlier ones) and a 20000-byte DATA frame, as separate byte strings."""
    out = []
    for n, status in enumerate(statuses):
        stream = 1 + 2 * n
        fields = [(":status", str(status)), ("server", "nginx/1.22.1"), ("x-trace", f"t{n}")]
        out.append(_headers(enc, stream, fields))
        out.append(_frame(0, 0x1, stream, bytes(20000)))
    return out


def test_statuses_across_records_with_data_skipped() -> None:
    enc = hpack.Encoder()
    d = H2Direction(server=True)
    facts = []
    for chunk in _responses(enc, [200, 404, 502]):
        if chunk[3] == 1:  # HEADERS: split over two records
            facts += d.feed(chunk[:5]) + d.feed(chunk[5:])
        else:
            # The DATA frame's header and first bytes are opened, the rest lies wholly inside
            # the frame: not wanted, counted unread.
            facts += d.feed(chunk[:100])
            assert not d.wants(len(chunk) - 100, True)
            d.skip(len(chunk) - 100, True, "unread")
    assert [(f.kind, f.code) for f in facts] == [("response", 200), ("response", 404), ("response", 502)]
    assert d.lost is None


def test_a_missed_header_block_means_cannot_tell() -> None:
    enc = hpack.Encoder()
    d = H2Direction(server=True)
    chunks = _responses(enc, [200, 502])
    assert d.feed(chunks[0])[0].code == 200
    d.feed(chunks[1][:9])
    d.skip(len(chunks[1]) - 9, True, "unread")
    assert d.wants(len(chunks[2]), True)  # the next record holds a frame header: open it
    d.skip(len(chunks[2]), True, "a record was not opened")  # ...but it was missed
    assert d.lost == "a record was not opened"
    # A later record made of whole frames is read again, without its header blocks.
    later = _headers(enc, 5, [(":status", "503")]) + _frame(3, 0, 5, (8).to_bytes(4, "big"))
    facts = d.feed(later)
    assert [(f.kind, f.code, f.unreadable) for f in facts] == [
        ("response", None, True),
        ("rst_stream", 8, False),
    ]
    assert "cannot tell: a record was not opened" in facts[0].text


def test_inexact_length_is_never_skipped_through() -> None:
    """A CBC record's length is an upper bound: skipping it inside a DATA frame would guess."""
    enc = hpack.Encoder()
    d = H2Direction(server=True)
    d.feed(_responses(enc, [200])[0])
    d.feed(_frame(0, 0, 1, bytes(100))[:20])
    assert d.wants(10, False)
    d.skip(10, False, "a CBC record was not opened")
    assert d.lost == "a CBC record was not opened"


def test_watch_waits_for_the_preface_and_replays_the_server() -> None:
    """The server's SETTINGS may be opened before the client's preface; the preface decides."""
    enc, client_enc = hpack.Encoder(), hpack.Encoder()
    w = H2Watch()
    settings = _frame(4, 0, 0, (3).to_bytes(2, "big") + (100).to_bytes(4, "big"))
    early: Slot = [None]
    w.record(True, settings, early)
    assert early[0] is None and w.h2 is None
    assert w.wants(True, 5000, True)  # undecided: the server's records are opened
    request = _headers(client_enc, 1, [(":method", "GET"), (":path", "/x"), (":scheme", "https")])
    slot: Slot = [None]
    w.record(False, PREFACE + settings + request, slot)
    assert w.h2 is True
    assert [f.kind for f in early[0] or []] == ["settings"]
    assert [f.text for f in slot[0] or []] == [
        "HTTP/2 connection preface",
        "SETTINGS (1 parameters)",
        "GET /x on stream 1",
    ]
    response: Slot = [None]
    w.record(True, _responses(enc, [204])[0], response)
    assert [f.code for f in response[0] or []] == [204]


def test_not_http2_is_left_alone() -> None:
    w = H2Watch()
    slot: Slot = [None]
    w.record(False, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", slot)
    assert w.h2 is False and slot[0] is None
    assert not w.wants(True, 5000, True) and not w.wants(False, 5000, True)
