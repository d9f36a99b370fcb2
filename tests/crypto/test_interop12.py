"""TLS 1.2 PRF, key block and record protection against OpenSSL.

openssl s_server/s_client connect through a recording relay; with the master secret from the key
log we derive the key block, decrypt both Finished messages and the first application data in
each direction, check verify_data over the transcript, and re-seal records byte for byte. For RSA
key transport we also decrypt the pre-master secret with the server key and derive the master
secret ourselves (extended or not) to compare with OpenSSL's. A Python ssl (OpenSSL) pair in
memory covers the non-EMS, MAC-then-encrypt case, which the openssl 3.0 CLI cannot switch off.
"""

from __future__ import annotations

import hashlib
import hmac
import ssl
import struct
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from capdebug.crypto.cbc import Tls12CbcProtection
from capdebug.crypto.prf12 import derive_keys12, extended_master_secret, master_secret, verify_data12
from capdebug.crypto.protection import Protection, Tls12AeadProtection, tls12_protection
from capdebug.crypto.record import RecordDirection
from capdebug.crypto.suites import SuiteParams, suite
from capdebug.crypto.x509 import SignatureError, verify_signature
from capdebug.errors import DecryptError
from tests.tools import require

from .peers import (
    REQUEST,
    Record,
    Session,
    extensions,
    first_certificate,
    hello_random,
    make_rsa_identity,
    run_openssl,
    server_hello_suite,
    split_handshake,
    split_records,
)

_CCS, _ALERT, _HANDSHAKE, _APPLICATION_DATA = 20, 21, 22, 23
_EXT_ETM, _EXT_EMS = 0x0016, 0x0017

CASES = [
    ("ECDHE-RSA-AES128-GCM-SHA256", 0xC02F, []),
    ("ECDHE-RSA-AES256-GCM-SHA384", 0xC030, []),
    ("ECDHE-RSA-CHACHA20-POLY1305", 0xCCA8, []),
    ("DHE-RSA-AES128-GCM-SHA256", 0x009E, []),
    ("AES128-CCM", 0xC09C, []),
    ("AES256-CCM8", 0xC0A1, []),
    ("AES128-SHA", 0x002F, []),
    ("AES128-SHA", 0x002F, ["-no_etm"]),
    ("AES256-SHA256", 0x003D, []),
    ("ECDHE-RSA-AES256-SHA384", 0xC028, ["-no_etm"]),
    ("ECDHE-RSA-AES256-SHA384", 0xC028, []),
]


@dataclass
class Flow:
    """One direction: plaintext handshake messages before ChangeCipherSpec, protected records after."""

    handshake: list[bytes]
    protected: list[Record]


def _flow(records: list[Record]) -> Flow:
    ccs = next(i for i, r in enumerate(records) if r.type == _CCS)
    plain = b"".join(r.fragment for r in records[:ccs] if r.type == _HANDSHAKE)
    return Flow(split_handshake(plain), records[ccs + 1 :])


def _check(session: Session, code: int, server_key: rsa.RSAPrivateKey | None) -> None:
    params = suite(code)
    assert params is not None
    client, server = _flow(session.client_records()), _flow(session.server_records())
    client_hello, *client_flight = client.handshake
    server_hello = server.handshake[0]
    assert server_hello_suite(server_hello) == code
    client_random, server_random = hello_random(client_hello), hello_random(server_hello)
    assert session.client_random_in_keylog == client_random
    master = session.keylog["CLIENT_RANDOM"]
    sh_extensions = extensions(server_hello)
    ems, etm = _EXT_EMS in sh_extensions, _EXT_ETM in sh_extensions
    hash_cls = hashlib.sha384 if params.hash_name == "sha384" else hashlib.sha256

    # Server flight before CCS: ServerHello..ServerHelloDone, then (after client Finished) an
    # optional NewSessionTicket (RFC 5077 section 3.3), which the server Finished covers.
    done = next(i for i, m in enumerate(server.handshake) if m[0] == 14)
    first_flight, tickets = server.handshake[: done + 1], server.handshake[done + 1 :]
    transcript = hash_cls(client_hello + b"".join(first_flight) + b"".join(client_flight))

    if server_key is not None and params.kx == "RSA":
        # RFC 5246 section 7.4.7.1: the ClientKeyExchange holds the RSA-encrypted pre-master.
        (cke,) = (m for m in client_flight if m[0] == 16)
        pre_master = server_key.decrypt(cke[6:], padding.PKCS1v15())
        assert len(pre_master) == 48
        if ems:
            derived = extended_master_secret(params.hash_name, pre_master, transcript.digest())
        else:
            derived = master_secret(params.hash_name, pre_master, client_random, server_random)
        assert derived == master

    _check_server_key_exchange(params, first_flight, client_random, server_random)
    keys = derive_keys12(params, master, client_random, server_random)
    client_prot = tls12_protection(params, keys, "client", encrypt_then_mac=etm)
    server_prot = tls12_protection(params, keys, "server", encrypt_then_mac=etm)

    client_finished = client_prot.open_record(client.protected[0].header, client.protected[0].fragment, 0)
    assert client_finished[0] == 20
    assert client_finished[4:] == verify_data12(
        params.hash_name, master, "client finished", transcript.digest()
    )
    transcript.update(client_finished + b"".join(tickets))
    server_finished = server_prot.open_record(server.protected[0].header, server.protected[0].fragment, 0)
    assert server_finished[0] == 20
    assert server_finished[4:] == verify_data12(
        params.hash_name, master, b"server finished", transcript.digest()
    )

    client_plain = _open_all(client_prot, client.protected)
    server_plain = _open_all(server_prot, server.protected)
    assert (_APPLICATION_DATA, REQUEST) in client_plain
    assert any(t == _APPLICATION_DATA and p.startswith(b"HTTP/1.0 200 ok") for t, p in server_plain)
    # The record layer both drivers share opens OpenSSL's records the same way, in sequence.
    for prot, records, plain in (
        (client_prot, client.protected, client_plain),
        (server_prot, server.protected, server_plain),
    ):
        direction = RecordDirection(prot, version="1.2", epoch="tls12")
        assert [direction.open(r.header, r.fragment) for r in records] == plain
        assert direction.seq == len(records)

    for prot, records, plain in (
        (client_prot, client.protected, client_plain),
        (server_prot, server.protected, server_plain),
    ):
        for seq, (record, (ctype, data)) in enumerate(zip(records, plain, strict=True)):
            assert _reseal(prot, params, ctype, data, seq, record.fragment) == record.fragment

    _check_rejections(params, client_prot, client.protected[1])


