"""Classic pcap: both magics, both byte orders, the writer, chunk boundaries."""

from __future__ import annotations

import io
import random
from pathlib import Path

import pytest

from capdebug.errors import CaptureFormatError
from capdebug.pcap import Packet, PcapWriter, open_capture, write_pcap
from capdebug.pcap import _reader as reader_module

from .builders import pcap_file


def _records(rng: random.Random, n: int, nanosecond: bool) -> list[tuple[int, int, bytes, int]]:
    out = []
    for _ in range(n):
        data = rng.randbytes(rng.randrange(0, 300))
        frac = rng.randrange(1_000_000_000 if nanosecond else 1_000_000)
        out.append((rng.randrange(1 << 32), frac, data, len(data) + rng.choice([0, 0, 17])))
    return out


@pytest.mark.parametrize("order", ["<", ">"])
@pytest.mark.parametrize("nanosecond", [False, True])
def test_reads_every_magic(order: str, nanosecond: bool) -> None:
    records = _records(random.Random(f"{order}{nanosecond}"), 50, nanosecond)
    raw = pcap_file(order, records, nanosecond=nanosecond, snaplen=1234, linktype=113)
    with open_capture(io.BytesIO(raw)) as reader:
        items = list(reader)
        assert reader.format == "pcap"
        [iface] = reader.interfaces
        assert (iface.linktype, iface.snaplen) == (113, 1234)
        assert iface.tsresol_ns == (1 if nanosecond else 1000)
        assert reader.packets_read == 50
        assert reader.warnings == []
    unit = 1 if nanosecond else 1000
    assert [(p.ts_ns, p.data, p.orig_len, p.interface) for p in items if isinstance(p, Packet)] == [
        (sec * 1_000_000_000 + frac * unit, data, orig, 0) for sec, frac, data, orig in records
    ]


@pytest.mark.parametrize("nanosecond", [False, True])
def test_writer_round_trip(nanosecond: bool) -> None:
    rng = random.Random(7)
    packets = [
        Packet(rng.randrange((1 << 32) * 1_000_000_000), 0, rng.randbytes(rng.randrange(1500)), 0)
        for _ in range(100)
    ]
    packets = [Packet(p.ts_ns, 0, p.data, len(p.data) + 4) for p in packets]
    out = io.BytesIO()
    assert write_pcap(out, packets, linktype=1, nanosecond=nanosecond) == 100
    back = list(open_capture(io.BytesIO(out.getvalue())))
    expect = [p.ts_ns if nanosecond else p.ts_ns // 1000 * 1000 for p in packets]
    assert [p.ts_ns for p in back if isinstance(p, Packet)] == expect
    assert [(p.data, p.orig_len) for p in back if isinstance(p, Packet)] == [
        (p.data, p.orig_len) for p in packets
    ]


def test_write_pcap_to_path(tmp_path: Path) -> None:
    path = tmp_path / "x.pcap"
    write_pcap(path, [Packet(5_000_000_000, 0, b"abc", 3)], linktype=101, nanosecond=True)
    with open_capture(path) as reader:
        assert reader.path == str(path)
        assert [(p.ts_ns, p.data) for p in reader if isinstance(p, Packet)] == [(5_000_000_000, b"abc")]
        assert reader.interfaces[0].linktype == 101


def test_writer_rejects_negative_timestamp() -> None:
    writer = PcapWriter(io.BytesIO(), 1)
    with pytest.raises(Exception, match="1970"):
        writer.write_packet(Packet(-1, 0, b"", 0))


class _Trickle(io.RawIOBase):
    """A non-seekable stream that returns at most ``step`` bytes per read, like a pipe."""

    def __init__(self, data: bytes, step: int) -> None:
        self._data = memoryview(data)
        self._pos = 0
        self._step = step

    def readable(self) -> bool:
        return True

    def readinto(self, b: bytearray) -> int:  # type: ignore[override]
        n = min(len(b), self._step, len(self._data) - self._pos)
        b[:n] = self._data[self._pos : self._pos + n]
        self._pos += n
        return n


@pytest.mark.parametrize("step", [1, 3, 4096])
def test_short_reads_and_tiny_chunks(step: int, monkeypatch: pytest.MonkeyPatch) -> None:
    # A window of 7 bytes puts every record across a refill boundary.
    monkeypatch.setattr(reader_module, "CHUNK_SIZE", 7)
    records = _records(random.Random(step), 40, True)
    raw = pcap_file("<", records, nanosecond=True)
    got = [p for p in open_capture(_Trickle(raw, step)) if isinstance(p, Packet)]  # type: ignore[arg-type]
    assert [(p.data, p.orig_len) for p in got] == [(r[2], r[3]) for r in records]


def test_absurd_record_length_names_offset() -> None:
    records = [(1, 2, b"x" * 10, 10), (1, 2, b"y" * 10, 10)]
    raw = bytearray(pcap_file(">", records, snaplen=65535))
    second = 24 + 16 + 10
    raw[second + 8 : second + 12] = (300 << 20).to_bytes(4, "big")
    reader = open_capture(io.BytesIO(bytes(raw)))
    first = next(iter(reader))
    assert isinstance(first, Packet) and first.data == b"x" * 10
    with pytest.raises(CaptureFormatError, match=f"offset {second}") as info:
        next(iter(reader))
    assert info.value.offset == second


def test_unsupported_version() -> None:
    raw = bytearray(pcap_file("<", []))
    raw[4] = 3
    with pytest.raises(CaptureFormatError, match="version 3"):
        open_capture(io.BytesIO(bytes(raw)))
