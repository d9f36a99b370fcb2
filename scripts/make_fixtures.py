#!/usr/bin/env python3
"""Generate the real TLS fixture captures used by the tests.

Every fixture is a real conversation between real TLS implementations (OpenSSL's s_server and
s_client, GnuTLS's gnutls-serv and gnutls-cli, Python's ssl module) over loopback, captured by
a real tcpdump, with the NSS key log the implementations wrote themselves::

    python3 scripts/make_fixtures.py [OUTDIR]      # default: tests/fixtures/

Each fixture is ``NAME.pcap`` + ``NAME.keys`` + an entry in ``OUTDIR/manifest.json``. Each
scenario runs on its own ephemeral port, with its own tcpdump (``tcpdump -i lo -U -w FILE
'tcp port P'``). After writing a fixture the script checks it with tshark as the oracle
(decryption must show the handshake messages the scenario expects) and fails loudly otherwise.

The script also writes ``samples/tls13-premature-close.pcapng``: the premature-close capture
with its key log embedded as a pcapng Decryption Secrets Block, written by the tiny pcapng
writer below (no capdebug code involved, so that the sample is an independent input).

Re-running overwrites everything; the layout is deterministic, the bytes (keys, randoms,
timestamps) are not.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from capdebug.crypto.keylog import KeyLog  # noqa: E402  (after the sys.path tweak)
from tests.support.proc import TIMEOUT, Proc, ToolError, tool  # noqa: E402
from tests.support.tcpdump import tcpdump  # noqa: E402


class FixtureError(ToolError):
    """A tool failed or a fixture did not turn out as the scenario requires."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- certificates --------------------------------------------------------------------------


@dataclass
class Pki:
    dir: Path
    ca: Path
    other_ca: Path
    server_ec_cert: Path
    server_ec_key: Path
    server_rsa_cert: Path
    server_rsa_key: Path
    client_cert: Path
    client_key: Path


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )


