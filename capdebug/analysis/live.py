"""A capture in progress: secrets written into the growing file, and decoding as packets arrive.

Theory of operation
-------------------
tcpdump cannot write secrets (libpcap has no API for Decryption Secrets Blocks), so capdebug
converts its packet stream. Wireshark reads a pcapng in one pass and uses a Decryption Secrets
Block (pcapng section 4.7) only for the records after it, so a session's secrets must be in the
file *before* its first encrypted record, while the key log that provides them is written by the
TLS library at about the time those records cross the wire.

:class:`SecretsInjector` therefore watches each host's packets for ClientHellos (the 32-byte
``random`` of RFC 8446 section 4.1.2 names the session in the key log) and, from a ClientHello
on, holds that connection's packets (only that connection's: the others flow on) until the
session's keys are complete in :class:`LiveKeys`, at most ``hold_s`` seconds or
``hold_packets`` packets. Then it writes one block with the session's lines followed by the
held packets. Keys that never come release the packets without secrets; lines that come later
(after a timeout, or a KeyUpdate's next generation) get their own block before the connection's
next packet. Only lines of sessions seen in the capture are written, exporter secrets only on
request (they decrypt nothing on the wire).

:class:`LiveMonitor` runs the streaming :class:`~capdebug.analysis.decode.Decoder` on exactly
what is written (packets and secrets blocks, in file order, so frame numbers are the file's) and
turns its events into one line each: connections, handshake messages, alerts, closes
(close_notify, FIN, RST), gaps, and each connection's triage verdicts when it closes.

All of this is sans-IO: bytes of key log and packets in, blocks and lines out; the caller
passes the time.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from datetime import datetime

from ..crypto.keylog import EXPORTER_LABELS, KeyLog, format_line
from ..net.tcp import TcpFlags, decode_tcp
from ..pcap.model import SECRETS_TYPE_TLS_KEYLOG, Packet, SecretsBlock
from ..wire.constants import ContentType, HandshakeType
from .decode import DecodeOptions, Decoder
from .events import (
    AppDataEvent,
    CcsEvent,
    ConnectionEvent,
    DecodeEvent,
    TcpEvent,
    UndecryptableEvent,
)
from .report import format_event as timeline_line
from .triage import ConnectionReport, Triage

__all__ = ["DEFAULT_HOLD_PACKETS", "DEFAULT_HOLD_S", "LiveKeys", "LiveMonitor", "SecretsInjector"]

#: How long a new session's packets wait for its keys before they are written without them.
DEFAULT_HOLD_S = 2.0
#: ... and how many of them, whichever comes first (a bulk transfer must not pile up).
DEFAULT_HOLD_PACKETS = 256
_MAX_FLOWS = 65536
"""Connections remembered per host; the oldest ones not waiting for keys are forgotten first."""

# Labels that decrypt a whole session: TLS 1.2's master secret (RFC 5246 8.1), or TLS 1.3's
# handshake and first application traffic secrets (RFC 8446 7.1).
_COMPLETE_12 = frozenset({"CLIENT_RANDOM"})
_COMPLETE_13 = frozenset(
    {
        "CLIENT_HANDSHAKE_TRAFFIC_SECRET",
        "SERVER_HANDSHAKE_TRAFFIC_SECRET",
        "CLIENT_TRAFFIC_SECRET_0",
        "SERVER_TRAFFIC_SECRET_0",
    }
)


class LiveKeys:
    """Key-log text arriving in pieces -> NSS lines per client_random. Thread-safe: one follower
    feeds it, every host's injector reads it."""

    def __init__(self, *, exporter_secrets: bool = False) -> None:
        self._lock = threading.Lock()
        self._partial = b""
        self._lines: dict[bytes, list[str]] = {}
        self._labels: dict[bytes, set[str]] = {}
        self._seen: set[str] = set()
        self._exclude = frozenset() if exporter_secrets else EXPORTER_LABELS
        self.issues = 0
        """Lines that were not key-log lines (skipped)."""

    def feed(self, data: bytes) -> int:
        """Add key-log bytes (a line may be cut anywhere); returns how many new lines they held."""
        with self._lock:
            buf = self._partial + data
            cut = max(buf.rfind(b"\n"), buf.rfind(b"\r")) + 1
            self._partial = buf[cut:]
            if cut == 0:
                return 0
            log = KeyLog.parse(buf[:cut], source="key log (followed)")
            self.issues += len(log.issues)
            added = 0
            for entry in log.entries():
                if entry.label in self._exclude:
                    continue
                line = format_line(entry.label, entry.client_random, entry.secret)
                if line in self._seen:
                    continue  # a follower that restarted reads the file again
                self._seen.add(line)
                self._lines.setdefault(entry.client_random, []).append(line)
                self._labels.setdefault(entry.client_random, set()).add(entry.label)
                added += 1
            return added

    def count(self, client_random: bytes) -> int:
        with self._lock:
            return len(self._lines.get(client_random, ()))

    def lines(self, client_random: bytes, start: int = 0) -> list[str]:
        with self._lock:
            return self._lines.get(client_random, [])[start:]

    def complete(self, client_random: bytes) -> bool:
        """Are the secrets that decrypt the whole session there?"""
        with self._lock:
            labels = self._labels.get(client_random)
            return labels is not None and (_COMPLETE_12 <= labels or _COMPLETE_13 <= labels)


