"""open_capture: detection by magic, gzip, bad input, truncation at every byte, fuzzing."""

from __future__ import annotations

import gzip
import io
import random
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from capdebug.errors import CaptureFormatError, UsageError
from capdebug.pcap import Packet, SecretsBlock, open_capture

from . import builders as b


def _pcapng() -> tuple[bytes, list[tuple[int, bool]]]:
    """A small pcapng file, the offsets where its blocks end and whether each yields an item."""
    o = "<"
    blocks = [
        b.shb(o),
        b.idb(o, opts=b.options(o, (2, b"lo"))),
        b.epb(o, 0, 10, b"one"),
        b.dsb(o, b.TLSK, b"keys\n"),
        b.epb(o, 0, 20, b"second packet"),
        b.isb(o, 0, 30),
        b.epb(o, 0, 40, b"3"),
    ]
    ends = []
    total = 0
    for blk in blocks:
        total += len(blk)
        ends.append((total, blk[:4] in (b"\x06\x00\x00\x00", b"\x0a\x00\x00\x00")))
    return b"".join(blocks), ends


def _pcap() -> tuple[bytes, list[tuple[int, bool]]]:
    records = [(1, 2, b"first", 5), (3, 4, b"", 0), (5, 6, b"third!", 60)]
    raw = b.pcap_file(">", records, nanosecond=True)
    ends = [(24, False)]
    for *_, data, _orig in records:
        ends.append((ends[-1][0] + 16 + len(data), True))
    return raw, ends


def _items(raw: bytes) -> tuple[list[Packet | SecretsBlock], list[str]]:
    with open_capture(io.BytesIO(raw)) as reader:
        return list(reader), reader.warnings


@pytest.mark.parametrize("make", [_pcapng, _pcap], ids=["pcapng", "pcap"])
def test_every_cut_point(make: object) -> None:
    raw, ends = make()  # type: ignore[operator]
    full, warnings = _items(raw)
    assert warnings == []
    for cut in range(4, len(raw)):
        items, warnings = _items(raw[:cut])
        # The items of the blocks that fit are all there, and nothing else.
        assert items == full[: sum(1 for end, yields in ends if yields and end <= cut)], cut
        if any(cut == end for end, _ in ends):
            assert warnings == [], cut
        else:
            [warning] = warnings
            assert f"truncated at byte offset {cut}" in warning
            assert "stopped abruptly" in warning


def test_truncated_packet_warning_names_the_packet() -> None:
    raw, ends = _pcapng()
    cut = ends[-1][0] - 3
    _, warnings = _items(raw[:cut])
    assert warnings == [
        f"capture file is truncated at byte offset {cut}: the last packet (starting at byte "
        f"offset {ends[-2][0]}) is incomplete (was the capture stopped abruptly?)"
    ]


@pytest.mark.parametrize(
    ("head", "match"),
    [
        (b"<html><body>", "starts with 3c 68 74 6d"),
        (b"", "empty"),
        (b"\xd4\xc3", "starts with d4 c3 .*only 2 bytes"),
        (b"CLIENT_RANDOM 00 11\n", "key log"),
        (b"\x34\xcd\xb2\xa1" + bytes(20), "Kuznetzov"),
    ],
)
def test_not_a_capture(head: bytes, match: str, tmp_path: Path) -> None:
    with pytest.raises(CaptureFormatError, match=match) as info:
        open_capture(io.BytesIO(head))
    assert info.value.offset == 0
    assert "byte offset 0" in str(info.value)
    path = tmp_path / "bad.pcap"
    path.write_bytes(head)
    with pytest.raises(CaptureFormatError, match="not a pcap or pcapng file"):
        open_capture(path)


