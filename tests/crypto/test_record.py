"""The record-direction object shared by the engine and the decoder (crypto/record.py).

Round trips on every suite (TLS 1.3 AEAD, TLS 1.2 AEAD and CBC through the protection classes),
opening at an explicit sequence number without changing state, the 2^64 sequence limit, and each
size limit of RFC 8446 5.1/5.2/5.4 and RFC 5246 6.2 with its named error.
"""

from __future__ import annotations

import pytest

from capdebug.crypto.prf12 import derive_keys12
from capdebug.crypto.protection import Tls12AeadProtection, Tls13Protection, tls12_protection
from capdebug.crypto.record import SEQUENCE_LIMIT, RecordDirection, RecordOverflow, SequenceOverflow
from capdebug.crypto.schedule13 import next_traffic_secret
from capdebug.crypto.suites import SUITES, SuiteParams
from capdebug.errors import DecodeError, DecryptError, UsageError
from capdebug.wire.record import (
    MAX_CIPHERTEXT_LENGTH,
    MAX_CIPHERTEXT_LENGTH_TLS13,
    MAX_PLAINTEXT_LENGTH,
    frame_records,
)

_HANDSHAKE, _ALERT, _APPLICATION_DATA = 22, 21, 23
SUITES13 = [p for p in SUITES.values() if p.version == "1.3"]
SUITES12 = [p for p in SUITES.values() if p.version == "1.2"]


def _pair13(params: SuiteParams) -> tuple[RecordDirection, RecordDirection]:
    secret = bytes(range(params.hash_len))
    return (
        RecordDirection.tls13(params, secret, "application"),
        RecordDirection.tls13(params, secret, "application"),
    )


def _pair12(params: SuiteParams, etm: bool = False) -> tuple[RecordDirection, RecordDirection]:
    keys = derive_keys12(params, bytes(48), bytes(32), bytes(range(32)))

    def one() -> RecordDirection:
        prot = tls12_protection(params, keys, "client", encrypt_then_mac=etm)
        return RecordDirection(prot, version="1.2", epoch="tls12")

    return one(), one()


def _split(record: bytes) -> tuple[bytes, bytes]:
    records, consumed = frame_records(record)
    assert consumed == len(record) and len(records) == 1
    return record[:5], record[5:]


@pytest.mark.parametrize("params", SUITES13, ids=lambda p: p.name)
def test_tls13_round_trip(params: SuiteParams) -> None:
    sender, receiver = _pair13(params)
    for n, (ctype, content, padding) in enumerate(
        [(_HANDSHAKE, b"\x14\x00\x00\x00", 0), (_APPLICATION_DATA, b"hello", 11), (_ALERT, b"\x01\x00", 0)]
    ):
        record = sender.seal(ctype, content, padding=padding)
        assert record[0] == _APPLICATION_DATA  # RFC 8446 5.2: the outer type hides the real one
        assert len(record) == 5 + len(content) + 1 + padding + params.tag_len
        assert receiver.open(*_split(record)) == (ctype, content)
        assert (sender.seq, receiver.seq) == (n + 1, n + 1)


@pytest.mark.parametrize("params", SUITES12, ids=lambda p: p.name)
def test_tls12_round_trip(params: SuiteParams) -> None:
    for etm in (False, True) if not params.is_aead else (False,):
        sender, receiver = _pair12(params, etm)
        for n, (ctype, content) in enumerate(
            [(_HANDSHAKE, b"\x14\x00\x00\x0c" + bytes(12)), (23, b"x" * 100)]
        ):
            record = sender.seal(ctype, content)
            assert record[0] == ctype  # TLS 1.2 keeps the content type outside
            assert receiver.open(*_split(record)) == (ctype, content)
            assert receiver.seq == n + 1


def test_plaintext_direction_uses_the_header_codec() -> None:
    clear = RecordDirection()
    record = clear.seal(_HANDSHAKE, b"\x01\x00\x00\x00", legacy_version=0x0301)
    assert record == b"\x16\x03\x01\x00\x04\x01\x00\x00\x00"
    assert clear.open(record[:5], record[5:]) == (_HANDSHAKE, b"\x01\x00\x00\x00")
    assert clear.seq == 0  # plaintext records are not numbered by a key
    assert not clear.protected


