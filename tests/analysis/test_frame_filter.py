"""The frame filter changes how fast a capture is read, never what it says.

``iter_events`` lets the decoder's frame filter take plain frames (in-order data, bare ACKs)
inside the reader, without packet objects; every other frame goes through ``feed_packet``. Here
the same captures are decoded both ways (the filter, and every frame through ``feed_packet``)
in both decoder modes, and the events must be identical: on every real fixture, on the real
handshake cut, duplicated, reordered and dropped at random, and with the filter forced to give
way often (its bound on piled-up events).
"""

from __future__ import annotations

import random
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from capdebug.analysis.decode import DecodeOptions, Decoder
from capdebug.analysis.decode import framing as framing_module
from capdebug.analysis.sessions import iter_events, load_keys
from capdebug.crypto.keylog import KeyLog
from capdebug.pcap import SECRETS_TYPE_TLS_KEYLOG, LinkType, Packet, PcapngWriter, open_capture
from capdebug.pcap.model import Interface
from tests.analysis import review_frames as rf
from tests.decode import craft as c

FIXTURES = sorted(p.stem for p in c.FIXTURES.glob("*.pcap"))
MODES = {"decrypt": DecodeOptions(), "triage": DecodeOptions(decrypt_app_data=False)}


def _keys(capture: Path, keylog: Path | None) -> tuple[KeyLog, dict[bytes, int]]:
    keys = load_keys(capture, [keylog] if keylog is not None else [], use_env=False)
    return keys.keylog, keys.late_randoms


def _filtered(capture: Path, keylog: Path | None, options: DecodeOptions) -> list[dict[str, Any]]:
    kl, late = _keys(capture, keylog)
    with open_capture(capture) as reader:
        return [e.to_json() for e in iter_events(reader, kl, options, late_secrets=late)]


def _unfiltered(capture: Path, keylog: Path | None, options: DecodeOptions) -> list[dict[str, Any]]:
    kl, late = _keys(capture, keylog)
    decoder = Decoder(kl, options, late_secrets=late)
    out: list[dict[str, Any]] = []
    with open_capture(capture) as reader:
        frame = 0
        for item in reader:
            if isinstance(item, Packet):
                frame += 1
                linktype = reader.interfaces[item.interface].linktype
                out += [e.to_json() for e in decoder.feed_packet(frame, item, linktype)]
    return out + [e.to_json() for e in decoder.finish()]


def _taken(capture: Path, keylog: Path | None, options: DecodeOptions) -> tuple[int, int]:
    """(frames read, frames the filter took in)."""
    kl, late = _keys(capture, keylog)
    decoder = Decoder(kl, options, late_secrets=late)
    yielded = 0
    with open_capture(capture) as reader:
        reader.skip_frames(LinkType.ETHERNET, decoder.frame_filter())
        for item in reader:
            if isinstance(item, Packet):
                yielded += 1
                decoder.feed_packet(reader.packets_read, item, reader.interfaces[item.interface].linktype)
        decoder.finish()
        return reader.packets_read, reader.packets_read - yielded


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", FIXTURES)
def test_fixture_events_are_the_same_with_the_filter(name: str, mode: str) -> None:
    capture, keylog = c.fixture(name)
    options = MODES[mode]
    filtered = _filtered(capture, keylog, options)
    assert filtered == _unfiltered(capture, keylog, options)
    assert filtered  # every fixture has TLS in it


@pytest.mark.parametrize("mode", MODES)
def test_without_keys_the_same_too(mode: str) -> None:
    capture, _ = c.fixture("tls13-large-transfer")
    assert _filtered(capture, None, MODES[mode]) == _unfiltered(capture, None, MODES[mode])


def test_the_filter_takes_most_frames_of_a_bulk_transfer() -> None:
    capture, keylog = c.fixture("tls13-large-transfer")
    read, taken_triage = _taken(capture, keylog, MODES["triage"])
    _, taken_decrypt = _taken(capture, keylog, MODES["decrypt"])
    # Handshake, FIN/RST and record boundaries go through feed_packet; the rest does not.
    assert taken_triage > read * 0.8, (read, taken_triage)
    assert taken_decrypt > read * 0.8, (read, taken_decrypt)


def test_piled_up_events_make_the_filter_give_way(monkeypatch: pytest.MonkeyPatch) -> None:
    capture, keylog = c.fixture("tls13-large-transfer")
    expected = _unfiltered(capture, keylog, MODES["decrypt"])
    monkeypatch.setattr(framing_module, "MAX_PENDING", 2)
    read, taken = _taken(capture, keylog, MODES["decrypt"])
    assert _filtered(capture, keylog, MODES["decrypt"]) == expected
    assert 0 < taken < read


@pytest.mark.parametrize("name", ["tls13-large-transfer", "tls12-ecdhe-aes128gcm"])
def test_each_share_decodes_the_same_with_the_filter(name: str) -> None:
    """With a partition the filter also drops the plain frames of the other shares' connections."""
    capture, keylog = c.fixture(name)
    seen = 0
    for k in (0, 1):
        options = DecodeOptions(decrypt_app_data=False, partition=(k, 2))
        filtered = _filtered(capture, keylog, options)
        assert filtered == _unfiltered(capture, keylog, options)
        seen += len(filtered)
    assert seen  # one share or the other holds the connection


