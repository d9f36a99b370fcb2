"""The engine's record layer glue (RFC 8446 section 5): records in, records out.

Incoming records are checked against the rules of which content type may come under which key
and opened by the read :class:`~capdebug.crypto.record.RecordDirection`; outgoing content is cut
into records and sealed by the write one. Alerts and ChangeCipherSpec go through the wire codecs.
No record header or alert byte is built here by hand.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._buffer import Buffer
from ..crypto.protection import BytesLike
from ..crypto.record import RecordDirection, RecordOverflow, SequenceOverflow
from ..errors import DecodeError, DecryptError, ErrorKind
from ..wire.alert import Alert, pull_alert, push_alert
from ..wire.constants import AlertDescription, AlertLevel, ContentType, name_of
from ..wire.record import CCS_BODY, MAX_PLAINTEXT_LENGTH, RECORD_HEADER_SIZE
from ._common import AD, TLS12, T, err
from .events import AlertReceived, ApplicationData, CloseNotifyReceived, EarlyDataReceived
from .state import State

if TYPE_CHECKING:
    from .connection import Connection


_WARNINGS = (AD.close_notify, AD.user_canceled, AD.no_renegotiation)


def send_alert(conn: Connection, description: int) -> None:
    # TLS 1.3 ignores the level, but peers print it: close_notify and user_canceled are
    # warnings, everything else fatal (RFC 8446 6: "all alerts ... fatal" but level kept).
    # no_renegotiation is "always a warning" (RFC 5246 7.2.2).
    level = AlertLevel.warning if description in _WARNINGS else AlertLevel.fatal
    if conn._trace.mask & T.ALERT:
        conn._trace.emit(T.ALERT, f"send {level.name} {name_of(AlertDescription, description)}")
    buf = Buffer()
    push_alert(buf, Alert(level, description))
    write_record(conn, ContentType.alert, buf.data())


def handle_record(conn: Connection, content_type: int, header: memoryview, fragment: memoryview) -> None:
    if conn.version == TLS12:
        handle_record12(conn, content_type, header, fragment)
        return
    length = len(fragment)
    if content_type == ContentType.change_cipher_spec:
        # RFC 8446 5: one unprotected 0x01 byte, between the first ClientHello and the
        # peer's Finished, is dropped; anything else is unexpected_message.
        if (
            bytes(fragment) == CCS_BODY
            and not conn.handshake_complete
            and (conn.is_client or conn._first_client_hello_seen)
        ):
            if conn._trace.mask & T.RECORD:
                conn._trace.emit(T.RECORD, "recv change_cipher_spec (middlebox compatibility), dropped")
            return
        raise err("ERR_UNEXPECTED_MESSAGE", "unexpected change_cipher_spec record", AD.unexpected_message)
    rx = conn._rx
    if (
        conn._skip_early
        and content_type == ContentType.application_data
        and skip_early(conn, rx, header, fragment)
    ):
        return
    if not rx.protected:
        content_type, content = open_record(conn, header, fragment)
        if conn._trace.mask & T.RECORD:
            conn._trace.emit(T.RECORD, f"recv {name_of(ContentType, content_type)} len={length} (plaintext)")
        if content_type == ContentType.application_data:
            raise err(
                "ERR_UNEXPECTED_MESSAGE", "application data before the handshake", AD.unexpected_message
            )
        handle_content(conn, content_type, memoryview(content))
        return
    if content_type == ContentType.alert and not conn.handshake_complete and length == 2:
        # A peer that failed before it had our keys sends its alert in clear; accept it so
        # that the user learns why (a debugging tool should report the peer's reason).
        handle_content(conn, content_type, fragment)
        return
    if content_type != ContentType.application_data:
        raise err(
            "ERR_UNEXPECTED_MESSAGE",
            f"unprotected {name_of(ContentType, content_type)} record after keys were installed",
            AD.unexpected_message,
        )
    seq = rx.seq
    inner_type, content = open_record(conn, header, fragment)
    if conn._trace.mask & T.RECORD:
        conn._trace.emit(
            T.RECORD,
            f"recv {name_of(ContentType, inner_type)} len={len(content)} "
            f"({rx.epoch} keys, seq {seq}, record len={length})",
        )
    if inner_type == ContentType.application_data:
        if rx.epoch == "early" and not conn._hs_in:
            from . import early  # early imports this module

            early.on_early_application_data(conn, len(content))
            conn._events.append(EarlyDataReceived(bytes(content)))
            return
        if rx.epoch != "application":
            raise err(
                "ERR_UNEXPECTED_MESSAGE",
                "application data under handshake keys (0-RTT is not accepted)",
                AD.unexpected_message,
            )
        if conn._hs_in:
            # RFC 8446 5.1: handshake messages must not be interleaved with other types.
            raise err(
                "ERR_UNEXPECTED_MESSAGE",
                "application data inside a fragmented handshake message",
                AD.unexpected_message,
            )
        conn._events.append(ApplicationData(bytes(content)))
        return
    handle_content(conn, inner_type, memoryview(content))


def handle_record12(conn: Connection, content_type: int, header: memoryview, fragment: memoryview) -> None:
    """TLS 1.2 records keep their content type outside (RFC 5246 6.2); ChangeCipherSpec is part
    of the handshake's flow (7.1) and goes through the transition table."""
    rx = conn._rx
    seq = rx.seq
    content_type, content = open_record(conn, header, fragment)
    if conn._trace.mask & T.RECORD:
        keys = f"{rx.epoch} keys, seq {seq}" if rx.protected else "plaintext"
        conn._trace.emit(T.RECORD, f"recv {name_of(ContentType, content_type)} len={len(content)} ({keys})")
    if content_type == ContentType.change_cipher_spec:
        from . import hs12  # hs12 imports this module

        hs12.on_change_cipher_spec(conn, bytes(content))
        return
    if content_type == ContentType.application_data:
        if not conn.handshake_complete or not rx.protected:
            raise err(
                "ERR_UNEXPECTED_MESSAGE", "application data before the handshake", AD.unexpected_message
            )
        if conn._hs_in:
            raise err(
                "ERR_UNEXPECTED_MESSAGE",
                "application data inside a fragmented handshake message",
                AD.unexpected_message,
            )
        conn._events.append(ApplicationData(bytes(content)))
        return
    handle_content(conn, content_type, memoryview(content))


