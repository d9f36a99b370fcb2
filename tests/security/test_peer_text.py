"""Peer-controlled text (SNI, certificate CN and SAN, ALPN) is data in every renderer: a real
handshake (openssl s_client against openssl s_server over loopback, captured by tcpdump) whose
names carry rich markup, ANSI escapes and HTML must come out escaped in triage, decrypt, keys
check, the HTML report and the JSON, and triage must exit normally (0 or 1), not 70."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from capdebug._text import escape_terminal
from capdebug.cli.app import app
from capdebug.cli.triage import escape_rich
from capdebug.crypto.testpki import LeafOptions, make_ca, make_leaf
from tests.support.peers import openssl_s_server
from tests.support.tcpdump import tcpdump
from tests.tools import require, require_root

MARKUP = "[/]"
ANSI = "\x1b[31m"
LINK = "[link=http://x]"
HTML = "<script>alert(1)</script>"
# A DNS-like SNI and SAN (openssl sends any bytes) and a CN with all four at once.
SNI = f"sni{MARKUP}{ANSI}{LINK}{HTML}.example"
CN = f"cn{MARKUP}{ANSI}{LINK}{HTML}"
SAN = f"san{MARKUP}{ANSI}{LINK}{HTML}"
ALPN = f"alpn{MARKUP}{LINK}"


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(capture, key log) of one TLS 1.2 handshake (certificate in the clear) with hostile names."""
    require_root()
    require("tcpdump", "openssl")
    d = tmp_path_factory.mktemp("hostile")
    now = dt.datetime.now(dt.UTC)
    ca = make_ca(now)
    leaf = make_leaf(ca, now, LeafOptions(hostnames=(CN, SAN, "localhost")))
    (d / "leaf.pem").write_bytes(leaf.cert_pem + ca.cert_pem)
    (d / "leaf.key").write_bytes(leaf.key_pem)
    keylog = d / "keys.log"
    server, port = openssl_s_server(
        ["-cert", str(d / "leaf.pem"), "-key", str(d / "leaf.key"), "-tls1_2", "-alpn", ALPN]
    )
    pcap = d / "hostile.pcap"
    try:
        with tcpdump(pcap, port):
            client = subprocess.run(
                ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-tls1_2", "-servername", SNI,
                 "-alpn", ALPN, "-keylogfile", str(keylog)],
                input=b"hello\n", capture_output=True, timeout=20, check=False,
            )  # fmt: skip
    finally:
        server.kill()
    assert b"BEGIN CERTIFICATE" in client.stdout or b"Server certificate" in client.stdout, client.stderr
    return pcap, keylog


def _raw_hazards(text: str) -> None:
    assert "\x1b" not in text, "a raw ESC reached the terminal"
    assert "\x1b]8;" not in text  # an OSC 8 hyperlink


def test_triage_escapes_and_exits_normally(hostile: tuple[Path, Path]) -> None:
    pcap, keylog = hostile
    for extra in ([], ["--all"]):
        result = CliRunner().invoke(app, ["triage", str(pcap), "--keylog", str(keylog), *extra])
        assert result.exit_code in (0, 1), result.output
        _raw_hazards(result.output)
        flat = "".join(result.output.split())  # the table folds long cells over lines
        assert "".join(escape_terminal(SNI).split()) in flat, result.output  # markup shown literally
        assert "\\x1b[31m" in flat


def test_triage_json_round_trips_the_names(hostile: tuple[Path, Path]) -> None:
    pcap, keylog = hostile
    result = CliRunner().invoke(app, ["triage", str(pcap), "--keylog", str(keylog), "--json"])
    assert result.exit_code in (0, 1), result.output
    assert "\x1b" not in result.output  # JSON escapes control characters
    (conn,) = json.loads(result.output)["connections"]
    assert conn["sni"] == SNI


def test_decrypt_text_shows_names_escaped(hostile: tuple[Path, Path]) -> None:
    pcap, keylog = hostile
    result = CliRunner().invoke(app, ["decrypt", str(pcap), "--keylog", str(keylog)])
    assert result.exit_code == 0, result.output
    _raw_hazards(result.output)
    assert escape_terminal(SNI) in result.output
    assert escape_terminal(CN) in result.output  # the certificate's subject
    assert escape_terminal(SAN) in result.output


def test_keys_check_escapes_the_sni(hostile: tuple[Path, Path]) -> None:
    pcap, keylog = hostile
    result = CliRunner().invoke(app, ["keys", "check", str(pcap), "--keylog", str(keylog)])
    _raw_hazards(result.output)
    assert escape_terminal(SNI) in result.output


def test_html_report_keeps_names_out_of_the_markup(hostile: tuple[Path, Path], tmp_path: Path) -> None:
    pcap, keylog = hostile
    out = tmp_path / "r.html"
    result = CliRunner().invoke(app, ["report", str(pcap), "--keylog", str(keylog), "-o", str(out)])
    assert result.exit_code in (0, 1), result.output
    page = out.read_text()
    assert HTML not in page and "<script>alert" not in page
    assert "\x1b" not in page
    # The names are in the data block, JSON-escaped so that they cannot close the element.
    assert "sni[/]\\u001b[31m[link=http://x]\\u003cscript\\u003ealert(1)\\u003c/script\\u003e.example" in page


def test_escape_helpers() -> None:
    assert escape_terminal("a\x1b[31mb\x07\x9b\u202ec") == "a\\x1b[31mb\\x07\\x9b\\u202ec"
    assert escape_terminal("plain ünïcode") == "plain ünïcode"
    from rich.console import Console

    console = Console(record=True, width=200, color_system=None)
    console.print(escape_rich(f"{MARKUP}{LINK}x{ANSI}"))  # would raise MarkupError unescaped
    assert console.export_text().strip() == "[/][link=http://x]x\\x1b[31m"