def client_hello_random(payload: bytes) -> bytes | None:
    """The ``random`` of a ClientHello starting a TCP payload, else None.

    Only the first 43 bytes are needed: record header (RFC 8446 5.1: type, legacy_record_version,
    length), handshake header (4.1: msg_type, uint24 length), legacy_version and random (4.1.2).
    Always in the first segment of a connection's data, so no reassembly is needed.
    """
    if (
        len(payload) >= 43
        and payload[0] == ContentType.handshake
        and payload[1] == 3
        and payload[5] == HandshakeType.client_hello
        and payload[9] == 3
    ):
        return bytes(payload[11:43])
    return None


class _Flow:
    __slots__ = ("client_random", "deadline", "held", "written")

    def __init__(self, client_random: bytes, deadline: float) -> None:
        self.client_random = client_random
        self.deadline = deadline
        self.held: list[Packet] | None = None
        self.written = 0
        """Lines of this session already written."""


_Key = tuple[bytes, int, bytes, int]


class SecretsInjector:
    """Puts each session's secrets into one host's packet stream before its encrypted records
    (see the module docstring)."""

    def __init__(
        self,
        linktype: int,
        keys: LiveKeys,
        *,
        hold_s: float = DEFAULT_HOLD_S,
        hold_packets: int = DEFAULT_HOLD_PACKETS,
    ) -> None:
        self.linktype = linktype
        self.keys = keys
        self.hold_s = hold_s
        self.hold_packets = max(1, hold_packets)
        self._flows: dict[_Key, _Flow] = {}
        self._holding: dict[_Key, _Flow] = {}
        self.sessions = 0
        """ClientHellos seen."""
        self.sessions_with_keys = 0
        """Sessions whose secrets were written before their first encrypted record."""
        self.lines_written = 0
        self.released_without_keys = 0

    def feed(self, packets: Iterable[Packet], now: float) -> list[Packet | SecretsBlock]:
        out: list[Packet | SecretsBlock] = []
        if self._holding:
            self._release_due(now, out)
        keys = self.keys
        for pkt in packets:
            seg = decode_tcp(self.linktype, pkt.data)
            if seg is None:
                out.append(pkt)
                continue
            a, b = (seg.src, seg.sport), (seg.dst, seg.dport)
            key = (*a, *b) if a <= b else (*b, *a)
            flow = self._flows.get(key)
            random = client_hello_random(seg.payload) if seg.payload else None
            if random is not None and (flow is None or flow.client_random != random):
                if flow is not None and flow.held is not None:
                    self._release(key, flow, out)
                flow = self._new_flow(key, random, now)
                if keys.complete(random):
                    self.sessions_with_keys += 1
                    self._write_lines(flow, out)
                    out.append(pkt)
                else:
                    flow.held = [pkt]
                    self._holding[key] = flow
                continue
            if flow is None:
                out.append(pkt)
                continue
            if flow.held is not None:
                flow.held.append(pkt)
                if keys.complete(flow.client_random) or len(flow.held) >= self.hold_packets:
                    self._release(key, flow, out)
                continue
            if keys.count(flow.client_random) > flow.written:
                self._write_lines(flow, out)  # late lines: still useful for what follows
            out.append(pkt)
            if seg.flags & TcpFlags.RST:
                del self._flows[key]
        return out

    def finish(self, now: float) -> list[Packet | SecretsBlock]:
        """The stream ended: release every held connection (with whatever keys there are)."""
        out: list[Packet | SecretsBlock] = []
        for key, flow in list(self._holding.items()):
            self._release(key, flow, out)
        return out

    def _new_flow(self, key: _Key, random: bytes, now: float) -> _Flow:
        self.sessions += 1
        flow = _Flow(random, now + self.hold_s)
        self._flows.pop(key, None)
        self._flows[key] = flow
        if len(self._flows) > _MAX_FLOWS:
            for old_key, old in self._flows.items():
                if old.held is None:
                    del self._flows[old_key]
                    break
        return flow

    def _release_due(self, now: float, out: list[Packet | SecretsBlock]) -> None:
        for key, flow in list(self._holding.items()):
            if now >= flow.deadline or self.keys.complete(flow.client_random):
                self._release(key, flow, out)

    def _release(self, key: _Key, flow: _Flow, out: list[Packet | SecretsBlock]) -> None:
        if self.keys.complete(flow.client_random):
            self.sessions_with_keys += 1
        else:
            self.released_without_keys += 1
        self._write_lines(flow, out)
        held, flow.held = flow.held or [], None
        self._holding.pop(key, None)
        out.extend(held)

    def _write_lines(self, flow: _Flow, out: list[Packet | SecretsBlock]) -> None:
        lines = self.keys.lines(flow.client_random, flow.written)
        if not lines:
            return
        flow.written += len(lines)
        self.lines_written += len(lines)
        out.append(SecretsBlock(SECRETS_TYPE_TLS_KEYLOG, ("\n".join(lines) + "\n").encode()))