def test_open_at_an_explicit_sequence_number_changes_nothing() -> None:
    sender, receiver = _pair13(SUITES[0x1301])
    records = [sender.seal(_APPLICATION_DATA, bytes([i])) for i in range(4)]
    header, fragment = _split(records[2])
    # A passive observer after a gap tries a window of numbers; only the right one opens.
    with pytest.raises(DecryptError):
        receiver.open_at(header, fragment, 0)
    assert receiver.open_at(header, fragment, 2) == (_APPLICATION_DATA, b"\x02")
    assert receiver.seq == 0
    receiver.advance(3)
    assert receiver.open(*_split(records[3])) == (_APPLICATION_DATA, b"\x03")
    assert receiver.seq == 4


def test_a_tampered_tag_fails_and_does_not_advance() -> None:
    for sender, receiver in (_pair13(SUITES[0x1303]), _pair12(SUITES[0xC02F]), _pair12(SUITES[0xC013])):
        record = bytearray(sender.seal(_APPLICATION_DATA, b"attack at dawn"))
        record[-1] ^= 1
        with pytest.raises(DecryptError):
            receiver.open(bytes(record[:5]), bytes(record[5:]))
        assert receiver.seq == 0


def test_sequence_number_never_wraps() -> None:
    sender, receiver = _pair13(SUITES[0x1301])
    sender.seq = SEQUENCE_LIMIT - 1
    last = sender.seal(_APPLICATION_DATA, b"last")  # 2^64 - 1 is the last number (RFC 8446 5.3)
    assert sender.seq == SEQUENCE_LIMIT
    with pytest.raises(SequenceOverflow):
        sender.seal(_APPLICATION_DATA, b"one too many")
    header, fragment = _split(last)
    assert receiver.open_at(header, fragment, SEQUENCE_LIMIT - 1) == (_APPLICATION_DATA, b"last")
    with pytest.raises(SequenceOverflow):
        receiver.open_at(header, fragment, SEQUENCE_LIMIT)
    receiver.seq = SEQUENCE_LIMIT - 1
    receiver.advance()
    with pytest.raises(SequenceOverflow):
        receiver.advance()


def test_plaintext_limit() -> None:
    clear = RecordDirection()
    for direction in (clear, _pair13(SUITES[0x1301])[0], _pair12(SUITES[0xC02F])[0]):
        assert len(direction.seal(_APPLICATION_DATA, bytes(MAX_PLAINTEXT_LENGTH))) > MAX_PLAINTEXT_LENGTH
        with pytest.raises(RecordOverflow) as info:
            direction.seal(_APPLICATION_DATA, bytes(MAX_PLAINTEXT_LENGTH + 1))
        assert info.value.limit == MAX_PLAINTEXT_LENGTH
    header = bytes((_HANDSHAKE, 3, 3)) + (MAX_PLAINTEXT_LENGTH + 1).to_bytes(2, "big")
    with pytest.raises(RecordOverflow) as info:
        clear.open(header, bytes(MAX_PLAINTEXT_LENGTH + 1))
    assert (info.value.length, info.value.limit) == (MAX_PLAINTEXT_LENGTH + 1, MAX_PLAINTEXT_LENGTH)


def test_tls13_padding_is_clipped_to_the_inner_plaintext_limit() -> None:
    params = SUITES[0x1301]
    sender, receiver = _pair13(params)
    record = sender.seal(_APPLICATION_DATA, bytes(MAX_PLAINTEXT_LENGTH - 10), padding=100)
    assert len(record) == 5 + MAX_PLAINTEXT_LENGTH + 1 + params.tag_len  # RFC 8446 5.4
    assert receiver.open(*_split(record))[1] == bytes(MAX_PLAINTEXT_LENGTH - 10)


