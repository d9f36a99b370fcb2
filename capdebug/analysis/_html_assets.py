"""The page, style sheet and script of the HTML report (data: :mod:`capdebug.analysis.html`
fills the page and hashes the style and script for its Content-Security-Policy)."""

__all__ = ["CSS", "JS", "PAGE"]

PAGE = """<!DOCTYPE html>
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

CSS = """
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
svg.ladder .step.k-upgrade .label { fill: #2b6cb0; } svg.ladder .step.k-plaintext .label { fill: #c05621; }
svg.ladder .step.k-elided .label { fill: var(--dim); font-style: italic; }
svg.ladder .step.hl .band { fill: #ebf8ff; }
svg.ladder .vmark.error { fill: var(--err); font-weight: 700; }
svg.ladder .vmark.warning { fill: var(--warn); font-weight: 700; }
svg.ladder .vmark.info { fill: var(--info); }
"""

JS = r"""
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
    const head = [h, el("p", "kv", facts.join(" · "))];
    if (c.app) head.push(el("p", "kv", "app " + c.app));
    box.replaceChildren(...head, body);
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
      if (v[5] !== "high") head.append(el("span", "dim", " · " + v[5] + " confidence"));
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
    upgraded: ["upgrade"], upgrade_refused: ["upgrade"], tls_never_followed: ["upgrade"],
    not_tls_reply: ["plaintext"], plaintext_to_tls_port: ["plaintext"],
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
