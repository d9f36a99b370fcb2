"""A peer's malformed or abusive certificate chain ends in a named TLS error and the right
alert, never an escaped exception, and costs bounded work.

Real peers: ``capdebug serve --client-auth required`` against ``openssl s_client`` presenting
the bad chain (the server must answer bad_certificate and keep serving), and ``capdebug
connect`` against ``openssl s_server`` presenting it (the client must fail with a TLS error and
send bad_certificate).
"""

from __future__ import annotations

import base64
import datetime as dt
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from hypothesis import given, settings
from hypothesis import strategies as st

from capdebug.crypto import x509 as cx509
from capdebug.crypto import x509_engine
from capdebug.crypto.testpki import Issued, LeafOptions, make_ca, make_leaf
from tests.support.peers import openssl_s_server
from tests.support.proc import Proc
from tests.tools import require

NOW = dt.datetime.now(dt.UTC)


def _pem(der: bytes) -> bytes:
    body = base64.encodebytes(der).replace(b"\n", b"")
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    return b"-----BEGIN CERTIFICATE-----\n" + b"\n".join(lines) + b"\n-----END CERTIFICATE-----\n"


def _tlv(data: bytes, i: int) -> tuple[int, int]:
    """(content start, end) of the DER element at ``i``."""
    n, j = data[i + 1], i + 2
    if n & 0x80:
        k = n & 0x7F
        n, j = int.from_bytes(data[j : j + k], "big"), j + k
    return j, j + n


def _elements(data: bytes) -> list[bytes]:
    start, end = _tlv(data, 0)
    out, i = [], start
    while i < end:
        _, e = _tlv(data, i)
        out.append(data[i:e])
        i = e
    return out


def _seq(content: bytes) -> bytes:
    n = len(content)
    size = 0 if n < 0x80 else 1 if n < 0x100 else 2  # DER: the shortest length form
    length = bytes([n]) if not size else bytes([0x80 | size]) + n.to_bytes(size, "big")
    return b"\x30" + length + content


def malformed_intermediate() -> bytes:
    """A CA certificate whose subject starts with an empty RelativeDistinguishedName (RFC 5280
    4.1.2.4: SET SIZE (1..MAX)): OpenSSL loads and sends it; cryptography loads it and raises
    ValueError only when its subject is read (the audit's crash)."""
    key = ec.generate_private_key(ec.SECP256R1())
    der = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "intermediate")]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "some root")]))
        .public_key(key.public_key())
        .serial_number(7)
        .not_valid_before(NOW - dt.timedelta(days=1))
        .not_valid_after(NOW + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
        .public_bytes(serialization.Encoding.DER)
    )
    tbs, *rest = _elements(der)
    fields = _elements(tbs)  # version, serial, signature, issuer, validity, subject, ...
    fields[5] = _seq(b"\x31\x00" + b"".join(_elements(fields[5])))
    bad = _seq(_seq(b"".join(fields)) + b"".join(rest))
    cert = x509.load_der_x509_certificate(bad)
    with pytest.raises(ValueError):
        _ = cert.subject
    return bad


