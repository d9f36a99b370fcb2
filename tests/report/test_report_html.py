"""The HTML page of ``capdebug report``: self-contained, data faithful to the decoder and the
triage, escaped against hostile names, bounded in size."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from capdebug.analysis.events import AppDataEvent, ConnectionEvent, DecodeEvent, TcpEvent
from capdebug.analysis.html import LadderCollector, ReportMeta, build_report
from capdebug.analysis.triage import Triage

from ._support import (
    expected_labels,
    fixture_events,
    hostile_capture,
    normalise,
    report_data,
    synthetic_events,
)

HOSTILE = "<script>alert(1)</script>"
SVG_NS = "http://www.w3.org/2000/svg"


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.scripts: list[str] = []
        self.styles: list[str] = []
        self._in: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in = tag if tag in ("script", "style") else None

    def handle_endtag(self, tag: str) -> None:
        self._in = None

    def handle_data(self, data: str) -> None:
        if self._in == "script":
            self.scripts.append(data)
        elif self._in == "style":
            self.styles.append(data)


def _page(name: str, with_keys: bool = True) -> tuple[str, list[DecodeEvent]]:
    events = fixture_events(name, with_keys=with_keys)
    return build_report(events, ReportMeta(f"{name}.pcap", "test keys")), events


@pytest.mark.parametrize("name", ["tls13-premature-close", "tls13-unknown-ca"])
def test_page_fetches_nothing_from_the_network(name: str) -> None:
    page, _ = _page(name)
    tags = _Tags()
    tags.feed(page)
    for tag, attrs in tags.tags:
        assert tag not in ("link", "img", "iframe", "object", "embed", "base", "form"), tag
        for key in ("src", "href", "action", "srcset", "poster", "data"):
            assert key not in attrs, (tag, attrs)
    # The only absolute URL is the SVG namespace name, which is never fetched.
    urls = re.findall(r"(?:https?:)?//[\w.-]+\.[a-z]{2,}[^\s\"']*", page)
    assert set(urls) <= {SVG_NS}, urls
    assert "@import" not in page and "url(" not in page
    # And the browser is told so: nothing but this page's own script and style may run.
    csp = next(
        a["content"] for t, a in tags.tags if t == "meta" and a.get("http-equiv") == "Content-Security-Policy"
    )
    assert csp is not None and "default-src 'none'" in csp and "unsafe" not in csp


def test_csp_hashes_match_the_inline_script_and_style() -> None:
    page, _ = _page("tls13-premature-close")
    tags = _Tags()
    tags.feed(page)
    csp = next(
        a["content"] for t, a in tags.tags if t == "meta" and a.get("http-equiv") == "Content-Security-Policy"
    )
    assert csp is not None
    executable = [t for t, a in tags.tags if t == "script" and a.get("type") != "application/json"]
    assert len(executable) == 1 and len(tags.styles) == 1
    code = tags.scripts[-1]

    def sha(text: str) -> str:
        return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"

    assert f"script-src {sha(code)}" in csp
    assert f"style-src {sha(tags.styles[0])}" in csp


@pytest.mark.parametrize("name", ["tls13-premature-close", "tls13-unknown-ca"])
def test_data_block_matches_decoder_and_triage(name: str) -> None:
    page, events = _page(name)
    data = report_data(page)
    triage = Triage()
    for ev in events:
        triage.add(ev)
    reports = triage.reports()
    opened = [ev for ev in events if isinstance(ev, ConnectionEvent)]
    assert [c["conn"] for c in data["conns"]] == [ev.conn for ev in opened] == [r.conn for r in reports]
    for c, ev, r in zip(data["conns"], opened, reports, strict=True):
        assert (c["client"], c["server"], c["sni"], c["version"]) == (ev.client, ev.server, r.sni, r.version)
        assert c["bytes"] == [r.bytes_client, r.bytes_server]
        assert [v[0] for v in c["verdicts"]] == [v.code for v in r.verdicts]
        assert c["worst"] == ([r.worst.code, r.worst.severity] if r.worst else None)
        assert [normalise(s[3]) for s in c["ladder"]] == expected_labels(events, c["conn"])
        # Time runs down the ladder, relative to the connection's first event.
        times = [s[0] for s in c["ladder"]]
        assert times == sorted(times) and times[0] == 0
        for code in {v[0] for v in c["verdicts"]}:
            assert code in data["catalog"]


def test_unknown_ca_ladder_shows_the_clients_alert() -> None:
    page, _ = _page("tls13-unknown-ca")
    (conn,) = report_data(page)["conns"]
    alerts = [s for s in conn["ladder"] if s[2] == "alert"]
    assert [(s[1], s[3]) for s in alerts] == [(0, "alert unknown_ca")]
    assert "fatal" in alerts[0][5]
    assert conn["worst"] == ["handshake_alert", "error"]
    # The certificate arrow names the subject the client refused.
    cert = next(s for s in conn["ladder"] if s[3] == "certificate")
    assert "CN=localhost" in cert[5]


def test_hostile_sni_and_file_name_are_escaped(tmp_path: Path) -> None:
    cap = tmp_path / "hostile.pcap"
    hostile_capture(cap, HOSTILE)
    from capdebug.analysis.sessions import iter_events
    from capdebug.pcap.open import open_capture

    with open_capture(cap) as reader:
        events = list(iter_events(reader, None))
    name = '"><img src=x onerror=alert(2)>.pcap'
    page = build_report(events, ReportMeta(name, "</script><script>alert(3)</script>"))
    assert HOSTILE not in page and "<img" not in page and "alert(3)</script>" not in page
    # Exactly the two script elements the page is made of.
    assert page.count("<script") == 2 and page.count("</script>") == 2
    data = report_data(page)
    assert data["conns"][0]["sni"] == HOSTILE  # faithful once parsed
    assert data["capture"] == name
    assert HOSTILE in data["conns"][0]["ladder"][2][5]  # client_hello detail carries it too


def test_script_json_survives_every_awkward_character() -> None:
    awkward = "</script><!--<script>\\</ScRiPt>&amp;\u2028\u2029\x00\ud7ff\U0001f600'\"`${x}"
    events: list[DecodeEvent] = [
        ConnectionEvent(1, awkward, "192.0.2.2:443", 1),
        TcpEvent(1, 1, 10**18, "client", "SYN"),
    ]
    page = build_report(events, ReportMeta(awkward, awkward))
    block = re.search(r'id="capdebug-data">(.*?)</script>', page, re.S)
    assert block is not None and "<" not in block.group(1) and "&" not in block.group(1)
    data = report_data(page)
    assert data["conns"][0]["client"] == awkward and data["capture"] == awkward


def test_app_data_runs_collapse_and_long_ladders_are_bounded() -> None:
    col = LadderCollector(head=50, tail=10)
    col.add(ConnectionEvent(1, "a:1", "b:2", 1))
    ts = 10**18
    for i in range(5000):
        # Ping-pong: each record is its own run.
        col.add(AppDataEvent(1, i + 1, ts + i * 1000, "client" if i % 2 == 0 else "server", 100, True))
    steps = col.steps(1)
    assert len(steps) == 50 + 1 + 10
    assert steps[50][2] == "elided" and "4940 steps" in steps[50][3]
    assert steps[-1][4] == 5000 and steps[0][4] == 1  # first and last records are kept

    col = LadderCollector()
    col.add(ConnectionEvent(1, "a:1", "b:2", 1))
    for i in range(300):
        col.add(AppDataEvent(1, i + 1, ts + i, "server", 1000, False))
    col.add(TcpEvent(1, 301, ts + 400, "server", "FIN"))
    (run, fin) = col.steps(1)
    assert run[2] == "app" and "\u00d7300" in run[3] and "300.0 kB" in run[3] and "frames 1-300" in run[5]
    assert fin[3] == "FIN"


def test_large_report_stays_small() -> None:
    events = synthetic_events(3000)
    page = build_report(events, ReportMeta("big.pcap", "none"))
    assert len(page.encode()) < 5_000_000
    data = report_data(page)
    assert len(data["conns"]) == 3000
    assert json.dumps(data["catalog"])  # catalog only for the codes used
    assert set(data["catalog"]) == {v[0] for c in data["conns"] for v in c["verdicts"]}
