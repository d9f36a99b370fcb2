"""RFC 8448 section 4, "Resumed 0-RTT Handshake", reproduced with the engine's pieces: the PSK
binder (tls/psk.py), the early secret, the 0-RTT record under client_early_traffic_secret,
the handshake and application secrets (each proven by the RFC's protected records opening under
them with the shared record layer), EndOfEarlyData and both Finished values.

Source of the hex: the section 4 "complete record" lines and the ephemeral x25519 keys, as
stored in randombit/botan ``src/tests/data/tls_13_rfc8448/transcripts.vec``, section
``[Resumed_0RTT_Handshake]`` (the keys are the last 32 bytes of each side's RNG pool there, the
RFC's "create an ephemeral x25519 key pair" private keys); the PSK and the resumed early secret
are section 3's (tests/crypto/rfc8448_schedule_vectors.py).
"""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric import x25519

from capdebug._buffer import Buffer
from capdebug.crypto.record import RecordDirection
from capdebug.crypto.schedule13 import KeySchedule, Transcript, finished_verify_data
from capdebug.crypto.suites import SUITES
from capdebug.tls.psk import _binder
from capdebug.wire import extensions as wx
from capdebug.wire.constants import ContentType, ExtensionType
from capdebug.wire.handshake import ClientHello, ServerHello, pull_handshake
from tests.crypto import rfc8448_schedule_vectors as s3


def _hex(text: str) -> bytes:
    return bytes.fromhex("".join(text.split()))


TICKET = _hex(
    "2c035d829359ee5ff7af4ec900000000262a6494dc486d2c8a34cb33fa90bf1b0070ad3c498883c9367c09a2be785abc"
    "55cd226097a3a982117283f82a03a143efd3ff5dd36d64e861be7fd61d2827db279cce145077d454a3664d4e6da4d29e"
    "e03725a6a4dafcd0fc67d2aea70529513e3da2677fa5906c5b3f7d8f92f228bda40dda721470f9fbf297b5aea617646f"
    "ac5c03272e970727c621a79141ef5f7de6505e5bfbc388e93343694093934ae4d357"
)
BINDER = _hex("3add4fb2d8fdf822a0ca3cf7678ef5e88dae990141c5924d57bb6fa31b9e5f9d")
# The record line, in its parts: up to the padding extension, 87 bytes of padding (RFC 7685),
# then pre_shared_key: one identity (the ticket, obfuscated age 0xfad6aacb) and one binder.
CLIENT_HELLO_RECORD = (
    _hex(
        "1603010200010001fc03031bc3ceb6bbe39cff938355b5a50adb6db21b7a6af649d7b4bc419d7876487d9500000613"
        "0113031302010001cd0000000b0009000006736572766572ff01000100000a00140012001d001700180019010001010102"
        "01030104003300260024001d0020e4ffb68ac05f8d96c99da26698346c6be16482badddafe051a66b4f18d668f0b002a"
        "0000002b0003020304000d0020001e040305030603020308040805080604010501060102010402050206020202002d00"
        "020101001c00024001"
    )
    + _hex("00150057")
    + bytes(87)
    + _hex("002900dd00b800b2")
    + TICKET
    + _hex("fad6aacb002120")
    + BINDER
)
EARLY_APPLICATION_DATA = b"ABCDEF"
EARLY_DATA_RECORD = _hex("1703030017ab1df420e75c457a7cc5d2844f76d5aee4b4edbf049be0")
SERVER_HELLO = _hex(
    "0200005c03033ccfd2dec890222763472ae8136777c9d7358777bb66e91ea5122495f559ea2d001301000034002900"
    "02000000330024001d0020121761ee42c333e1b9e77b60dd57c2053cd94512ab47f115e86eff50942cea31002b00020304"
)
SERVER_FLIGHT_RECORD = _hex(
    "1703030061dc48237b4b879f50d0d4d262ea8b4716eb40ddc1eb957e11126e8a7149c2d012d37a7115957e64ce30008b"
    "9e0323f2c05a9c1c77b4f37849a695ab255060a33fee770ca95cb8486bfd0843b87024865ca35cc41c4e515c64dcb136"
    "9f98635bc7a5"
)
ENCRYPTED_EXTENSIONS = _hex(
    "080000280026000a00140012001d00170018001901000101010201030104001c0002400100000000002a0000"
)
SERVER_FINISHED = _hex("1400002048d3e0e1b3d907c6acff145e16090388c77b05c050b634ab1a88bbd0dd1a34b2")
END_OF_EARLY_DATA_RECORD = _hex("1703030015aca6fc944841298df99593725f9bf9754429b12f09")
CLIENT_FINISHED_RECORD = _hex(
    "170303003500f8b467d14cf22a4b3f0b6ae0d8e6cc8d08e0db3515ef5c2bdf1922eafbb70009964716d834fb70c3d2a5"
    "6c5b1f5f6bdba6c333cf"
)
APPLICATION_DATA = bytes(range(50))
CLIENT_APPLICATION_RECORD = _hex(
    "1703030043b1cebce242aa201be9ae5e1cb2a9aa4b33d4e866af1edb068919237741aa031d7a74d491c99b9d4e232b74"
    "206bc6fbaa04fe78be44a9b4f54320a17eb76992afac3103"
)
SERVER_APPLICATION_RECORD = _hex(
    "1703030043275e9f20acff57bc000657d3867df039cccf79047884cf75771746f740b5a83f462a0954c3581393a203a2"
    "5a7dd14141ef1a37900cdb62ff62dee1ba39ab2590cbf194"
)
CLIENT_CLOSE_NOTIFY = _hex("17030300130facce3246bdfc6369838d6a82ae6de5d422dc")
SERVER_CLOSE_NOTIFY = _hex("17030300135b18af444e8e1eec7158fb62d8f2577d37ba5d")
CLIENT_X25519_PRIVATE = _hex("bff91188283846dd6a2134ef7180ca2b0b14fb10dce707b5098c0dddc813b2df")
SERVER_X25519_PRIVATE = _hex("de5b4476e7b490b2652d338acbf2948066f255f9440e23b98fc69835298dc107")