# -- live decoding -------------------------------------------------------------------------------


def _clock(ts_ns: int) -> str:
    return datetime.fromtimestamp(ts_ns / 1e9).strftime("%H:%M:%S.%f")[:-3]


_SIDE = {"client": "C → S", "server": "C ← S"}


class LiveMonitor:
    """Decodes one host's file as it is written; :meth:`feed` returns lines to show."""

    def __init__(self, linktype: int, *, label: str | None = None) -> None:
        self.linktype = linktype
        self.label = label
        self._decoder = Decoder(options=DecodeOptions(decrypt_app_data=False))
        self._triage = Triage()
        self._frame = 0
        self._fins: dict[int, set[str]] = {}
        self._reported: set[int] = set()

    def feed(self, items: Iterable[Packet | SecretsBlock]) -> list[str]:
        lines: list[str] = []
        decoder = self._decoder
        for item in items:
            if isinstance(item, SecretsBlock):
                decoder.feed_secrets(item)
                continue
            self._frame += 1
            for ev in decoder.feed_packet(self._frame, item, self.linktype):
                self._event(ev, lines)
        return lines

    def finish(self) -> list[str]:
        """End of the capture: the decoder's last events, then the verdicts not shown yet."""
        lines: list[str] = []
        for ev in self._decoder.finish(self._frame):
            self._event(ev, lines)
        for conn in sorted(self._triage.conns):
            if conn not in self._reported:
                self._verdicts(conn, lines, final=True)
        return lines

    def _prefix(self, conn: int, ts_ns: int | None) -> str:
        where = f"[{self.label}] " if self.label else ""
        when = _clock(ts_ns) + " " if ts_ns is not None else ""
        return f"{when}{where}#{conn}"

    def _event(self, ev: DecodeEvent, lines: list[str]) -> None:
        self._triage.add(ev)
        if isinstance(ev, ConnectionEvent):
            lines.append(f"{self._prefix(ev.conn, None)} connection {ev.client} → {ev.server}")
            return
        if isinstance(ev, AppDataEvent | CcsEvent):
            return  # bulk: the progress line counts it
        if isinstance(ev, TcpEvent) and ev.flag == "SYN":
            return
        if isinstance(ev, UndecryptableEvent) and ev.reason == "late_secrets":
            return
        text, _style = timeline_line(ev)
        ts: int | None = getattr(ev, "ts_ns", None)
        side = _SIDE.get(getattr(ev, "from_", ""), "")
        frame = getattr(ev, "frame", None)
        at = f" frame {frame}" if frame is not None else ""
        lines.append(f"{self._prefix(ev.conn, ts)} {side} {text}{at}")
        closed = False
        if isinstance(ev, TcpEvent):
            if ev.flag == "RST":
                closed = True
            elif ev.flag == "FIN":
                fins = self._fins.setdefault(ev.conn, set())
                fins.add(ev.from_)
                closed = len(fins) == 2
        if closed and ev.conn not in self._reported:
            self._verdicts(ev.conn, lines, final=False)

    def _verdicts(self, conn: int, lines: list[str], *, final: bool) -> None:
        report = _connection_report(self._triage, conn)
        if report is None:
            return
        self._reported.add(conn)
        prefix = self._prefix(conn, None)
        summary = ", ".join(x for x in (report.version, report.cipher_suite, report.sni) if x)
        head = "at the end of the capture" if final else "closed"
        lines.append(f"{prefix} {head}{': ' + summary if summary else ''}")
        for v in report.verdicts:
            by = f" by {v.by}" if v.by else ""
            frame = f" (frame {v.frame})" if v.frame is not None else ""
            sure = "" if v.confidence == "high" else f", {v.confidence} confidence"
            lines.append(f"{prefix}   {v.severity.upper()} {v.code}{by}{frame}{sure}: {v.detail}")


def _connection_report(triage: Triage, conn: int) -> ConnectionReport | None:
    """One connection's verdicts now."""
    return triage.report(conn)
