"""Certificate summaries, hostname matching, chain verification with classified failures,
signature schemes and key exchange. Certificates are generated here with cryptography."""

from __future__ import annotations

import hashlib

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from capdebug.crypto.x509 import (
    CertificateDecodeError,
    CertificateExpired,
    CertificateHostnameMismatch,
    CertificateInvalid,
    CertificateNotYetValid,
    CertificateUnknownCA,
    KeyExchangeError,
    SignatureError,
    generate_key_share,
    hostname_matches,
    shared_secret,
    sign,
    summarize_certificate,
    verify_chain,
    verify_signature,
)
from capdebug.errors import CryptoError, DecodeError, UsageError

from .pki import DAY, NOW, chain, issue


def test_summary_fields() -> None:
    root, intermediate, leaf = chain(
        sans=("www.example.test", "*.api.example.test", "192.0.2.7", "2001:db8::1")
    )
    s = summarize_certificate(leaf.der)
    assert s.subject == "O=capdebug tests,CN=www.example.test"
    assert s.issuer == "O=capdebug tests,CN=Test Intermediate"
    assert int(s.serial, 16) == leaf.cert.serial_number
    assert s.not_before == NOW - 30 * DAY and s.not_after == NOW + 30 * DAY
    assert s.sans == ("www.example.test", "*.api.example.test", "192.0.2.7", "2001:db8::1")
    assert (s.key_type, s.key_bits) == ("EC secp256r1", 256)
    assert not s.self_signed and not s.is_ca
    assert s.signature_algorithm == "ecdsa-with-SHA256"
    assert s.sha256_fingerprint == hashlib.sha256(leaf.der).hexdigest()
    r = summarize_certificate(root.der)
    assert r.self_signed and r.is_ca and r.subject == r.issuer
    assert summarize_certificate(intermediate.der).is_ca


def test_summary_key_types() -> None:
    rsa_cert = issue("rsa", key=rsa.generate_private_key(public_exponent=65537, key_size=2048))
    assert summarize_certificate(rsa_cert.der).key_type == "RSA 2048"
    assert summarize_certificate(rsa_cert.der).signature_algorithm == "sha256WithRSAEncryption"
    ed = summarize_certificate(issue("ed", key=ed25519.Ed25519PrivateKey.generate()).der)
    assert (ed.key_type, ed.key_bits, ed.self_signed) == ("Ed25519", 256, True)
    p384 = summarize_certificate(issue("p384", key=ec.generate_private_key(ec.SECP384R1())).der)
    assert (p384.key_type, p384.key_bits) == ("EC secp384r1", 384)


def test_self_signed_needs_a_valid_signature() -> None:
    # Same subject and issuer, but signed by another key: names alone do not make it self-signed.
    impostor_issuer = issue("twin")
    twin = issue("twin", issuer=impostor_issuer)
    assert twin.cert.subject == twin.cert.issuer
    assert not summarize_certificate(twin.der).self_signed


@pytest.mark.parametrize("garbage", [b"", b"\x30\x03\x02\x01\x01", b"not a certificate", bytes(300)])
def test_malformed_der(garbage: bytes) -> None:
    with pytest.raises(CertificateDecodeError) as info:
        summarize_certificate(garbage)
    assert isinstance(info.value, DecodeError)
    assert info.value.__cause__ is not None


def test_truncated_der() -> None:
    der = chain()[2].der
    with pytest.raises(DecodeError):
        summarize_certificate(der[:-10])


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("www.example.test", True),
        ("WWW.Example.Test.", True),
        ("example.test", False),
        ("a.api.example.test", True),
        ("A.API.example.test", True),
        ("api.example.test", False),  # a wildcard matches exactly one label
        ("a.b.api.example.test", False),
        (".api.example.test", False),
        ("192.0.2.7", True),
        ("192.0.2.8", False),
        ("2001:db8:0::1", True),
        ("[2001:db8::1]", True),
        ("", False),
    ],
)
def test_hostname_matches(host: str, expected: bool) -> None:
    s = summarize_certificate(
        chain(sans=("www.example.test", "*.api.example.test", "192.0.2.7", "2001:db8::1"))[2].der
    )
    assert hostname_matches(s, host) is expected