SUITE = SUITES[0x1301]
HASH = SUITE.hash_name


def _open(direction: RecordDirection, record: bytes) -> tuple[int, bytes]:
    content_type, content = direction.open(record[:5], record[5:])
    return content_type, bytes(content)


def _client_hello() -> tuple[bytes, ClientHello]:
    raw = CLIENT_HELLO_RECORD[5:]
    msg = pull_handshake(Buffer(raw))
    assert isinstance(msg, ClientHello)
    return raw, msg


def test_binder_is_the_engines() -> None:
    raw, hello = _client_hello()
    data = wx.ext(hello, ExtensionType.pre_shared_key)
    assert data is not None and hello.extensions[-1].type == ExtensionType.pre_shared_key
    offered = wx.pull_offered_psks(data)
    truncated = raw[: len(raw) - wx.binders_size(offered)]
    assert _binder(HASH, s3.RESUMPTION_PSK, None, truncated) == offered.binders[0]
    assert KeySchedule(HASH, s3.RESUMPTION_PSK).early_secret == s3.RESUMED_EARLY_SECRET


def _transcript(*messages: bytes) -> bytes:
    t = Transcript(HASH)
    for m in messages:
        t.update(m)
    return t.digest()


def test_the_whole_resumed_0rtt_handshake() -> None:
    ch, _ = _client_hello()
    schedule = KeySchedule(HASH, s3.RESUMPTION_PSK)
    early = schedule.client_early_traffic_secret(_transcript(ch))
    early_rx = RecordDirection.tls13(SUITE, early, "early")
    assert _open(early_rx, EARLY_DATA_RECORD) == (ContentType.application_data, EARLY_APPLICATION_DATA)

    sh = pull_handshake(Buffer(SERVER_HELLO))
    assert isinstance(sh, ServerHello)
    share = wx.pull_key_share_server(wx.ext(sh, ExtensionType.key_share) or b"")
    client_key = x25519.X25519PrivateKey.from_private_bytes(CLIENT_X25519_PRIVATE)
    server_key = x25519.X25519PrivateKey.from_private_bytes(SERVER_X25519_PRIVATE)
    shared = client_key.exchange(x25519.X25519PublicKey.from_public_bytes(share.key_exchange))
    assert shared == server_key.exchange(client_key.public_key())
    schedule.handshake(shared)
    hello_hash = _transcript(ch, SERVER_HELLO)
    server_hs = schedule.server_handshake_traffic_secret(hello_hash)
    client_hs = schedule.client_handshake_traffic_secret(hello_hash)
    kind, flight = _open(RecordDirection.tls13(SUITE, server_hs, "handshake"), SERVER_FLIGHT_RECORD)
    assert kind == ContentType.handshake and flight == ENCRYPTED_EXTENSIONS + SERVER_FINISHED
    assert SERVER_FINISHED[4:] == finished_verify_data(
        HASH, server_hs, _transcript(ch, SERVER_HELLO, ENCRYPTED_EXTENSIONS)
    )

    # The client's EndOfEarlyData is the second record under the early key (RFC 8446 4.5).
    kind, eoed = _open(early_rx, END_OF_EARLY_DATA_RECORD)
    assert (kind, eoed) == (ContentType.handshake, b"\x05\x00\x00\x00")
    kind, client_finished = _open(
        RecordDirection.tls13(SUITE, client_hs, "handshake"), CLIENT_FINISHED_RECORD
    )
    assert kind == ContentType.handshake
    assert client_finished[4:] == finished_verify_data(
        HASH, client_hs, _transcript(ch, SERVER_HELLO, ENCRYPTED_EXTENSIONS, SERVER_FINISHED, eoed)
    )

    schedule.master()
    server_finished_hash = _transcript(ch, SERVER_HELLO, ENCRYPTED_EXTENSIONS, SERVER_FINISHED)
    client_ap = RecordDirection.tls13(
        SUITE, schedule.client_application_traffic_secret_0(server_finished_hash), "application"
    )
    server_ap = RecordDirection.tls13(
        SUITE, schedule.server_application_traffic_secret_0(server_finished_hash), "application"
    )
    assert _open(client_ap, CLIENT_APPLICATION_RECORD) == (ContentType.application_data, APPLICATION_DATA)
    assert _open(server_ap, SERVER_APPLICATION_RECORD) == (ContentType.application_data, APPLICATION_DATA)
    assert _open(client_ap, CLIENT_CLOSE_NOTIFY) == (ContentType.alert, b"\x01\x00")
    assert _open(server_ap, SERVER_CLOSE_NOTIFY) == (ContentType.alert, b"\x01\x00")