@pytest.mark.parametrize("max_pending", [2, 1000])
@pytest.mark.parametrize("mode", MODES)
def test_interleaved_connections_decode_the_same_with_the_filter(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str, max_pending: int
) -> None:
    """Many connections at once, records spanning segments (dropped uncopied by triage), bare
    ACKs, a lost segment in some, FIN and RST endings; with the filter giving way often or
    never."""
    capture = rf.interleaved_bulk(tmp_path / "bulk.pcap", conns=12, segments=40)
    monkeypatch.setattr(framing_module, "MAX_PENDING", max_pending)
    expected = _unfiltered(capture, None, MODES[mode])
    assert _filtered(capture, None, MODES[mode]) == expected
    read, taken = _taken(capture, None, MODES[mode])
    assert 0 < taken < read
    assert sum(1 for e in expected if e["event"] == "connection") == 12


_REAL = c.read_segments(c.fixture("tls12-ecdhe-aes128gcm")[0])
_REAL_KEYS = c.fixture("tls12-ecdhe-aes128gcm")[1]


def _perturb(
    segs: list[c.Seg], seed: int, p_split: float, p_dup: float, p_swap: float, p_drop: float
) -> list[c.Seg]:
    rnd = random.Random(seed)
    out: list[c.Seg] = []
    for s in segs:
        if len(s.payload) > 1 and rnd.random() < p_split:
            cut = rnd.randrange(1, len(s.payload))
            out += c.split(s, [cut])
        else:
            out.append(s)
    result: list[c.Seg] = []
    for s in out:
        if s.payload and rnd.random() < p_drop:
            continue
        result.append(s)
        if s.payload and rnd.random() < p_dup:
            # A retransmission, now or a little later, maybe of part of it only.
            start = rnd.randrange(0, len(s.payload))
            result.insert(rnd.randrange(len(result) - 1, len(result) + 1), c.sub(s, start, len(s.payload)))
    for i in range(len(result) - 1):
        if rnd.random() < p_swap:
            result[i], result[i + 1] = result[i + 1], result[i]
    return [replace(s, ts_ns=1_000_000 * (i + 1)) for i, s in enumerate(result)]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32),
    p_split=st.sampled_from([0.0, 0.3, 1.0]),
    p_dup=st.sampled_from([0.0, 0.1, 0.4]),
    p_swap=st.sampled_from([0.0, 0.1, 0.3]),
    p_drop=st.sampled_from([0.0, 0.0, 0.05]),
    mode=st.sampled_from(sorted(MODES)),
)
def test_damaged_streams_decode_the_same_with_the_filter(
    seed: int, p_split: float, p_dup: float, p_swap: float, p_drop: float, mode: str
) -> None:
    segs = _perturb(_REAL, seed, p_split, p_dup, p_swap, p_drop)
    with tempfile.TemporaryDirectory() as tmp:
        path = c.write(Path(tmp) / "damaged.pcap", segs)
        assert _filtered(path, _REAL_KEYS, MODES[mode]) == _unfiltered(path, _REAL_KEYS, MODES[mode])


def test_skip_frames_only_sees_its_link_type_and_keeps_frame_numbers(tmp_path: Path) -> None:
    path = tmp_path / "two-links.pcapng"
    frames = [(0, b"ether-%d" % i) if i % 3 else (1, b"raw-%d" % i) for i in range(12)]
    with open(path, "wb") as f:
        w = PcapngWriter(f)
        w.add_interface(Interface(linktype=LinkType.ETHERNET, snaplen=65535))
        w.add_interface(Interface(linktype=LinkType.RAW, snaplen=65535))
        for i, (iface, data) in enumerate(frames):
            w.write_packet(Packet(1_000 * (i + 1), iface, data, len(data)), iface)
        w.flush()
    seen: list[tuple[bytes, int, int]] = []

    def take_even(buf: bytes, start: int, stop: int, frame: int, ts_ns: int) -> bool:
        seen.append((buf[start:stop], frame, ts_ns))
        return frame % 2 == 0

    with open_capture(path) as reader:
        reader.skip_frames(LinkType.ETHERNET, take_even)
        yielded = [(p.data, reader.packets_read) for p in reader if isinstance(p, Packet)]
    ether = [(data, i + 1, 1_000 * (i + 1)) for i, (iface, data) in enumerate(frames) if iface == 0]
    assert seen == ether
    assert yielded == [(data, i + 1) for i, (iface, data) in enumerate(frames) if iface == 1 or (i + 1) % 2]


def test_skip_frames_for_every_link_type_still_yields_secrets(tmp_path: Path) -> None:
    """load_keys walks a pcapng for its Decryption Secrets Blocks with every packet filtered
    out: the blocks still come, wherever they are, and no packet does."""
    path = tmp_path / "dsb.pcapng"
    with open(path, "wb") as f:
        w = PcapngWriter(f)
        w.add_interface(Interface(linktype=LinkType.ETHERNET, snaplen=65535))
        w.add_interface(Interface(linktype=LinkType.RAW, snaplen=65535))
        for i in range(6):
            w.write_packet(Packet(1_000 * (i + 1), i % 2, b"frame-%d" % i, 7), i % 2)
            if i in (2, 5):
                w.write_secrets(SECRETS_TYPE_TLS_KEYLOG, b"CLIENT_RANDOM %s %s\n" % (b"ab" * 32, b"cd" * 48))
        w.flush()
    with open_capture(path) as reader:
        reader.skip_frames(None, lambda buf, start, stop, frame, ts: True)
        items = list(reader)
        assert reader.packets_read == 6
    assert [type(i).__name__ for i in items] == ["SecretsBlock", "SecretsBlock"]
    assert load_keys(path, [], use_env=False).embedded_blocks == 2
