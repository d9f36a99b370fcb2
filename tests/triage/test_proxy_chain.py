"""A TLS-terminating proxy whose backend rejects its client certificate: curl -> nginx (TLS,
HTTP/1.1 or HTTP/2) -> ``openssl s_server -Verify 1`` (TLS 1.2 or 1.3), nginx presenting a
client certificate (``proxy_ssl_certificate``) from a CA the backend does not trust. The client
sees a 502 at the front; the cause is on the back leg. Each leg is captured on its own (two
tcpdumps) and triaged with its own key log (curl's, the backend's) and without."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path

import pytest

from capdebug.analysis.triage import ConnectionReport
from capdebug.api import load_keys, triage_capture
from tests.support.proc import TIMEOUT, Proc, tool
from tests.support.tcpdump import tcpdump
from tests.tools import require

from . import mtls
from .test_http import _free_port


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> mtls.ClientPki:
    return mtls.make_client_pki(tmp_path_factory.mktemp("pki"))


def _nginx(tmp: Path, front: int, back: int, pki: mtls.ClientPki, back_version: str, h2: bool) -> Proc:
    (tmp / "logs").mkdir()
    chain, key = pki.unknown
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
    server {{
        listen 127.0.0.1:{front} ssl{" http2" if h2 else ""};
        ssl_certificate {pki.server[0]};
        ssl_certificate_key {pki.server[1]};
        location / {{
            proxy_pass https://127.0.0.1:{back};
            proxy_ssl_certificate {chain};
            proxy_ssl_certificate_key {key};
            proxy_ssl_protocols {"TLSv1.3" if back_version == "tls1_3" else "TLSv1.2"};
            proxy_ssl_server_name on;
            proxy_ssl_name localhost;
        }}
    }}
}}
"""
    )
    return Proc([tool("nginx"), "-p", str(tmp), "-c", str(conf)])


def _run(tmp: Path, pki: mtls.ClientPki, back_version: str, h2: bool) -> tuple[Path, Path, Path, Path]:
    front, back = _free_port(), _free_port()
    front_pcap, back_pcap = tmp / "front.pcap", tmp / "back.pcap"
    front_keys, back_keys = tmp / "curl.keys", tmp / "backend.keys"
    backend = Proc(
        [
            tool("openssl"), "s_server", "-accept", f"127.0.0.1:{back}", "-cert", str(pki.server[0]),
            "-key", str(pki.server[1]), "-Verify", "1", "-verify_return_error", "-CAfile", str(pki.ca),
            "-keylogfile", str(back_keys), "-www", f"-{back_version}",
        ]
    )  # fmt: skip
    proxy = _nginx(tmp, front, back, pki, back_version, h2)
    try:
        backend.wait_for("ACCEPT")
        _wait_port(front)
        with tcpdump(front_pcap, front), tcpdump(back_pcap, back):
            done = subprocess.run(
                [
                    tool("curl"), "-sk", "--http2" if h2 else "--http1.1", "-o", "/dev/null",
                    "-w", "%{http_code}", f"https://localhost:{front}/",
                ],
                env={**os.environ, "SSLKEYLOGFILE": str(front_keys)},
                capture_output=True,
                timeout=TIMEOUT,
                check=True,
            )  # fmt: skip
            assert done.stdout == b"502", done
    finally:
        proxy.kill()
        backend.kill()
    return front_pcap, front_keys, back_pcap, back_keys


def _wait_port(port: int) -> None:
    for _ in range(100):
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise AssertionError(f"nothing listens on {port}")


def _one(pcap: Path, keys: Path | None) -> ConnectionReport:
    reports, _ = triage_capture(pcap, load_keys(pcap, [keys] if keys else []))
    assert len(reports) == 1, [r.to_json() for r in reports]
    return reports[0]


def _errors(r: ConnectionReport) -> list[tuple[str, str | None]]:
    return [(v.code, v.by) for v in r.verdicts if v.severity == "error"]


@pytest.mark.parametrize(
    ("back_version", "h2"),
    [("tls1_3", False), ("tls1_2", False), ("tls1_3", True)],
    ids=["1.3", "1.2", "1.3-h2"],
)
def test_backend_rejects_the_proxys_client_certificate(
    back_version: str, h2: bool, pki: mtls.ClientPki, tmp_path: Path
) -> None:
    require("nginx", "curl", "openssl", "tcpdump")
    front_pcap, front_keys, back_pcap, back_keys = _run(tmp_path, pki, back_version, h2)

    # Front leg: the proxy's 502, blamed on the server (the proxy); nothing without keys.
    bare_fin = [("premature_close", "client")] if h2 else []  # curl ends h2 with a bare FIN
    r = _one(front_pcap, front_keys)
    assert _errors(r) == [*bare_fin, ("proxy_error", "server")], r.to_json()
    (v,) = [v for v in r.verdicts if v.code == "proxy_error"]
    assert "502 Bad Gateway" in v.detail
    assert _errors(_one(front_pcap, None)) == bare_fin

    # Back leg: the backend (server) rejected the proxy's (client's) certificate: unknown_ca,
    # explained by the client chain, never the backend's own certificate.
    r = _one(back_pcap, back_keys)
    assert _errors(r) == [("handshake_alert", "server")], r.to_json()
    (v,) = [v for v in r.verdicts if v.code == "handshake_alert"]
    assert "fatal alert unknown_ca" in v.detail
    assert "Client chain sent: CN=capdebug client" in v.detail and "CN=localhost" not in v.detail
    r = _one(back_pcap, None)
    if back_version == "tls1_2":
        assert _errors(r) == [("handshake_alert", "server")], r.to_json()
    else:
        assert _errors(r) == [("likely_handshake_rejected", "server")], r.to_json()
