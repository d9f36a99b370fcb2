"""A real OpenLDAP server (slapd, throwaway configuration) and its own client (``ldapsearch
-ZZ``): the StartTLS extended operation (RFC 4511 4.14), its success response, then TLS. Both
link GnuTLS, which writes SSLKEYLOGFILE. tshark (LDAP decode-as on the port, the key log) is
the oracle for the upgrade frames and every handshake message."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from tests.keysrc2._capture import tshark_fields
from tests.support.peers import self_signed_localhost
from tests.support.tcpdump import tcpdump
from tests.tools import require, require_root
from tests.upgrade._harness import events, handshake_rows, tshark_handshake_rows, upgrades, verdict_codes

SLAPD = "/usr/sbin/slapd"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def slapd(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    """slapd on 127.0.0.1:PORT with a certificate for StartTLS: (port, its key log)."""
    require_root()
    require("slapd", "ldapsearch", "tcpdump", "tshark")
    cert, key = self_signed_localhost(tmp_path, ec.generate_private_key(ec.SECP256R1()))
    (tmp_path / "db").mkdir()
    conf = tmp_path / "slapd.conf"
    conf.write_text(
        "include /etc/ldap/schema/core.schema\n"
        f"pidfile {tmp_path / 'slapd.pid'}\n"
        "modulepath /usr/lib/ldap\n"
        "moduleload back_mdb\n"
        f"TLSCertificateFile {cert}\n"
        f"TLSCertificateKeyFile {key}\n"
        "database mdb\n"
        'suffix "dc=example,dc=test"\n'
        'rootdn "cn=admin,dc=example,dc=test"\n'
        "rootpw secret\n"
        f"directory {tmp_path / 'db'}\n"
    )
    port = _free_port()
    keylog = tmp_path / "server.keys"
    env = dict(os.environ, SSLKEYLOGFILE=str(keylog))
    # -d 0: stay in the foreground (this process owns it), logging nothing.
    proc = subprocess.Popen(
        [SLAPD, "-d", "0", "-h", f"ldap://127.0.0.1:{port}/", "-f", str(conf)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None:
                    raise RuntimeError(f"slapd exited: {proc.communicate()[1]!r}") from None
                if time.monotonic() > deadline:
                    raise RuntimeError("slapd did not start") from None
                time.sleep(0.1)
        yield port, keylog
    finally:
        proc.terminate()
        proc.communicate(timeout=30)


def test_ldap_starttls_is_decrypted_like_tshark(slapd: tuple[int, Path], tmp_path: Path) -> None:
    port, server_keys = slapd
    pcap, client_keys = tmp_path / "ldap.pcap", tmp_path / "client.keys"
    env = dict(os.environ, LDAPTLS_REQCERT="never", SSLKEYLOGFILE=str(client_keys))
    with tcpdump(pcap, port):
        done = subprocess.run(
            ["ldapsearch", "-ZZ", "-H", f"ldap://127.0.0.1:{port}", "-x",
             "-b", "", "-s", "base", "namingContexts"],
            capture_output=True, text=True, env=env, timeout=60, check=False,
        )  # fmt: skip
    assert done.returncode == 0 and "namingContexts: dc=example,dc=test" in done.stdout, done.stderr
    evs = events(pcap, client_keys)
    # The readiness probe is a connection of its own, before the capture: one upgrade here.
    (up,) = upgrades(evs)
    assert (up.protocol, up.accepted) == ("ldap", True)
    # tshark: the ExtendedRequest (protocolOp 23) and its ExtendedResponse (24) with success.
    ops = tshark_fields(
        pcap,
        ["frame.number", "ldap.protocolOp", "ldap.resultCode"],
        "-d",
        f"tcp.port=={port},ldap",
        "-Y",
        "ldap",
    )
    request = next(int(f) for f, op, _ in ops if op == "23")
    response = next(int(f) for f, op, rc in ops if op == "24" and rc == "0")
    assert (up.command_frame, up.frame) == (request, response)
    ours = handshake_rows(evs)
    assert ours[0] == (min(f for f, _ in ours), 1) and ours[0][0] > response
    assert {t for _, t in ours} >= {1, 2, 8, 11, 15, 20}
    assert ours == tshark_handshake_rows(pcap, client_keys, f"tcp.port=={port},ldap")
    # The server's key log opens the same session.
    assert handshake_rows(events(pcap, server_keys)) == ours
    assert not [e for e in evs if type(e).__name__ == "UndecryptableEvent"]
    codes = verdict_codes(pcap, client_keys)
    assert "upgraded" in codes and "upgrade_refused" not in codes