def skip_early(conn: Connection, rx: RecordDirection, header: memoryview, fragment: memoryview) -> bool:
    """Server that rejected 0-RTT: is this one of the client's early records (RFC 8446 4.2.10)?
    Before the second ClientHello every protected record is; after, those that do not open
    under the handshake key. The first record that opens ends the skipping."""
    if rx.protected:
        try:
            rx.open_at(header, fragment, rx.seq)
        except DecryptError:
            pass
        except DecodeError:
            return False  # oversized and the like: the normal path names the error
        else:
            conn._skip_early = 0
            return False
    conn._skip_early -= len(fragment)
    if conn._skip_early < 0:
        raise err("ERR_TOO_MUCH_EARLY_DATA", "rejected early data beyond the budget", AD.unexpected_message)
    if conn._trace.mask & T.RECORD:
        conn._trace.emit(T.RECORD, f"skip rejected 0-RTT record len={len(fragment)}")
    return True


def open_record(conn: Connection, header: memoryview, fragment: memoryview) -> tuple[int, BytesLike]:
    """Open one record with the read direction; its errors become the RFC 8446 alerts."""
    rx = conn._rx
    try:
        return rx.open(header, fragment)
    except RecordOverflow as exc:
        raise err("ERR_RECORD_OVERFLOW", str(exc), AD.record_overflow) from exc
    except DecryptError as exc:
        raise err(
            "ERR_BAD_RECORD_MAC",
            f"record {rx.seq} ({rx.epoch} keys) failed authentication: {exc}",
            AD.bad_record_mac,
        ) from exc
    except SequenceOverflow as exc:
        raise err("ERR_SEQUENCE_OVERFLOW", str(exc), AD.internal_error, ErrorKind.INTERNAL) from exc
    except DecodeError as exc:
        # A TLSInnerPlaintext of only zeros (RFC 8446 5.4).
        raise err("ERR_UNEXPECTED_MESSAGE", str(exc), AD.unexpected_message) from exc


def handle_content(conn: Connection, content_type: int, content: memoryview) -> None:
    if content_type == ContentType.handshake:
        if not content:
            raise err("ERR_UNEXPECTED_MESSAGE", "empty handshake record", AD.unexpected_message)
        conn._hs_in += content
        conn._process_handshake_buffer()
    elif content_type == ContentType.alert:
        handle_alert(conn, content)
    else:
        raise err(
            "ERR_UNEXPECTED_MESSAGE",
            f"unexpected {name_of(ContentType, content_type)} record",
            AD.unexpected_message,
        )


