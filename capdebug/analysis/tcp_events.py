"""The events of the TCP layer under TLS (:mod:`capdebug.analysis.events` re-exports them):
flags, per-connection TCP health, gaps, overlapping copies that differ, connections dropped
from the full table."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from ..net.health import DirectionHealth
from .event_base import PLAIN_FLAGS, PLAIN_FROM, DecodeEvent, encode_json

__all__ = ["EvictedEvent", "GapEvent", "OverlapEvent", "TcpEvent", "TcpHealthEvent"]


@dataclass(slots=True, init=False, unsafe_hash=True)
class TcpEvent(DecodeEvent):
    conn: Final[int]
    frame: Final[int]
    ts_ns: Final[int]
    from_: Final[str]
    flag: Final[str]
    """"SYN" | "FIN" | "RST"."""

    def __init__(self, conn: int, frame: int, ts_ns: int, from_: str, flag: str) -> None:
        self.conn = conn
        self.frame = frame
        self.ts_ns = ts_ns
        self.from_ = from_
        self.flag = flag

    def to_json(self) -> dict[str, Any]:
        return {
            "event": "tcp",
            "conn": self.conn,
            "frame": self.frame,
            "ts": self.ts_ns / 1e9,
            "from": self.from_,
            "flag": self.flag,
        }

    def to_json_line(self) -> str:
        if self.from_ not in PLAIN_FROM or self.flag not in PLAIN_FLAGS:
            return encode_json(self.to_json())
        # repr(float) is what the JSON encoder writes for a finite float.
        return (
            f'{{"event":"tcp","conn":{self.conn:d},"frame":{self.frame:d},"ts":{self.ts_ns / 1e9!r},'
            f'"from":"{self.from_}","flag":"{self.flag}"}}'
        )


@dataclass(slots=True, init=False, unsafe_hash=True)
class TcpHealthEvent(DecodeEvent):
    """What TCP did on a connection that had trouble (retransmissions, SYN retries, a zero
    window, a RST out of its sender's TTL profile, a SYN never answered): emitted when the
    connection ends, only for such connections (net/health.py)."""

    conn: Final[int]
    frame: Final[int]
    ts_ns: Final[int]
    client: Final[DirectionHealth]
    server: Final[DirectionHealth]
    connect_ns: Final[int | None]
    """First SYN to the SYN+ACK."""

    def __init__(
        self,
        conn: int,
        frame: int,
        ts_ns: int,
        client: DirectionHealth,
        server: DirectionHealth,
        connect_ns: int | None,
    ) -> None:
        self.conn = conn
        self.frame = frame
        self.ts_ns = ts_ns
        self.client = client
        self.server = server
        self.connect_ns = connect_ns

    def to_json(self) -> dict[str, Any]:
        return {
            "event": "tcp_health",
            "conn": self.conn,
            "frame": self.frame,
            "ts": self.ts_ns / 1e9,
            "connect": None if self.connect_ns is None else self.connect_ns / 1e9,
            "client": _health_json(self.client),
            "server": _health_json(self.server),
        }


def _health_json(h: DirectionHealth) -> dict[str, Any]:
    stuck = h.stuck
    return {
        "retransmissions": h.retransmissions,
        "retransmitted_bytes": h.retransmitted_bytes,
        "retransmission_time": h.retransmission_ns / 1e9,
        "rto_stalls": h.rto_stalls,
        "syns": h.syns,
        "zero_windows": h.zero_windows,
        "ttls": list(h.ttls),
        "rst_ttl": h.rst_ttl,
        "stuck": None
        if stuck is None
        else {"seq": stuck.seq, "size": stuck.size, "transmissions": stuck.transmissions},
    }


@dataclass(slots=True, init=False, unsafe_hash=True)
class GapEvent(DecodeEvent):
    conn: Final[int]
    frame: Final[int]
    ts_ns: Final[int]
    from_: Final[str]
    size: Final[int]
    """Bytes missing from the stream."""
    cause: Final[str]
    """"snaplen" when the capture cut the packet short; "capture" when the receiver
    acknowledged the missing bytes (it got them: the capture lost them); "network" when the
    receiver never acknowledged them and the sender retransmitted (they never arrived: the
    network lost them, the retransmissions too); "out_of_order" when more than the reassembly
    limit (``--max-out-of-order``) waited behind the hole, which was given up although its
    bytes may be later in the capture; else "lost" (not captured, cause unknown)."""
    cut_frames: Final[tuple[int, ...]]
    """With cause "snaplen": the frames the snaplen cut whose missing ends make up the gap
    (``frame`` is where the gap was decided, usually the next frame of that side). In JSON
    as ``cut_frames`` only then."""

    def __init__(
        self,
        conn: int,
        frame: int,
        ts_ns: int,
        from_: str,
        size: int,
        cause: str = "lost",
        cut_frames: tuple[int, ...] = (),
    ) -> None:
        self.conn = conn
        self.frame = frame
        self.ts_ns = ts_ns
        self.from_ = from_
        self.size = size
        self.cause = cause
        self.cut_frames = cut_frames

    def to_json(self) -> dict[str, Any]:
        return {
            "event": "gap",
            "conn": self.conn,
            "frame": self.frame,
            "ts": self.ts_ns / 1e9,
            "from": self.from_,
            "size": self.size,
            "cause": self.cause,
        } | ({"cut_frames": list(self.cut_frames)} if self.cut_frames else {})


@dataclass(slots=True, init=False, unsafe_hash=True)
class OverlapEvent(DecodeEvent):
    """A retransmitted segment repeated stream bytes with other content (net/reassembly.py,
    "Copies that differ"): the copy that arrived first was used, this one's bytes dropped. A
    sign of injection (a forged segment racing the real one) or of a broken middlebox."""

    conn: Final[int]
    frame: Final[int]
    """Frame of the later copy (dropped)."""
    ts_ns: Final[int]
    from_: Final[str]
    offset: Final[int]
    """Stream offset (from the first byte of the direction) of the first byte that differs."""
    size: Final[int]
    """Bytes compared with the first copy."""
    differ: Final[int]
    """Bytes among them that differ."""

    def __init__(
        self, conn: int, frame: int, ts_ns: int, from_: str, offset: int, size: int, differ: int
    ) -> None:
        self.conn = conn
        self.frame = frame
        self.ts_ns = ts_ns
        self.from_ = from_
        self.offset = offset
        self.size = size
        self.differ = differ

    def to_json(self) -> dict[str, Any]:
        return {
            "event": "overlap_conflict",
            "conn": self.conn,
            "frame": self.frame,
            "ts": self.ts_ns / 1e9,
            "from": self.from_,
            "offset": self.offset,
            "size": self.size,
            "differ": self.differ,
            "kept": "first",
        }


@dataclass(slots=True, init=False, unsafe_hash=True)
class EvictedEvent(DecodeEvent):
    """The connection was pushed out of the decoder's full connection table (net/flow.py,
    "Bounded state"): nothing after ``frame`` is analysed as part of it; a later segment of
    its 4-tuple starts a new connection."""

    conn: Final[int]
    frame: Final[int]
    """The frame whose new connection pushed it out."""
    ts_ns: Final[int]
    limit: Final[int]
    """The table's limit (``--max-connections``)."""
    carried_data: Final[bool]
    """It had carried data (else it was a half-open attempt, dropped first)."""
    bound: Final[str]
    """Which limit ``limit`` is: "connections" (open connections, ``--max-connections``) or
    "half_open" (connections that have not carried data, an eighth of it)."""

    def __init__(
        self, conn: int, frame: int, ts_ns: int, limit: int, carried_data: bool, bound: str = "connections"
    ) -> None:
        self.conn = conn
        self.frame = frame
        self.ts_ns = ts_ns
        self.limit = limit
        self.carried_data = carried_data
        self.bound = bound

    def to_json(self) -> dict[str, Any]:
        return {
            "event": "evicted",
            "conn": self.conn,
            "frame": self.frame,
            "ts": self.ts_ns / 1e9,
            "limit": self.limit,
            "bound": self.bound,
            "carried_data": self.carried_data,
        }
