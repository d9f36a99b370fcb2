"""Real traffic: tcpdump on the loopback while Python sockets talk, then reassemble the capture."""

from __future__ import annotations

import os
import socket
import struct
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from capdebug.net import (
    ConnectionStarted,
    Direction,
    StreamData,
    StreamGap,
    TcpFlag,
    TcpFlags,
    TcpTracker,
    decode_tcp,
)
from tests.support.tcpdump import tcpdump
from tests.tools import require, require_root

pytestmark = pytest.mark.tools


def read_classic_pcap(path: Path) -> tuple[int, Iterator[tuple[int, bytes]]]:
    """Minimal classic pcap reader: ``(linktype, iterator of (ts_ns, frame))``."""
    raw = path.read_bytes()
    magic = raw[:4]
    order = "<" if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    nano = magic in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d")
    (linktype,) = struct.unpack_from(order + "I", raw, 20)

    def records() -> Iterator[tuple[int, bytes]]:
        off = 24
        while off + 16 <= len(raw):
            sec, frac, incl, _orig = struct.unpack_from(order + "IIII", raw, off)
            off += 16
            yield sec * 1_000_000_000 + frac * (1 if nano else 1000), raw[off : off + incl]
            off += incl

    return linktype, records()


def count_fins(path: Path) -> int:
    if path.stat().st_size < 24:
        return 0
    linktype, frames = read_classic_pcap(path)
    segments = (decode_tcp(linktype, frame) for _, frame in frames)
    return sum(1 for seg in segments if seg is not None and seg.flags & TcpFlags.FIN)


def serve(server: socket.socket, received: bytearray, reply: bytes) -> None:
    conn, _ = server.accept()
    with conn:
        while chunk := conn.recv(65536):
            received += chunk
        conn.sendall(reply)


def test_loopback_capture_reassembles(tmp_path: Path) -> None:
    require("tcpdump")
    require_root()
    request = os.urandom(200_000)
    reply = os.urandom(30_000)
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    pcap = tmp_path / "lo.pcap"
    received = bytearray()
    thread = threading.Thread(target=serve, args=(server, received, reply))
    try:
        with tcpdump(pcap, port, extra=("-n", "-Z", "root", "-s", "0")):
            thread.start()
            with socket.create_connection(("127.0.0.1", port)) as client:
                client_port = client.getsockname()[1]
                client.sendall(request)
                client.shutdown(socket.SHUT_WR)
                answer = bytearray()
                while chunk := client.recv(65536):
                    answer += chunk
            thread.join(10)
            assert bytes(received) == request and bytes(answer) == reply  # the sockets themselves worked
            # Wait until both FINs are in the file: tcpdump writes each packet (-U) as it gets it.
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and count_fins(pcap) < 2:
                time.sleep(0.05)
    finally:
        server.close()

    linktype, frames = read_classic_pcap(pcap)
    tracker = TcpTracker()
    events = []
    for number, (ts_ns, frame) in enumerate(frames, 1):
        seg = decode_tcp(linktype, frame)
        assert seg is not None
        events += tracker.feed(number, ts_ns, seg)
    events += tracker.flush()

    starts = [e for e in events if isinstance(e, ConnectionStarted)]
    assert len(starts) == 1
    conn = starts[0].conn
    assert conn.roles_from_syn
    assert conn.client == (bytes([127, 0, 0, 1]), client_port)
    assert conn.server == (bytes([127, 0, 0, 1]), port)
    assert not [e for e in events if isinstance(e, StreamGap)]
    sent = b"".join(e.data for e in events if isinstance(e, StreamData) and e.direction is Direction.CLIENT)
    back = b"".join(e.data for e in events if isinstance(e, StreamData) and e.direction is Direction.SERVER)
    assert sent == request
    assert back == reply
    flags = [(e.flag, e.direction) for e in events if isinstance(e, TcpFlag)]
    assert flags.count(("SYN", Direction.CLIENT)) == 1
    assert flags.count(("SYN", Direction.SERVER)) == 1
    assert ("FIN", Direction.CLIENT) in flags
    assert ("FIN", Direction.SERVER) in flags
    assert tracker.open_connections == 0
