"""Packet decoding and TCP reassembly: frames -> TCP segments -> per-connection stream events.

Pure and sans-IO; no TLS knowledge. The capture decoder drives it as::

    tracker = TcpTracker()
    for number, packet in enumerate(packets, 1):
        seg = decode_tcp(linktype, packet.data)
        if seg is not None:
            for event in tracker.feed(number, packet.ts_ns, seg):
                ...
    for event in tracker.flush():
        ...
"""

from capdebug.net.flow import (
    Connection,
    ConnectionClosed,
    ConnectionStarted,
    Direction,
    FlowEvent,
    StreamData,
    StreamGap,
    TcpFlag,
    TcpTracker,
)
from capdebug.net.reassembly import Data, Flag, Gap, StreamReassembler
from capdebug.net.tcp import TcpFlags, TcpSegment, decode_tcp, format_endpoint

__all__ = [
    "Connection",
    "ConnectionClosed",
    "ConnectionStarted",
    "Data",
    "Direction",
    "Flag",
    "FlowEvent",
    "Gap",
    "StreamData",
    "StreamGap",
    "StreamReassembler",
    "TcpFlag",
    "TcpFlags",
    "TcpSegment",
    "TcpTracker",
    "decode_tcp",
    "format_endpoint",
]
