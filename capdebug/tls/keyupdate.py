"""KeyUpdate (RFC 8446 4.6.3): our next write key on request, the peer's next read key when it
moves; the derivation is :meth:`~capdebug.crypto.record.RecordDirection.key_update`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..crypto.record import RecordDirection
from ..wire.constants import HandshakeType, KeyUpdateRequest
from ..wire.handshake import KeyUpdate
from ._common import AD, T, err
from .events import KeyUpdateReceived

if TYPE_CHECKING:
    from .connection import Connection


def send(conn: Connection, request: bool) -> None:
    assert conn._tx.protected
    value = KeyUpdateRequest.update_requested if request else KeyUpdateRequest.update_not_requested
    conn._send_handshake(KeyUpdate(value))
    conn._flush_handshake()
    conn._tx = tx = conn._tx.key_update()
    if conn._trace.mask & T.KEYS:
        conn._trace.emit(T.KEYS, f"write key updated to generation {tx.generation}")
    if conn.config.key_log_update_lines:
        _log_update_line(conn, tx, write=True)


def on_key_update(conn: Connection, msg: KeyUpdate) -> None:
    if msg.request_update not in (0, 1):
        raise err(
            "ERR_ILLEGAL_PARAMETER",
            f"KeyUpdate request_update={msg.request_update}",
            AD.illegal_parameter,
        )
    assert conn._rx.protected
    conn._transition(HandshakeType.key_update)
    if conn._more_handshake_data:
        raise err(
            "ERR_UNEXPECTED_MESSAGE",
            "handshake data continues across a KeyUpdate",
            AD.unexpected_message,
        )
    conn._rx = rx = conn._rx.key_update()
    if conn._trace.mask & T.KEYS:
        conn._trace.emit(T.KEYS, f"read key updated to generation {rx.generation}")
    if conn.config.key_log_update_lines:
        _log_update_line(conn, rx, write=False)
    requested = msg.request_update == KeyUpdateRequest.update_requested
    if requested:
        # Answered at the end of Connection.receive_data, before any application data of ours
        # can be sent: one answer covers every request received meanwhile.
        conn._key_update_owed = True
    conn._events.append(KeyUpdateReceived(requested))


def _log_update_line(conn: Connection, direction: RecordDirection, write: bool) -> None:
    # OpenSSL-style CLIENT_/SERVER_TRAFFIC_SECRET_N.
    ours_client = conn.is_client == write
    label = f"{'CLIENT' if ours_client else 'SERVER'}_TRAFFIC_SECRET_{direction.generation}"
    conn._log_secret(label, direction.traffic_secret)
