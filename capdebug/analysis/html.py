"""The self-contained HTML report of ``capdebug report``: one file to attach to a ticket.

Theory of operation. The decoder's events go once through :class:`~capdebug.analysis.triage.Triage`
(verdicts) and through :class:`LadderCollector`, which keeps per connection the steps of a
ladder (sequence) diagram: one step per TCP flag, handshake message, change_cipher_spec, alert,
gap or undecryptable run, and one step per *run* of application data from one side. A
connection that chats for hours keeps its first and last steps only (bounded memory and file).

:func:`render_report` puts everything into one HTML page: the data as JSON inside a
``<script type="application/json">`` block, a small vanilla JavaScript renderer that builds the
summary table (filter, paging) and draws a connection's ladder in SVG when its row is clicked.
Thousands of connections cost one JSON row each; only the page on screen is in the DOM.

Safety. SNI, certificate subjects and file names are attacker-controlled. The JSON block escapes
``<``, ``>`` and ``&`` as ``\\u003c`` etc. (so neither ``</script>`` nor ``<!--`` can end or alter
the block), the header is HTML-escaped, and the renderer builds the DOM with ``textContent``
only. A Content-Security-Policy allows nothing but this page's own script and style (by hash): no
network fetch of any kind, and an injected ``<script>`` would not run.

Everything here is pure: strings in, a string out; no clock, no files.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ._html_assets import CSS as _CSS
from ._html_assets import JS as _JS
from ._html_assets import PAGE as _PAGE
from .describe import ladder_detail
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
    TcpEvent,
    UndecryptableEvent,
    UpgradeEvent,
)
from .report import format_size
from .triage import CATALOG, ConnectionReport, Triage

__all__ = ["LadderCollector", "ReportMeta", "build_report", "render_report", "step_label"]

Step = list[Any]
"""``[t_us, side, kind, label, frame, detail]``: microseconds since the connection's first event,
0 client / 1 server / -1 neither, a kind (``syn fin rst hs ccs alert close app gap undec hb
upgrade plaintext elided``), the arrow's label, the frame number (0 when none) and a detail line."""

_SIDE = {"client": 0, "server": 1}
_LEVEL = {1: "warning", 2: "fatal"}


@dataclass(frozen=True, slots=True)
class ReportMeta:
    """What the report says about where it came from."""

    capture: str
    """The capture's file name, as the engineer knows it."""
    keys: str
    """Where the secrets came from, in one sentence."""
    warnings: tuple[str, ...] = ()
    """Problems met while reading the capture (truncated last packet, ...)."""


def step_label(ev: DecodeEvent) -> tuple[str, str, str]:
    """``(kind, label, detail)`` of one event's arrow (application data is counted by runs)."""
    if isinstance(ev, TcpEvent):
        if ev.flag == "SYN":
            return "syn", "SYN" if ev.from_ == "client" else "SYN+ACK", ""
        return ev.flag.lower(), ev.flag, ""
    if isinstance(ev, HandshakeEvent):
        return "hs", ev.name, ladder_detail(ev)
    if isinstance(ev, CcsEvent):
        return "ccs", "change_cipher_spec", ""
    if isinstance(ev, AlertEvent):
        how = "encrypted" if ev.encrypted else "plaintext"
        if ev.description is None:
            return "alert", "alert (encrypted)", f"no key to read it, record of {ev.record_length} bytes"
        if ev.likely:
            how = f"inferred from a {ev.record_length}-byte encrypted record"
        if ev.description == 0:
            return "close", "close_notify", how
        level = _LEVEL.get(ev.level or 0, "unknown level")
        return "alert", f"alert {ev.name}", f"{level} ({ev.description}), {how}"
    if isinstance(ev, HeartbeatEvent):
        return "hb", "heartbeat", {1: "request", 2: "response"}.get(ev.type or 0, "encrypted")
    if isinstance(ev, GapEvent):
        if ev.cut_frames:
            cut = ", ".join(str(f) for f in ev.cut_frames)
            return "gap", f"gap: {format_size(ev.size)} missing", f"cut by the snaplen (frame {cut})"
        why = {
            "capture": "lost by the capture (the receiver acknowledged them)",
            "network": "lost by the network (never acknowledged)",
            "out_of_order": "given up: more than the out-of-order limit waited behind the hole",
        }.get(ev.cause, "missing from the capture")
        return "gap", f"gap: {format_size(ev.size)} missing", f"{why}; the records it cut are unreadable"
    if isinstance(ev, UpgradeEvent):
        if ev.protocol == "unknown":
            return "upgrade", "TLS starts", "a ClientHello found after plaintext"
        what = f"{ev.command} -> {ev.reply}" if ev.reply else ev.command
        return "upgrade", f"{ev.protocol} upgrade{'' if ev.accepted else ' refused'}", what
    if isinstance(ev, PlaintextEvent):
        return "plaintext", f"plaintext ({ev.kind})", ev.text
    if isinstance(ev, UndecryptableEvent):
        return "undec", f"cannot decrypt: {ev.reason}", ev.message
    return "other", type(ev).__name__, ""


