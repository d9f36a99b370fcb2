"""``capdebug report`` through typer's CliRunner."""

from __future__ import annotations

from pathlib import Path

import typer
from typer.testing import CliRunner

from capdebug.cli.report import register

from ._support import FIXTURES, hostile_capture, report_data


def _app() -> typer.Typer:
    app = typer.Typer()
    register(app)

    @app.callback()
    def _root() -> None:
        """Keep ``report`` a subcommand (typer collapses a one-command app)."""

    return app


def test_report_writes_a_page_with_the_connection(tmp_path: Path) -> None:
    out = tmp_path / "case.html"
    cap = FIXTURES / "tls13-premature-close.pcap"
    keys = FIXTURES / "tls13-premature-close.keys"
    result = CliRunner().invoke(
        _app(), ["report", str(cap), "--keylog", str(keys), "--no-env", "-o", str(out)]
    )
    assert result.exit_code == 0, result.output
    page = out.read_text(encoding="utf-8")
    data = report_data(page)
    (conn,) = data["conns"]
    assert conn["worst"] == ["premature_close", "error"]
    assert "tls13-premature-close.pcap" in page and "tls13-premature-close.keys" in page
    assert any(s[3] == "alert decode_error" for s in conn["ladder"])  # decrypted with the key log
    # One TLS 1.3 session: five key log lines, one session with secrets.
    assert len([ln for ln in keys.read_text().splitlines() if ln and not ln.startswith("#")]) == 5
    assert "(1 session with secrets)" in page


def test_report_without_keys_says_so_and_to_stdout(tmp_path: Path) -> None:
    cap = FIXTURES / "tls13-premature-close.pcap"
    result = CliRunner().invoke(_app(), ["report", str(cap), "--no-env", "-o", "-"])
    assert result.exit_code == 0, result.output
    data = report_data(result.stdout)
    assert "none: no key log" in result.stdout
    (conn,) = data["conns"]
    # Without keys the TLS 1.3 alert stays encrypted.
    assert not any(s[3] == "alert decode_error" for s in conn["ladder"])


def test_report_of_a_hostile_capture(tmp_path: Path) -> None:
    cap = tmp_path / "x.pcap"
    hostile_capture(cap, "<b>x</b>")
    out = tmp_path / "x.html"
    result = CliRunner().invoke(_app(), ["report", str(cap), "--no-env", "-o", str(out)])
    assert result.exit_code == 0, result.output
    page = out.read_text(encoding="utf-8")
    assert "<b>x</b>" not in page and report_data(page)["conns"][0]["sni"] == "<b>x</b>"


def test_report_of_a_missing_capture_fails(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        _app(), ["report", str(tmp_path / "nope.pcap"), "-o", str(tmp_path / "r.html")]
    )
    assert result.exit_code != 0
    assert not (tmp_path / "r.html").exists()
