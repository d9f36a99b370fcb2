"""RFC 8448 section 3, "Simple 1-RTT Handshake", reproduced with capdebug's own key schedule
(capdebug.crypto.schedule13), record protection (capdebug.crypto.protection) and x25519 key
exchange (capdebug.crypto.x509.shared_secret), for TLS_AES_128_GCM_SHA256.

The handshake messages come from tests/wire/rfc8448_vectors.py; the secrets, keys, IVs,
verify_data and protected records from tests/crypto/rfc8448_schedule_vectors.py, whose
docstring says where each value was taken from. Each step starts from the RFC's inputs, not
from our previous output, so one wrong derivation fails one test and says which.
"""

from __future__ import annotations

import hashlib

import pytest
from cryptography.hazmat.primitives.asymmetric import x25519

from capdebug.crypto.protection import Tls13Protection
from capdebug.crypto.schedule13 import (
    KeySchedule,
    Transcript,
    derive_secret,
    finished_key,
    finished_verify_data,
    hkdf_extract,
    resumption_psk,
    traffic_keys,
)
from capdebug.crypto.suites import SuiteParams, suite
from capdebug.crypto.x509 import shared_secret
from capdebug.errors import DecryptError
from tests.crypto import rfc8448_schedule_vectors as v
from tests.wire.rfc8448_vectors import (
    CLIENT_HELLO,
    SERVER_FLIGHT,
    SERVER_FLIGHT_RECORD_HEADER,
    SERVER_HELLO,
    TRANSCRIPT_CH_SF,
    TRANSCRIPT_CH_SH,
)

HASH = "sha256"
X25519 = 0x001D
# RFC 8446 section 5.1 ContentType values, the last octet of a TLSInnerPlaintext.
ALERT, HANDSHAKE, APPLICATION_DATA = 21, 22, 23
CLOSE_NOTIFY = bytes((1, 0))  # AlertLevel warning(1), AlertDescription close_notify(0)


def _suite() -> SuiteParams:
    params = suite(0x1301)
    assert params is not None and params.name == "TLS_AES_128_GCM_SHA256"
    return params


def _messages(flight: bytes) -> list[bytes]:
    """Split back-to-back handshake messages (RFC 8446 section 4: type, uint24 length, body)."""
    out: list[bytes] = []
    pos = 0
    while pos < len(flight):
        end = pos + 4 + int.from_bytes(flight[pos + 1 : pos + 4], "big")
        assert end <= len(flight), "truncated handshake message"
        out.append(flight[pos:end])
        pos = end
    return out


def _server_messages() -> tuple[bytes, bytes, bytes, bytes]:
    ee, cert, cv, fin = _messages(SERVER_FLIGHT)
    assert [m[0] for m in (ee, cert, cv, fin)] == [8, 11, 15, 20]
    return ee, cert, cv, fin


def _transcript(*messages: bytes) -> bytes:
    transcript = Transcript(HASH)
    for message in messages:
        transcript.update(message)
    return transcript.digest()


# -- key exchange ------------------------------------------------------------------------------


def test_x25519_key_pairs_match_the_hellos() -> None:
    # The RFC's public keys follow from its private keys, and are the key_share entries the
    # ClientHello and ServerHello carry (KeyShareEntry: group 0x001d, opaque key<32>).
    for private, public in (
        (v.CLIENT_X25519_PRIVATE, v.CLIENT_X25519_PUBLIC),
        (v.SERVER_X25519_PRIVATE, v.SERVER_X25519_PUBLIC),
    ):
        key = x25519.X25519PrivateKey.from_private_bytes(private)
        assert key.public_key().public_bytes_raw() == public
    assert b"\x00\x1d\x00\x20" + v.CLIENT_X25519_PUBLIC in CLIENT_HELLO
    assert b"\x00\x1d\x00\x20" + v.SERVER_X25519_PUBLIC in SERVER_HELLO


def test_x25519_shared_secret_is_the_handshake_ikm() -> None:
    client = x25519.X25519PrivateKey.from_private_bytes(v.CLIENT_X25519_PRIVATE)
    server = x25519.X25519PrivateKey.from_private_bytes(v.SERVER_X25519_PRIVATE)
    assert shared_secret(X25519, client, v.SERVER_X25519_PUBLIC) == v.ECDHE_SHARED_SECRET
    assert shared_secret(X25519, server, v.CLIENT_X25519_PUBLIC) == v.ECDHE_SHARED_SECRET


# -- key schedule --------------------------------------------------------------------------------


def test_transcript_hashes() -> None:
    ee, cert, cv, fin = _server_messages()
    assert _transcript(CLIENT_HELLO, SERVER_HELLO) == TRANSCRIPT_CH_SH
    assert _transcript(CLIENT_HELLO, SERVER_HELLO, ee, cert, cv, fin) == TRANSCRIPT_CH_SF
    everything = (CLIENT_HELLO, SERVER_HELLO, ee, cert, cv, fin, v.CLIENT_FINISHED)
    assert _transcript(*everything) == v.TRANSCRIPT_CH_CF


