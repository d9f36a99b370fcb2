"""TLS 1.3 0-RTT early data (RFC 8446 2.3, 4.2.10, 4.5).

Client: with a session that allows early data, the first ClientHello carries early_data and
the data follows at once under client_early_traffic_secret (logged as
CLIENT_EARLY_TRAFFIC_SECRET). The early key stays our write key until the server's answer:
accepted (early_data in EncryptedExtensions), EndOfEarlyData closes it after the server's
Finished; rejected, the handshake key takes over and the data is simply lost (reported in
``HandshakeComplete.early_data``).

Server: accepted only for the first identity of a ticket that allows it, with the ticket's suite
and ALPN, never after a HelloRetryRequest, and once per ticket (the single-use ticket store is
the anti-replay, RFC 8446 8.1). Rejected early data is skipped: records that fail to open under
the handshake key (or, after an HRR, protected records before the second ClientHello), up to
a budget (RFC 8446 4.2.10).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..crypto.record import RecordDirection
from ..crypto.schedule13 import KeySchedule, Transcript
from ..crypto.suites import SUITES
from ..wire import extensions as wx
from ..wire.constants import ContentType, ExtensionType, HandshakeType
from ..wire.handshake import ClientHello, EndOfEarlyData
from . import records
from ._common import AD, T, err

if TYPE_CHECKING:
    from .connection import Connection

__all__ = ["REJECTED_BUDGET", "accept", "client_sent_hello", "on_end_of_early_data", "wants_early_data"]

#: Rejected 0-RTT bytes a server skips when it offers no early data itself (RFC 8446 4.2.10
#: lets it use its max_early_data_size; with none configured, a client that tries anyway should
#: still get a full handshake).
REJECTED_BUDGET = 1 << 16


def wants_early_data(conn: Connection) -> bool:
    """Client: offer early_data in this (first) ClientHello?"""
    session = conn._session
    return (
        conn._early_data is not None
        and session is not None
        and session.max_early_data > 0
        and conn._transcript is None  # never in a second ClientHello (RFC 8446 4.2.10)
    )


def client_sent_hello(conn: Connection, hello_bytes: bytes) -> None:
    """After the first ClientHello: the early key, and the early data under it."""
    session = conn._session
    data = conn._early_data
    if session is None or data is None or not conn._offered_early_data:
        return
    params = SUITES[session.cipher_suite]
    transcript = Transcript(params.hash_name)
    transcript.update(hello_bytes)
    secret = KeySchedule(params.hash_name, session.psk).client_early_traffic_secret(transcript.digest())
    conn._log_secret("CLIENT_EARLY_TRAFFIC_SECRET", secret)
    conn._flush_handshake()
    if conn._want_ccs and not conn._ccs_sent:
        records.send_ccs(conn)  # RFC 8446 D.4: right after the ClientHello, before 0-RTT
    conn._tx = RecordDirection.tls13(params, secret, "early")
    if conn._trace.mask & T.KEYS:
        conn._trace.emit(T.KEYS, f"install write key: early ({params.name})")
    data = data[: session.max_early_data]
    step = conn.config.max_fragment
    for i in range(0, len(data), step):
        records.write_record(conn, ContentType.application_data, data[i : i + step])
    conn._early_data_sent = len(data)


def accept(conn: Connection, msg: ClientHello, selected: int | None, second: bool) -> bool:
    """Server: accept the client's early data? Sets up skipping when not."""
    offered = wx.ext(msg, ExtensionType.early_data) is not None
    if not offered:
        return False
    if second:
        raise err("ERR_ILLEGAL_PARAMETER", "early_data in a second ClientHello", AD.illegal_parameter)
    state = conn._ticket_state
    ok = (
        selected == 0
        and state is not None
        and conn.config.max_early_data > 0
        and state.max_early_data > 0
        and state.cipher_suite == conn.cipher_suite
        and state.alpn == (conn.alpn or "")
    )
    if not ok:
        conn._skip_early = conn.config.max_early_data or REJECTED_BUDGET
        if conn._trace.mask & T.HANDSHAKE:
            conn._trace.emit(T.HANDSHAKE, "0-RTT early data rejected; it will be skipped")
        return False
    assert state is not None
    conn._early_budget = min(conn.config.max_early_data, state.max_early_data)
    return True


def install_early_read_key(conn: Connection, client_hello_hash: bytes) -> None:
    assert conn.suite is not None and conn._schedule is not None
    secret = KeySchedule(conn.suite.hash_name, conn._psk).client_early_traffic_secret(client_hello_hash)
    conn._log_secret("CLIENT_EARLY_TRAFFIC_SECRET", secret)
    conn._rx = RecordDirection.tls13(conn.suite, secret, "early")
    if conn._trace.mask & T.KEYS:
        conn._trace.emit(T.KEYS, f"install read key: early ({conn.suite.name})")


def on_early_application_data(conn: Connection, size: int) -> None:
    conn._early_budget -= size
    if conn._early_budget < 0:
        # RFC 8446 4.2.10: more than max_early_data_size is unexpected_message.
        raise err("ERR_TOO_MUCH_EARLY_DATA", "early data beyond max_early_data_size", AD.unexpected_message)


def on_end_of_early_data(conn: Connection, msg: EndOfEarlyData, raw: bytes) -> None:
    assert conn._transcript is not None
    conn._transcript.update(raw)
    conn._transition(HandshakeType.end_of_early_data)
    records.set_read_key(conn, conn._client_hs_secret, "handshake")


def send_end_of_early_data(conn: Connection) -> None:
    """Client, accepted 0-RTT: EndOfEarlyData under the early key, then the handshake key."""
    conn._send_handshake(EndOfEarlyData())
    conn._flush_handshake()
