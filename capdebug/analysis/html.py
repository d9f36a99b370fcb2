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
    TcpEvent,
    UndecryptableEvent,
)
from .report import format_size
from .triage import CATALOG, ConnectionReport, Triage

__all__ = ["LadderCollector", "ReportMeta", "build_report", "render_report", "step_label"]

Step = list[Any]
"""``[t_us, side, kind, label, frame, detail]``: microseconds since the connection's first event,
0 client / 1 server / -1 neither, a kind (``syn fin rst hs ccs alert close app gap undec hb
elided``), the arrow's label, the frame number (0 when none) and a detail line."""

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
        return "gap", f"gap: {format_size(ev.size)} missing", "lost by the capture; later records unreadable"
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
        "duration": r.duration,
        "bytes": [r.bytes_client, r.bytes_server],
        "start": (start_ns - t0) / 1e9 if start_ns is not None and t0 is not None else None,
        "worst": [worst.code, worst.severity] if worst is not None else None,
        "verdicts": [[v.code, v.severity, v.by, v.frame, v.detail] for v in r.verdicts],
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


_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{csp}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="capdebug">
<title>{title}</title>
<style>{css}</style>
</head>
<body>
<header>
<h1>TLS report <span class="dim">capdebug</span></h1>
<dl class="facts">
{facts}
</dl>
{warnings}
</header>
<main>
<noscript><p class="warnings">This report draws its table and diagrams with JavaScript. The data
is also in the <code>capdebug-data</code> block of this file (JSON).</p></noscript>
<section id="summary">
<div class="controls">
<input id="filter" type="search" placeholder="filter: address, SNI, suite, verdict, detail…"
 aria-label="filter connections">
