"""What the TLS 1.2 client and server share (RFC 5246): the transcript, the master secret and
key block, ChangeCipherSpec and Finished, the HandshakeComplete event and the refusal of a
renegotiation.

The key derivations themselves are :mod:`capdebug.crypto.prf12`'s and the record protection is
:class:`~capdebug.crypto.record.RecordDirection`'s: this module only decides when each happens.
"""

from __future__ import annotations

import hmac
from typing import TYPE_CHECKING

from ..crypto.prf12 import derive_keys12, extended_master_secret, master_secret, verify_data12
from ..crypto.protection import tls12_protection
from ..crypto.record import RecordDirection
from ..wire.constants import AlertDescription, ProtocolVersion, SignatureScheme
from ..wire.handshake import Finished, HandshakeMessage
from . import records
from ._common import AD, T, err
from .events import HandshakeComplete, NewSessionTicketReceived, RenegotiationRefused
from .session import Session, TicketState12
from .state import CHANGE_CIPHER_SPEC

if TYPE_CHECKING:
    from .connection import Connection

TLS12 = ProtocolVersion.TLS1_2
VERIFY_DATA_LEN = 12  # RFC 5246 7.4.9 (no suite of ours changes it)


def add(conn: Connection, raw: bytes) -> None:
    """A received message joins the transcript (its hash for Finished and the extended master
    secret; its bytes for a client CertificateVerify, RFC 5246 7.4.8)."""
    assert conn._transcript is not None
    conn._transcript.update(raw)
    conn._hs_messages += raw


def send(conn: Connection, msg: HandshakeMessage) -> None:
    conn._hs_messages += conn._send_handshake(msg)


def derive_keys(conn: Connection, premaster: bytes) -> None:
    """master_secret (RFC 5246 8.1 or RFC 7627 4) and the pending record directions (6.3);
    they take effect at each side's ChangeCipherSpec."""
    suite = conn.suite
    assert suite is not None and conn._transcript is not None
    if conn._ems:
        # RFC 7627 4: session_hash covers the messages up to and including ClientKeyExchange.
        ms = extended_master_secret(suite.hash_name, premaster, conn._transcript.digest())
    else:
        ms = master_secret(suite.hash_name, premaster, conn.client_random, conn.server_random)
    install_master_secret(conn, ms)


def install_master_secret(conn: Connection, ms: bytes) -> None:
    """The pending record directions from a master secret (new or resumed), RFC 5246 6.3."""
    suite = conn.suite
    assert suite is not None
    conn._master_secret = ms
    conn._log_secret("CLIENT_RANDOM", ms)
    keys = derive_keys12(suite, ms, conn.client_random, conn.server_random)
    client = RecordDirection(
        tls12_protection(suite, keys, "client", encrypt_then_mac=conn._etm),
        version="1.2",
        epoch="application",
    )
    server = RecordDirection(
        tls12_protection(suite, keys, "server", encrypt_then_mac=conn._etm),
        version="1.2",
        epoch="application",
    )
    conn._pending_tx, conn._pending_rx = (client, server) if conn.is_client else (server, client)


def send_ccs_and_finished(conn: Connection) -> None:
    """Our ChangeCipherSpec, then our Finished under the new keys (RFC 5246 7.1, 7.4.9)."""
    suite = conn.suite
    assert suite is not None and conn._transcript is not None and conn._pending_tx is not None
    conn._flush_handshake()
    records.send_ccs(conn)
    conn._tx = conn._pending_tx
    conn._pending_tx = None
    if conn._trace.mask & T.KEYS:
        conn._trace.emit(T.KEYS, f"install write key: application ({suite.name})")
    label = b"client finished" if conn.is_client else b"server finished"
    verify = verify_data12(suite.hash_name, conn._master_secret, label, conn._transcript.digest())
    send(conn, Finished(verify))
    conn._flush_handshake()


