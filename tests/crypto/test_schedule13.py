"""HKDF, HKDF-Expand-Label, the key schedule's stages and the transcript hash.

The full schedule is checked against OpenSSL in test_interop13.py; here: RFC 5869 and RFC 8448
values, an independent HKDF (cryptography's), and the parts a handshake with OpenSSL cannot reach.
"""

from __future__ import annotations

import hashlib
import struct

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF, HKDFExpand

from capdebug.crypto.protection import Tls13Protection
from capdebug.crypto.record import RecordDirection
from capdebug.crypto.schedule13 import (
    KeySchedule,
    Transcript,
    derive_secret,
    hkdf_expand,
    hkdf_expand_label,
    hkdf_extract,
    next_traffic_secret,
    resumption_psk,
    traffic_keys,
)
from capdebug.crypto.suites import SUITES, suite
from capdebug.errors import CryptoError, DecryptError, UsageError

_HASH = {"sha256": hashes.SHA256, "sha384": hashes.SHA384}


def test_rfc5869_case_1() -> None:
    # RFC 5869 appendix A.1.
    ikm = bytes([0x0B] * 22)
    salt = bytes(range(13))
    info = bytes(range(0xF0, 0xFA))
    prk = hkdf_extract("sha256", salt, ikm)
    assert prk.hex() == "077709362c2e32df0ddc3f0dc47bba6390b6c73bb50f9c3122ec844ad7c2b3e5"
    okm = hkdf_expand("sha256", prk, info, 42)
    assert okm.hex() == (
        "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"
    )


@pytest.mark.parametrize("hash_name", ["sha256", "sha384"])
@pytest.mark.parametrize("length", [1, 12, 32, 48, 100, 255])
def test_hkdf_matches_cryptography(hash_name: str, length: int) -> None:
    salt, ikm, info = b"salt" * 5, bytes(range(40)), b"context"
    ours = hkdf_expand(
        "sha256" if hash_name == "sha256" else "sha384", hkdf_extract(hash_name, salt, ikm), info, length
    )
    theirs = HKDF(_HASH[hash_name](), length, salt, info).derive(ikm)
    assert ours == theirs


def test_expand_label_struct() -> None:
    # RFC 8446 section 7.1: HkdfLabel = uint16 length, opaque label<7..255> ("tls13 " + label),
    # opaque context<0..255>.
    secret = bytes(range(32))
    info = struct.pack(">HB", 16, 9) + b"tls13 key" + b"\x03abc"
    assert hkdf_expand_label("sha256", secret, b"key", b"abc", 16) == HKDFExpand(
        hashes.SHA256(), 16, info
    ).derive(secret)
    with pytest.raises(UsageError):
        hkdf_expand_label("sha256", secret, b"x" * 250, b"", 16)
    with pytest.raises(UsageError):
        hkdf_expand("sha256", secret, b"", 255 * 32 + 1)
    with pytest.raises(UsageError):
        hkdf_extract("md5", b"", b"")


def test_rfc8448_early_secret() -> None:
    # RFC 8448 section 3 (Simple 1-RTT Handshake): early secret without a PSK, and the salt of
    # the handshake secret, Derive-Secret(early, "derived", "").
    schedule = KeySchedule("sha256")
    assert schedule.early_secret.hex() == "33ad0a1c607ec03b09e6cd9893680ce210adf300aa1f2660e1b22e10f170f92a"
    derived = derive_secret("sha256", schedule.early_secret, b"derived", hashlib.sha256(b"").digest())
    assert derived.hex() == "6f2615a108c702c5678f54fc9dbab69716c076189c48250cebeac3576c3611ba"


