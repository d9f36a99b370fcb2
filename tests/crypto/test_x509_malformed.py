"""Certificates from the wire may be malformed in ways cryptography reports with exceptions
that are not ValueError; every one must become a CertificateDecodeError (found by fuzzing)."""

from __future__ import annotations

import datetime

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from capdebug.crypto.x509 import CertificateDecodeError, summarize_certificate

_SKI_OID = bytes.fromhex("0603551d0e")  # 2.5.29.14 subjectKeyIdentifier
_EKU_OID = bytes.fromhex("0603551d25")  # 2.5.29.37 extKeyUsage


def _certificate() -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "example.test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.DER)


def test_well_formed_certificate_summarises() -> None:
    assert summarize_certificate(_certificate()).subject == "CN=example.test"


def test_duplicate_extension_is_a_decode_error() -> None:
    der = _certificate()
    assert der.count(_EKU_OID) == 1
    duplicated = der.replace(_EKU_OID, _SKI_OID)  # two subjectKeyIdentifier extensions now
    with pytest.raises(CertificateDecodeError):
        summarize_certificate(duplicated)


def test_invalid_version_is_a_decode_error() -> None:
    der = bytearray(_certificate())
    at = der.index(bytes.fromhex("a003020102"))  # [0] EXPLICIT Version v3 (2)
    der[at + 4] = 7  # no such X.509 version
    with pytest.raises(CertificateDecodeError):
        summarize_certificate(bytes(der))