class _AppRun:
    __slots__ = ("bytes", "count", "decrypted", "early", "first_frame", "last_frame", "side", "t")

    def __init__(self, t: int, side: int, ev: AppDataEvent) -> None:
        self.t = t
        self.side = side
        self.early = ev.early
        self.count = 0
        self.bytes = 0
        self.decrypted = 0
        self.first_frame = ev.frame
        self.last_frame = ev.frame

    def step(self) -> Step:
        what = "early data" if self.early else "app data"
        label = f"{what} \u00d7{self.count}, {format_size(self.bytes)}"
        state = (
            "decrypted"
            if self.decrypted == self.count
            else "encrypted"
            if not self.decrypted
            else f"{self.decrypted} of {self.count} decrypted"
        )
        frames = (
            f"frames {self.first_frame}-{self.last_frame}"
            if self.last_frame != self.first_frame
            else f"frame {self.first_frame}"
        )
        return [self.t, self.side, "app", label, self.first_frame, f"{state}, {frames}"]


class _Ladder:
    """One connection's steps: the first ``head`` kept, then a window of the last ``tail``."""

    __slots__ = ("elided", "head", "head_max", "run", "t0", "tail", "undec")

    def __init__(self, head_max: int, tail_max: int) -> None:
        self.t0: int | None = None
        self.head: list[Step] = []
        self.head_max = head_max
        self.tail: deque[Step] = deque(maxlen=tail_max)
        self.elided = 0
        self.run: _AppRun | None = None
        self.undec: tuple[int, str] | None = None
        """(side, reason) of the last undecryptable step: repeats of it are not new steps."""

    def push(self, step: Step) -> None:
        if len(self.head) < self.head_max:
            self.head.append(step)
            return
        if len(self.tail) == self.tail.maxlen:
            self.elided += 1
        self.tail.append(step)

    def flush(self) -> None:
        if self.run is not None:
            self.push(self.run.step())
            self.run = None

    def steps(self) -> list[Step]:
        self.flush()
        out = list(self.head)
        if self.elided:
            t = self.tail[0][0] if self.tail else out[-1][0]
            out.append(
                [t, -1, "elided", f"… {self.elided} steps not shown", 0, "only the first and last are kept"]
            )
        out.extend(self.tail)
        return out


class LadderCollector:
    """Feed it every decoder event (:meth:`add`); :meth:`steps` gives a connection's ladder."""

    def __init__(self, *, head: int = 400, tail: int = 100) -> None:
        self._ladders: dict[int, _Ladder] = {}
        self._head = head
        self._tail = tail
        self.first_ts_ns: int | None = None
        self.last_ts_ns: int | None = None
        self.last_frame = 0
        self.events = 0

    def add(self, ev: DecodeEvent) -> None:
        self.events += 1
        if isinstance(ev, ConnectionEvent):
            self._ladders[ev.conn] = _Ladder(self._head, self._tail)
            return
        lad = self._ladders.get(ev.conn)
        if lad is None:
            return
        ts: int | None = getattr(ev, "ts_ns", None)
        frame: int = getattr(ev, "frame", 0)
        self.last_frame = max(self.last_frame, frame)
        if ts is None:
            return
        if self.first_ts_ns is None or ts < self.first_ts_ns:
            self.first_ts_ns = ts
        if self.last_ts_ns is None or ts > self.last_ts_ns:
            self.last_ts_ns = ts
        if lad.t0 is None:
            lad.t0 = ts
        t = (ts - lad.t0) // 1000
        side = _SIDE.get(getattr(ev, "from_", ""), -1)
        if isinstance(ev, AppDataEvent):
            run = lad.run
            if run is None or run.side != side or run.early != ev.early:
                lad.flush()
                run = lad.run = _AppRun(t, side, ev)
            run.count += 1
            run.bytes += ev.length
            run.decrypted += ev.decrypted
            run.last_frame = ev.frame
            lad.undec = None
            return
        if isinstance(ev, UndecryptableEvent):
            # The decoder may say "cannot decrypt" once per record: one note per reason and side
            # until something else happens is what a person needs.
            if lad.undec == (side, ev.reason):
                return
            lad.undec = (side, ev.reason)
        else:
            lad.undec = None
        lad.flush()
        kind, label, detail = step_label(ev)
        lad.push([t, side, kind, label, frame, detail])

    def steps(self, conn: int) -> list[Step]:
        lad = self._ladders.get(conn)
        return lad.steps() if lad is not None else []

    def start_ns(self, conn: int) -> int | None:
        lad = self._ladders.get(conn)
        return lad.t0 if lad is not None else None


