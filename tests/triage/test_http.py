"""Why it closed, at the application layer: a real nginx (keepalive_timeout 1s, HTTP/1.1 and
HTTP/2) and curl, whose ``SSLKEYLOGFILE`` gives the key log. ``curl --rate 30/m`` waits two
seconds between its two requests with the connection kept in its pool, so nginx's idle timeout
closes it: HTTP/1.1 by close_notify + FIN (curl then sends its second request on the closed
connection: a stale keep-alive reuse), HTTP/2 by a GOAWAY first."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import re
import socket
import ssl
import subprocess
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from capdebug.analysis.events import AppDataEvent
from capdebug.analysis.triage import ConnectionReport
from capdebug.api import decode_capture, load_keys, triage_capture
from capdebug.cli.app import app
from capdebug.crypto import testpki
from tests.report._support import report_data
from tests.support.proc import TIMEOUT, Proc, tool
from tests.support.tcpdump import tcpdump
from tests.tools import require


def _free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port: int = s.getsockname()[1]
    s.close()
    return port


def _nginx(tmp: Path, port: int, *, h2: bool, protocols: str | None = None) -> Proc:
    paths = testpki.make_test_pki(tmp / "pki", dt.datetime.now(dt.UTC), only=("server-ecdsa",))
    (tmp / "logs").mkdir()
    (tmp / "www").mkdir()
    (tmp / "www" / "index.html").write_text("hello\n")
    (tmp / "www" / "big.bin").write_bytes(bytes(range(256)) * 1024)  # 256 KiB: many DATA frames
    conf = tmp / "nginx.conf"
    conf.write_text(
        f"""