def test_schedule_stages_are_enforced() -> None:
    schedule = KeySchedule("sha384", b"\x01" * 48)
    assert len(schedule.binder_key(external=False)) == 48
    assert schedule.binder_key(external=False) != schedule.binder_key(external=True)
    h = hashlib.sha384(b"hello").digest()
    early = schedule.client_early_traffic_secret(h)
    assert early != schedule.early_exporter_master_secret(h)
    with pytest.raises(CryptoError):
        schedule.client_handshake_traffic_secret(h)
    with pytest.raises(CryptoError):
        schedule.master()
    schedule.handshake(b"\x02" * 48)
    with pytest.raises(CryptoError):
        schedule.client_early_traffic_secret(h)
    with pytest.raises(CryptoError):
        schedule.handshake(None)
    assert schedule.client_handshake_traffic_secret(h) != schedule.server_handshake_traffic_secret(h)
    with pytest.raises(CryptoError):
        schedule.client_application_traffic_secret_0(h)
    schedule.master()
    secrets = {
        schedule.client_application_traffic_secret_0(h),
        schedule.server_application_traffic_secret_0(h),
        schedule.exporter_master_secret(h),
        schedule.resumption_master_secret(h),
    }
    assert len(secrets) == 4
    assert "01010101" not in repr(schedule) and "master" in repr(schedule)


def test_psk_changes_every_secret() -> None:
    a, b = KeySchedule("sha256"), KeySchedule("sha256", bytes(32))
    # A PSK of HashLen zeros is the same IKM as no PSK (RFC 8446 section 7.1).
    assert a.early_secret == b.early_secret
    assert KeySchedule("sha256", b"\x01" * 32).early_secret != a.early_secret


def test_key_update_and_resumption_labels() -> None:
    secret = bytes(range(32))
    expected = HKDFExpand(hashes.SHA256(), 32, struct.pack(">HB", 32, 17) + b"tls13 traffic upd\x00").derive(
        secret
    )
    assert next_traffic_secret("sha256", secret) == expected
    nonce = b"\x00\x01"
    info = struct.pack(">HB", 32, 16) + b"tls13 resumption" + b"\x02" + nonce
    assert resumption_psk("sha256", secret, nonce) == HKDFExpand(hashes.SHA256(), 32, info).derive(secret)
    # RecordDirection.key_update() uses that secret: a record sealed with generation 1 opens
    # only there.
    params = suite(0x1303)
    assert params is not None
    gen0 = RecordDirection.tls13(params, secret, "application")
    gen1 = gen0.key_update()
    assert (gen1.generation, gen1.traffic_secret, gen1.seq) == (1, expected, 0)
    record = Tls13Protection(params, expected).seal(b"hello\x17", 0)
    assert gen1.open(record[:5], record[5:]) == (0x17, b"hello")
    with pytest.raises(DecryptError):
        gen0.open(record[:5], record[5:])


def test_traffic_keys_lengths() -> None:
    for params in SUITES.values():
        if params.version == "1.3":
            key, iv = traffic_keys(params.hash_name, bytes(params.hash_len), params.key_len, params.iv_len)
            assert (len(key), len(iv)) == (params.key_len, 12)


def test_transcript_digest_does_not_finalise_and_hrr() -> None:
    ch1, hrr, ch2 = b"\x01\x00\x00\x02ab", b"\x02\x00\x00\x01c", b"\x01\x00\x00\x01d"
    t = Transcript("sha256")
    t.update(ch1)
    assert t.digest() == t.digest() == hashlib.sha256(ch1).digest()
    copy = t.copy()
    t.hello_retry_request()
    t.update(hrr)
    t.update(memoryview(ch2))
    # RFC 8446 section 4.4.1: message_hash (254), uint24 length HashLen, Hash(ClientHello1).
    expected = hashlib.sha256(b"\xfe\x00\x00\x20" + hashlib.sha256(ch1).digest() + hrr + ch2).digest()
    assert t.digest() == expected
    assert copy.digest() == hashlib.sha256(ch1).digest()
    t384 = Transcript("sha384", ch1)
    t384.hello_retry_request()
    assert t384.digest() == hashlib.sha384(b"\xfe\x00\x00\x30" + hashlib.sha384(ch1).digest()).digest()
