"""Real TLS peers' material: openssl s_server on an ephemeral loopback port, and a self-signed
identity for ``localhost`` (for peers that need a certificate but no chain)."""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from .proc import Proc


def openssl_s_server(args: Sequence[str], cwd: str | Path | None = None) -> tuple[Proc, int]:
    """``openssl s_server`` on 127.0.0.1 with a port the kernel picks, and that port (from the
    "ACCEPT 127.0.0.1:PORT" line it prints once it listens)."""
    proc = Proc(["openssl", "s_server", "-accept", "127.0.0.1:0", *args], cwd=cwd)
    try:
        port = int(proc.wait_match(r"^ACCEPT 127\.0\.0\.1:(\d+)").group(1))
    except BaseException:
        proc.kill()
        raise
    return proc, port


def self_signed_localhost(
    directory: Path,
    key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey,
    cert_name: str = "cert.pem",
    key_name: str = "key.pem",
) -> tuple[Path, Path]:
    """A self-signed certificate for ``localhost`` (subjectAltName included, valid from a day ago
    for a day), written as PEM next to its PKCS#8 key; returns (certificate, key) paths."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / cert_name, directory / key_name
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path
