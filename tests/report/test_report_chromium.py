"""The report in a real browser (headless Chromium through chromedriver): it renders without
console errors, the table pages and filters, and a connection's ladder shows the decoder's
events in order. Screenshots are kept as test artifacts (``$CAPDEBUG_ARTIFACTS``)."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from capdebug.analysis.events import AlertEvent, TcpEvent
from capdebug.analysis.html import ReportMeta, build_report
from tests.tools import require

from ._support import expected_labels, fixture_events, hostile_capture, normalise, synthetic_events
from ._webdriver import Browser

HOSTILE = "<img src=x onerror=alert(1)><script>alert(2)</script>"

_STEPS_JS = """
return Array.from(document.querySelectorAll('#detail g.step')).map((g) => ({
  kind: g.dataset.kind, label: g.querySelector('.label').textContent, frame: Number(g.dataset.frame),
  y: g.querySelector('.band').getBBox().y,
  mark: g.querySelector('.vmark') ? g.querySelector('.vmark').textContent : "",
}));
"""


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    require("chromium", "chromedriver")
    b = Browser()
    try:
        yield b
    finally:
        b.close()


def _artifacts(tmp_path: Path, name: str) -> list[Path]:
    out = [tmp_path / name]
    folder = os.environ.get("CAPDEBUG_ARTIFACTS")
    if folder:
        out.append(Path(folder) / name)
    return out


def _errors(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in entries if e.get("level") in ("SEVERE", "WARNING")]


def test_fixture_report_ladder_in_chromium(browser: Browser, tmp_path: Path) -> None:
    events = fixture_events("tls13-premature-close")
    page = tmp_path / "premature-close.html"
    page.write_text(build_report(events, ReportMeta("tls13-premature-close.pcap", "test keys")), "utf-8")
    browser.console()  # drain
    browser.open(page)
    assert browser.js("return typeof window.capdebugReport;") == "object", "the report's script did not run"
    assert browser.js("return document.querySelectorAll('#conns tbody tr[data-conn]').length;") == 1
    assert browser.js("return document.getElementById('detail').hidden;") is True

    browser.click("#conns tbody tr[data-conn='1']")
    steps = browser.js(_STEPS_JS)
    want = expected_labels(events, 1)
    assert [normalise(s["label"]) for s in steps] == want
    # Time runs down: every arrow is below the previous one.
    ys = [s["y"] for s in steps]
    assert all(b > a for a, b in itertools.pairwise(ys)), ys
    # The alert and the RST are drawn as such (highlighted).
    alerts = [ev for ev in events if isinstance(ev, AlertEvent) and ev.description]
    rsts = [ev for ev in events if isinstance(ev, TcpEvent) and ev.flag == "RST"]
    assert alerts and rsts, "the fixture no longer has its alert and reset"
    assert [s["frame"] for s in steps if s["kind"] == "alert"] == [ev.frame for ev in alerts]
    assert [s["frame"] for s in steps if s["kind"] == "rst"] == [ev.frame for ev in rsts]
    # Verdicts are beside the diagram, with their detail text.
    verdicts = browser.js(
        "return Array.from(document.querySelectorAll('#detail .verdict')).map("
        "(d) => [d.querySelector('.code').textContent, d.querySelector('.text').textContent]);"
    )
    assert "premature_close" in [v[0] for v in verdicts]
    assert all(len(v[1]) > 20 for v in verdicts)
    assert browser.js("return location.hash;") == "#conn=1"
    # Each verdict is pointed at from the arrow of its frame, and the FIN carries premature_close.
    for code, frame in browser.js(
        "return window.capdebugData.conns[0].verdicts.filter((v) => v[3]).map((v) => [v[0], v[3]]);"
    ):
        assert any(code in s["mark"] for s in steps if s["frame"] == frame), (code, frame)
    assert [s["kind"] for s in steps if "premature_close" in s["mark"]] == ["fin"]

    png = browser.screenshot(*_artifacts(tmp_path, "report-tls13-premature-close.png"))
    assert png.startswith(b"\x89PNG") and len(png) > 10_000
    assert _errors(browser.console()) == []


def test_hostile_names_render_as_text(browser: Browser, tmp_path: Path) -> None:
    cap = tmp_path / "hostile.pcap"
    hostile_capture(cap, HOSTILE)
    from capdebug.analysis.sessions import iter_events
    from capdebug.pcap.open import open_capture

    with open_capture(cap) as reader:
        events = list(iter_events(reader, None))
    page = tmp_path / "hostile.html"
    page.write_text(build_report(events, ReportMeta(HOSTILE, HOSTILE)), "utf-8")
    browser.console()
    browser.open(page, "#conn=1")
    assert browser.alert_text() is None
    assert browser.js("return document.querySelector('#conns td.sni').textContent;") == HOSTILE
    assert browser.js("return document.querySelector('#detail h2 .sni').textContent;") == HOSTILE
    assert browser.js("return document.querySelectorAll('img').length;") == 0
    assert browser.js("return document.scripts.length;") == 2
    assert _errors(browser.console()) == []


def test_large_report_pages_and_filters(browser: Browser, tmp_path: Path) -> None:
    events = synthetic_events(3000)
    page = tmp_path / "large.html"
    page.write_text(build_report(events, ReportMeta("large.pcap", "none")), "utf-8")
    browser.console()
    browser.open(page)
    rows = (
        "return Array.from(document.querySelectorAll('#conns tbody tr[data-conn]'))"
        ".map((r) => +r.dataset.conn);"
    )
    assert browser.js(rows) == list(range(1, 101))
    assert browser.js("return document.getElementById('count').textContent;").startswith("1\u2013100 of 3000")
    browser.click("#next")
    assert browser.js(rows) == list(range(101, 201))
    browser.click("#conns tbody tr[data-conn='150']")
    assert browser.js("return document.querySelectorAll('#detail g.step').length;") > 10

    browser.js(
        "const s = document.getElementById('severity'); s.value = 'error';"
        "s.dispatchEvent(new Event('change'));"
    )
    shown = browser.js(rows)
    assert shown and all(n % 3 != 0 for n in shown)  # clean closes (every third) are gone
    assert "of 2000 connections (filtered from 3000)" in browser.js(
        "return document.getElementById('count').textContent;"
    )

    browser.type("#filter", "host2999.example")
    browser.js("window.capdebugReport.applyFilter();")  # skip the typing debounce
    assert browser.js(rows) == [2999]

    browser.screenshot(*_artifacts(tmp_path, "report-large.png"))
    assert _errors(browser.console()) == []