def test_wildcards_only_leftmost_and_never_for_ips_or_tlds() -> None:
    s = summarize_certificate(chain(sans=("www.*.example.test", "*.test", "*.0.2.7"))[2].der)
    assert not hostname_matches(s, "www.a.example.test")
    assert not hostname_matches(s, "example.test")
    assert not hostname_matches(s, "192.0.2.7")
    assert not hostname_matches(
        summarize_certificate(chain(sans=())[2].der), "www.example.test"
    )  # no CN fallback


def test_verify_chain_ok_with_der_and_pem_roots() -> None:
    root, intermediate, leaf = chain()
    verify_chain(leaf.der, [intermediate.der], [root.der], "www.example.test", NOW)
    other = issue("Other Root", ca=True)
    verify_chain(
        leaf.der, [intermediate.der], other.pem + root.pem, "www.example.test", NOW.replace(tzinfo=None)
    )


def test_verify_chain_reasons() -> None:
    root, intermediate, leaf = chain()
    cases: list[tuple[type[CryptoError], str, object]] = [
        (CertificateExpired, "expired", NOW + 31 * DAY),
        (CertificateNotYetValid, "not_yet_valid", NOW - 31 * DAY),
    ]
    for cls, reason, at in cases:
        with pytest.raises(cls) as info:
            verify_chain(leaf.der, [intermediate.der], [root.der], "www.example.test", at)  # type: ignore[arg-type]
        assert info.value.reason == reason  # type: ignore[attr-defined]
        assert info.value.__cause__ is not None
    with pytest.raises(CertificateHostnameMismatch) as mismatch:
        verify_chain(leaf.der, [intermediate.der], [root.der], "other.example.test", NOW)
    assert "other.example.test" in str(mismatch.value)
    with pytest.raises(CertificateUnknownCA):
        verify_chain(
            leaf.der, [intermediate.der], [issue("Other Root", ca=True).der], "www.example.test", NOW
        )
    with pytest.raises(CertificateUnknownCA):  # the intermediate is missing
        verify_chain(leaf.der, [], [root.der], "www.example.test", NOW)


def test_verify_chain_expired_intermediate() -> None:
    root = issue("Test Root", ca=True, not_before=NOW - 365 * DAY, not_after=NOW + 365 * DAY)
    intermediate = issue(
        "Old Intermediate", issuer=root, ca=True, not_before=NOW - 90 * DAY, not_after=NOW - DAY
    )
    leaf = issue("www.example.test", issuer=intermediate, sans=("www.example.test",))
    with pytest.raises(CertificateExpired, match="Old Intermediate"):
        verify_chain(leaf.der, [intermediate.der], [root.der], "www.example.test", NOW)


def test_self_signed_leaf() -> None:
    leaf = issue("self.test", sans=("self.test",))
    with pytest.raises(CertificateUnknownCA):
        verify_chain(leaf.der, [], [chain()[0].der], "self.test", NOW)
    # Trusting the self-signed leaf itself still fails the web PKI profile (no AKI, used as an
    # end entity), which is "invalid", not "unknown CA".
    with pytest.raises(CertificateInvalid):
        verify_chain(leaf.der, [], [leaf.der], "self.test", NOW)


def test_leaf_not_authorised_for_server_auth_is_invalid() -> None:
    root, intermediate, _ = chain()
    ca_as_leaf = issue("www.example.test", issuer=intermediate, ca=True, sans=("www.example.test",))
    with pytest.raises(CertificateInvalid):
        verify_chain(ca_as_leaf.der, [intermediate.der], [root.der], "www.example.test", NOW)


# -- signatures ------------------------------------------------------------------------------