daemon off;
master_process off;
error_log {tmp}/logs/error.log info;
pid {tmp}/nginx.pid;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/tmp;
    keepalive_timeout 1s;
    server {{
        listen 127.0.0.1:{port} ssl{" http2" if h2 else ""};
        {f"ssl_protocols {protocols};" if protocols else ""}
        ssl_certificate {paths["server-ecdsa"]};
        ssl_certificate_key {paths["server-ecdsa.key"]};
        root {tmp}/www;
        # Nothing listens on port 1: nginx as a proxy answers 502 Bad Gateway.
        location /upstream {{ proxy_pass http://127.0.0.1:1; }}
    }}
}}
"""
    )
    return Proc([tool("nginx"), "-p", str(tmp), "-c", str(conf)])


def _run(
    tmp: Path,
    *,
    h2: bool,
    path: str = "/index.html",
    twice: bool = True,
    more: tuple[str, ...] = (),
    rate: bool = True,
    protocols: str | None = None,
) -> tuple[Path, Path]:
    port = _free_port()
    server = _nginx(tmp, port, h2=h2, protocols=protocols)
    keys, pcap = tmp / "curl.keys", tmp / "nginx.pcap"
    url = f"https://localhost:{port}{path}"
    try:
        deadline = 50
        while deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            deadline -= 1
            subprocess.run(["sleep", "0.1"], check=True)
        with tcpdump(pcap, port):
            subprocess.run(
                [
                    tool("curl"),
                    "-sk",
                    "--http2" if h2 else "--http1.1",
                    *(["--rate", "30/m"] if rate else []),
                    url,
                    *([url] if twice else []),
                    *(f"https://localhost:{port}{p}" for p in more),
                ],
                env={**os.environ, "SSLKEYLOGFILE": str(keys)},
                check=True,
                capture_output=True,
                timeout=TIMEOUT,
            )
    finally:
        server.kill()
    return pcap, keys


def _first(pcap: Path, keys: Path | None) -> ConnectionReport:
    reports, _ = triage_capture(pcap, load_keys(pcap, [keys] if keys else []))
    assert len(reports) == 2, [r.to_json() for r in reports]  # curl reconnected for the 2nd request
    return reports[0]


@pytest.mark.parametrize("h2", [False, True], ids=["http1.1", "h2"])
def test_nginx_keepalive_timeout(h2: bool, tmp_path: Path) -> None:
    require("nginx", "curl", "tcpdump")
    pcap, keys = _run(tmp_path, h2=h2)
    for k in (keys, None):
        r = _first(pcap, k)
        errors = [(v.code, v.by) for v in r.verdicts if v.severity == "error"]
        # curl does not notice nginx's close of an idle HTTP/1.1 connection: it sends its second
        # request on it, gets a RST and retries on a new connection. HTTP/2's GOAWAY tells it.
        assert errors == ([] if h2 else [("stale_connection_reuse", "client")]), r.to_json()
        idle = [v for v in r.verdicts if v.code == "idle_close"]
        if h2 and k is None:
            # Without keys the GOAWAY is just a record of data right before the close: no claim.
            assert idle == []
            continue
        (v,) = idle
        assert (v.severity, v.by) == ("info", "server")
        # nginx's keepalive_timeout is 1 s; a loaded machine adds a little to what the capture shows.
        m = re.search(r"the server closed (\d+\.\d) s after the last data", v.detail)
        assert m is not None and 1.0 <= float(m.group(1)) < 1.5, v.detail
        how = "close_notify" if k else "likely close_notify (encrypted, no keys)"
        assert f"with {'GOAWAY (last stream 1, NO_ERROR)' if h2 else how}" in v.detail
    r = _first(pcap, keys)
    assert r.alpn == ("h2" if h2 else "http/1.1")
    app = [v for v in r.verdicts if v.code == "app_close"]
    if h2:
        assert [(v.severity, v.by) for v in app] == [("info", "server")]
        assert "GOAWAY (last stream 1, NO_ERROR)" in app[0].detail
    else:
        assert app == []  # nginx closes an idle HTTP/1.1 connection without a Connection: close


@pytest.mark.parametrize("h2", [False, True], ids=["http1.1", "h2"])
def test_proxy_error_502(h2: bool, tmp_path: Path) -> None:
    """nginx proxying to a closed port answers 502: a proxy_error blamed on the server, read from
    the status line (HTTP/1.1) or the response's HPACK-decoded :status (HTTP/2); without keys
    nothing can be said about it."""
    require("nginx", "curl", "tcpdump")
    pcap, keys = _run(tmp_path, h2=h2, path="/upstream", twice=False)
    for k in (keys, None):
        reports, _ = triage_capture(pcap, load_keys(pcap, [keys] if k else []))
        (r,) = reports
        errors = [(v.code, v.by) for v in r.verdicts if v.severity == "error"]
        # curl ends an HTTP/2 connection with a bare FIN (no GOAWAY, no close_notify): nginx only
        # answers that with its own FIN, which is not blamed on it.
        bare_fin = [("premature_close", "client")] if h2 else []
        assert errors == bare_fin + ([("proxy_error", "server")] if k else [])
        if not k:
            assert r.app is None
            continue
        (v,) = [v for v in r.verdicts if v.code == "proxy_error"]
        status = "HTTP/2 502 on stream 1" if h2 else "HTTP/1.1 502"
        assert f"answered 502 Bad Gateway ({status}" in v.detail, v.detail
        assert r.app is not None
        summary = r.app.to_json()
        assert summary["protocol"] == ("HTTP/2" if h2 else "HTTP/1.x")
        assert (summary["requests"], summary["responses"], summary["statuses"]) == (1, 1, {"502": 1})
        assert summary["headers_lost"] == {} and summary["unreadable_headers"] == 0
        assert summary["complete"] is True
        assert [(e["kind"], e["from"], e["code"]) for e in summary["events"]] == [("response", "server", 502)]
        # The text output prints the summary (and the JSON output carries it).
        args = ["triage", str(pcap), "--keylog", str(keys), "--no-env"]
        text = CliRunner().invoke(app, [*args, "--all"], standalone_mode=False, catch_exceptions=False)
        assert f"app     HTTP/{'2' if h2 else '1.x'}; 1 request; 1 response (502)" in text.stdout, text.stdout
        doc = CliRunner().invoke(app, [*args, "--json"], standalone_mode=False, catch_exceptions=False)
        assert json.loads(doc.stdout)["connections"][0]["app"] == summary
        # So does the HTML report, in its connection's data (drawn in the detail pane).
        page = tmp_path / f"{'h2' if h2 else 'h1'}.html"
        out = CliRunner().invoke(
            app, ["report", *args[1:], "-o", str(page)], standalone_mode=False, catch_exceptions=False
        )
        assert out.exit_code == 0, out.output
        conn = report_data(page.read_text())["conns"][0]
        assert conn["app"] == r.app.text() and "502" in conn["app"]


def _reuse_after_close(tmp: Path, protocol: str) -> tuple[Path, Path]:
    """A Python client that keeps its connection past nginx's 1 s keep-alive timeout and then
    sends its second request on it without reading first (the race of a pooled connection)."""
    port = _free_port()
    server = _nginx(tmp, port, h2=False, protocols=protocol)
    keys, pcap = tmp / "reuse.keys", tmp / "reuse.pcap"
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    ctx.keylog_filename = str(keys)
    request = b"GET /index.html HTTP/1.1\r\nHost: localhost\r\n\r\n"
    try:
        for _ in range(50):
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.1)
        with tcpdump(pcap, port):
            c = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT))
            c.sendall(request)
            got = b""
            while not got.endswith(b"hello\n"):
                chunk = c.recv(4096)
                assert chunk, got
                got += chunk
            time.sleep(1.6)  # nginx's keepalive_timeout (1 s) closes the connection meanwhile
            c.sendall(request)  # the client has not read the close_notify: it writes anyway
            with contextlib.suppress(OSError):
                while c.recv(4096):
                    pass
            c.close()
    finally:
        server.kill()
    return pcap, keys


@pytest.mark.parametrize("protocol", ["TLSv1.2", "TLSv1.3"])
def test_stale_keepalive_reuse(protocol: str, tmp_path: Path) -> None:
    """The second request, sent after nginx's idle close, is answered by RST: an error blamed on
    the client that reused the closed connection, not a benign_reset; with keys it names the
    request."""
    require("nginx", "tcpdump")
    pcap, keys = _reuse_after_close(tmp_path, protocol)
    for k in (keys, None):
        reports, _ = triage_capture(pcap, load_keys(pcap, [keys] if k else []))
        (r,) = reports
        codes = {(v.code, v.severity, v.by) for v in r.verdicts}
        assert ("stale_connection_reuse", "error", "client") in codes, r.to_json()
        assert not any(v.code in ("benign_reset", "reset") for v in r.verdicts), r.to_json()
        (v,) = [v for v in r.verdicts if v.code == "stale_connection_reuse"]
        how = "close_notify" if k else "likely close_notify, encrypted"
        assert f"after the server had closed the connection ({how}, frame" in v.detail, v.detail
        assert "the server answered with RST" in v.detail
        if k:
            assert "a request (GET /index.html HTTP/1.1)" in v.detail, v.detail
        else:
            assert "sent application data" in v.detail, v.detail
        idle = [(x.by, x.severity) for x in r.verdicts if x.code == "idle_close"]
        assert idle == [("server", "info")]


def test_h2_statuses_across_many_records(tmp_path: Path) -> None:
    """One HTTP/2 connection with several large responses and a 502 at the end: the response
    headers come long after the first records, between DATA frames; triage opens the records
    that may hold a frame header (``record_wanted``), counts the others unread, and keeps the
    HPACK state: every status is read, none is "cannot tell"."""
    require("nginx", "curl", "tcpdump")
    paths = ("/big.bin", "/big.bin", "/index.html", "/big.bin", "/upstream")
    # TLS 1.3: triage counts TLS 1.2 application records only after opening them all anyway.
    pcap, keys = _run(
        tmp_path, h2=True, path="/index.html", twice=False, more=paths, rate=False, protocols="TLSv1.3"
    )
    reports, _ = triage_capture(pcap, load_keys(pcap, [keys]))
    (r,) = reports
    assert r.app is not None
    summary = r.app.to_json()
    assert summary["protocol"] == "HTTP/2"
    assert (summary["requests"], summary["responses"]) == (6, 6)
    assert summary["statuses"] == {"200": 5, "502": 1}
    assert summary["unreadable_headers"] == 0 and summary["headers_lost"] == {}
    assert summary["complete"] is True and summary["unread_records"] > 0
    (v,) = [v for v in r.verdicts if v.code == "proxy_error"]
    assert v.by == "server" and "HTTP/2 502 on stream 11" in v.detail, v.detail
    # The bulk of the DATA was counted unread: far fewer records opened than sent.
    with decode_capture(pcap, load_keys(pcap, [keys]), decrypt_app_data=False) as decoding:
        server = [e for e in decoding if isinstance(e, AppDataEvent) and e.from_ == "server"]
    assert sum(e.length for e in server) > 3 * 256 * 1024
    unread = [e for e in server if not e.decrypted]
    assert len(unread) > len(server) // 2, (len(unread), len(server))
