"""Real OpenSSL sessions on the loopback, captured by a real tcpdump, for the key-source tests."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import rsa

from tests.decode import craft
from tests.oracle import Row, tshark_rows
from tests.support.peers import openssl_s_server, self_signed_localhost
from tests.support.proc import Proc
from tests.support.tcpdump import tcpdump

REQUEST = b"GET / HTTP/1.0\r\n\r\n"


def rsa_identity(folder: Path) -> tuple[Path, Path]:
    """A fresh RSA-2048 self-signed localhost certificate and its PKCS#8 PEM key."""
    folder.mkdir(parents=True, exist_ok=True)
    return self_signed_localhost(folder, rsa.generate_private_key(public_exponent=65537, key_size=2048))


def capture_session(
    folder: Path,
    cert: Path,
    key: Path,
    server_args: Sequence[str],
    client_args: Sequence[str] = (),
) -> tuple[Path, Path, int]:
    """One ``openssl s_server -www`` session fetched by ``openssl s_client``: (capture, the
    server's key log, port)."""
    folder.mkdir(parents=True, exist_ok=True)
    capture = folder / "session.pcap"
    keylog = folder / "server.keys"
    server, port = openssl_s_server(
        ["-cert", str(cert), "-key", str(key), "-www", "-keylogfile", str(keylog), *server_args]
    )
    try:
        with tcpdump(capture, port):
            client = Proc(
                ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-quiet", *client_args],
                name="s_client",
            )
            client.send(REQUEST)
            client.finish(ok=None)
    finally:
        server.close()
    return capture, keylog, port


def tshark_rsa_rows(capture: Path, key: Path, port: int, folder: Path) -> list[Row]:
    """What tshark shows with the server's private key in its RSA keys list (uat:rsa_keys)."""
    config = craft.wireshark_config(folder / "wireshark", [port])
    (config / "rsa_keys").write_text(f'"{key}",""\n')
    old = os.environ.get("WIRESHARK_CONFIG_DIR")
    os.environ["WIRESHARK_CONFIG_DIR"] = str(config)
    try:
        return tshark_rows(capture, None)
    finally:
        if old is None:
            del os.environ["WIRESHARK_CONFIG_DIR"]
        else:
            os.environ["WIRESHARK_CONFIG_DIR"] = old