<select id="severity" aria-label="worst severity">
<option value="">any severity</option>
<option value="error">errors</option>
<option value="warning">warnings</option>
<option value="problem">errors + warnings</option>
<option value="ok">fine (info only)</option>
</select>
<select id="verdict" aria-label="verdict"><option value="">any verdict</option></select>
<label><input id="worst-first" type="checkbox"> problems first</label>
<span id="count" class="dim"></span>
</div>
<table id="conns">
<thead><tr><th>conn</th><th>client</th><th>server</th><th>SNI</th><th>version</th><th>suite</th>
<th class="num">duration</th><th class="num">C→S</th><th class="num">S→C</th><th>worst verdict</th>
</tr></thead>
<tbody></tbody>
</table>
<div class="pager">
<button id="prev" type="button">&lsaquo; previous</button>
<span id="page"></span>
<button id="next" type="button">next &rsaquo;</button>
</div>
</section>
<section id="detail" hidden></section>
</main>
<script type="application/json" id="capdebug-data">{data}</script>
<script>{js}</script>
</body>
</html>
"""

_CSS = """
:root { --err: #c0262d; --warn: #b7791f; --info: #2f855a; --ink: #1a202c; --dim: #718096;
  --line: #e2e8f0; --hs: #2b6cb0; --app: #6b46c1; --tcp: #4a5568; --sel: #ebf4ff; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--ink);
  margin: 0; background: #f7fafc; }
header, main { max-width: 1400px; margin: 0 auto; padding: 12px 20px; }
header { background: #fff; border-bottom: 1px solid var(--line); max-width: none; }
h1 { font-size: 20px; margin: 4px 0 8px; }
h2 { font-size: 17px; margin: 0 0 6px; }
h3 { font-size: 15px; margin: 12px 0 6px; }
.dim { color: var(--dim); font-weight: normal; }
code, .mono, td.mono { font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace;
  font-size: 12.5px; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: 2px 14px; margin: 0; }
dl.facts dt { color: var(--dim); }
dl.facts dd { margin: 0; overflow-wrap: anywhere; }
.warnings { background: #fffaf0; border: 1px solid #fbd38d; padding: 6px 10px; margin-top: 8px; }
.warnings ul { margin: 4px 0 0; padding-left: 20px; }
.controls { display: flex; flex-wrap: wrap; gap: 8px; align-items: center; margin: 6px 0 10px; }
.controls input[type=search] { flex: 1 1 320px; padding: 6px 8px; font: inherit; border: 1px solid #cbd5e0;
  border-radius: 4px; }
select, button { font: inherit; padding: 5px 8px; border: 1px solid #cbd5e0; border-radius: 4px;
  background: #fff; }
button:disabled { color: #a0aec0; }
table { border-collapse: collapse; width: 100%; background: #fff; border: 1px solid var(--line); }
th, td { text-align: left; padding: 5px 8px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { background: #edf2f7; font-weight: 600; position: sticky; top: 0; }
td { overflow-wrap: anywhere; }
th.num, td.num { text-align: right; white-space: nowrap; }
tbody tr { cursor: pointer; scroll-margin-top: 48px; }
tbody tr:hover { background: #f7fafc; }
tbody tr.selected { background: var(--sel); outline: 2px solid #90cdf4; }
tbody tr:focus { outline: 2px solid #4299e1; }
.badge { display: inline-block; padding: 1px 7px; border-radius: 10px; font-size: 12.5px; font-weight: 600;
  white-space: nowrap; }
.badge.error { background: #fed7d7; color: #9b2c2c; }
.badge.warning { background: #feebc8; color: #7b341e; }
.badge.info { background: #c6f6d5; color: #22543d; }
.badge.ok { background: #e2e8f0; color: #2d3748; }
.sev-error { color: var(--err); font-weight: 600; }
.sev-warning { color: var(--warn); font-weight: 600; }
.pager { display: flex; gap: 12px; align-items: center; justify-content: center; margin: 10px 0; }
#detail { background: #fff; border: 1px solid var(--line); margin-top: 14px; padding: 12px 16px; }
.detail-body { display: flex; flex-wrap: wrap; gap: 18px; align-items: flex-start; }
.ladder-box { flex: 0 1 auto; overflow-x: auto; max-width: 100%; }
.verdicts { flex: 1 1 340px; min-width: 300px; }
.verdict { border-left: 4px solid var(--dim); padding: 6px 10px; margin-bottom: 8px; background: #f7fafc; }
.verdict.error { border-color: var(--err); background: #fff5f5; }
.verdict.warning { border-color: var(--warn); background: #fffaf0; }
.verdict.info { border-color: var(--info); background: #f0fff4; }
.verdict .code { font-weight: 700; }
.verdict .meaning { color: #4a5568; font-size: 13px; margin-top: 3px; }
.verdict.hl, .verdict:hover { box-shadow: 0 0 0 2px #90cdf4; }
.kv { color: #4a5568; margin: 0 0 8px; }
svg.ladder { font: 12px system-ui, sans-serif; background: #fff; }
svg.ladder .life { stroke: #a0aec0; stroke-width: 2; }
svg.ladder .who { font-weight: 700; font-size: 13px; }
svg.ladder .ep { fill: #4a5568; font-size: 11.5px; }
svg.ladder .time { fill: var(--dim); font-family: ui-monospace, Menlo, Consolas, monospace; font-size: 11px; }
svg.ladder .frame { fill: var(--dim); font-size: 11px; }
svg.ladder .gapnote { fill: #a0aec0; font-size: 10.5px; font-style: italic; }
svg.ladder .label { font-weight: 600; }
svg.ladder .sub { fill: #4a5568; font-size: 11px; }
svg.ladder line.arrow { stroke-width: 1.6; }
svg.ladder .step .head { stroke: none; }
svg.ladder .step.k-hs line.arrow { stroke: var(--hs); } svg.ladder .step.k-hs .head { fill: var(--hs); }
svg.ladder .step.k-ccs line.arrow { stroke: #a0aec0; } svg.ladder .step.k-ccs .head { fill: #a0aec0; }
svg.ladder .step.k-ccs .label { fill: #718096; font-weight: normal; }
svg.ladder .step.k-syn line.arrow, svg.ladder .step.k-fin line.arrow { stroke: var(--tcp); }
svg.ladder .step.k-syn .head, svg.ladder .step.k-fin .head { fill: var(--tcp); }
svg.ladder .step.k-app line.arrow { stroke: var(--app); stroke-dasharray: 6 3; }
svg.ladder .step.k-app .head { fill: var(--app); } svg.ladder .step.k-app .label { fill: var(--app); }
svg.ladder .step.k-close line.arrow { stroke: var(--info); stroke-width: 2.2; }
svg.ladder .step.k-close .head { fill: var(--info); } svg.ladder .step.k-close .label { fill: var(--info); }
svg.ladder .step.k-alert line.arrow { stroke: var(--err); stroke-width: 2.8; }
svg.ladder .step.k-alert .head { fill: var(--err); } svg.ladder .step.k-alert .label { fill: var(--err); }
svg.ladder .step.k-rst line.arrow { stroke: var(--err); stroke-width: 2.8; stroke-dasharray: 3 3; }
svg.ladder .step.k-rst .head { fill: var(--err); } svg.ladder .step.k-rst .label { fill: var(--err); }
svg.ladder .step.k-alert .band, svg.ladder .step.k-rst .band { fill: #fff5f5; }
svg.ladder .band { fill: transparent; }
svg.ladder .note { fill: #fffaf0; stroke: #dd6b20; }
svg.ladder .step.k-gap .label, svg.ladder .step.k-undec .label { fill: #c05621; }
svg.ladder .step.k-elided .label { fill: var(--dim); font-style: italic; }
svg.ladder .step.hl .band { fill: #ebf8ff; }
svg.ladder .vmark.error { fill: var(--err); font-weight: 700; }
svg.ladder .vmark.warning { fill: var(--warn); font-weight: 700; }
svg.ladder .vmark.info { fill: var(--info); }
"""

_JS = r"""
"use strict";
(function () {
  const PAGE = 100;
  const RANK = { info: 0, warning: 1, error: 2 };
  const SVGNS = "http://www.w3.org/2000/svg";
  const data = JSON.parse(document.getElementById("capdebug-data").textContent);
  const conns = data.conns;
  const byConn = new Map(conns.map((c) => [c.conn, c]));
  const $ = (id) => document.getElementById(id);
  const state = { page: 0, rows: conns, selected: null };

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function sv(tag, attrs, text) {
    const e = document.createElementNS(SVGNS, tag);
    for (const k in attrs) e.setAttribute(k, String(attrs[k]));
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function size(n) {
    if (n < 10000) return n + " B";
    if (n < 10000000) return (n / 1000).toFixed(1) + " kB";
    return (n / 1000000).toFixed(1) + " MB";
  }
  function dur(s) {
    if (s === null || s === undefined) return "";
    return s < 10 ? (s * 1000).toFixed(1) + " ms" : s.toFixed(2) + " s";
  }
  function ms(us) {
    return us < 10000000 ? "+" + (us / 1000).toFixed(3) + " ms" : "+" + (us / 1e6).toFixed(3) + " s";
  }
  function worstSeverity(c) { return c.worst ? c.worst[1] : "ok"; }
  function haystack(c) {
    if (c._hay === undefined) {
      const parts = [String(c.conn), c.client, c.server, c.sni || "", c.version || "", c.suite || "",
        c.alpn || ""];
      for (const v of c.verdicts) parts.push(v[0], v[4]);
      c._hay = parts.join("\n").toLowerCase();
    }
    return c._hay;
  }

  function badge(c) {
    if (!c.worst) return el("span", "badge ok", "no verdict");
    const sev = c.worst[1];
    let text = c.worst[0];
    if (sev === "info") {
      text = Array.from(new Set(c.verdicts.map((v) => v[0]))).sort().join(", ");
    } else {
      const more = c.verdicts.filter((v) => v[1] !== "info").length - 1;
      if (more > 0) text += " +" + more;
    }
    return el("span", "badge " + sev, text);
  }

  function applyFilter() {
    const q = $("filter").value.trim().toLowerCase();
    const sev = $("severity").value;
    const code = $("verdict").value;
    let rows = conns.filter((c) => {
      const w = worstSeverity(c);
      if (sev === "problem" ? !(w === "error" || w === "warning")
        : sev === "ok" ? !(w === "ok" || w === "info") : sev && w !== sev) return false;
      if (code && !c.verdicts.some((v) => v[0] === code)) return false;
      return !q || haystack(c).includes(q);
    });
    if ($("worst-first").checked) {
      rows = rows.slice().sort((a, b) =>
        (RANK[worstSeverity(b)] ?? -1) - (RANK[worstSeverity(a)] ?? -1) || a.conn - b.conn);
    }
    state.rows = rows;
    state.page = 0;
    renderTable();
  }

  function renderTable() {
    const tbody = document.querySelector("#conns tbody");
    const rows = state.rows;
    const pages = Math.max(1, Math.ceil(rows.length / PAGE));
    state.page = Math.min(state.page, pages - 1);
    const start = state.page * PAGE;
    const frag = document.createDocumentFragment();
    for (const c of rows.slice(start, start + PAGE)) {
      const tr = el("tr");
      tr.tabIndex = 0;
      tr.dataset.conn = String(c.conn);
      if (state.selected === c.conn) tr.className = "selected";
      tr.append(el("td", "num", c.conn), el("td", "mono", c.client), el("td", "mono", c.server),
        el("td", "sni", c.sni || ""), el("td", "", (c.version || "").replace("TLS ", "")),
        el("td", "mono", (c.suite || "").replace(/^TLS_/, "")), el("td", "num", dur(c.duration)),
        el("td", "num", size(c.bytes[0])), el("td", "num", size(c.bytes[1])));
      const td = el("td", "verdict-cell");
      td.append(badge(c));
      tr.append(td);
      frag.append(tr);
    }
    tbody.replaceChildren(frag);
    if (!rows.length) {
      const tr = el("tr");
      const why = conns.length ? "no connection matches the filter" : "no TLS connection found";
      const td = el("td", "dim", why);
      td.colSpan = 10;
      tr.append(td);
      tbody.append(tr);
    }
    const shown = rows.length ? (start + 1) + "\u2013" + Math.min(start + PAGE, rows.length) : "0";
    $("count").textContent = shown + " of " + rows.length + " connections" +
      (rows.length !== conns.length ? " (filtered from " + conns.length + ")" : "");
    $("page").textContent = "page " + (state.page + 1) + " of " + pages;
    $("prev").disabled = state.page === 0;
    $("next").disabled = state.page >= pages - 1;
  }

  function openConn(n, scroll) {
    const c = byConn.get(n);
    if (!c) return;
    state.selected = n;
    for (const tr of document.querySelectorAll("#conns tbody tr")) {
      tr.classList.toggle("selected", tr.dataset.conn === String(n));
    }
    renderDetail(c);
    if (history.replaceState) history.replaceState(null, "", "#conn=" + n);
    if (scroll) $("detail").scrollIntoView({ block: "start" });
  }

  function renderDetail(c) {
    const box = $("detail");
    box.hidden = false;
    const h = el("h2", "", "conn " + c.conn + "  ");
    h.append(el("span", "mono", c.client + " → " + c.server));
    if (c.sni) h.append(el("span", "dim", "  SNI "), el("span", "sni", c.sni));
    const facts = [];
    if (c.version) facts.push(c.version);
    if (c.suite) facts.push(c.suite);
    if (c.alpn) facts.push("ALPN " + c.alpn);
    if (c.duration !== null) facts.push("lasted " + dur(c.duration));
    if (c.start !== null) facts.push("starts " + dur(c.start) + " into the capture");
    facts.push("first frame #" + c.first_frame);
    facts.push("bytes C→S " + size(c.bytes[0]) + ", S→C " + size(c.bytes[1]));
    const body = el("div", "detail-body");
    const lbox = el("div", "ladder-box");
    lbox.append(ladder(c));
    body.append(lbox, verdictList(c));
    box.replaceChildren(h, el("p", "kv", facts.join(" · ")), body);
  }

  function verdictList(c) {
    const wrap = el("div", "verdicts");
    wrap.append(el("h3", "", "Verdicts"));
    if (!c.verdicts.length) wrap.append(el("p", "dim", "No verdict for this connection."));
    const sorted = c.verdicts.slice().sort((a, b) => RANK[b[1]] - RANK[a[1]]);
    for (const v of sorted) {
      const d = el("div", "verdict " + v[1]);
      d.dataset.frame = String(v[3] || "");
      const head = el("div");
      head.append(el("span", "badge " + v[1], v[1]), document.createTextNode(" "), el("span", "code", v[0]));
      if (v[2]) head.append(el("span", "dim", " by " + v[2]));
      if (v[3]) head.append(el("span", "dim", " · frame #" + v[3]));
      d.append(head, el("div", "text", v[4]));
      const cat = data.catalog[v[0]];
      if (cat && v[1] !== "info") d.append(el("div", "meaning", "Next: " + cat[1]));
      d.addEventListener("mouseenter", () => highlight(v[3], true));
      d.addEventListener("mouseleave", () => highlight(v[3], false));
      wrap.append(d);
    }
    return wrap;
  }

  function highlight(frame, on) {
    if (!frame) return;
    for (const g of document.querySelectorAll("#detail g.step")) {
      if (g.dataset.frame === String(frame)) g.classList.toggle("hl", on);
    }
  }

  // The arrow a verdict is about, among those sharing its frame.
  const PREFER = {
    undecryptable: ["undec"], reset: ["rst"], benign_reset: ["rst"], alert: ["alert"],
    handshake_alert: ["alert"], premature_close: ["fin"], close_notify_unanswered: ["fin"],
    clean_close: ["close"], half_close: ["close"], likely_close_notify: ["app", "alert"],
    capture_incomplete: ["gap"], data_after_close_notify: ["app"], tcp_only: ["rst", "fin", "syn"],
  };

  function verdictMarks(c) {
    const marks = new Map();
    const sorted = c.verdicts.slice().sort((a, b) => RANK[b[1]] - RANK[a[1]]);
    for (const v of sorted) {
      if (!v[3]) continue;
      const kinds = PREFER[v[0]] || [];
      let at = c.ladder.findIndex((s) => s[4] === v[3] && kinds.includes(s[2]));
      if (at < 0) at = c.ladder.findIndex((s) => s[4] === v[3]);
      if (at < 0) continue;
      if (!marks.has(at)) marks.set(at, []);
      marks.get(at).push(v);
    }
    return marks;
  }

  function ladder(c) {
    const W = 820, X0 = 150, X1 = 520, TOP = 62;
    const steps = c.ladder;
    const marks = verdictMarks(c);
    const svg = sv("svg", { class: "ladder", width: W, role: "img" });
    svg.append(sv("title", {}, "Ladder diagram of conn " + c.conn));
    const ends = sv("g", {});
    ends.append(sv("text", { x: X0, y: 18, "text-anchor": "middle", class: "who" }, "client"),
      sv("text", { x: X0, y: 34, "text-anchor": "middle", class: "ep" }, c.client),
      sv("text", { x: X1, y: 18, "text-anchor": "middle", class: "who" }, "server"),
      sv("text", { x: X1, y: 34, "text-anchor": "middle", class: "ep" }, c.server),
      sv("text", { x: 8, y: 52, class: "time" }, "time"),
      sv("text", { x: X1 + 24, y: 52, class: "frame" }, "frame · verdict"));
    svg.append(ends);
    const body = sv("g", {});
    let y = TOP, prev = null;
    steps.forEach((s, index) => {
      const t = s[0], side = s[1], kind = s[2], label = s[3], frame = s[4], detail = s[5];
      if (prev !== null && t > prev) {
        const dms = (t - prev) / 1000;
        const extra = Math.min(40, Math.round(9 * Math.log10(1 + dms)));
        if (dms >= 20) {
          body.append(sv("text", { x: (X0 + X1) / 2, y: y + extra / 2 + 4, "text-anchor": "middle",
            class: "gapnote" }, "⋯ " + dur(dms / 1000) + " later ⋯"));
        }
        y += extra;
      }
      prev = t;
      const ROW = detail && kind !== "elided" ? 40 : 28;
      const g = sv("g", { class: "step k-" + kind });
      g.dataset.kind = kind;
      g.dataset.label = label;
      g.dataset.frame = String(frame);
      g.append(sv("rect", { class: "band", x: 0, y: y, width: W, height: ROW }));
      const mid = y + 16;
      g.append(sv("text", { x: 8, y: mid + 4, class: "time" }, ms(t)));
      if (side === 0 || side === 1) {
        const a = side === 0 ? X0 : X1, b = side === 0 ? X1 : X0, dir = side === 0 ? 1 : -1;
        if (kind === "gap" || kind === "undec") {
          const nx = side === 0 ? X0 + 8 : X1 - 8 - 330;
          g.append(sv("rect", { class: "note", x: nx, y: y + 3, width: 330, height: ROW - 6, rx: 3 }));
          g.append(sv("text", { x: nx + 6, y: y + 15, class: "label" }, label));
          g.append(sv("text", { x: nx + 6, y: y + 27, class: "sub" }, clip(detail, 56)));
        } else {
          g.append(sv("line", { class: "arrow", x1: a, y1: mid, x2: b - dir * 9, y2: mid }));
          g.append(sv("path", { class: "head",
            d: "M" + b + " " + mid + " l" + (-dir * 10) + " -5 v10 z" }));
          g.append(sv("text", { x: (X0 + X1) / 2, y: mid - 5, "text-anchor": "middle", class: "label" },
            label));
          if (detail) {
            g.append(sv("text", { x: (X0 + X1) / 2, y: mid + 13, "text-anchor": "middle", class: "sub" },
              clip(detail, 60)));
          }
        }
      } else {
        g.append(sv("text", { x: (X0 + X1) / 2, y: mid + 4, "text-anchor": "middle", class: "label" },
          label));
      }
      if (frame) g.append(sv("text", { x: X1 + 24, y: mid + 4, class: "frame" }, "#" + frame));
      const m = marks.get(index);
      if (m) {
        const text = "\u25c0 " + m.map((v) => v[0]).join(", ");
        g.append(sv("text", { x: X1 + 70, y: mid + 4, class: "vmark " + m[0][1] }, text));
      }
      const tip = label + (detail ? " — " + detail : "") + (frame ? " (frame " + frame + ")" : "");
      g.append(sv("title", {}, tip));
      body.append(g);
      y += ROW;
    });
    if (!steps.length) {
      body.append(sv("text", { x: (X0 + X1) / 2, y: y + 20, "text-anchor": "middle", class: "gapnote" },
        "no events"));
      y += 28;
    }
    const height = y + 14;
    svg.insertBefore(sv("line", { class: "life", x1: X0, y1: 42, x2: X0, y2: height - 4 }), ends);
    svg.insertBefore(sv("line", { class: "life", x1: X1, y1: 42, x2: X1, y2: height - 4 }), ends);
    svg.append(body);
    svg.setAttribute("height", String(height));
    svg.setAttribute("viewBox", "0 0 " + W + " " + height);
    return svg;
  }

  function clip(s, n) { return s.length > n ? s.slice(0, n - 1) + "…" : s; }

  function fromHash() {
    const m = /^#conn=(\d+)$/.exec(location.hash);
    if (!m) return;
    const n = Number(m[1]);
    const i = state.rows.findIndex((c) => c.conn === n);
    if (i >= 0) { state.page = Math.floor(i / PAGE); renderTable(); }
    openConn(n, true);
  }

  const codes = new Map();
  for (const c of conns) {
    for (const code of new Set(c.verdicts.map((v) => v[0]))) codes.set(code, (codes.get(code) || 0) + 1);
  }
  for (const [code, n] of Array.from(codes).sort()) {
    const o = el("option", "", code + " (" + n + ")");
    o.value = code;
    $("verdict").append(o);
  }
  let timer = 0;
  $("filter").addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(applyFilter, 120); });
  for (const id of ["severity", "verdict", "worst-first"]) $(id).addEventListener("change", applyFilter);
  function turn(delta) {
    state.page += delta;
    renderTable();
    const top = $("summary").getBoundingClientRect().top;
    if (top < 0) $("summary").scrollIntoView({ block: "start" });
  }
  $("prev").addEventListener("click", () => turn(-1));
  $("next").addEventListener("click", () => turn(1));
  const tbody = document.querySelector("#conns tbody");
  tbody.addEventListener("click", (ev) => {
    const tr = ev.target.closest("tr");
    if (tr && tr.dataset.conn) openConn(Number(tr.dataset.conn), false);
  });
  tbody.addEventListener("keydown", (ev) => {
    const tr = ev.target.closest("tr");
    if (ev.key === "Enter" && tr && tr.dataset.conn) openConn(Number(tr.dataset.conn), true);
  });
  window.addEventListener("hashchange", fromHash);
  window.capdebugReport = { openConn: openConn, applyFilter: applyFilter };
  window.capdebugData = data;
  renderTable();
  fromHash();
})();
"""