def _iso(ts_ns: int | None) -> str:
    if ts_ns is None:
        return "unknown"
    dt = datetime.fromtimestamp(ts_ns / 1e9, UTC)
    return dt.strftime("%Y-%m-%d %H:%M:%S.") + f"{dt.microsecond // 1000:03d} UTC"


def _script_json(obj: Any) -> str:
    """JSON that cannot leave its ``<script>`` element: ``<``, ``>`` and ``&`` only occur inside
    JSON strings, where ``\\u003c`` and friends mean the same characters (HTML 4.12.1.3)."""
    text = json.dumps(obj, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _csp_hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


def _conn_json(
    r: ConnectionReport, steps: list[Step], start_ns: int | None, t0: int | None
) -> dict[str, Any]:
    worst = r.worst
    return {
        "conn": r.conn,
        "client": r.client,
        "server": r.server,
        "first_frame": r.first_frame,
        "sni": r.sni,
        "version": r.version,
        "suite": r.cipher_suite,
        "alpn": r.alpn,
        "app": r.app.text() if r.app is not None else None,
        "duration": r.duration,
        "bytes": [r.bytes_client, r.bytes_server],
        "start": (start_ns - t0) / 1e9 if start_ns is not None and t0 is not None else None,
        "worst": [worst.code, worst.severity] if worst is not None else None,
        "verdicts": [[v.code, v.severity, v.by, v.frame, v.detail, v.confidence] for v in r.verdicts],
        "ladder": steps,
    }


def render_report(meta: ReportMeta, reports: Sequence[ConnectionReport], ladders: LadderCollector) -> str:
    """The whole HTML page."""
    t0 = ladders.first_ts_ns
    conns = [_conn_json(r, ladders.steps(r.conn), ladders.start_ns(r.conn), t0) for r in reports]
    codes = sorted({v.code for r in reports for v in r.verdicts})
    data = {
        "capture": meta.capture,
        "catalog": {c: list(CATALOG[c]) for c in codes if c in CATALOG},
        "conns": conns,
    }
    by_worst = {"error": 0, "warning": 0}
    for r in reports:
        w = r.worst
        if w is not None and w.severity in by_worst:
            by_worst[w.severity] += 1
    span = ""
    if t0 is not None and ladders.last_ts_ns is not None:
        span = f" ({(ladders.last_ts_ns - t0) / 1e9:.3f} s)"
    e = html.escape
    facts = [
        ("capture", e(meta.capture)),
        ("time", f"{e(_iso(t0))} → {e(_iso(ladders.last_ts_ns))}{e(span)}"),
        (
            "connections",
            f"{len(reports)}: <span class='sev-error'>{by_worst['error']} with errors</span>, "
            f"<span class='sev-warning'>{by_worst['warning']} with warnings</span>, "
            f"{len(reports) - by_worst['error'] - by_worst['warning']} fine",
        ),
        ("frames", f"{ladders.last_frame} (last frame with TLS or TCP events), {ladders.events} events"),
        ("keys", e(meta.keys)),
    ]
    rows = "\n".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in facts)
    warnings = ""
    if meta.warnings:
        items = "".join(f"<li>{e(w)}</li>" for w in meta.warnings)
        warnings = f"<div class='warnings'><b>capture warnings</b><ul>{items}</ul></div>"
    csp = (
        f"default-src 'none'; script-src {_csp_hash(_JS)}; style-src {_csp_hash(_CSS)}; "
        "img-src 'none'; connect-src 'none'; font-src 'none'; base-uri 'none'; form-action 'none'"
    )
    return _PAGE.format(
        csp=e(csp),
        title=e(f"capdebug report: {meta.capture}"),
        css=_CSS,
        facts=rows,
        warnings=warnings,
        data=_script_json(data),
        js=_JS,
    )


def build_report(events: Iterable[DecodeEvent], meta: ReportMeta, *, slow_handshake_s: float = 1.0) -> str:
    """Triage and draw ``events`` (one pass) and return the page."""
    triage = Triage(slow_handshake_s=slow_handshake_s)
    ladders = LadderCollector()
    for ev in events:
        triage.add(ev)
        ladders.add(ev)
    return render_report(meta, triage.reports(), ladders)