def _check_server_key_exchange(
    params: SuiteParams, flight: list[bytes], client_random: bytes, server_random: bytes
) -> None:
    """ServerKeyExchange signature (RFC 5246 section 7.4.3, RFC 8422 section 5.4) over
    client_random + server_random + the server's (EC)DH parameters."""
    ske = [m for m in flight if m[0] == 12]
    if params.kx == "RSA":
        assert not ske
        return
    (message,) = ske
    body = message[4:]
    if params.kx == "ECDHE":
        end = 3 + 1 + body[3]  # curve_type, named_curve, opaque point<1..2^8-1>
    else:
        end = 0
        for _ in range(3):  # dh_p, dh_g, dh_Ys, each opaque<1..2^16-1>
            end += 2 + int.from_bytes(body[end : end + 2], "big")
    scheme = int.from_bytes(body[end : end + 2], "big")
    signature = body[end + 4 :]
    assert len(signature) == int.from_bytes(body[end + 2 : end + 4], "big")
    leaf = first_certificate(next(m for m in flight if m[0] == 11), tls13=False)
    signed = client_random + server_random + body[:end]
    verify_signature(leaf, scheme, signed, signature, strict_curve=False)
    with pytest.raises(SignatureError):
        verify_signature(
            leaf, scheme, server_random + client_random + body[:end], signature, strict_curve=False
        )


def _open_all(prot: Protection, records: list[Record]) -> list[tuple[int, bytes]]:
    return [(r.type, prot.open_record(r.header, r.fragment, seq)) for seq, r in enumerate(records)]


def _reseal(
    prot: Protection, params: SuiteParams, ctype: int, data: bytes, seq: int, fragment: bytes
) -> bytes:
    """Seal with the peer's own explicit nonce or IV: the result must be the peer's fragment."""
    if isinstance(prot, Tls12CbcProtection):
        return prot.seal(ctype, 0x0303, data, seq, iv=fragment[:16])
    assert isinstance(prot, Tls12AeadProtection)
    if params.record_iv_len:
        return prot.seal(ctype, 0x0303, data, seq, explicit_nonce=fragment[:8])
    return prot.seal(ctype, 0x0303, data, seq)