def test_extract_and_derived_secrets() -> None:
    empty_hash = hashlib.sha256(b"").digest()
    # {server} extract secret "early": no PSK, so HashLen zeros.
    assert hkdf_extract(HASH, b"", bytes(32)) == v.EARLY_SECRET
    # {server} derive secret for handshake "tls13 derived", then extract "handshake".
    assert derive_secret(HASH, v.EARLY_SECRET, b"derived", empty_hash) == v.DERIVED_FOR_HANDSHAKE
    assert hkdf_extract(HASH, v.DERIVED_FOR_HANDSHAKE, v.ECDHE_SHARED_SECRET) == v.HANDSHAKE_SECRET
    # {server} derive secret for master "tls13 derived", then extract "master".
    assert derive_secret(HASH, v.HANDSHAKE_SECRET, b"derived", empty_hash) == v.DERIVED_FOR_MASTER
    assert hkdf_extract(HASH, v.DERIVED_FOR_MASTER, bytes(32)) == v.MASTER_SECRET


def test_key_schedule_stages() -> None:
    schedule = KeySchedule(HASH)
    assert schedule.early_secret == v.EARLY_SECRET
    schedule.handshake(v.ECDHE_SHARED_SECRET)
    assert schedule.handshake_secret == v.HANDSHAKE_SECRET
    assert schedule.client_handshake_traffic_secret(TRANSCRIPT_CH_SH) == v.CLIENT_HANDSHAKE_TRAFFIC_SECRET
    assert schedule.server_handshake_traffic_secret(TRANSCRIPT_CH_SH) == v.SERVER_HANDSHAKE_TRAFFIC_SECRET
    schedule.master()
    assert schedule.master_secret == v.MASTER_SECRET
    assert (
        schedule.client_application_traffic_secret_0(TRANSCRIPT_CH_SF) == v.CLIENT_APPLICATION_TRAFFIC_SECRET
    )
    assert (
        schedule.server_application_traffic_secret_0(TRANSCRIPT_CH_SF) == v.SERVER_APPLICATION_TRAFFIC_SECRET
    )
    assert schedule.exporter_master_secret(TRANSCRIPT_CH_SF) == v.EXPORTER_MASTER_SECRET
    assert schedule.resumption_master_secret(v.TRANSCRIPT_CH_CF) == v.RESUMPTION_MASTER_SECRET


@pytest.mark.parametrize(
    ("secret", "key", "iv"),
    [
        (v.SERVER_HANDSHAKE_TRAFFIC_SECRET, v.SERVER_HANDSHAKE_KEY, v.SERVER_HANDSHAKE_IV),
        (v.CLIENT_HANDSHAKE_TRAFFIC_SECRET, v.CLIENT_HANDSHAKE_KEY, v.CLIENT_HANDSHAKE_IV),
        (v.SERVER_APPLICATION_TRAFFIC_SECRET, v.SERVER_APPLICATION_KEY, v.SERVER_APPLICATION_IV),
        (v.CLIENT_APPLICATION_TRAFFIC_SECRET, v.CLIENT_APPLICATION_KEY, v.CLIENT_APPLICATION_IV),
    ],
    ids=["server-handshake", "client-handshake", "server-application", "client-application"],
)
def test_traffic_keys(secret: bytes, key: bytes, iv: bytes) -> None:
    params = _suite()
    assert traffic_keys(HASH, secret, params.key_len, params.iv_len) == (key, iv)


# -- Finished --------------------------------------------------------------------------------------


def test_server_finished() -> None:
    ee, cert, cv, fin = _server_messages()
    assert finished_key(HASH, v.SERVER_HANDSHAKE_TRAFFIC_SECRET) == v.SERVER_FINISHED_KEY
    through_cv = _transcript(CLIENT_HELLO, SERVER_HELLO, ee, cert, cv)
    verify_data = finished_verify_data(HASH, v.SERVER_HANDSHAKE_TRAFFIC_SECRET, through_cv)
    assert verify_data == v.SERVER_VERIFY_DATA
    assert fin == b"\x14\x00\x00\x20" + verify_data


def test_client_finished() -> None:
    assert finished_key(HASH, v.CLIENT_HANDSHAKE_TRAFFIC_SECRET) == v.CLIENT_FINISHED_KEY
    verify_data = finished_verify_data(HASH, v.CLIENT_HANDSHAKE_TRAFFIC_SECRET, TRANSCRIPT_CH_SF)
    assert verify_data == v.CLIENT_VERIFY_DATA
    assert v.CLIENT_FINISHED == b"\x14\x00\x00\x20" + verify_data


def test_finished_depends_on_the_transcript() -> None:
    # The client's key over the server's transcript point must not give the client value.
    wrong = finished_verify_data(HASH, v.CLIENT_HANDSHAKE_TRAFFIC_SECRET, TRANSCRIPT_CH_SH)
    assert wrong != v.CLIENT_VERIFY_DATA


# -- record protection -------------------------------------------------------------------------