def on_change_cipher_spec(conn: Connection, body: bytes) -> None:
    """The peer's ChangeCipherSpec: its next record is under the new key (RFC 5246 7.1)."""
    if body != b"\x01":
        raise err(
            "ERR_DECODE", f"ChangeCipherSpec body {body.hex()} (RFC 5246 7.1: one byte, 1)", AD.decode_error
        )
    if conn._hs_in:
        raise err(
            "ERR_UNEXPECTED_MESSAGE",
            "ChangeCipherSpec inside a fragmented handshake message",
            AD.unexpected_message,
        )
    conn._transition(CHANGE_CIPHER_SPEC)
    assert conn._pending_rx is not None  # the table allows CCS only after the key exchange
    conn._rx = conn._pending_rx
    conn._pending_rx = None
    if conn._trace.mask & T.KEYS:
        assert conn.suite is not None
        conn._trace.emit(T.KEYS, f"install read key: application ({conn.suite.name})")


def check_finished(conn: Connection, msg: Finished) -> None:
    suite = conn.suite
    assert suite is not None and conn._transcript is not None
    if len(msg.verify_data) != VERIFY_DATA_LEN:
        raise err(
            "ERR_DECODE",
            f"Finished of {len(msg.verify_data)} bytes (RFC 5246 7.4.9: {VERIFY_DATA_LEN})",
            AD.decode_error,
        )
    label = b"server finished" if conn.is_client else b"client finished"
    expected = verify_data12(suite.hash_name, conn._master_secret, label, conn._transcript.digest())
    if not hmac.compare_digest(expected, msg.verify_data):
        whose = "server" if conn.is_client else "client"
        raise err("ERR_BAD_FINISHED", f"the {whose} Finished does not verify", AD.decrypt_error)


def complete(conn: Connection, scheme: int | None) -> None:
    assert conn.cipher_suite is not None
    conn._events.append(
        HandshakeComplete(
            cipher_suite=conn.cipher_suite,
            group=conn.group,
            alpn=conn.alpn,
            server_name=conn.server_name,
            signature_scheme=SignatureScheme(scheme) if scheme is not None else None,
            peer_certificates=conn.peer_certificates,
            hello_retry=False,
            version=TLS12,
            extended_master_secret=conn._ems,
            encrypt_then_mac=conn._etm,
            resumed=conn._resumed12,
        )
    )
    if conn.is_client and (conn._ticket12 or conn._session_id) and not conn._resumed12:
        # The session to resume later: by ticket (RFC 5077) or by session ID (RFC 5246 7.4.1.2).
        lifetime, ticket = conn._ticket12 or (0, b"")
        session = Session(
            TLS12,
            conn.cipher_suite,
            ticket,
            b"",
            0,
            lifetime,
            None,
            0,
            conn.server_name,
            conn.alpn,
            conn._session_id,
            conn._master_secret,
            conn._ems,
        )
        conn._events.append(NewSessionTicketReceived(lifetime, 0, b"", ticket, b"", session))
    elif not conn.is_client and conn._session_id and not conn._resumed12:
        assert conn.suite is not None
        conn.config.session_cache.put(conn._session_id, state12(conn))


def state12(conn: Connection) -> TicketState12:
    assert conn.cipher_suite is not None
    now = conn._now_ms() or 0
    return TicketState12(conn.cipher_suite, conn._master_secret, conn._ems, now, conn.config.ticket_lifetime)


def refuse_renegotiation(conn: Connection) -> None:
    """RFC 5246 7.2.2 / RFC 5746 4.2, 4.4: a warning no_renegotiation, and carry on."""
    if conn._trace.mask & T.HANDSHAKE:
        conn._trace.emit(T.HANDSHAKE, "renegotiation refused (no_renegotiation)")
    if not conn.send_closed:
        records.send_alert(conn, AlertDescription.no_renegotiation)
    conn._events.append(RenegotiationRefused(by_client=not conn.is_client))