def make_pki(d: Path) -> Pki:
    """A throwaway CA, server certs (ECDSA P-256 and RSA 2048) and a client cert, 10 years."""
    now = datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=1)
    until = now + datetime.timedelta(days=3650)

    def name(cn: str) -> x509.Name:
        return x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "capdebug fixtures"),
                x509.NameAttribute(NameOID.COMMON_NAME, cn),
            ]
        )

    def make_ca(cn: str) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            x509.CertificateBuilder()
            .subject_name(name(cn))
            .issuer_name(name(cn))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now)
            .not_valid_after(until)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256())
        )
        return cert, key

    def leaf(
        cn: str,
        key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey,
        ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey],
        server: bool,
    ) -> x509.Certificate:
        builder = (
            x509.CertificateBuilder()
            .subject_name(name(cn))
            .issuer_name(ca[0].subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now)
            .not_valid_after(until)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]
                ),
                critical=False,
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca[1].public_key()), critical=False
            )
        )
        if server:
            builder = builder.add_extension(
                x509.SubjectAlternativeName(
                    [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
                ),
                critical=False,
            )
        return builder.sign(ca[1], hashes.SHA256())

    def pem(path: Path, cert: x509.Certificate) -> Path:
        path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        return path

    ca = make_ca("capdebug fixture CA")
    other = make_ca("capdebug unrelated CA")
    ec_key = ec.generate_private_key(ec.SECP256R1())
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    client_key = ec.generate_private_key(ec.SECP256R1())
    for path, key in (("server-ec.key", ec_key), ("server-rsa.key", rsa_key), ("client.key", client_key)):
        _write_key(d / path, key)
    return Pki(
        dir=d,
        ca=pem(d / "ca.pem", ca[0]),
        other_ca=pem(d / "other-ca.pem", other[0]),
        server_ec_cert=pem(d / "server-ec.pem", leaf("localhost", ec_key, ca, True)),
        server_ec_key=d / "server-ec.key",
        server_rsa_cert=pem(d / "server-rsa.pem", leaf("localhost", rsa_key, ca, True)),
        server_rsa_key=d / "server-rsa.key",
        client_cert=pem(d / "client.pem", leaf("capdebug client", client_key, ca, False)),
        client_key=d / "client.key",
    )


# -- key logs ------------------------------------------------------------------------------


def combine_keylogs(out: Path, *sources: Path) -> None:
    """Concatenate the raw key logs the peers wrote (keeping each tool's exact lines, comments
    and all), dropping lines already present. The two peers must agree: any conflict or bad
    line is an error, because it would mean a tool logged something wrong."""
    merged = KeyLog()
    seen: set[str] = set()
    chunks: list[str] = []
    for src in sources:
        if not src.exists():
            continue
        text = src.read_text()
        log = KeyLog.parse(text, source=src.name)
        merged.merge(log)
        for line in text.splitlines():
            if line not in seen:
                seen.add(line)
                chunks.append(line + "\n")
    if merged.issues:
        raise FixtureError(f"{out.name}: key log problems: {[str(i) for i in merged.issues]}")
    if not len(merged):
        raise FixtureError(f"{out.name}: no secrets were logged by {[s.name for s in sources]}")
    out.write_text("".join(chunks))


# -- scenarios -----------------------------------------------------------------------------


@dataclass
class Fixture:
    name: str
    tool: str
    version: str
    tls_version: str
    cipher_suite: str
    ending: str
    description: str
    expect: dict[str, Any]
    port: int = 0

    def manifest(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "pcap": f"{self.name}.pcap",
            "keys": f"{self.name}.keys",
            "tool": self.tool,
            "version": self.version,
            "tls_version": self.tls_version,
            "cipher_suite": self.cipher_suite,
            "server_port": self.port,
            "ending": self.ending,
            "description": self.description,
            "expect": self.expect,
        }


@dataclass
class Ctx:
    out: Path
    tmp: Path
    pki: Pki
    fixtures: list[Fixture] = field(default_factory=list)

    def keyfiles(self, name: str) -> tuple[Path, Path]:
        return self.tmp / f"{name}.client.keys", self.tmp / f"{name}.server.keys"


def openssl_version() -> str:
    return subprocess.run(
        [tool("openssl"), "version"], check=True, capture_output=True, text=True
    ).stdout.strip()


def gnutls_version() -> str:
    out = subprocess.run([tool("gnutls-cli"), "--version"], check=True, capture_output=True, text=True).stdout
    return out.splitlines()[0].strip()


HELLO_C = [b"hello from the client, line %d\n" % i for i in (1, 2, 3)]
HELLO_S = [b"hello from the server, line %d\n" % i for i in (1, 2, 3)]


def s_server(
    ctx: Ctx, name: str, port: int, args: Sequence[str], naccept: int = 1, rsa_cert: bool = False
) -> Proc:
    pki = ctx.pki
    cert, key = (
        (pki.server_rsa_cert, pki.server_rsa_key) if rsa_cert else (pki.server_ec_cert, pki.server_ec_key)
    )
    argv = [
        tool("openssl"),
        "s_server",
        "-accept",
        f"127.0.0.1:{port}",
        "-cert",
        str(cert),
        "-key",
        str(key),
        "-keylogfile",
        str(ctx.keyfiles(name)[1]),
        "-naccept",
        str(naccept),
        *args,
    ]
    server = Proc(argv, name=f"{name} s_server")
    server.wait_for("ACCEPT")
    return server


def s_client(
    ctx: Ctx,
    name: str,
    port: int,
    args: Sequence[str],
    env: dict[str, str] | None = None,
    ca: Path | None = None,
) -> Proc:
    argv = [
        tool("openssl"),
        "s_client",
        "-connect",
        f"127.0.0.1:{port}",
        "-servername",
        "localhost",
        "-CAfile",
        str(ca or ctx.pki.ca),
        "-keylogfile",
        str(ctx.keyfiles(name)[0]),
        *args,
    ]
    return Proc(argv, name=f"{name} s_client", env=env)


def chat(client: Proc, server: Proc, rounds: int = 3, tag: bytes = b"") -> None:
    """Lines both ways, each one seen by the peer before the next is sent."""
    for i in range(rounds):
        c, s = tag + HELLO_C[i], tag + HELLO_S[i]
        client.send(c)
        server.wait_for(c.decode().strip())
        server.send(s)
        client.wait_for(s.decode().strip())


def clean_close(client: Proc, server: Proc, client_ok: Sequence[int] = (0,)) -> None:
    """Client stdin EOF: s_client sends close_notify, s_server answers with its own and exits."""
    client.close_stdin()
    client.finish(client_ok)
    server.finish()


def openssl_basic(
    ctx: Ctx,
    name: str,
    tls_version: str,
    suite: str,
    server_args: Sequence[str],
    client_args: Sequence[str],
    description: str,
    expect: dict[str, Any],
    rsa_cert: bool = False,
    client_env: dict[str, str] | None = None,
) -> Fixture:
    port = free_port()
    with tcpdump(ctx.out / f"{name}.pcap", port):
        server = s_server(ctx, name, port, server_args, rsa_cert=rsa_cert)
        try:
            client = s_client(ctx, name, port, client_args, env=client_env)
            try:
                client.wait_for("SSL handshake has read")
                chat(client, server)
                clean_close(client, server)
            finally:
                client.kill()
        finally:
            server.kill()
    return Fixture(
        name,
        "openssl s_server + s_client",
        openssl_version(),
        tls_version,
        suite,
        "close_notify both",
        description,
        expect,
        port,
    )


def tls13_suites(ctx: Ctx) -> None:
    for name, suite in (
        ("tls13-aes128gcm", "TLS_AES_128_GCM_SHA256"),
        ("tls13-aes256gcm", "TLS_AES_256_GCM_SHA384"),
        ("tls13-chacha20", "TLS_CHACHA20_POLY1305_SHA256"),
    ):
        ctx.fixtures.append(
            openssl_basic(
                ctx,
                name,
                "1.3",
                suite,
                ["-ciphersuites", suite],
                ["-ciphersuites", suite],
                f"TLS 1.3 with {suite}: three lines each way, then close_notify from both sides",
                {
                    "handshake_complete": True,
                    "handshake_types": [1, 2, 8, 11, 15, 20],
                    "alerts": [{"from": "client", "description": 0}, {"from": "server", "description": 0}],
                },
            )
        )


def tls13_hrr(ctx: Ctx) -> None:
    # The client offers a key share for X25519 only (the first group of its list); the server
    # accepts only P-384, so it must answer with a HelloRetryRequest (RFC 8446 section 4.1.4).
    ctx.fixtures.append(
        openssl_basic(
            ctx,
            "tls13-hrr",
            "1.3",
            "TLS_AES_256_GCM_SHA384",
            ["-groups", "P-384"],
            ["-groups", "X25519:P-384"],
            "TLS 1.3 HelloRetryRequest: client key share X25519, server only accepts P-384",
            {
                "handshake_complete": True,
                "hello_retry_request": True,
                "client_hellos": 2,
                "handshake_types": [1, 2, 8, 11, 15, 20],
                "alerts": [{"from": "client", "description": 0}, {"from": "server", "description": 0}],
            },
        )
    )


def tls13_keyupdate(ctx: Ctx) -> None:
    # s_client's interactive commands: a line "K" sends KeyUpdate(update_requested), "k" sends
    # KeyUpdate(update_not_requested). They are ignored under -ign_eof / -quiet.
    name, port = "tls13-keyupdate", free_port()
    with tcpdump(ctx.out / f"{name}.pcap", port):
        server = s_server(ctx, name, port, [])
        try:
            client = s_client(ctx, name, port, [])
            try:
                client.wait_for("SSL handshake has read")
                chat(client, server, 1)
                client.send(b"K\n")
                client.wait_for("KEYUPDATE")
                chat(client, server, 1, b"after K: ")
                client.send(b"k\n")
                client.wait_for("KEYUPDATE", count=2)
                chat(client, server, 1, b"after k: ")
                clean_close(client, server)
            finally:
                client.kill()
        finally:
            server.kill()
    ctx.fixtures.append(
        Fixture(
            name,
            "openssl s_server + s_client",
            openssl_version(),
            "1.3",
            "TLS_AES_256_GCM_SHA384",
            "close_notify both",
            "TLS 1.3: data, client KeyUpdate(update_requested) answered by the server's KeyUpdate, data, "
            "client KeyUpdate(update_not_requested), data, close_notify both",
            {
                "handshake_complete": True,
                "handshake_types": [1, 2, 8, 11, 15, 20, 24],
                "key_updates": {"client": 2, "server": 1},
                "alerts": [{"from": "client", "description": 0}, {"from": "server", "description": 0}],
            },
            port,
        )
    )


def tls13_resumption(ctx: Ctx, early_data: bool) -> None:
    name = "tls13-early-data" if early_data else "tls13-resumption"
    port = free_port()
    sess = ctx.tmp / f"{name}.sess"
    server_args = ["-early_data", "-max_early_data", "16384"] if early_data else []
    early_file = ctx.tmp / "early.txt"
    early_file.write_bytes(b"GET /early HTTP/1.1\r\nHost: localhost\r\n\r\n")
    with tcpdump(ctx.out / f"{name}.pcap", port):
        server = s_server(ctx, name, port, server_args, naccept=2)
        try:
            first = s_client(ctx, name, port, ["-sess_out", str(sess)])
            try:
                first.wait_for("SSL handshake has read")
                chat(first, server, 1)
                wait_file(sess)  # s_client writes -sess_out when the NewSessionTicket arrives
                first.close_stdin()
                first.finish()
            finally:
                first.kill()
            args = ["-sess_in", str(sess)] + (["-early_data", str(early_file)] if early_data else [])
            second = s_client(ctx, name, port, args)
            try:
                second.wait_for("Reused, TLSv1.3")
                if early_data:
                    server.wait_for("GET /early HTTP/1.1")
                    second.wait_for("Early data was accepted")
                chat(second, server, 1, b"resumed: ")
                clean_close(second, server)
            finally:
                second.kill()
        finally:
            server.kill()
    desc = (
        "TLS 1.3 PSK resumption with early data: a full handshake whose ticket allows early data, then a "
        "resumed connection sending an HTTP request as 0-RTT data, accepted by the server"
        if early_data
        else "TLS 1.3 resumption: a full handshake, then a PSK (ticket) resumption without certificates"
    )
    expect: dict[str, Any] = {
        "handshake_complete": True,
        "connections": 2,
        "resumed": [False, True],
        "handshake_types": [1, 2, 4, 8, 11, 15, 20],
        "alerts": [{"from": "client", "description": 0}, {"from": "server", "description": 0}],
    }
    if early_data:
        expect["early_data_accepted"] = True
        expect["handshake_types"] = [*expect["handshake_types"], 5]
    ctx.fixtures.append(
        Fixture(
            name,
            "openssl s_server + s_client",
            openssl_version(),
            "1.3",
            "TLS_AES_256_GCM_SHA384",
            "first: client close_notify; second: close_notify both",
            desc,
            expect,
            port,
        )
    )


def tls13_mtls(ctx: Ctx) -> None:
    pki = ctx.pki
    ctx.fixtures.append(
        openssl_basic(
            ctx,
            "tls13-mtls",
            "1.3",
            "TLS_AES_256_GCM_SHA384",
            ["-Verify", "1", "-CAfile", str(pki.ca)],
            ["-cert", str(pki.client_cert), "-key", str(pki.client_key)],
            "TLS 1.3 mutual authentication: CertificateRequest, client Certificate and CertificateVerify",
            {
                "handshake_complete": True,
                "client_certificate": True,
                "handshake_types": [1, 2, 8, 11, 13, 15, 20],
                "alerts": [{"from": "client", "description": 0}, {"from": "server", "description": 0}],
            },
        )
    )


def tls13_unknown_ca(ctx: Ctx) -> None:
    name, port = "tls13-unknown-ca", free_port()
    with tcpdump(ctx.out / f"{name}.pcap", port):
        server = s_server(ctx, name, port, [])
        try:
            # the client trusts an unrelated CA only: the server's chain does not verify
            client = s_client(ctx, name, port, ["-verify_return_error"], ca=ctx.pki.other_ca)
            try:
                client.finish(ok=(1,))
                server.close_stdin()
                server.finish(ok=(0, 1))
            finally:
                client.kill()
        finally:
            server.kill()
    if "unable to get local issuer certificate" not in client.output():
        raise FixtureError(f"{name}: client did not fail verification as planned:\n{client.output()}")
    ctx.fixtures.append(
        Fixture(
            name,
            "openssl s_server + s_client",
            openssl_version(),
            "1.3",
            "TLS_AES_256_GCM_SHA384",
            "alert unknown_ca from client",
            "TLS 1.3: the client does not trust the server's CA and aborts with a fatal unknown_ca alert "
            "(encrypted under the client handshake traffic key) instead of its Finished",
            {
                "handshake_complete": False,
                "handshake_types": [1, 2, 8, 11, 15, 20],
                "alerts": [{"from": "client", "description": 48}],
            },
            port,
        )
    )


def tls12_suites(ctx: Ctx) -> None:
    full = [1, 2, 11, 12, 14, 16, 20]
    closes = [{"from": "client", "description": 0}, {"from": "server", "description": 0}]
    rows: list[tuple[str, str, str, list[str], bool, dict[str, Any], str]] = [
        (
            "tls12-ecdhe-aes128gcm",
            "ECDHE-ECDSA-AES128-GCM-SHA256",
            "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
            [],
            False,
            {"extended_master_secret": True},
            "TLS 1.2 ECDHE-ECDSA with AES-128-GCM, extended master secret",
        ),
        (
            "tls12-chacha20",
            "ECDHE-ECDSA-CHACHA20-POLY1305",
            "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
            [],
            False,
            {},
            "TLS 1.2 ECDHE-ECDSA with ChaCha20-Poly1305",
        ),
        (
            "tls12-aes128-cbc-sha",
            "AES128-SHA",
            "TLS_RSA_WITH_AES_128_CBC_SHA",
            [],
            True,
            {"encrypt_then_mac": True, "rsa_key_exchange": True},
            "TLS 1.2 RSA key exchange with AES-128-CBC and HMAC-SHA1, encrypt_then_mac negotiated",
        ),
        (
            "tls12-cbc-sha256-no-etm",
            "ECDHE-ECDSA-AES128-SHA256",
            "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256",
            ["-no_etm"],
            False,
            {"encrypt_then_mac": False},
            "TLS 1.2 AES-128-CBC with HMAC-SHA256, MAC-then-encrypt (client sent -no_etm)",
        ),
        (
            "tls12-ecdhe-aes256-sha384",
            "ECDHE-ECDSA-AES256-SHA384",
            "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA384",
            [],
            False,
            {"encrypt_then_mac": True},
            "TLS 1.2 AES-256-CBC with HMAC-SHA384 (PRF SHA-384)",
        ),
    ]
    for name, ossl, iana, extra, rsa_cert, flags, desc in rows:
        ht = [1, 2, 11, 14, 16, 20] if rsa_cert else full
        ctx.fixtures.append(
            openssl_basic(
                ctx,
                name,
                "1.2",
                iana,
                [],
                ["-tls1_2", "-cipher", ossl, *extra],
                desc + "; three lines each way, close_notify both",
                {"handshake_complete": True, "handshake_types": ht, "alerts": closes, **flags},
                rsa_cert=rsa_cert,
            )
        )
    # OpenSSL 3.0's s_client has no -no_ems flag; SSL_OP_NO_EXTENDED_MASTER_SECRET is reachable
    # through the SSL_CONF "Options = -ExtendedMasterSecret" of a system_default section.
    cnf = ctx.tmp / "no-ems.cnf"
    cnf.write_text(
        "openssl_conf = openssl_init\n[openssl_init]\nssl_conf = ssl_sect\n[ssl_sect]\n"
        "system_default = system_default_sect\n[system_default_sect]\nOptions = -ExtendedMasterSecret\n"
    )
    ctx.fixtures.append(
        openssl_basic(
            ctx,
            "tls12-no-ems",
            "1.2",
            "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
            [],
            ["-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256"],
            "TLS 1.2 without extended master secret (client run with OPENSSL_CONF setting "
            "Options = -ExtendedMasterSecret): classic RFC 5246 master secret",
            {
                "handshake_complete": True,
                "handshake_types": full,
                "alerts": closes,
                "extended_master_secret": False,
            },
            client_env={"OPENSSL_CONF": str(cnf)},
        )
    )


def tls12_resumption(ctx: Ctx, ticket: bool) -> None:
    name = "tls12-resumption-ticket" if ticket else "tls12-resumption-session-id"
    port = free_port()
    sess = ctx.tmp / f"{name}.sess"
    extra = ["-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256"] + ([] if ticket else ["-no_ticket"])
    with tcpdump(ctx.out / f"{name}.pcap", port):
        server = s_server(ctx, name, port, [] if ticket else ["-no_ticket"], naccept=2)
        try:
            first = s_client(ctx, name, port, [*extra, "-sess_out", str(sess)])
            try:
                first.wait_for("SSL handshake has read")
                chat(first, server, 1)
                clean_close_first(first, server)
            finally:
                first.kill()
            second = s_client(ctx, name, port, [*extra, "-sess_in", str(sess)])
            try:
                second.wait_for("Reused, TLSv1.2")
                chat(second, server, 1, b"resumed: ")
                clean_close(second, server)
            finally:
                second.kill()
        finally:
            server.kill()
    how = "session ticket (RFC 5077)" if ticket else "session ID (no tickets on either side)"
    ctx.fixtures.append(
        Fixture(
            name,
            "openssl s_server + s_client",
            openssl_version(),
            "1.2",
            "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
            "close_notify both (each connection)",
            f"TLS 1.2 abbreviated handshake resuming by {how}: a full handshake, then a resumed one",
            {
                "handshake_complete": True,
                "connections": 2,
                "resumed": [False, True],
                "handshake_types": [1, 2, 11, 12, 14, 16, 20] + ([4] if ticket else []),
                "alerts": [{"from": "client", "description": 0}, {"from": "server", "description": 0}],
            },
            port,
        )
    )


def wait_file(path: Path, timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not (path.exists() and path.stat().st_size > 0):
        if time.monotonic() > deadline:
            raise FixtureError(f"{path.name} was not written")
        time.sleep(0.05)


def clean_close_first(client: Proc, server: Proc) -> None:
    """Close the first of two connections: s_server stays up for the next one."""
    client.close_stdin()
    client.finish()
    server.wait_for("DONE")


# -- Python ssl scenarios ------------------------------------------------------------------


def py_contexts(ctx: Ctx, name: str, version: ssl.TLSVersion) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    ckeys, skeys = ctx.keyfiles(name)
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(ctx.pki.server_ec_cert, ctx.pki.server_ec_key)
    server_ctx.keylog_filename = str(skeys)
    client_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client_ctx.load_verify_locations(ctx.pki.ca)
    client_ctx.keylog_filename = str(ckeys)
    for c in (server_ctx, client_ctx):
        c.minimum_version = c.maximum_version = version
    return server_ctx, client_ctx


def recv_exactly(sock: ssl.SSLSocket, n: int) -> bytes:
    parts: list[bytes] = []
    while n:
        chunk = sock.recv(min(n, 65536))
        if not chunk:
            raise FixtureError("peer closed early")
        parts.append(chunk)
        n -= len(chunk)
    return b"".join(parts)


def recv_until(sock: ssl.SSLSocket, marker: bytes) -> bytes:
    data = b""
    while marker not in data:
        chunk = sock.recv(4096)
        if not chunk:
            raise FixtureError(f"peer closed before {marker!r}")
        data += chunk
    return data


def raw_close(sock: ssl.SSLSocket, rst: bool = False) -> None:
    """Close the TCP connection under ``sock`` without any TLS close_notify: detach the TLS
    object from the file descriptor, then close the plain socket (FIN, or RST with linger 0)."""
    plain = socket.socket(fileno=sock.detach())
    if rst:
        plain.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    plain.close()


def run_python_pair(
    ctx: Ctx,
    name: str,
    version: ssl.TLSVersion,
    server_fn: Callable[[ssl.SSLSocket], None],
    client_fn: Callable[[ssl.SSLSocket], None],
) -> int:
    server_ctx, client_ctx = py_contexts(ctx, name, version)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = int(listener.getsockname()[1])
    errors: list[BaseException] = []

    def serve() -> None:
        try:
            conn, _ = listener.accept()
            conn.settimeout(TIMEOUT)
            server_fn(server_ctx.wrap_socket(conn, server_side=True))
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    with tcpdump(ctx.out / f"{name}.pcap", port):
        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        try:
            raw = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
            client_fn(client_ctx.wrap_socket(raw, server_hostname="localhost"))
        finally:
            thread.join(TIMEOUT)
            listener.close()
    if errors:
        raise FixtureError(f"{name}: server failed: {errors[0]!r}") from errors[0]
    if thread.is_alive():
        raise FixtureError(f"{name}: server thread hung")
    return port


def py_version() -> str:
    return f"Python {sys.version.split()[0]} ssl ({ssl.OPENSSL_VERSION})"


def premature_close(ctx: Ctx) -> None:
    name = "tls13-premature-close"
    body = b"".join(b"line %04d of a response the client never finishes reading\n" % i for i in range(40))
    head = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n" % (len(body) * 4)

    def server(s: ssl.SSLSocket) -> None:
        recv_until(s, b"\r\n\r\n")
        s.sendall(head)
        s.sendall(body)  # a quarter of the announced Content-Length
        try:
            leftover = s.recv(4096)  # the client's FIN arrives without a close_notify
        except ssl.SSLEOFError:
            leftover = b""
        if leftover:
            raise FixtureError("client sent more data than expected")
        raw_close(s)

    def client(c: ssl.SSLSocket) -> None:
        c.sendall(b"GET /report.txt HTTP/1.1\r\nHost: localhost\r\nUser-Agent: fixture\r\n\r\n")
        recv_exactly(c, len(head) + len(body))
        time.sleep(0.05)
        raw_close(c)

    port = run_python_pair(ctx, name, ssl.TLSVersion.TLSv1_3, server, client)
    ctx.fixtures.append(
        Fixture(
            name,
            "Python ssl client + server",
            py_version(),
            "1.3",
            "TLS_AES_256_GCM_SHA384",
            "client FIN without close_notify",
            "HTTP-like request; the server sends headers announcing Content-Length 4x what it then sends; "
            "the client closes its TCP socket (FIN) without close_notify; the server's OpenSSL reports "
            "an unexpected EOF with a fatal decode_error alert, which the closed client answers with RST",
            {
                "handshake_complete": True,
                "handshake_types": [1, 2, 8, 11, 15, 20],
                "alerts": [{"from": "server", "description": 50}],
                "fin_without_close_notify": "client",
            },
            port,
        )
    )


def server_rst(ctx: Ctx) -> None:
    name = "tls13-server-rst"

    def server(s: ssl.SSLSocket) -> None:
        recv_until(s, b"\n")
        s.sendall(b"partial answer\n")
        # wait for the next request, so that the answer was read before the RST (Linux drops
        # unread received data when a RST arrives)
        recv_until(s, b"next\n")
        raw_close(s, rst=True)

    def client(c: ssl.SSLSocket) -> None:
        c.sendall(b"please answer\n")
        recv_until(c, b"partial answer\n")
        c.sendall(b"next\n")
        try:
            while c.recv(4096):
                pass
        except (ConnectionResetError, ssl.SSLError):
            pass
        c.close()

    port = run_python_pair(ctx, name, ssl.TLSVersion.TLSv1_3, server, client)
    ctx.fixtures.append(
        Fixture(
            name,
            "Python ssl client + server",
            py_version(),
            "1.3",
            "TLS_AES_256_GCM_SHA384",
            "server RST",
            "a request, a short answer, a second request; the server then closes with SO_LINGER 0: a "
            "TCP RST, no close_notify",
            {
                "handshake_complete": True,
                "handshake_types": [1, 2, 8, 11, 15, 20],
                "alerts": [],
                "rst_from": "server",
            },
            port,
        )
    )


def python_tls12(ctx: Ctx) -> None:
    name = "python-tls12"

    def server(s: ssl.SSLSocket) -> None:
        for i in range(3):
            recv_until(s, HELLO_C[i])
            s.sendall(HELLO_S[i])
        if s.recv(4096):  # b"" once the client's close_notify arrived
            raise FixtureError("unexpected data")
        s.unwrap().close()

    def client(c: ssl.SSLSocket) -> None:
        for i in range(3):
            c.sendall(HELLO_C[i])
            recv_until(c, HELLO_S[i])
        c.unwrap().close()

    port = run_python_pair(ctx, name, ssl.TLSVersion.TLSv1_2, server, client)
    ctx.fixtures.append(
        Fixture(
            name,
            "Python ssl client + server",
            py_version(),
            "1.2",
            "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
            "close_notify both",
            "TLS 1.2 between two Python ssl sockets: three lines each way, unwrap() both",
            {
                "handshake_complete": True,
                "handshake_types": [1, 2, 11, 12, 14, 16, 20],
                "alerts": [{"from": "client", "description": 0}, {"from": "server", "description": 0}],
            },
            port,
        )
    )


def large_transfer(ctx: Ctx) -> None:
    name = "tls13-large-transfer"
    size = 2 * 1024 * 1024
    payload = bytes(i * 31 % 251 for i in range(65536)) * (size // 65536)

    def server(s: ssl.SSLSocket) -> None:
        recv_until(s, b"\n")
        s.sendall(payload)
        if s.recv(4096):
            raise FixtureError("unexpected data")
        s.unwrap().close()

    def client(c: ssl.SSLSocket) -> None:
        c.sendall(b"send me 2 MiB\n")
        if recv_exactly(c, size) != payload:
            raise FixtureError("payload corrupted")
        c.unwrap().close()

    port = run_python_pair(ctx, name, ssl.TLSVersion.TLSv1_3, server, client)
    ctx.fixtures.append(
        Fixture(
            name,
            "Python ssl client + server",
            py_version(),
            "1.3",
            "TLS_AES_256_GCM_SHA384",
            "close_notify both",
            "TLS 1.3: the server sends 2 MiB (many full records over many segments)",
            {
                "handshake_complete": True,
                "handshake_types": [1, 2, 8, 11, 15, 20],
                "server_app_bytes": size,
                "alerts": [{"from": "client", "description": 0}, {"from": "server", "description": 0}],
            },
            port,
        )
    )


def gnutls_tls13(ctx: Ctx) -> None:
    name, port = "gnutls-tls13", free_port()
    ckeys, skeys = ctx.keyfiles(name)
    prio = "NORMAL:-VERS-ALL:+VERS-TLS1.3"
    with tcpdump(ctx.out / f"{name}.pcap", port):
        server = Proc(
            [
                tool("gnutls-serv"),
                "--echo",
                "-p",
                str(port),
                "--priority",
                prio,
                "--x509certfile",
                str(ctx.pki.server_ec_cert),
                "--x509keyfile",
                str(ctx.pki.server_ec_key),
            ],
            name=f"{name} gnutls-serv",
            env={"SSLKEYLOGFILE": str(skeys)},
        )
        try:
            server.wait_for("listening")
            client = Proc(
                [
                    tool("gnutls-cli"),
                    "-p",
                    str(port),
                    "--priority",
                    prio,
                    "--x509cafile",
                    str(ctx.pki.ca),
                    "127.0.0.1",
                ],
                name=f"{name} gnutls-cli",
                env={"SSLKEYLOGFILE": str(ckeys)},
            )
            try:
                client.wait_for("Handshake was completed")
                for line in HELLO_C:
                    client.send(line)
                    client.wait_for(line.decode().strip())  # the echo
                client.close_stdin()
                client.finish()
            finally:
                client.kill()
        finally:
            time.sleep(0.3)
            server.kill()
    ctx.fixtures.append(
        Fixture(
            name,
            "gnutls-serv --echo + gnutls-cli",
            gnutls_version(),
            "1.3",
            "TLS_AES_256_GCM_SHA384",
            "close_notify both",
            "GnuTLS both sides, key logs via SSLKEYLOGFILE; three lines echoed; gnutls-cli sends "
            "close_notify at stdin EOF and gnutls-serv answers with its own",
            {
                "handshake_complete": True,
                "handshake_types": [1, 2, 8, 11, 15, 20],
                "alerts": [{"from": "client", "description": 0}, {"from": "server", "description": 0}],
            },
            port,
        )
    )


# -- tshark oracle -------------------------------------------------------------------------


def tshark_fields(pcap: Path, keys: Path, port: int) -> list[list[str]]:
    argv = [
        tool("tshark"),
        "-n",
        "-r",
        str(pcap),
        "-o",
        f"tls.keylog_file:{keys}",
        "-d",
        f"tcp.port=={port},tls",
        "-Y",
        "tls",
        "-T",
        "fields",
        "-E",
        "separator=|",
        "-e",
        "frame.number",
        "-e",
        "tcp.srcport",
        "-e",
        "tls.record.content_type",
        "-e",
        "tls.handshake.type",
        "-e",
        "tls.alert_message.desc",
    ]
    out = subprocess.run(argv, check=True, capture_output=True, text=True, timeout=120).stdout
    return [line.split("|") for line in out.splitlines()]


def check_with_tshark(fx: Fixture, out: Path) -> None:
    rows = tshark_fields(out / f"{fx.name}.pcap", out / f"{fx.name}.keys", fx.port)
    types = {int(t) for row in rows for t in row[3].split(",") if t}
    missing = set(fx.expect["handshake_types"]) - types
    if missing:
        raise FixtureError(
            f"{fx.name}: tshark does not show handshake types {sorted(missing)} (saw {sorted(types)})"
        )
    alerts = [
        {"from": "server" if int(row[1]) == fx.port else "client", "description": int(d)}
        for row in rows
        for d in row[4].split(",")
        if d
    ]
    for want in fx.expect["alerts"]:
        if want not in alerts:
            raise FixtureError(f"{fx.name}: tshark does not show alert {want} (saw {alerts})")


# -- pcapng sample with a Decryption Secrets Block -----------------------------------------


def read_classic_pcap(path: Path) -> tuple[int, int, list[tuple[int, bytes, int]]]:
    """(linktype, snaplen, [(ts_ns, data, orig_len)]) from a classic pcap file."""
    data = path.read_bytes()
    magic = data[:4]
    endian = {
        b"\xd4\xc3\xb2\xa1": "<",
        b"\xa1\xb2\xc3\xd4": ">",
        b"\x4d\x3c\xb2\xa1": "<",
        b"\xa1\xb2\x3c\x4d": ">",
    }
    if magic not in endian:
        raise FixtureError(f"{path}: not a classic pcap file")
    e = endian[magic]
    nano = magic in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d")
    _, _, _, _, snaplen, linktype = struct.unpack_from(e + "HHiIII", data, 4)
    packets = []
    off = 24
    while off + 16 <= len(data):
        sec, frac, incl, orig = struct.unpack_from(e + "IIII", data, off)
        off += 16
        packets.append((sec * 1_000_000_000 + frac * (1 if nano else 1000), data[off : off + incl], orig))
        off += incl
    return linktype, snaplen, packets


def _block(block_type: int, body: bytes) -> bytes:
    body += b"\x00" * (-len(body) % 4)
    length = 12 + len(body)
    return struct.pack("<II", block_type, length) + body + struct.pack("<I", length)


def write_pcapng_with_secrets(
    path: Path, linktype: int, snaplen: int, packets: list[tuple[int, bytes, int]], keylog: bytes
) -> None:
    """SHB, one IDB (if_tsresol 9: nanoseconds), a DSB with the TLS key log, then EPBs.

    pcapng (draft-ietf-opsawg-pcapng): the Decryption Secrets Block (type 0x0000000A) carries
    Secrets Type 0x544C534B ("TLSK", an NSS key log) and must precede the packets it decrypts.
    """
    opt_end = struct.pack("<HH", 0, 0)
    shb = _block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1) + opt_end)
    tsresol = struct.pack("<HHB", 9, 1, 9) + b"\x00" * 3  # option if_tsresol = 10^-9
    idb = _block(0x00000001, struct.pack("<HHI", linktype, 0, snaplen) + tsresol + opt_end)
    dsb = _block(0x0000000A, struct.pack("<II", 0x544C534B, len(keylog)) + keylog)
    out = [shb, idb, dsb]
    for ts, data, orig in packets:
        out.append(
            _block(0x00000006, struct.pack("<IIIII", 0, ts >> 32, ts & 0xFFFFFFFF, len(data), orig) + data)
        )
    path.write_bytes(b"".join(out))


def make_sample(ctx: Ctx, samples: Path) -> Path:
    name = "tls13-premature-close"
    linktype, snaplen, packets = read_classic_pcap(ctx.out / f"{name}.pcap")
    keylog = KeyLog.from_file(ctx.out / f"{name}.keys").to_text().encode("ascii")
    samples.mkdir(parents=True, exist_ok=True)
    path = samples / f"{name}.pcapng"
    write_pcapng_with_secrets(path, linktype, snaplen, packets, keylog)
    port = next(f.port for f in ctx.fixtures if f.name == name)
    out = subprocess.run(
        [tool("tshark"), "-n", "-r", str(path), "-d", f"tcp.port=={port},tls", "-Y", "tls", "-V"],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    for needle in (
        "Handshake Type: Encrypted Extensions (8)",
        "Handshake Type: Finished (20)",
        "GET /report.txt HTTP/1.1",
        "Description: Decode Error (50)",
    ):
        if needle not in out:
            raise FixtureError(f"{path}: tshark -V shows no {needle!r}: the embedded secrets did not work")
    return path


# -- main ----------------------------------------------------------------------------------

SCENARIOS: list[Callable[[Ctx], None]] = [
    tls13_suites,
    tls13_hrr,
    tls13_keyupdate,
    lambda c: tls13_resumption(c, early_data=False),
    lambda c: tls13_resumption(c, early_data=True),
    tls13_mtls,
    tls13_unknown_ca,
    tls12_suites,
    lambda c: tls12_resumption(c, ticket=False),
    lambda c: tls12_resumption(c, ticket=True),
    premature_close,
    server_rst,
    gnutls_tls13,
    python_tls12,
    large_transfer,
]


def main(argv: list[str]) -> int:
    if os.geteuid() != 0:
        print("make_fixtures: tcpdump needs root", file=sys.stderr)
        return 2
    out = Path(argv[1] if len(argv) > 1 else REPO / "tests" / "fixtures").resolve()
    out.mkdir(parents=True, exist_ok=True)
    for old in list(out.glob("*.pcap")) + list(out.glob("*.keys")):
        old.unlink()
    with tempfile.TemporaryDirectory(prefix="capdebug-fixtures-") as tmpdir:
        tmp = Path(tmpdir)
        (tmp / "pki").mkdir()
        ctx = Ctx(out=out, tmp=tmp, pki=make_pki(tmp / "pki"))
        for scenario in SCENARIOS:
            before = len(ctx.fixtures)
            scenario(ctx)
            for fx in ctx.fixtures[before:]:
                combine_keylogs(out / f"{fx.name}.keys", *ctx.keyfiles(fx.name))
                check_with_tshark(fx, out)
                size = (out / f"{fx.name}.pcap").stat().st_size
                print(f"{fx.name:32} {size:>9} bytes  ok", flush=True)
        manifest = {
            "generator": "scripts/make_fixtures.py",
            "fixtures": [fx.manifest() for fx in ctx.fixtures],
        }
        (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
        sample = make_sample(ctx, REPO / "samples")
        print(f"{sample.relative_to(REPO)} written and decrypted by tshark", flush=True)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv))
    except ToolError as exc:  # FixtureError included
        print(f"make_fixtures: {exc}", file=sys.stderr)
        sys.exit(1)
