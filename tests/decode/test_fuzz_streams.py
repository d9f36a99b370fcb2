"""Property: whatever bytes a TCP connection carries, decoding yields events and never raises.

The streams start like TLS (so that the decoder engages) and continue with arbitrary bytes,
or are real handshakes with bytes flipped: malformed records and messages must become events
(``undecryptable`` not_tls, handshake ``error`` fields), never exceptions.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.decode import craft as c

_SYN, _ACK, _PSH = 0x02, 0x10, 0x08


def _conversation(client: bytes, server: bytes) -> list[c.Seg]:
    a, b = "10.0.0.1", "10.0.0.2"
    segs = [
        c.Seg(a, 40000, b, 443, 1000, 0, _SYN, b"", 1),
        c.Seg(b, 443, a, 40000, 5000, 1001, _SYN | _ACK, b"", 2),
    ]
    seq_a, seq_b, ts = 1001, 5001, 3
    for i in range(0, max(len(client), len(server)), 700):
        for who, data in ((0, client[i : i + 700]), (1, server[i : i + 700])):
            if not data:
                continue
            if who == 0:
                segs.append(c.Seg(a, 40000, b, 443, seq_a, seq_b, _ACK | _PSH, data, ts))
                seq_a += len(data)
            else:
                segs.append(c.Seg(b, 443, a, 40000, seq_b, seq_a, _ACK | _PSH, data, ts))
                seq_b += len(data)
            ts += 1
    return segs


def _decode(client: bytes, server: bytes) -> list[dict[str, object]]:
    with tempfile.TemporaryDirectory() as tmp:
        path = c.write(Path(tmp) / "fuzz.pcap", _conversation(client, server))
        return c.as_json(c.decode(path, None))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.binary(max_size=3000),
    st.binary(max_size=3000),
    st.sampled_from([b"\x16\x03\x01", b"\x16\x03\x03\x00\x40\x01", b"\x17\x03\x03", b"\x15\x03\x03\x00\x02"]),
)
def test_arbitrary_bytes_after_a_tls_start(client: bytes, server: bytes, start: bytes) -> None:
    events = _decode(start + client, start + server)
    assert all("event" in e and "conn" in e for e in events)


_REAL = c.read_segments(c.fixture("tls12-ecdhe-aes128gcm")[0])


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_real_handshake_with_flipped_bytes(data: st.DataObject) -> None:
    client_side = c.client_of(_REAL)
    streams = [bytearray(c.stream(_REAL, client_side, True)), bytearray(c.stream(_REAL, client_side, False))]
    for s in streams:
        for _ in range(data.draw(st.integers(1, 8))):
            i = data.draw(st.integers(0, len(s) - 1))
            s[i] = data.draw(st.integers(0, 255))
    events = _decode(bytes(streams[0]), bytes(streams[1]))
    assert all("event" in e and "conn" in e for e in events)
