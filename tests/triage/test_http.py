"""Why it closed, at the application layer: a real nginx (keepalive_timeout 1s, HTTP/1.1 and
HTTP/2) and curl, whose ``SSLKEYLOGFILE`` gives the key log. ``curl --rate 30/m`` waits two
seconds between its two requests with the connection kept in its pool, so nginx's idle timeout
closes it: HTTP/1.1 by close_notify + FIN, HTTP/2 by a GOAWAY first."""

from __future__ import annotations

import datetime as dt
import os
import socket
import subprocess
from pathlib import Path

import pytest

from capdebug.analysis.triage import ConnectionReport
from capdebug.api import load_keys, triage_capture
from capdebug.crypto import testpki
from tests.support.proc import TIMEOUT, Proc, tool
from tests.support.tcpdump import tcpdump
from tests.tools import require


def _free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port: int = s.getsockname()[1]
    s.close()
    return port


def _nginx(tmp: Path, port: int, *, h2: bool) -> Proc:
    paths = testpki.make_test_pki(tmp / "pki", dt.datetime.now(dt.UTC), only=("server-ecdsa",))
    (tmp / "logs").mkdir()
    (tmp / "www").mkdir()
    (tmp / "www" / "index.html").write_text("hello\n")
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


def _run(tmp: Path, *, h2: bool, path: str = "/index.html", twice: bool = True) -> tuple[Path, Path]:
    port = _free_port()
    server = _nginx(tmp, port, h2=h2)
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
                    "--rate",
                    "30/m",
                    url,
                    *([url] if twice else []),
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
        assert not r.has_error, r.to_json()
        idle = [v for v in r.verdicts if v.code == "idle_close"]
        if h2 and k is None:
            # Without keys the GOAWAY is just a record of data right before the close: no claim.
            assert idle == []
            continue
        (v,) = idle
        assert (v.severity, v.by) == ("info", "server")
        assert "the server closed 1.0 s after the last data" in v.detail, v.detail
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


def test_proxy_error_502(tmp_path: Path) -> None:
    """nginx proxying to a closed port answers 502: a proxy_error blamed on the server, read from
    the status line of the first record; without keys nothing can be said about it."""
    require("nginx", "curl", "tcpdump")
    pcap, keys = _run(tmp_path, h2=False, path="/upstream", twice=False)
    for k in (keys, None):
        reports, _ = triage_capture(pcap, load_keys(pcap, [keys] if k else []))
        (r,) = reports
        errors = [(v.code, v.by) for v in r.verdicts if v.code == "proxy_error"]
        assert errors == ([("proxy_error", "server")] if k else [])
        if k:
            (v,) = [v for v in r.verdicts if v.code == "proxy_error"]
            assert "answered 502 Bad Gateway (HTTP/1.1 502" in v.detail
