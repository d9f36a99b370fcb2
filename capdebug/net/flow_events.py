"""What :class:`~capdebug.net.flow.TcpTracker` reports: connections starting and ending, in-order
stream bytes, gaps, conflicting copies and TCP flags (re-exported by :mod:`capdebug.net.flow`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from capdebug.net.reassembly import GAP_LOST

if TYPE_CHECKING:
    from capdebug.net.flow import Connection, Direction

__all__ = [
    "ConnectionClosed",
    "ConnectionStarted",
    "FlowEvent",
    "StreamData",
    "StreamGap",
    "StreamOverlap",
    "TcpFlag",
]


# Not frozen (hot path: frozen construction costs three times as much); treat as immutable.
@dataclass(slots=True)
class ConnectionStarted:
    """The first segment of a connection was seen."""

    conn: Connection


@dataclass(slots=True)
class StreamData:
    """In-order stream bytes sent by ``direction``."""

    conn: Connection
    direction: Direction
    data: bytes
    frame: int
    """Frame that completed these bytes (the frame in which the last of them arrived)."""
    ts_ns: int


@dataclass(slots=True)
class StreamGap:
    """``size`` stream bytes sent by ``direction`` are missing from the capture."""

    conn: Connection
    direction: Direction
    size: int
    frame: int
    ts_ns: int
    reason: str = GAP_LOST
    """Why: :data:`~capdebug.net.reassembly.GAP_LOST` (not captured) or
    :data:`~capdebug.net.reassembly.GAP_OUT_OF_ORDER` (given up past ``max_buffered``)."""


@dataclass(slots=True)
class StreamOverlap:
    """A segment sent by ``direction`` repeated stream bytes with other content; the first copy
    was kept (see :class:`~capdebug.net.reassembly.Overlap`)."""

    conn: Connection
    direction: Direction
    offset: int
    size: int
    differ: int
    frame: int
    """Frame of the later copy, whose differing bytes were dropped."""
    ts_ns: int


@dataclass(slots=True)
class TcpFlag:
    """``"SYN"``, ``"FIN"`` or ``"RST"`` sent by ``direction``, reported once each."""

    conn: Connection
    direction: Direction
    flag: str
    frame: int
    ts_ns: int


@dataclass(slots=True)
class ConnectionClosed:
    """The connection left the tracker (both FINs, an RST, or the end of the capture)."""

    conn: Connection


FlowEvent = ConnectionStarted | StreamData | StreamGap | StreamOverlap | TcpFlag | ConnectionClosed
