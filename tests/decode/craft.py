"""Crafted captures made of real TLS bytes, for the decoder tests.

The real fixtures (tests/fixtures/*.pcap, captured by tcpdump over loopback) are read back to
their TCP segments; tests then rearrange those segments (duplicate, reorder, drop, split, move
to another link type or to IPv6) and write them again with scapy. The TLS bytes themselves stay
real, so the fixtures' key logs still decrypt them.

:func:`completion_frames` is the oracle for frame attribution: the frame that completes a
stream position is the first one after which every byte before it has arrived.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from scapy.layers.inet import IP, TCP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import CookedLinux, CookedLinuxV2, Dot1AD, Dot1Q, Ether
from scapy.packet import Raw

from capdebug.analysis.events import DecodeEvent
from capdebug.analysis.sessions import iter_events, load_keys
from capdebug.crypto.keylog import KeyLog
from capdebug.net.tcp import decode_tcp
from capdebug.pcap import (
    SECRETS_TYPE_TLS_KEYLOG,
    Interface,
    LinkType,
    Packet,
    PcapngWriter,
    open_capture,
    write_pcap,
)

FIXTURES = Path(__file__).parent.parent / "fixtures"

SYN, FIN, RST, PSH, ACK = 0x02, 0x01, 0x04, 0x08, 0x10


@dataclass(frozen=True, slots=True)
class Seg:
    """One TCP segment of a crafted capture."""

    src: str
    sport: int
    dst: str
    dport: int
    seq: int
    ack: int
    flags: int
    payload: bytes
    ts_ns: int
    origin: int = 0
    """Frame number of the fixture packet it came from (0: made up)."""

    @property
    def span(self) -> int:
        """Sequence numbers consumed (SYN and FIN count one each)."""
        return len(self.payload) + (1 if self.flags & SYN else 0) + (1 if self.flags & FIN else 0)


def fixture(name: str) -> tuple[Path, Path]:
    return FIXTURES / f"{name}.pcap", FIXTURES / f"{name}.keys"


def read_segments(path: Path) -> list[Seg]:
    """Every TCP segment of a capture, in capture order, with its frame number as ``origin``."""
    out: list[Seg] = []
    with open_capture(path) as reader:
        frame = 0
        for item in reader:
            if not isinstance(item, Packet):
                continue
            frame += 1
            seg = decode_tcp(reader.interfaces[item.interface].linktype, item.data)
            assert seg is not None, f"{path} frame {frame} is not TCP"
            out.append(
                Seg(
                    _addr(seg.src),
                    seg.sport,
                    _addr(seg.dst),
                    seg.dport,
                    seg.seq,
                    seg.ack,
                    seg.flags,
                    seg.payload,
                    item.ts_ns,
                    frame,
                )
            )
    return out


def _addr(raw: bytes) -> str:
    import ipaddress

    return str(ipaddress.ip_address(raw))


def client_of(segs: Sequence[Seg]) -> tuple[str, int]:
    """The sender of the first pure SYN."""
    for s in segs:
        if s.flags & (SYN | ACK) == SYN:
            return s.src, s.sport
    raise AssertionError("no SYN")


def is_client(seg: Seg, client: tuple[str, int]) -> bool:
    return (seg.src, seg.sport) == client


def stream(segs: Sequence[Seg], client: tuple[str, int], from_client: bool) -> bytes:
    """The reassembled payload of one direction of a clean (loss-free, in-order) conversation."""
    return b"".join(s.payload for s in segs if is_client(s, client) == from_client)


# -- rewriting -----------------------------------------------------------------------------------


def split(seg: Seg, sizes: Iterable[int]) -> list[Seg]:
    """Cut a data segment into pieces of ``sizes`` bytes (the rest in a last piece); a FIN stays
    on the last piece."""
    out: list[Seg] = []
    off = 0
    data = seg.payload
    for n in sizes:
        if off >= len(data):
            break
        out.append(
            replace(
                seg, seq=(seg.seq + off) & 0xFFFFFFFF, payload=data[off : off + n], flags=seg.flags & ~FIN
            )
        )
        off += n
    if off < len(data):
        out.append(replace(seg, seq=(seg.seq + off) & 0xFFFFFFFF, payload=data[off:], flags=seg.flags & ~FIN))
    if seg.flags & FIN:
        out[-1] = replace(out[-1], flags=out[-1].flags | FIN)
    return out


def sub(seg: Seg, start: int, end: int, payload: bytes | None = None) -> Seg:
    """Bytes ``start:end`` of a segment's payload as a segment of their own (a retransmission
    of part of it), optionally with other bytes in their place."""
    data = seg.payload[start:end] if payload is None else payload
    assert len(data) == end - start
    return replace(seg, seq=(seg.seq + start) & 0xFFFFFFFF, payload=data, flags=seg.flags & ~(FIN | SYN))


def shift(
    segs: Iterable[Seg], *, seq_client: int = 0, seq_server: int = 0, client: tuple[str, int], ts: int = 0
) -> list[Seg]:
    """Move the sequence spaces (a new ISN each way) and the clock."""
    out = []
    for s in segs:
        mine, theirs = (seq_client, seq_server) if is_client(s, client) else (seq_server, seq_client)
        out.append(
            replace(
                s,
                seq=(s.seq + mine) & 0xFFFFFFFF,
                ack=(s.ack + theirs) & 0xFFFFFFFF if s.flags & ACK else s.ack,
                ts_ns=s.ts_ns + ts,
            )
        )
    return out


def with_ports(segs: Iterable[Seg], mapping: dict[int, int]) -> list[Seg]:
    return [
        replace(s, sport=mapping.get(s.sport, s.sport), dport=mapping.get(s.dport, s.dport)) for s in segs
    ]


def set_bytes(
    segs: list[Seg], client: tuple[str, int], from_client: bool, offset: int, data: bytes
) -> list[Seg]:
    """Overwrite stream bytes at ``offset`` (0 = first payload byte) of one direction."""
    out = []
    pos = 0
    for s in segs:
        if is_client(s, client) != from_client or not s.payload:
            out.append(s)
            continue
        start, end = pos, pos + len(s.payload)
        pos = end
        lo, hi = max(start, offset), min(end, offset + len(data))
        if lo >= hi:
            out.append(s)
            continue
        p = bytearray(s.payload)
        p[lo - start : hi - start] = data[lo - offset : hi - offset]
        out.append(replace(s, payload=bytes(p)))
    return out


# -- writing -------------------------------------------------------------------------------------

_MAC_A, _MAC_B = "02:00:00:00:00:01", "02:00:00:00:00:02"


def _v6(addr: str) -> str:
    """An IPv4 loopback address moved to IPv6 (distinct addresses stay distinct)."""
    if addr == "127.0.0.1":
        return "::1"
    return "2001:db8::" + addr.replace(".", ":")


def _ip(seg: Seg, v6: bool) -> Any:
    tcp = TCP(
        sport=seg.sport,
        dport=seg.dport,
        seq=seg.seq,
        ack=seg.ack if seg.flags & ACK else 0,
        flags=seg.flags,
        window=65535,
    )
    body = tcp / Raw(seg.payload) if seg.payload else tcp
    if v6:
        return IPv6(src=_v6(seg.src), dst=_v6(seg.dst)) / body
    return IP(src=seg.src, dst=seg.dst) / body


def _ether(seg: Seg) -> Any:
    return Ether(src=_MAC_A, dst=_MAC_B)


LINKS: dict[str, tuple[int, Callable[[Seg], bytes]]] = {
    "ether": (LinkType.ETHERNET, lambda s: bytes(_ether(s) / _ip(s, False))),
    "ipv6": (LinkType.ETHERNET, lambda s: bytes(_ether(s) / _ip(s, True))),
    "vlan": (LinkType.ETHERNET, lambda s: bytes(_ether(s) / Dot1Q(vlan=42) / _ip(s, False))),
    "qinq": (
        LinkType.ETHERNET,
        lambda s: bytes(_ether(s) / Dot1AD(vlan=100) / Dot1Q(vlan=42) / _ip(s, False)),
    ),
    "vlan-ipv6": (LinkType.ETHERNET, lambda s: bytes(_ether(s) / Dot1Q(vlan=42) / _ip(s, True))),
    "sll": (
        LinkType.LINUX_SLL,
        lambda s: bytes(CookedLinux(pkttype=0, lladdrtype=772, lladdrlen=6) / _ip(s, False)),
    ),
    "sll2": (
        LinkType.LINUX_SLL2,
        lambda s: bytes(CookedLinuxV2(ifindex=1, lladdrtype=772, pkttype=0, lladdrlen=6) / _ip(s, False)),
    ),
    "sll2-ipv6": (
        LinkType.LINUX_SLL2,
        lambda s: bytes(CookedLinuxV2(ifindex=1, lladdrtype=772, pkttype=0, lladdrlen=6) / _ip(s, True)),
    ),
}


def write(path: Path, segs: Sequence[Seg], link: str = "ether") -> Path:
    """Write ``segs`` as a classic pcap with nanosecond timestamps."""
    linktype, build = LINKS[link]
    packets = []
    for s in segs:
        data = build(s)
        packets.append(Packet(s.ts_ns, 0, data, len(data)))
    write_pcap(path, packets, linktype=linktype, nanosecond=True)
    return path


def write_pcapng(path: Path, segs: Sequence[Seg], secrets_at: int | None, secrets: bytes) -> Path:
    """Write a pcapng with one Decryption Secrets Block before packet index ``secrets_at``
    (None: after the last packet)."""
    linktype, build = LINKS["ether"]
    with open(path, "wb") as f:
        w = PcapngWriter(f)
        iface = w.add_interface(Interface(linktype))
        for i, s in enumerate(segs):
            if i == secrets_at:
                w.write_secrets(SECRETS_TYPE_TLS_KEYLOG, secrets)
            data = build(s)
            w.write_packet(Packet(s.ts_ns, 0, data, len(data)), iface)
        if secrets_at is None or secrets_at >= len(segs):
            w.write_secrets(SECRETS_TYPE_TLS_KEYLOG, secrets)
        w.flush()
    return path


# -- decoding ------------------------------------------------------------------------------------


def decode(capture: Path, keylog: Path | KeyLog | None) -> list[DecodeEvent]:
    """The decoder's events for ``capture``, with secrets from ``keylog`` and from the file."""
    if isinstance(keylog, KeyLog):
        keys = load_keys(capture, [], use_env=False)
        keys.keylog.merge(keylog)
    else:
        keys = load_keys(capture, [keylog] if keylog is not None else [], use_env=False)
    with open_capture(capture) as reader:
        return list(iter_events(reader, keys.keylog, late_secrets=keys.late_randoms))