# (name, traffic secret, sequence number, complete record, TLSInnerPlaintext): every protected
# record of the section 3 handshake, in the order each side sends them. No record is padded.
RECORDS = [
    (
        "server-flight",
        v.SERVER_HANDSHAKE_TRAFFIC_SECRET,
        0,
        v.SERVER_FLIGHT_RECORD,
        SERVER_FLIGHT + bytes((HANDSHAKE,)),
    ),
    (
        "client-finished",
        v.CLIENT_HANDSHAKE_TRAFFIC_SECRET,
        0,
        v.CLIENT_FINISHED_RECORD,
        v.CLIENT_FINISHED + bytes((HANDSHAKE,)),
    ),
    (
        "server-new-session-ticket",
        v.SERVER_APPLICATION_TRAFFIC_SECRET,
        0,
        v.NEW_SESSION_TICKET_RECORD,
        v.NEW_SESSION_TICKET + bytes((HANDSHAKE,)),
    ),
    (
        "client-application-data",
        v.CLIENT_APPLICATION_TRAFFIC_SECRET,
        0,
        v.CLIENT_APPLICATION_DATA_RECORD,
        v.APPLICATION_DATA + bytes((APPLICATION_DATA,)),
    ),
    (
        "server-application-data",
        v.SERVER_APPLICATION_TRAFFIC_SECRET,
        1,
        v.SERVER_APPLICATION_DATA_RECORD,
        v.APPLICATION_DATA + bytes((APPLICATION_DATA,)),
    ),
    (
        "client-close-notify",
        v.CLIENT_APPLICATION_TRAFFIC_SECRET,
        1,
        v.CLIENT_CLOSE_NOTIFY_RECORD,
        CLOSE_NOTIFY + bytes((ALERT,)),
    ),
    (
        "server-close-notify",
        v.SERVER_APPLICATION_TRAFFIC_SECRET,
        2,
        v.SERVER_CLOSE_NOTIFY_RECORD,
        CLOSE_NOTIFY + bytes((ALERT,)),
    ),
]
RECORD_IDS = [r[0] for r in RECORDS]
RECORD_PARAMS = [r[1:] for r in RECORDS]


def test_server_flight_record_header() -> None:
    # Outer type application_data, legacy_record_version 0x0303, length 2 + 657 + 1 + 16.
    assert v.SERVER_FLIGHT_RECORD[:5] == SERVER_FLIGHT_RECORD_HEADER
    assert len(v.SERVER_FLIGHT_RECORD) == 5 + len(SERVER_FLIGHT) + 1 + 16


@pytest.mark.parametrize(("secret", "seq", "record", "inner"), RECORD_PARAMS, ids=RECORD_IDS)
def test_open_rfc_record(secret: bytes, seq: int, record: bytes, inner: bytes) -> None:
    protection = Tls13Protection(_suite(), secret)
    assert protection.open(record[:5], record[5:], seq) == inner
    # The protection object takes memoryviews as the decoder hands them over.
    view = memoryview(record)
    assert protection.open(view[:5], view[5:], seq) == inner


@pytest.mark.parametrize(("secret", "seq", "record", "inner"), RECORD_PARAMS, ids=RECORD_IDS)
def test_seal_gives_rfc_record(secret: bytes, seq: int, record: bytes, inner: bytes) -> None:
    assert Tls13Protection(_suite(), secret).seal(inner, seq) == record


@pytest.mark.parametrize(("secret", "seq", "record", "inner"), RECORD_PARAMS, ids=RECORD_IDS)
def test_rfc_record_fails_with_wrong_seq_or_tampering(
    secret: bytes, seq: int, record: bytes, inner: bytes
) -> None:
    protection = Tls13Protection(_suite(), secret)
    with pytest.raises(DecryptError):
        protection.open(record[:5], record[5:], seq + 1)
    # The header is the AAD (RFC 8446 section 5.2): changing it must fail as well.
    for index in (2, 5, len(record) - 1):
        tampered = bytearray(record)
        tampered[index] ^= 0x01
        with pytest.raises(DecryptError):
            protection.open(bytes(tampered[:5]), bytes(tampered[5:]), seq)


# -- resumption ------------------------------------------------------------------------------------


def test_new_session_ticket_nonce_and_psk() -> None:
    # NewSessionTicket body (RFC 8446 section 4.6.1): ticket_lifetime(4), ticket_age_add(4),
    # ticket_nonce<0..255>, ticket<1..2^16-1>, extensions.
    ticket = v.NEW_SESSION_TICKET
    assert ticket[0] == 4 and int.from_bytes(ticket[1:4], "big") == len(ticket) - 4
    nonce_len = ticket[12]
    nonce = ticket[13 : 13 + nonce_len]
    assert nonce == v.TICKET_NONCE
    psk = resumption_psk(HASH, v.RESUMPTION_MASTER_SECRET, nonce)
    assert psk == v.RESUMPTION_PSK
    # Section 4 resumes with that PSK: its early secret closes the loop.
    assert KeySchedule(HASH, psk).early_secret == v.RESUMED_EARLY_SECRET
