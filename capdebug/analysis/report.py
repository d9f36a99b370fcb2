"""Renderings of decoded events for people: the per-connection text timeline.

Pure functions returning strings with a style tag ("alert", "close", "reset", "warn", "dim",
""); the CLI decides how a tag looks on a terminal.
"""

from __future__ import annotations

from .describe import text_detail
from .events import (
    AlertEvent,
    AppDataEvent,
    CcsEvent,
    ConnectionEvent,
    DecodeEvent,
    GapEvent,
    HandshakeEvent,
    HeartbeatEvent,
    PlaintextEvent,
    RecoveredEvent,
    TcpEvent,
    UndecryptableEvent,
    UpgradeEvent,
)

__all__ = ["Timeline", "TimelineLine", "format_event", "format_size"]

TimelineLine = tuple[str, str]
_ARROW = {"client": "C → S", "server": "C ← S"}


def format_size(n: int) -> str:
    if n < 10_000:
        return f"{n} B"
    if n < 10_000_000:
        return f"{n / 1000:.1f} kB"
    return f"{n / 1_000_000:.1f} MB"


_GAP_CAUSES = {
    "capture": "lost by the capture (the receiver acknowledged them)",
    "network": "lost by the network (never acknowledged; the retransmissions too)",
    "out_of_order": "given up: more than the --max-out-of-order limit waited behind the hole "
    "(they may be later in the capture)",
}
"""What a gap's cause says (analysis/events.py GapEvent.cause); else "missing from the capture"."""


def format_event(ev: DecodeEvent) -> TimelineLine:
    """One event as (text, style) for a person."""
    if isinstance(ev, TcpEvent):
        style = {"RST": "reset", "FIN": "close"}.get(ev.flag, "dim")
        return f"TCP {ev.flag}", style
    if isinstance(ev, HandshakeEvent):
        enc = " [encrypted]" if ev.encrypted else ""
        extra = text_detail(ev)
        return f"{ev.name}{enc}{'  ' + extra if extra else ''}", ""
    if isinstance(ev, AlertEvent):
        if ev.description is None:
            return "alert (encrypted, no key to read it)", "alert"
        level = {1: "warning", 2: "fatal"}.get(ev.level or 0, f"level {ev.level}")
        enc = " [encrypted]" if ev.encrypted else ""
        if ev.description == 0:
            return f"close_notify{enc}", "close"
        return f"ALERT {level} {ev.name} ({ev.description}){enc}", "alert"
    if isinstance(ev, CcsEvent):
        return "change_cipher_spec", "dim"
    if isinstance(ev, AppDataEvent):
        what = "early data" if ev.early else "application data"
        state = "decrypted" if ev.decrypted else "encrypted"
        return f"{what} {format_size(ev.length)} ({state})", "dim"
    if isinstance(ev, HeartbeatEvent):
        kind = {1: "request", 2: "response"}.get(ev.type or 0, "(encrypted)")
        return f"heartbeat {kind}", "warn"
    if isinstance(ev, GapEvent):
        if ev.cut_frames:
            cut = ", ".join(f"#{f}" for f in ev.cut_frames)
            return f"GAP: {ev.size} bytes not captured (snaplen cut frame {cut})", "warn"
        return f"GAP: {ev.size} bytes {_GAP_CAUSES.get(ev.cause, 'missing from the capture')}", "warn"
    if isinstance(ev, RecoveredEvent):
        if ev.client_random is not None:
            # The hellos are there, but the key log names the session by another client_random.
            return (
                f"keys found under client_random {ev.client_random[:16]}... of the key log, not the "
                f"ClientHello's (Encrypted Client Hello names a session by its inner ClientHello): "
                f"{ev.label} with {ev.cipher_suite} authenticates",
                "warn",
            )
        return (
            f"keys recovered without the handshake: {ev.label} with {ev.cipher_suite} "
            f"authenticates from record {ev.seq}",
            "warn",
        )
    if isinstance(ev, UpgradeEvent):
        if ev.protocol == "unknown":
            return "TLS starts after plaintext (a ClientHello found in the stream)", "warn"
        said = f"{ev.command!r} (frame {ev.command_frame})"
        if not ev.reply:
            return f"{ev.protocol} upgrade: {said}; TLS follows", ""
        outcome = "TLS follows" if ev.accepted else "REFUSED: stays in plaintext"
        return (
            f"{ev.protocol} upgrade: {said} answered {ev.reply!r}: {outcome}",
            "" if ev.accepted else "alert",
        )
    if isinstance(ev, PlaintextEvent):
        return f"plaintext ({ev.kind}): {ev.text}", "warn"
    if isinstance(ev, UndecryptableEvent):
        if ev.reason == "late_secrets":
            return f"note [{ev.reason}]: {ev.message}", "dim"
        return f"cannot decrypt [{ev.reason}]: {ev.message}", "warn"
    return type(ev).__name__, ""


class _Run:
    """Consecutive application-data records from one side, summarised."""

    __slots__ = ("bytes", "count", "decrypted", "first", "last_frame")

    def __init__(self, ev: AppDataEvent) -> None:
        self.first = ev
        self.count = 1
        self.bytes = ev.length
        self.decrypted = int(ev.decrypted)
        self.last_frame = ev.frame

    def add(self, ev: AppDataEvent) -> None:
        self.count += 1
        self.bytes += ev.length
        self.decrypted += ev.decrypted
        self.last_frame = ev.frame


class Timeline:
    """One connection's timeline, built incrementally: :meth:`add` an event, get the lines it
    completes (a run of application data from one side is one line, held until it ends)."""

    def __init__(self, *, collapse: bool = True) -> None:
        self.collapse = collapse
        self._t0: int | None = None
        self._run: _Run | None = None

    def _prefix(self, ts: int, frame: int, who: str) -> str:
        if self._t0 is None:
            self._t0 = ts
        return f"  {(ts - self._t0) / 1e9:+10.6f}  #{frame:<7} {_ARROW.get(who, '     ')}  "

    def _flush(self) -> list[TimelineLine]:
        run = self._run
        if run is None:
            return []
        self._run = None
        first = run.first
        if run.count == 1:
            text, style = format_event(first)
        else:
            state = (
                "decrypted"
                if run.decrypted == run.count
                else "encrypted"
                if not run.decrypted
                else "partly decrypted"
            )
            what = "early data" if first.early else "application data"
            text = f"{what}: {run.count} records, {format_size(run.bytes)} ({state}, to #{run.last_frame})"
            style = "dim"
        return [(self._prefix(first.ts_ns, first.frame, first.from_) + text, style)]

    def add(self, ev: DecodeEvent) -> list[TimelineLine]:
        if isinstance(ev, ConnectionEvent):
            on = f" on {ev.interface}" if ev.interface is not None else ""
            head = f"conn {ev.conn}  {ev.client} → {ev.server}  (from frame {ev.first_frame}{on})"
            return [(head, "header")]
        if self.collapse and isinstance(ev, AppDataEvent):
            run = self._run
            if run is not None and run.first.from_ == ev.from_ and run.first.early == ev.early:
                run.add(ev)
                return []
            out = self._flush()
            self._run = _Run(ev)
            return out
        out = self._flush()
        ts = getattr(ev, "ts_ns", None)
        frame = getattr(ev, "frame", 0)
        who = getattr(ev, "from_", "")
        text, style = format_event(ev)
        out.append(((self._prefix(ts, frame, who) if ts is not None else "  ") + text, style))
        return out

    def close(self) -> list[TimelineLine]:
        return self._flush()
