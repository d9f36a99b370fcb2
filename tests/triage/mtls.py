"""Real captures of servers rejecting a client's certificate (mutual TLS).

OpenSSL ``s_server -Verify 1 -CAfile CA``, GnuTLS ``gnutls-serv --require-client-cert``, a
Python ``ssl`` server (``CERT_REQUIRED``) and a Node ``tls`` server (``requestCert``,
``rejectUnauthorized``) ask for a client certificate and verify it against a CA;
``openssl s_client -cert/-key`` presents either a certificate from another CA (unknown_ca) or
an expired one from the trusted CA (certificate_expired). A real tcpdump on lo records each
conversation; the client's ``-keylogfile`` writes the NSS key log so every capture is triaged
with and without keys. Node's server sends no alert: it drops the connection.
"""

from __future__ import annotations

import datetime as dt
import socket
import sys
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


_PYTHON_SERVER = """
import socket, ssl, sys
port, cert, key, ca, version = sys.argv[1:6]
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
ctx.load_verify_locations(ca)
ctx.verify_mode = ssl.CERT_REQUIRED
v = ssl.TLSVersion.TLSv1_3 if version == "tls1_3" else ssl.TLSVersion.TLSv1_2
ctx.minimum_version = ctx.maximum_version = v
ls = socket.create_server(("127.0.0.1", int(port)))
print("ACCEPT", flush=True)
conn, _ = ls.accept()
try:
    s = ctx.wrap_socket(conn, server_side=True)
    s.sendall(s.recv(100))
    s.unwrap()
except (ssl.SSLError, OSError) as e:
    print("rejected:", e, flush=True)
conn.close()
"""

_NODE_SERVER = """
const tls = require("tls"), fs = require("fs");
const [port, cert, key, ca, version] = process.argv.slice(1);
const v = version === "tls1_3" ? "TLSv1.3" : "TLSv1.2";
const server = tls.createServer({
  cert: fs.readFileSync(cert), key: fs.readFileSync(key), ca: fs.readFileSync(ca),
  requestCert: true, rejectUnauthorized: true, minVersion: v, maxVersion: v,
}, (s) => { s.pipe(s); });
server.on("tlsClientError", (e) => { console.log("rejected:", e.code); server.close(); });
server.listen(Number(port), "127.0.0.1", () => console.log("ACCEPT"));
"""


def _server(stack: str, port: int, pki: ClientPki, version: str) -> Proc:
    args = [str(port), str(pki.server[0]), str(pki.server[1]), str(pki.ca), version]
    if stack == "python":
        return Proc([sys.executable, "-c", _PYTHON_SERVER, *args])
    if stack == "node":
        return Proc([tool("node"), "-e", _NODE_SERVER, *args])
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
    """``stack`` (openssl/gnutls/python/node) server, ``version`` (tls1_2/tls1_3), client ``cert``
    (expired/unknown): returns (pcap, keys, port)."""
    name = f"mtls-{stack}-{version}-{cert}"
    port = _free_port()
    pcap, keys = out / f"{name}.pcap", out / f"{name}.keys"
    server = _server(stack, port, pki, version)
    chain, key = pki.expired if cert == "expired" else pki.unknown
    try:
        server.wait_for("Echo Server listening" if stack == "gnutls" else "ACCEPT")
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
