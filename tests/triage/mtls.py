"""Real captures of servers rejecting a client's certificate (mutual TLS).

OpenSSL ``s_server -Verify 1 -CAfile CA`` and GnuTLS ``gnutls-serv --require-client-cert`` ask
for a client certificate and verify it against a CA; ``openssl s_client -cert/-key`` presents
either a certificate from another CA (unknown_ca) or an expired one from the trusted CA
(certificate_expired). A real tcpdump on lo records each conversation; the client's
``-keylogfile`` writes the NSS key log so every capture is triaged with and without keys.
"""

from __future__ import annotations

import datetime as dt
import socket
import time
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

from capdebug.crypto import testpki
from tests.support.proc import Proc, tool
from tests.support.tcpdump import tcpdump


@dataclass(frozen=True, slots=True)
class ClientPki:
    server: tuple[Path, Path]
    ca: Path
    """The CA the servers trust for client certificates (and that issued the server's)."""
    expired: tuple[Path, Path]
    """A client certificate from ``ca`` whose validity ended yesterday."""
    unknown: tuple[Path, Path]
    """A valid client certificate from another CA."""


def make_client_pki(directory: Path) -> ClientPki:
    now = dt.datetime.now(dt.UTC)
    paths = testpki.make_test_pki(directory, now, only=("server-ecdsa",))
    ca = testpki.make_ca(now)
    # The expired client certificate must come from the CA the server trusts: rebuild that CA's
    # handle from the files make_test_pki wrote.
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    trusted = testpki.Issued(
        x509.load_pem_x509_certificate(paths["ca"].read_bytes()).public_bytes(serialization.Encoding.DER),
        paths["ca.key"].read_bytes(),
        "capdebug test CA",
    )
    expired = testpki.make_leaf(
        trusted, now, testpki.LeafOptions(hostnames=("capdebug client",), client=True, expired=True)
    )
    unknown = testpki.make_leaf(ca, now, testpki.LeafOptions(hostnames=("capdebug client",), client=True))

    def write(stem: str, leaf: testpki.Issued, issuer: testpki.Issued) -> tuple[Path, Path]:
        pem, key = directory / f"{stem}.pem", directory / f"{stem}.key"
        pem.write_bytes(leaf.cert_pem + issuer.cert_pem)
        key.write_bytes(leaf.key_pem)
        key.chmod(0o600)
        return pem, key

    return ClientPki(
        server=(paths["server-ecdsa"], paths["server-ecdsa.key"]),
        ca=paths["ca"],
        expired=write("client-expired", expired, trusted),
        unknown=write("client-unknown", unknown, ca),
    )


def _free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port: int = s.getsockname()[1]
    s.close()
    return port


def _server(stack: str, port: int, pki: ClientPki, version: str) -> Proc:
    if stack == "openssl":
        return Proc(
            [
                tool("openssl"), "s_server", "-accept", f"127.0.0.1:{port}", "-cert", str(pki.server[0]),
                "-key", str(pki.server[1]), "-Verify", "1", "-verify_return_error", "-CAfile", str(pki.ca),
                "-naccept", "1",
                f"-{version}",
            ]
        )  # fmt: skip
    prio = "NORMAL:-VERS-ALL:+VERS-TLS1.3" if version == "tls1_3" else "NORMAL:-VERS-ALL:+VERS-TLS1.2"
    return Proc(
        [
            tool("gnutls-serv"), "--port", str(port), "--x509certfile", str(pki.server[0]),
            "--x509keyfile", str(pki.server[1]), "--x509cafile", str(pki.ca),
            "--require-client-cert", "--verify-client-cert", "--priority", prio, "--echo",
        ]
    )  # fmt: skip


def reject_client_cert(
    out: Path, pki: ClientPki, *, stack: str, version: str, cert: str
) -> tuple[Path, Path, int]:
    """``stack`` (openssl/gnutls) server, ``version`` (tls1_2/tls1_3), client ``cert``
    (expired/unknown): returns (pcap, keys, port)."""
    name = f"mtls-{stack}-{version}-{cert}"
    port = _free_port()
    pcap, keys = out / f"{name}.pcap", out / f"{name}.keys"
    server = _server(stack, port, pki, version)
    chain, key = pki.expired if cert == "expired" else pki.unknown
    try:
        server.wait_for("ACCEPT" if stack == "openssl" else "Echo Server listening")
        with tcpdump(pcap, port):
            client = Proc(
                [
                    tool("openssl"), "s_client", "-connect", f"127.0.0.1:{port}", "-servername", "localhost",
                    "-cert", str(chain), "-key", str(key), "-keylogfile", str(keys), f"-{version}",
                ]
            )  # fmt: skip
            time.sleep(0.5)
            with suppress(BrokenPipeError):  # a TLS 1.2 client exits as soon as it is rejected
                client.send(b"hello\n")
            time.sleep(0.3)
            client.close_stdin()
            client.finish(ok=None)
    finally:
        server.kill()
    return pcap, keys, port


def warning_unrecognized_name(out: Path, pki: ClientPki) -> tuple[Path, Path, int]:
    """``openssl s_server -servername only.example`` answers another SNI with a *warning*
    unrecognized_name alert (its default; ``-servername_fatal`` would make it fatal) and goes on."""
    port = _free_port()
    pcap, keys = out / "warning-unrecognized-name.pcap", out / "warning-unrecognized-name.keys"
    cert, key = pki.server
    server = Proc(
        [
            tool("openssl"), "s_server", "-accept", f"127.0.0.1:{port}", "-cert", str(cert), "-key", str(key),
            "-servername", "only.example", "-cert2", str(cert), "-key2", str(key), "-tls1_2", "-naccept", "1",
        ]
    )  # fmt: skip
    try:
        server.wait_for("ACCEPT")
        with tcpdump(pcap, port):
            client = Proc(
                [
                    tool("openssl"), "s_client", "-connect", f"127.0.0.1:{port}", "-servername",
                    "other.example", "-keylogfile", str(keys), "-tls1_2",
                ]
            )  # fmt: skip
            client.wait_for("Verify return code")
            client.send(b"Q\n")
            client.finish(ok=None)
    finally:
        server.kill()
    return pcap, keys, port