def mutual_chain(n: int) -> tuple[bytes, ec.EllipticCurvePrivateKey, list[bytes]]:
    """A leaf (DER, key) and ``n`` CA certificates that all have the same name and key, so that
    each one verifies as the issuer of every other: the worst case for path building."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mutual")])
    key = ec.generate_private_key(ec.SECP256R1())

    def cert(subject: x509.Name, public: ec.EllipticCurvePublicKey, serial: int, ca: bool) -> bytes:
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(name)
            .public_key(public)
            .serial_number(serial)
            .not_valid_before(NOW - dt.timedelta(days=1))
            .not_valid_after(NOW + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)

    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf = cert(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "client")]), leaf_key.public_key(), 1, False
    )
    return leaf, leaf_key, [cert(name, key.public_key(), 2 + i, True) for i in range(n)]


# -- the x509 layer ---------------------------------------------------------------------------


def test_malformed_intermediate_is_a_decode_error_on_both_sides() -> None:
    ca, other = make_ca(NOW), make_ca(NOW, "another CA")
    leaf = make_leaf(other, NOW, LeafOptions(client=True, hostnames=("client",)))
    bad = malformed_intermediate()
    with pytest.raises(cx509.CertificateDecodeError, match="certificate 1 of the chain"):
        x509_engine.verify_client_chain(leaf.cert_der, [bad], [ca.cert_der], NOW)
    with pytest.raises(cx509.CertificateDecodeError, match="certificate 1 of the chain"):
        cx509.verify_chain(leaf.cert_der, [bad], [ca.cert_der], "client", NOW)


def test_a_chain_past_the_bound_is_rejected_before_any_parsing(monkeypatch: pytest.MonkeyPatch) -> None:
    leaf, _, chain = mutual_chain(640)
    assert sum(map(len, chain)) > 150_000  # the audit's 183 KB chain, under the handshake cap
    parsed: list[bytes] = []
    real = cx509._load_der
    monkeypatch.setattr(cx509, "_load_der", lambda der: parsed.append(der) or real(der))
    ca = make_ca(NOW)
    with pytest.raises(cx509.CertificateChainTooLong, match="641 certificates"):
        x509_engine.verify_client_chain(leaf, chain, [ca.cert_der], NOW)
    with pytest.raises(cx509.CertificateChainTooLong):
        cx509.verify_chain(leaf, chain, [ca.cert_der], "client", NOW)
    assert parsed == []  # no work at all: not one certificate was parsed


def test_mutual_issuers_within_the_length_bound_exhaust_the_budget() -> None:
    ca = make_ca(NOW)
    leaf, _, chain = mutual_chain(cx509.MAX_CHAIN_CERTIFICATES - 1)
    with pytest.raises(cx509.CertificateChainTooLong, match="candidate issuers"):
        x509_engine.verify_client_chain(leaf, chain, [ca.cert_der], NOW)


def test_a_short_mutual_chain_is_still_explained() -> None:
    ca = make_ca(NOW)
    leaf, _, chain = mutual_chain(3)  # 3 certificates x 3 candidates: within the budget
    with pytest.raises(cx509.CertificateUnknownCA):
        x509_engine.verify_client_chain(leaf, chain, [ca.cert_der], NOW)


def test_signature_with_a_malformed_certificate_is_a_signature_error() -> None:
    with pytest.raises(cx509.SignatureError):
        cx509.verify_signature(b"\x30\x03\x02\x01\x00", 0x0403, b"data", b"sig")


# -- real peers -------------------------------------------------------------------------------


def _write(folder: Path, name: str, data: bytes) -> str:
    (folder / name).write_bytes(data)
    return str(folder / name)


def _engine(*args: str) -> list[str]:
    return [sys.executable, "-m", "capdebug.cli.engine", *args]


def _s_client(port: int, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-tls1_3", "-servername", "localhost",
         *args],
        input="", capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip


def _client_files(folder: Path, leaf: Issued, chain: list[bytes], stem: str) -> list[str]:
    cert = _write(folder, f"{stem}.pem", leaf.cert_pem)
    key = _write(folder, f"{stem}.key", leaf.key_pem)
    args = ["-cert", cert, "-key", key]
    if chain:
        args += ["-cert_chain", _write(folder, f"{stem}-chain.pem", b"".join(_pem(d) for d in chain))]
    return args


def test_serve_answers_bad_chains_with_bad_certificate_and_keeps_serving(tmp_path: Path) -> None:
    require("openssl")
    ca, other = make_ca(NOW), make_ca(NOW, "another CA")
    server_leaf = make_leaf(ca, NOW)
    client_ok = make_leaf(ca, NOW, LeafOptions(client=True, hostnames=("client",)))
    client_stranger = make_leaf(other, NOW, LeafOptions(client=True, hostnames=("client",)))
    mutual_leaf, mutual_key, mutual = mutual_chain(640)
    mutual_issued = Issued(
        mutual_leaf,
        mutual_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ),
        "client",
    )
    server = Proc(
        _engine(
            "serve", "--port", "0", "--echo", "--client-auth", "required",
            "--cert", _write(tmp_path, "server.pem", server_leaf.cert_pem + ca.cert_pem),
            "--key", _write(tmp_path, "server.key", server_leaf.key_pem),
            "--ca", _write(tmp_path, "ca.pem", ca.cert_pem),
        )
    )  # fmt: skip
    try:
        port = int(server.wait_match(r"listening on 127\.0\.0\.1:(\d+)").group(1))
        # -ign_eof: in TLS 1.3 the client's certificate follows the server's Finished; keep
        # reading until the server's alert arrives.
        bad = _s_client(
            port, "-ign_eof", *_client_files(tmp_path, client_stranger, [malformed_intermediate()], "bad")
        )
        assert "alert bad certificate" in bad.stdout + bad.stderr, bad.stdout + bad.stderr
        server.wait_for("ERR_CERT_INVALID")
        long = _s_client(port, "-ign_eof", *_client_files(tmp_path, mutual_issued, mutual, "mutual"))
        assert "alert bad certificate" in long.stdout + long.stderr, long.stdout + long.stderr
        server.wait_for("ERR_CERT_CHAIN_TOO_LONG")
        good = _s_client(
            port, "-CAfile", str(tmp_path / "ca.pem"), *_client_files(tmp_path, client_ok, [], "good")
        )
        assert "Verify return code: 0 (ok)" in good.stdout, good.stdout + good.stderr
        server.wait_for("handshake complete")
        assert server.p.poll() is None
        assert "Traceback" not in server.output() and "internal error" not in server.output()
    finally:
        server.close()


def test_connect_answers_a_malformed_server_chain_with_bad_certificate(tmp_path: Path) -> None:
    require("openssl")
    ca, other = make_ca(NOW), make_ca(NOW, "another CA")
    leaf = make_leaf(other, NOW)
    chain = _write(tmp_path, "chain.pem", _pem(malformed_intermediate()))
    server, port = openssl_s_server(
        ["-cert", _write(tmp_path, "leaf.pem", leaf.cert_pem),
         "-key", _write(tmp_path, "leaf.key", leaf.key_pem), "-cert_chain", chain, "-tls1_3"]
    )  # fmt: skip
    try:
        client = subprocess.run(
            _engine("connect", f"127.0.0.1:{port}", "--sni", "localhost",
                    "--ca", _write(tmp_path, "ca.pem", ca.cert_pem)),
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
        assert client.returncode == 1, client.stderr
        assert "ERR_CERT_INVALID" in client.stderr and "malformed certificate 1" in client.stderr, (
            client.stderr
        )
        server.wait_for("bad certificate")  # s_server saw our alert 42
    finally:
        server.kill()


# -- invariant: whatever bytes a peer sends as its chain, only named errors come out -----------

_CA = make_ca(NOW)
_INTERMEDIATE = make_ca(NOW, "intermediate CA")
_LEAF = make_leaf(_INTERMEDIATE, NOW, LeafOptions(client=True, hostnames=("client",)))


@settings(max_examples=300, deadline=None)
@given(
    which=st.integers(0, 1),
    edits=st.lists(st.tuples(st.integers(0, 2000), st.integers(0, 255)), min_size=1, max_size=4),
    cut=st.none() | st.integers(0, 2000),
)
def test_mangled_chains_end_in_named_errors(
    which: int, edits: list[tuple[int, int]], cut: int | None
) -> None:
    chain = [bytearray(_LEAF.cert_der), bytearray(_INTERMEDIATE.cert_der)]
    target = chain[which]
    for at, value in edits:
        target[at % len(target)] = value
    if cut is not None:
        del target[cut % len(target) :]
    leaf, inter = bytes(chain[0]), bytes(chain[1])
    for verify in (
        lambda: x509_engine.verify_client_chain(leaf, [inter], [_CA.cert_der], NOW),
        lambda: cx509.verify_chain(leaf, [inter], [_CA.cert_der], "client", NOW),
    ):
        try:
            verify()
        except (cx509.CertificateVerifyError, cx509.CertificateDecodeError):
            pass  # the engine maps both to an alert (bad_certificate, unknown_ca, ...)