def handle_alert(conn: Connection, content: memoryview) -> None:
    if len(content) != 2:
        raise err("ERR_DECODE", f"alert record of {len(content)} bytes (must be 2)", AD.decode_error)
    if conn._hs_in:
        raise err(
            "ERR_UNEXPECTED_MESSAGE",
            "alert inside a fragmented handshake message",
            AD.unexpected_message,
        )
    alert = pull_alert(Buffer(content))
    if conn._trace.mask & T.ALERT:
        conn._trace.emit(T.ALERT, f"recv level={alert.level} {alert.name}")
    if alert.description == AD.close_notify:
        conn.receive_closed = True
        conn._events.append(CloseNotifyReceived())
        return
    desc: AlertDescription | int
    try:
        desc = AlertDescription(alert.description)
    except ValueError:
        desc = alert.description
    conn._events.append(AlertReceived(alert.level, desc))
    if alert.description == AD.user_canceled:
        return  # RFC 8446 6.1: a warning; a close_notify should follow
    if conn.version == TLS12 and alert.level == AlertLevel.warning:
        return  # RFC 5246 7.2: a warning does not end a TLS 1.2 connection
    # RFC 8446 6.2: every other alert is fatal whatever its level says.
    conn._fail(
        err(
            "ERR_PEER_ALERT",
            f"the peer sent a fatal alert: {alert.name} ({alert.description}) in state {conn.state.name}",
            alert.description,
            ErrorKind.ALERT,
        )
    )


def write_record(conn: Connection, content_type: int, content: bytes | bytearray | memoryview) -> None:
    tx = conn._tx
    step = MAX_PLAINTEXT_LENGTH
    if not tx.protected:
        # Plaintext records: handshake messages may be split across several records.
        # The first ClientHello uses record version 0x0301 for old middleboxes
        # (RFC 8446 5.1 allows it; everyone does it).
        version = 0x0301 if conn.is_client and conn.state is State.CLIENT_START else 0x0303
        for i in range(0, max(len(content), 1), step):
            chunk = content[i : i + step]
            conn._out += tx.seal(content_type, chunk, legacy_version=version)
            if conn._trace.mask & T.RECORD:
                conn._trace.emit(
                    T.RECORD, f"send {name_of(ContentType, content_type)} len={len(chunk)} (plaintext)"
                )
        return
    block = conn.config.record_padding
    for i in range(0, max(len(content), 1), step):
        chunk = content[i : i + step]
        # RFC 8446 5.4: pad to a multiple of the block (the direction clips it to the limit).
        padding = (-(len(chunk) + 1)) % block if block else 0
        seq = tx.seq
        try:
            record = tx.seal(content_type, chunk, padding=padding)
        except SequenceOverflow as exc:
            raise err("ERR_SEQUENCE_OVERFLOW", str(exc), None, ErrorKind.INTERNAL) from exc
        if conn._trace.mask & T.RECORD:
            padding = min(padding, MAX_PLAINTEXT_LENGTH - len(chunk))
            conn._trace.emit(
                T.RECORD,
                f"send {name_of(ContentType, content_type)} len={len(chunk)} padding={padding} "
                f"({tx.epoch} keys, seq {seq}, record len={len(record) - RECORD_HEADER_SIZE})",
            )
        if conn.faults is not None:
            mutable = bytearray(record)
            conn.faults.on_protected_record(mutable, content_type)
            record = bytes(mutable)
        conn._out += record


def send_ccs(conn: Connection) -> None:
    # RFC 8446 D.4: an unprotected change_cipher_spec, whatever the write key is.
    conn._out += RecordDirection().seal(ContentType.change_cipher_spec, CCS_BODY)
    conn._ccs_sent = True
    if conn._trace.mask & T.RECORD:
        conn._trace.emit(T.RECORD, "send change_cipher_spec (middlebox compatibility)")


def set_write_key(conn: Connection, secret: bytes, epoch: str) -> None:
    conn._flush_handshake()  # what was queued goes out under the old key
    assert conn.suite is not None
    if not conn._tx.protected and conn._want_ccs and not conn._ccs_sent:
        send_ccs(conn)  # RFC 8446 D.4: just before our first protected record
    conn._tx = RecordDirection.tls13(conn.suite, secret, epoch)
    if conn._trace.mask & T.KEYS:
        conn._trace.emit(T.KEYS, f"install write key: {epoch} ({conn.suite.name})")


def set_read_key(conn: Connection, secret: bytes, epoch: str) -> None:
    assert conn.suite is not None
    if conn._more_handshake_data:
        # RFC 8446 5.1: a handshake message must not span a key change.
        raise err(
            "ERR_UNEXPECTED_MESSAGE",
            "handshake data continues across a key change",
            AD.unexpected_message,
        )
    conn._rx = RecordDirection.tls13(conn.suite, secret, epoch)
    if conn._trace.mask & T.KEYS:
        conn._trace.emit(T.KEYS, f"install read key: {epoch} ({conn.suite.name})")