def _check_rejections(params: SuiteParams, prot: Protection, record: Record) -> None:
    assert prot.open_record(record.header, record.fragment, 1)
    with pytest.raises(DecryptError):
        prot.open_record(record.header, record.fragment, 2)
    for position in (0, len(record.fragment) // 2, len(record.fragment) - 1):
        flipped = bytearray(record.fragment)
        flipped[position] ^= 0x80
        with pytest.raises(DecryptError):
            prot.open_record(record.header, bytes(flipped), 1)
    wrong_type = bytes((_ALERT,)) + record.header[1:]
    wrong_version = record.header[:2] + bytes((record.header[2] ^ 1,)) + record.header[3:]
    for header in (wrong_type, wrong_version):  # both are in the AAD / MAC input
        with pytest.raises(DecryptError):
            prot.open_record(header, record.fragment, 1)
    with pytest.raises(DecryptError):
        prot.open_record(record.header, record.fragment[: params.record_iv_len + 3], 1)


@pytest.mark.tools
@pytest.mark.parametrize(("cipher", "code", "extra"), CASES, ids=[c + "".join(e) for c, _, e in CASES])
def test_openssl_tls12(tmp_path: Path, cipher: str, code: int, extra: list[str]) -> None:
    require("openssl")
    args = ["-tls1_2", "-cipher", cipher, *extra]
    session = run_openssl(tmp_path, args, args)
    if cipher.startswith("AES") and "SHA" in cipher:
        expect_etm = "-no_etm" not in extra
        assert (_EXT_ETM in extensions(_flow(session.server_records()).handshake[0])) == expect_etm
    _check(session, code, session.server_key)


# -- Python ssl in memory: no extended master secret, no encrypt-then-mac ------------------------

_OP_NO_EXTENDED_MASTER_SECRET = 1 << 0  # OpenSSL's SSL_OP_NO_EXTENDED_MASTER_SECRET
_OP_NO_ENCRYPT_THEN_MAC = 1 << 19  # SSL_OP_NO_ENCRYPT_THEN_MAC


def _python_pair(tmp_path: Path, cipher: str) -> tuple[Session, rsa.RSAPrivateKey]:
    cert, key_file, key = make_rsa_identity(tmp_path)
    keylog = tmp_path / "py-keylog.txt"
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(cert, key_file)
    client_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client_ctx.check_hostname = False
    client_ctx.verify_mode = ssl.CERT_NONE
    client_ctx.keylog_filename = str(keylog)
    for ctx in (server_ctx, client_ctx):
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        ctx.set_ciphers(cipher)
        ctx.options |= _OP_NO_EXTENDED_MASTER_SECRET | _OP_NO_ENCRYPT_THEN_MAC | ssl.OP_NO_TICKET
    bios = [ssl.MemoryBIO() for _ in range(4)]
    client = client_ctx.wrap_bio(bios[0], bios[1], server_side=False)
    server = server_ctx.wrap_bio(bios[2], bios[3], server_side=True)
    c2s, s2c = bytearray(), bytearray()

    def pump() -> None:
        data = bios[1].read()
        c2s.extend(data)
        bios[2].write(data)
        data = bios[3].read()
        s2c.extend(data)
        bios[0].write(data)

    done = {client: False, server: False}
    for _ in range(20):
        for end in (client, server):
            if not done[end]:
                try:
                    end.do_handshake()
                    done[end] = True
                except ssl.SSLWantReadError:
                    pass
        pump()
        if all(done.values()):
            break
    assert all(done.values())
    client.write(REQUEST)
    pump()
    assert server.read(len(REQUEST)) == REQUEST
    server.write(b"HTTP/1.0 200 ok\r\n\r\n")
    pump()
    assert client.read(100).startswith(b"HTTP/1.0 200 ok")
    lines = [line.split() for line in keylog.read_text().splitlines() if line.startswith("CLIENT_RANDOM")]
    ((_, client_random, secret),) = lines
    session = Session(
        bytes(c2s), bytes(s2c), {"CLIENT_RANDOM": bytes.fromhex(secret)}, bytes.fromhex(client_random)
    )
    return session, key


@pytest.mark.parametrize(("cipher", "code"), [("AES128-SHA", 0x002F), ("AES256-GCM-SHA384", 0x009D)])
def test_python_ssl_without_ems_and_etm(tmp_path: Path, cipher: str, code: int) -> None:
    session, key = _python_pair(tmp_path, cipher)
    server_hello = split_handshake(split_records(session.server_to_client)[0].fragment)[0]
    assert _EXT_EMS not in extensions(server_hello) and _EXT_ETM not in extensions(server_hello)
    _check(session, code, key)


def test_cbc_seal_open_round_trip_and_padding() -> None:
    """Our own seal/open for every CBC shape, including a malformed padding the MAC covers."""
    for code in (0x002F, 0x003D, 0xC028):
        params = suite(code)
        assert params is not None
        key, mac_key = bytes(range(params.key_len)), bytes(range(100, 100 + params.mac_len))
        for etm in (False, True):
            prot = Tls12CbcProtection(params, key, mac_key, etm)
            for size in (0, 1, 15, 16, 17, 1000):
                data = bytes(size)
                fragment = prot.seal(_APPLICATION_DATA, 0x0303, data, 7)
                assert len(fragment) % 16 == (params.mac_len if etm else 0) % 16
                assert prot.open(_APPLICATION_DATA, 0x0303, fragment, 7) == data
                with pytest.raises(DecryptError):
                    prot.open(_APPLICATION_DATA, 0x0303, fragment, 8)
    # MAC-then-encrypt with a valid MAC: consistent padding opens, inconsistent padding does not.
    params = suite(0x002F)
    assert params is not None
    prot = Tls12CbcProtection(params, bytes(16), bytes(20), False)
    content = b"abc"
    mac = hmac.new(bytes(20), struct.pack(">QBHH", 0, 23, 0x0303, len(content)) + content, "sha1").digest()
    for padding_bytes, ok in (
        (b"\x08" * 9, True),
        (b"\x07" * 8 + b"\x08", False),
        (b"\x08" * 8 + b"\x09", False),
    ):
        encryptor = Cipher(algorithms.AES(bytes(16)), modes.CBC(bytes(16))).encryptor()
        fragment = bytes(16) + encryptor.update(content + mac + padding_bytes) + encryptor.finalize()
        if ok:
            assert prot.open(23, 0x0303, fragment, 0) == content
        else:
            with pytest.raises(DecryptError):
                prot.open(23, 0x0303, fragment, 0)
