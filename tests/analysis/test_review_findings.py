"""Review of the frame filter, os.pread refills and the bounded-work changes (since 159fed5).

Each test here shows one finding of that review (each was an ``xfail(strict=True)`` test until
its fix; they pass now). The captures are built by hand (tests/analysis/review_frames.py) so
that each shows exactly the one condition it is about.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from capdebug.analysis.decode import order as order_module
from capdebug.pcap import Packet, open_capture
from tests.analysis import review_frames as rf
from tests.analysis.test_frame_filter import MODES, _filtered, _unfiltered

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


def _snaplen_then_plain(path: Path) -> Path:
    """Connection 1 has a hole still open at the end of the capture; connection 2 then has a
    frame cut by the snaplen; the last frame is a bare ACK of connection 1 (a plain frame)."""
    packets: list[Packet] = []
    one = rf.Conv(packets, ("10.0.0.1", 40001), ("10.0.0.2", 443), (1000, 5000))
    one.handshake()
    one.send(0, rf.PROTECTED_HANDSHAKE)
    before_hole = one.next[0]
    one.lose(0, 100)  # a segment the capture missed; nothing acknowledges it
    one.send(0, rf.app_records(8))
    two = rf.Conv(packets, ("10.0.0.3", 40002), ("10.0.0.2", 443), (7000, 9000))
    two.handshake()
    two.send(0, rf.PROTECTED_HANDSHAKE + rf.app_records(20), caplen=14 + 40 + 12)
    one.ack(1, upto=before_hole)  # the server acknowledges up to the hole: releases nothing
    return rf.write(path, packets)


@pytest.mark.parametrize("mode", MODES)
def test_gap_cause_at_the_end_does_not_depend_on_the_filter(tmp_path: Path, mode: str) -> None:
    capture = _snaplen_then_plain(tmp_path / "snaplen-then-plain.pcap")
    expected = _unfiltered(capture, None, MODES[mode])
    gaps = [e for e in expected if e["event"] == "gap" and e["conn"] == 1]
    assert gaps, expected  # the flushed hole of connection 1 is reported
    assert _filtered(capture, None, MODES[mode]) == expected


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    ("segments", "per_segment", "shown"),
    [
        # 26,000 events held behind connection 1 (the filter gives way), its request within
        # the window: decided by its bytes, not TLS, not shown.
        (130, 200, False),
        # Its request more than _UNDECIDED_FRAMES frames after its first: shown without waiting.
        (order_module.UNDECIDED_FRAMES + 10, 1, True),
    ],
)
def test_an_undecided_connection_is_decided_alike_with_the_filter(
    tmp_path: Path, mode: str, segments: int, per_segment: int, shown: bool
) -> None:
    """Found in review: the decision used to depend on how many events were held, which the
    frame filter changes (and a share of the capture too)."""
    capture = rf.undecided_then_many_events(tmp_path / "held.pcap", segments, per_segment)
    expected = _unfiltered(capture, None, MODES[mode])
    assert any(e["event"] == "connection" and e["conn"] == 1 for e in expected) == shown
    assert _filtered(capture, None, MODES[mode]) == expected


def test_a_capture_path_naming_a_pipe_is_read(tmp_path: Path) -> None:
    data = (FIXTURES / "tls13-aes128gcm.pcap").read_bytes()
    with open_capture(FIXTURES / "tls13-aes128gcm.pcap") as reader:
        expected = [p.data for p in reader if isinstance(p, Packet)]
    read_end, write_end = os.pipe()

    def feed() -> None:
        with os.fdopen(write_end, "wb") as f:
            f.write(data)

    writer = threading.Thread(target=feed)
    writer.start()
    try:
        with open_capture(f"/dev/fd/{read_end}") as reader:
            got = [p.data for p in reader if isinstance(p, Packet)]
    finally:
        os.close(read_end)
        writer.join()
    assert got == expected