@pytest.mark.parametrize(
    ("version", "limit"), [("1.3", MAX_CIPHERTEXT_LENGTH_TLS13), ("1.2", MAX_CIPHERTEXT_LENGTH)]
)
def test_ciphertext_limit_per_version(version: str, limit: int) -> None:
    receiver = _pair13(SUITES[0x1301])[1] if version == "1.3" else _pair12(SUITES[0xC02F])[1]
    header = bytes((_APPLICATION_DATA, 3, 3)) + (limit + 1).to_bytes(2, "big")
    with pytest.raises(RecordOverflow) as info:
        receiver.open(header, bytes(limit + 1))
    assert (info.value.length, info.value.limit) == (limit + 1, limit)
    # At the limit the record is not an overflow: it reaches the AEAD and fails there.
    with pytest.raises(DecryptError):
        receiver.open(header[:3] + limit.to_bytes(2, "big"), bytes(limit))
    assert receiver.seq == 0


def test_a_tls12_record_may_be_longer_than_tls13_allows() -> None:
    # RFC 5246 6.2.3 allows 2^14 + 2048: a CBC record with a big MAC and padding passes.
    receiver = _pair12(SUITES[0xC02F])[1]
    length = MAX_CIPHERTEXT_LENGTH_TLS13 + 1
    with pytest.raises(DecryptError):
        receiver.open(bytes((_APPLICATION_DATA, 3, 3)) + length.to_bytes(2, "big"), bytes(length))


def test_tls13_inner_plaintext_limit() -> None:
    params = SUITES[0x1301]
    secret = bytes(range(params.hash_len))
    # A peer that pads past 2^14 + 1 (the protection itself seals whatever it is given).
    record = Tls13Protection(params, secret).seal(bytes(MAX_PLAINTEXT_LENGTH + 1) + b"\x17\x00", 0)
    assert len(record) - 5 <= MAX_CIPHERTEXT_LENGTH_TLS13
    receiver = RecordDirection.tls13(params, secret, "application")
    with pytest.raises(RecordOverflow) as info:
        receiver.open(record[:5], record[5:])
    assert info.value.limit == MAX_PLAINTEXT_LENGTH + 1


def test_tls12_decrypted_plaintext_limit() -> None:
    params = SUITES[0xC02F]
    keys = derive_keys12(params, bytes(48), bytes(32), bytes(range(32)))
    prot = tls12_protection(params, keys, "client")
    assert isinstance(prot, Tls12AeadProtection)
    record = prot.seal_record(_APPLICATION_DATA, bytes(MAX_PLAINTEXT_LENGTH + 1), 0)
    receiver = RecordDirection(tls12_protection(params, keys, "client"), version="1.2")
    with pytest.raises(RecordOverflow):
        receiver.open(record[:5], record[5:])


def test_inner_plaintext_without_a_type_is_a_decode_error() -> None:
    params = SUITES[0x1301]
    secret = bytes(range(params.hash_len))
    record = Tls13Protection(params, secret).seal(bytes(8), 0)
    with pytest.raises(DecodeError):
        RecordDirection.tls13(params, secret, "handshake").open(record[:5], record[5:])


def test_key_update_is_the_next_generation() -> None:
    params = SUITES[0x1302]
    gen0 = RecordDirection.tls13(params, bytes(48), "application")
    gen0.seal(_APPLICATION_DATA, b"before")
    gen1 = gen0.key_update()
    assert (gen1.generation, gen1.seq, gen1.epoch) == (1, 0, "application")
    assert gen1.traffic_secret == next_traffic_secret("sha384", bytes(48))
    assert gen0.seq == 1  # the old direction is left as it was
    record = gen1.seal(_APPLICATION_DATA, b"after")
    assert RecordDirection.tls13(params, gen1.traffic_secret, "x").open(*_split(record))[1] == b"after"
    with pytest.raises(UsageError):
        _pair12(SUITES[0xC02F])[0].key_update()
    with pytest.raises(UsageError):
        RecordDirection().key_update()


def test_overhead_is_what_a_record_adds() -> None:
    assert RecordDirection().overhead == 0
    for sender, _ in (_pair13(SUITES[0x1305]), _pair12(SUITES[0xC02F]), _pair12(SUITES[0xCCA8])):
        record = sender.seal(_APPLICATION_DATA, b"hello")
        assert len(record) - 5 - len(b"hello") == sender.overhead
    cbc = _pair12(SUITES[0xC013])[0]
    assert len(cbc.seal(_APPLICATION_DATA, bytes(11))) - 5 - 11 == cbc.overhead + 1  # + padding