def as_json(events: Iterable[DecodeEvent]) -> list[dict[str, Any]]:
    """Events as the JSON objects of the contract (through a JSON round trip)."""
    return [json.loads(json.dumps(e.to_json())) for e in events]


def strip(objs: Iterable[dict[str, Any]], drop: Iterable[str] = ("ts",)) -> list[dict[str, Any]]:
    """Without ``drop``'s keys, nor ``tcp_health`` events: those describe the TCP a test crafts
    (retransmissions, windows), not the TLS it must leave unchanged (tests/health/ checks them)."""
    gone = set(drop)
    return [{k: v for k, v in o.items() if k not in gone} for o in objs if o["event"] != "tcp_health"]


def reasons(objs: Iterable[dict[str, Any]]) -> list[tuple[int, str, str]]:
    """(conn, from, reason code) of every undecryptable event."""
    return [(o["conn"], o["from"], o["reason"]["code"]) for o in objs if o["event"] == "undecryptable"]


def kinds(objs: Iterable[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """What happened, without frames and times: (conn, event, from, type/name/length/...)."""
    out: list[tuple[Any, ...]] = []
    for o in objs:
        ev = o["event"]
        if ev == "connection":
            out.append((o["conn"], ev, o["roles_from"]))
        elif ev == "tcp":
            out.append((o["conn"], ev, o["from"], o["flag"]))
        elif ev == "handshake":
            out.append((o["conn"], ev, o["from"], o["type"], o["encrypted"]))
        elif ev == "alert":
            out.append((o["conn"], ev, o["from"], o["description"], o["encrypted"]))
        elif ev == "app_data":
            out.append((o["conn"], ev, o["from"], o["length"], o["decrypted"]))
        elif ev == "undecryptable":
            out.append((o["conn"], ev, o["from"], o["reason"]["code"]))
        else:
            out.append((o["conn"], ev, o.get("from")))
    return out


# -- frame attribution oracle ------------------------------------------------------------------------


def completion_frames(original: Sequence[Seg], crafted: Sequence[Seg]) -> dict[int, int]:
    """Original frame -> the crafted frame (1-based) that completes its bytes.

    A fixture frame's records complete in the first crafted frame after which its direction's
    stream is contiguous from the start up to the end of that frame's bytes (FIN included).
    An RST acts at once: its first copy. Frames whose bytes never complete are absent.
    """
    client = client_of(original)
    isn: dict[bool, int] = {}
    for s in original:
        if s.flags & SYN:
            isn.setdefault(is_client(s, client), s.seq)
    ends: dict[int, tuple[bool, int]] = {}
    for s in original:
        d = is_client(s, client)
        ends[s.origin] = (d, ((s.seq - isn[d]) & 0xFFFFFFFF) + s.span)
    have: dict[bool, list[tuple[int, int]]] = {True: [], False: []}
    reach = {True: 0, False: 0}
    done: dict[int, int] = {}
    for n, s in enumerate(crafted, 1):
        d = is_client(s, client)
        start = (s.seq - isn[d]) & 0xFFFFFFFF
        have[d].append((start, start + s.span))
        have[d].sort()
        for a, b in have[d]:
            if a <= reach[d]:
                reach[d] = max(reach[d], b)
        if s.flags & RST and s.origin and s.origin not in done:
            done[s.origin] = n
        for origin, (od, end) in ends.items():
            if origin not in done and od == d and end <= reach[d] and end > 0:
                done[origin] = n
    return done


def remap(objs: Iterable[dict[str, Any]], frames: dict[int, int]) -> list[dict[str, Any]]:
    """Events of the clean capture with their frames moved by ``frames``."""
    out = []
    for o in objs:
        o = dict(o)
        if "frame" in o:
            o["frame"] = frames[o["frame"]]
        if "first_frame" in o:
            o["first_frame"] = frames[o["first_frame"]]
        out.append(o)
    # The decoder reports in capture order: stable by frame (a connection at its first frame).
    out.sort(key=lambda o: o.get("frame", o.get("first_frame", 0)))
    return out


def record_ends(data: bytes) -> list[int]:
    """Stream offsets (relative to the first payload byte) where each TLS record ends."""
    ends = []
    off = 0
    while off + 5 <= len(data):
        off += 5 + int.from_bytes(data[off + 3 : off + 5], "big")
        ends.append(off)
    return ends


def data_segs(segs: Sequence[Seg], client: tuple[str, int], from_client: bool) -> list[int]:
    """Indexes (into ``segs``) of the data segments of one direction."""
    return [i for i, s in enumerate(segs) if s.payload and is_client(s, client) == from_client]


def wireshark_config(folder: Path, tls_ports: Iterable[int] = ()) -> Path:
    """A Wireshark configuration folder (for ``WIRESHARK_CONFIG_DIR``) in which tshark reassembles
    out-of-order TCP segments (off by default in 4.0) and decodes ``tls_ports`` as TLS (its
    heuristics need the first segment of a conversation to hold a record header)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "preferences").write_text("tcp.reassemble_out_of_order: TRUE\n")
    lines = "".join(f"decode_as_entry: tcp.port,{p},(none),TLS\n" for p in tls_ports)
    (folder / "decode_as_entries").write_text(lines)
    return folder