_RSA = rsa.generate_private_key(public_exponent=65537, key_size=2048)
_SCHEME_KEYS = [
    (0x0403, ec.generate_private_key(ec.SECP256R1())),
    (0x0503, ec.generate_private_key(ec.SECP384R1())),
    (0x0603, ec.generate_private_key(ec.SECP521R1())),
    (0x0804, _RSA),
    (0x0805, _RSA),
    (0x0806, _RSA),
    (0x0401, _RSA),
    (0x0501, _RSA),
    (0x0601, _RSA),
    (0x0201, _RSA),
    (0x0807, ed25519.Ed25519PrivateKey.generate()),
]


@pytest.mark.parametrize(("scheme", "key"), _SCHEME_KEYS, ids=[hex(s) for s, _ in _SCHEME_KEYS])
def test_sign_and_verify(
    scheme: int, key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
) -> None:
    cert = issue("signer", key=key).der
    data = b" " * 64 + b"TLS 1.3, server CertificateVerify\x00" + bytes(32)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    for private in (key, pem, pem.decode()):
        signature = sign(private, scheme, data)
        verify_signature(cert, scheme, data, signature)
    with pytest.raises(SignatureError):
        verify_signature(cert, scheme, data + b"!", signature)
    with pytest.raises(SignatureError):
        verify_signature(cert, scheme, data, bytes(len(signature)))


def test_scheme_key_mismatches() -> None:
    p256 = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(SignatureError):
        sign(p256, 0x0804, b"x")  # RSA-PSS with an EC key
    with pytest.raises(SignatureError):
        sign(p256, 0x0503, b"x")  # TLS 1.3 binds ecdsa_secp384r1_sha384 to P-384
    with pytest.raises(SignatureError):
        sign(p256, 0xFFFF, b"x")
    cert = issue("p256", key=p256).der
    signature = sign(p256, 0x0403, b"x")
    with pytest.raises(SignatureError):
        verify_signature(cert, 0x0807, b"x", signature)
    # TLS 1.2 ServerKeyExchange: the scheme names only the hash, any curve will do.
    from cryptography.hazmat.primitives import hashes

    sha384_sig = p256.sign(b"x", ec.ECDSA(hashes.SHA384()))
    with pytest.raises(SignatureError):
        verify_signature(cert, 0x0503, b"x", sha384_sig)
    verify_signature(cert, 0x0503, b"x", sha384_sig, strict_curve=False)
    with pytest.raises(UsageError):
        sign(b"-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----\n", 0x0403, b"x")


# -- key exchange ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("group", "size"), [(0x001D, 32), (0x001E, 56), (0x0017, 65), (0x0018, 97), (0x0019, 133)]
)
def test_key_exchange_agrees(group: int, size: int) -> None:
    a, a_pub = generate_key_share(group)
    b, b_pub = generate_key_share(group)
    assert len(a_pub) == len(b_pub) == size
    secret = shared_secret(group, a, b_pub)
    assert secret == shared_secret(group, b, a_pub)
    assert secret != shared_secret(group, a, generate_key_share(group)[1])
    with pytest.raises(KeyExchangeError):
        shared_secret(group, a, b_pub[:-1])


def test_bad_key_shares() -> None:
    x, _ = generate_key_share(0x001D)
    with pytest.raises(KeyExchangeError):
        shared_secret(0x001D, x, bytes(32))  # low-order point: all-zero shared secret (RFC 8446 7.4.2)
    p, p_pub = generate_key_share(0x0017)
    _, other = generate_key_share(0x0017)
    off_curve = other[:-1] + bytes(((other[-1] ^ 1),))
    with pytest.raises(KeyExchangeError):
        shared_secret(0x0017, p, off_curve)
    compressed = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), other).public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.CompressedPoint
    )
    with pytest.raises(KeyExchangeError):
        shared_secret(0x0017, p, compressed)
    with pytest.raises(UsageError):
        shared_secret(0x0018, p, p_pub)
    with pytest.raises(UsageError):
        generate_key_share(0x0100)