@pytest.mark.parametrize("name", ["capture.pcapng.gz", "capture.pcapng"])
def test_gzip_by_magic(name: str, tmp_path: Path) -> None:
    raw, _ = _pcapng()
    full, _ = _items(raw)
    path = tmp_path / name
    path.write_bytes(gzip.compress(raw))
    with open_capture(path) as reader:
        assert reader.format == "pcapng"
        assert list(reader) == full
        assert reader.warnings == []
    with open(path, "rb") as f:
        assert list(open_capture(f)) == full
        assert not f.closed  # a stream passed in belongs to the caller


def test_truncated_gzip_yields_what_it_has() -> None:
    rng = random.Random(3)
    o = "<"
    packets = [rng.randbytes(200) for _ in range(400)]  # incompressible: the cut lands mid-file
    raw = b.shb(o) + b.idb(o) + b"".join(b.epb(o, 0, i, p) for i, p in enumerate(packets))
    packed = gzip.compress(raw)
    with open_capture(io.BytesIO(packed[: len(packed) // 2])) as reader:
        got = [p.data for p in reader if isinstance(p, Packet)]
        assert 100 < len(got) < 400
        assert got == packets[: len(got)]
        assert any("gzip stream ends early" in w for w in reader.warnings)
        assert any("truncated at byte offset" in w for w in reader.warnings)


@pytest.mark.parametrize(
    ("at", "value", "match"),
    [
        (2, 9, "corrupt gzip data: Unknown compression method"),
        (3, 0xFF, "after gunzip: the file is empty; gzip stream ends early"),  # all header flags
        (40, 0xFF, "corrupt gzip data"),  # inside the deflate stream
    ],
)
def test_corrupt_gzip(at: int, value: int, match: str) -> None:
    raw, _ = _pcapng()
    packed = bytearray(gzip.compress(raw))
    packed[at] ^= value
    with pytest.raises(CaptureFormatError, match=match):
        list(open_capture(io.BytesIO(bytes(packed))))


def test_reader_is_a_closing_context_manager(tmp_path: Path) -> None:
    raw, _ = _pcapng()
    path = tmp_path / "c.pcapng"
    path.write_bytes(raw)
    with open_capture(path) as reader:
        first = next(iter(reader))
        assert isinstance(first, Packet)
    assert list(reader) == []  # closed: nothing more
    reader.close()  # idempotent


_MAGICS = [
    b"\x0a\x0d\x0d\x0a",
    bytes.fromhex("d4c3b2a1"),
    bytes.fromhex("a1b2c3d4"),
    bytes.fromhex("4d3cb2a1"),
    bytes.fromhex("a1b23c4d"),
    b"\x1f\x8b",
]


def _outcome(raw: bytes) -> None:
    """The invariant: items and warnings, or CaptureFormatError; nothing else escapes."""
    try:
        with open_capture(io.BytesIO(raw)) as reader:
            for item in reader:
                assert isinstance(item, (Packet, SecretsBlock))
            assert all(isinstance(w, str) for w in reader.warnings)
    except CaptureFormatError as exc:
        assert exc.offset is not None


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=200))
def test_fuzz_any_bytes(raw: bytes) -> None:
    _outcome(raw)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(_MAGICS), st.binary(max_size=300))
def test_fuzz_after_a_magic(magic: bytes, rest: bytes) -> None:
    _outcome(magic + rest)


@settings(max_examples=400, deadline=None)
@given(
    st.sampled_from(["pcapng", "pcap", "gzip"]), st.lists(st.tuples(st.integers(0, 400), st.integers(0, 255)))
)
def test_fuzz_mutated_files(kind: str, edits: list[tuple[int, int]]) -> None:
    raw = bytearray(_pcap()[0] if kind == "pcap" else _pcapng()[0])
    if kind == "gzip":
        raw = bytearray(gzip.compress(bytes(raw)))
    for at, value in edits:
        if at < len(raw):
            raw[at] = value
    _outcome(bytes(raw))


def test_missing_file_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"cannot open capture .*nope\.pcap"):
        open_capture(tmp_path / "nope.pcap")
    with pytest.raises(UsageError, match="cannot open capture"):
        open_capture(tmp_path)
