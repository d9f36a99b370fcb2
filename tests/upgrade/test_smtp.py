"""A real SMTP server (exim) and ``openssl s_client -starttls smtp``: STARTTLS and 220, then
TLS decrypted like tshark; with a certificate the server cannot load it answers 454."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from tests.support.peers import self_signed_localhost
from tests.support.tcpdump import tcpdump
from tests.tools import require, require_root

from ._harness import events, handshake_rows, s_client, tshark_handshake_rows, upgrades, verdict_codes


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def exim(request: pytest.FixtureRequest) -> Iterator[int]:
    """exim on a free port; ``request.param`` False points it at a certificate that is not there."""
    require_root()
    require("exim4", "tcpdump", "tshark", "openssl")
    root = Path(tempfile.mkdtemp(prefix="capdebug-exim-"))
    root.chmod(0o755)
    cert, key = self_signed_localhost(root, ec.generate_private_key(ec.SECP256R1()))
    key.chmod(0o644)  # read by the exim user; a throwaway test key
    (root / "spool").mkdir()
    shutil.chown(root / "spool", "Debian-exim", "Debian-exim")
    port = _free_port()
    good = getattr(request, "param", True)
    conf = root / "exim.conf"
    conf.write_text(
        f"primary_hostname = localhost\ndaemon_smtp_ports = {port}\nlocal_interfaces = 127.0.0.1\n"
        f"spool_directory = {root}/spool\nlog_file_path = {root}/spool/%slog\n"
        f"tls_advertise_hosts = *\ntls_certificate = {cert if good else root / 'missing.pem'}\n"
        f"tls_privatekey = {key if good else root / 'missing.key'}\n"
        "exim_user = Debian-exim\nexim_group = Debian-exim\n"
        "begin acl\nbegin routers\nbegin transports\n"
    )
    conf.chmod(0o644)  # exim refuses a configuration others may write
    proc = subprocess.Popen(
        [shutil.which("exim4") or "/usr/sbin/exim4", "-C", str(conf), "-bdf", "-oX", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("exim did not start") from None
                time.sleep(0.1)
        yield port
    finally:
        proc.terminate()
        proc.wait(20)
        shutil.rmtree(root, ignore_errors=True)


def test_starttls_decrypted_like_tshark(exim: int, tmp_path: Path) -> None:
    pcap, keylog = tmp_path / "smtp.pcap", tmp_path / "keys.txt"
    with tcpdump(pcap, exim):
        s_client(["-connect", f"127.0.0.1:{exim}", "-starttls", "smtp", "-keylogfile", str(keylog)])
    evs = events(pcap, keylog)
    (up,) = upgrades(evs)
    assert (up.protocol, up.command, up.accepted) == ("smtp", "STARTTLS", True)
    assert up.reply.startswith("220 "), up
    ours = handshake_rows(evs)
    assert ours[0][0] > up.frame and {t for _, t in ours} >= {1, 2, 8, 11, 15, 20}
    assert ours == tshark_handshake_rows(pcap, keylog, f"tcp.port=={exim},smtp")
    assert "upgraded" in verdict_codes(pcap, keylog)


@pytest.mark.parametrize("exim", [False], indirect=True)
def test_454_is_upgrade_refused_by_the_server(exim: int, tmp_path: Path) -> None:
    pcap = tmp_path / "smtp-454.pcap"
    with tcpdump(pcap, exim):
        s_client(["-connect", f"127.0.0.1:{exim}", "-starttls", "smtp"])
    evs = events(pcap, None)
    # s_client sends its ClientHello anyway: found in the plaintext, shown as such.
    up, anyway = upgrades(evs)
    assert up.protocol == "smtp" and not up.accepted and up.reply.startswith("454"), up
    assert (anyway.protocol, anyway.from_, anyway.frame > up.frame) == ("unknown", "client", True)
    codes = verdict_codes(pcap, None)
    assert codes.get("upgrade_refused") == "server" and "upgraded" not in codes
