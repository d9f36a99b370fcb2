"""The sans-IO TLS 1.3 engine (RFC 8446): one :class:`Connection` per client or server.

Theory of operation
-------------------

A connection never touches a socket or the clock. Its user feeds it what arrived and sends
what it produced::

    conn = Connection(config, is_client=True)
    conn.start_handshake()
    sock.sendall(conn.data_to_send())
    conn.receive_data(sock.recv(65536))     # or conn.receive_eof() on TCP EOF
    while (event := conn.next_event()) is not None:
        ...

Incoming bytes go through three layers, each in one place:

1. **records** (RFC 8446 section 5): ``frame_records`` cuts the stream; protected records are
   opened with the current read key (``crypto/protection.py``) and their TLSInnerPlaintext
   split; the rules for which content types may come with which keys are in
   :meth:`Connection._handle_record`;
2. **handshake messages** (section 4): fragments are joined, ``frame_handshake`` cuts them,
   and each message is checked against the transition table of ``state.py`` *before* its
   handler runs; handlers only process messages that are allowed;
3. **events**: handlers append frozen events (``events.py``) to a queue.

A failure at any layer becomes a :class:`~capdebug.errors.TLSError` stored at its place in the
event stream: the fatal alert RFC 8446 section 6 asks for is queued for the peer at once
(``data_to_send()`` returns it), nothing more is read or sent, and ``next_event()`` raises the
error after handing out the events that came before it.

Secrets are reported through ``config.key_log_callback`` the moment they are derived, so a
handshake that fails after the ServerHello still leaves a key log that decrypts the failure.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
import sys
from collections import deque
from datetime import UTC, datetime

from .._buffer import Buffer
from ..crypto import x509 as cx509
from ..crypto import x509_engine
from ..crypto.keylog import format_line
from ..crypto.protection import Tls13Protection
from ..crypto.schedule13 import (
    KeySchedule,
    Transcript,
    finished_verify_data,
    next_traffic_secret,
    resumption_psk,
)
from ..crypto.suites import SUITES, SuiteParams
from ..errors import CryptoError, DecodeError, DecryptError, ErrorKind, TLSError, UsageError
from ..wire import extensions as wx
from ..wire.alert import Alert
from ..wire.constants import (
    AlertDescription,
    AlertLevel,
    CipherSuite,
    ContentType,
    ExtensionType,
    HandshakeType,
    KeyUpdateRequest,
    NamedGroup,
    ProtocolVersion,
    PskKeyExchangeMode,
    SignatureScheme,
    name_of,
)
from ..wire.handshake import (
    HANDSHAKE_HEADER_SIZE,
    HRR_RANDOM,
    Certificate,
    CertificateEntry,
    CertificateRequest,
    CertificateVerify,
    ClientHello,
    EncryptedExtensions,
    Finished,
    HandshakeMessage,
    KeyUpdate,
    NewSessionTicket,
    ServerHello,
    encode_handshake,
    frame_handshake,
    pull_handshake,
    summary,
)
from ..wire.record import (
    CCS_BODY,
    MAX_CIPHERTEXT_LENGTH_TLS13,
    MAX_PLAINTEXT_LENGTH,
    RECORD_HEADER_SIZE,
    build_inner_plaintext,
    frame_records,
    split_inner_plaintext,
)
from .config import ClientAuth, TLSConfig
from .events import (
    AlertReceived,
    ApplicationData,
    CloseNotifyReceived,
    Event,
    HandshakeComplete,
    HelloRetryRequestReceived,
    HelloRetryRequestSent,
    KeyUpdateReceived,
    NewSessionTicketReceived,
)
from .faults import Faults
from .state import Branch, State, next_state, next_state_on_send
from .trace import TraceCategory, Tracer

__all__ = ["Connection"]

_TLS13 = ProtocolVersion.TLS1_3
_LEGACY_VERSION = ProtocolVersion.TLS1_2  # RFC 8446 4.1.2: legacy_version is always 0x0303
_MAX_HANDSHAKE_BUFFER = 1 << 20  # a certificate chain larger than 1 MiB is an attack, not a chain
_CV_PAD = b"\x20" * 64  # RFC 8446 4.4.3
_CV_SERVER = b"TLS 1.3, server CertificateVerify\x00"
_CV_CLIENT = b"TLS 1.3, client CertificateVerify\x00"

_T = TraceCategory


def _err(name: str, message: str, alert: int | None, kind: ErrorKind = ErrorKind.PROTOCOL) -> TLSError:
    frame = sys._getframe(1)
    debug = f"{os.path.basename(frame.f_code.co_filename)}:{frame.f_lineno}"
    return TLSError(name, kind, message, alert=alert, debug=debug)


_AD = AlertDescription


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name.strip("[]"))
    except ValueError:
        return False
    return True


def _find(exts: tuple[wx.Extension, ...], ext_type: int) -> bytes | None:
    found: bytes | None = None
    seen = False
    for e in exts:
        if e.type == ext_type:
            if seen:
                # RFC 8446 4.2: "There MUST NOT be more than one extension of the same type".
                raise _err(
                    "ERR_ILLEGAL_PARAMETER",
                    f"duplicate extension {name_of(ExtensionType, ext_type)}",
                    _AD.illegal_parameter,
                )
            seen = True
            found = e.data
    return found


def _fmt(value: object) -> str:
    """Trace formatting of a summary value: lists joined, long byte strings as lengths."""
    if isinstance(value, list | tuple):
        if value and isinstance(value[0], bytes | bytearray):
            return f"[{len(value)} items]"
        return "[" + ", ".join(_fmt(v) for v in value) + "]"
    if isinstance(value, bytes | bytearray):
        return value.hex() if len(value) <= 16 else f"<{len(value)} bytes>"
    return str(value)


class Connection:
    """One TLS 1.3 connection, client or server. See the module docstring."""

    def __init__(
        self,
        config: TLSConfig,
        *,
        is_client: bool,
        now: datetime | None = None,
        faults: Faults | None = None,
    ) -> None:
        self.config = config
        self.is_client = is_client
        self.faults = faults
        self._now = now
        self._trace = Tracer.create(
            config.trace, config.trace_callback, "client: " if is_client else "server: "
        )
        self.state = State.CLIENT_START if is_client else State.SERVER_EXPECT_CLIENT_HELLO
        self._events: deque[Event] = deque()
        self._error: TLSError | None = None
        self._out = bytearray()
        self._in = bytearray()
        self._hs_in = bytearray()
        self._hs_out = bytearray()
        self._read: Tls13Protection | None = None
        self._read_seq = 0
        self._read_epoch = "plaintext"
        self._write: Tls13Protection | None = None
        self._write_seq = 0
        self._write_epoch = "plaintext"
        self._read_generation = 0
        self._write_generation = 0
        self._ccs_sent = False
        self._want_ccs = config.middlebox_compat
        self._first_client_hello_seen = False
        self.send_closed = False
        """We sent close_notify (or failed): nothing more will be sent."""
        self.receive_closed = False
        """The peer sent close_notify (or we failed): nothing more will be read."""
        self._eof = False
        self._started = False
        # Negotiated parameters
        self.suite: SuiteParams | None = None
        self.cipher_suite: CipherSuite | None = None
        self.group: NamedGroup | None = None
        self.alpn: str | None = None
        self.server_name: str | None = config.server_name if is_client else None
        self.peer_certificates: tuple[bytes, ...] = ()
        self.peer_signature_scheme: SignatureScheme | None = None
        self.hello_retry = False
        self.client_random = b""
        self._session_id = b""
        self._key_shares: dict[int, cx509.KeySharePrivateKey] = {}
        self._public_shares: dict[int, bytes] = {}
        self._more_handshake_data = False
        self._client_hello: ClientHello | None = None
        self._client_hello_bytes = b""
        self._transcript: Transcript | None = None
        self._schedule: KeySchedule | None = None
        self._client_hs_secret = b""
        self._server_hs_secret = b""
        self._client_ap_secret = b""
        self._server_ap_secret = b""
        self._resumption_secret = b""
        self._cert_requested: CertificateRequest | None = None
        self._peer_schemes: tuple[int, ...] = ()
        self._offered_schemes: tuple[int, ...] = tuple(config.signature_schemes)
        self._cookie: bytes | None = None
        self._hrr_suite: int | None = None
        self._hrr_group: int | None = None
        self._our_scheme: int | None = None
        self._tickets_sent = 0
        if is_client and config.verify and not config.server_name:
            raise UsageError("certificate verification needs config.server_name (or verify=False)")
        if not is_client and config.credential is None:
            raise UsageError("a server needs config.credential (certificate chain and key)")
        if is_client and not config.verify:
            self._trace.warn(
                "certificate verification is DISABLED (verify=False): the peer is not authenticated"
            )
        if not is_client and not config.verify and config.client_auth is not ClientAuth.NONE:
            self._trace.warn("client certificate verification is DISABLED (verify=False)")

    # ================================================================ public API

    @property
    def handshake_complete(self) -> bool:
        return self.state.connected

    @property
    def closed(self) -> bool:
        """Both directions are closed (close_notify each way), or the connection failed."""
        return (self.send_closed and self.receive_closed) or self._error is not None

    @property
    def error(self) -> TLSError | None:
        return self._error

    def start_handshake(self) -> None:
        """Client: queue the ClientHello. Server: nothing to do (it waits for one). Idempotent."""
        if self._started:
            return
        self._started = True
        if not self.is_client:
            return
        self.client_random = os.urandom(32)
        # RFC 8446 D.4: a non-empty legacy_session_id makes the server echo it and send CCS.
        self._session_id = os.urandom(32) if self.config.middlebox_compat else b""
        for group in self.config.initial_key_share_groups:
            self._new_key_share(group)
        hello = self._build_client_hello()
        self._client_hello = hello
        self._client_hello_bytes = self._send_handshake(hello)
        self._flush_handshake()  # in state START, so the record says 0x0301 (see _write_record)
        self._transition_on_send(HandshakeType.client_hello)

    def receive_data(self, data: bytes | bytearray | memoryview) -> None:
        """Feed bytes received from the peer. Failures surface through ``next_event()``."""
        if self._error is not None or self.receive_closed:
            return  # RFC 8446 6.1: data after a closure alert is ignored; after a failure too
        if not self._started:
            self.start_handshake()
        self._in += data
        try:
            records, consumed = frame_records(self._in)
        except DecodeError as exc:
            self._fail(_err("ERR_DECODE", f"bad record header: {exc}", _AD.decode_error))
            return
        if not records:
            return
        # Take the complete records out as one immutable copy: views into it can outlive this
        # call (in a stored exception's traceback) without pinning the receive buffer.
        complete = bytes(self._in[:consumed])
        del self._in[:consumed]
        view = memoryview(complete)
        try:
            for content_type, at, length in records:
                if self._error is not None or self.receive_closed:
                    break
                body = at + RECORD_HEADER_SIZE
                self._handle_record(content_type, view[at:body], view[body : body + length])
        except TLSError as exc:
            self._fail(exc)
        self._flush_handshake()

    def receive_eof(self) -> None:
        """The transport reached EOF. Without the peer's close_notify first, that is a
        truncation: ``ERR_PREMATURE_CLOSE`` (kind CLOSED) from ``next_event()``."""
        if self._eof:
            return
        self._eof = True
        if self.receive_closed or self._error is not None:
            return
        where = "during the handshake" if not self.handshake_complete else "without close_notify"
        self._fail(
            _err(
                "ERR_PREMATURE_CLOSE",
                f"the peer closed the connection {where} (state {self.state.name})",
                None,
                ErrorKind.CLOSED,
            ),
            send_alert=False,
        )

    def next_event(self) -> Event | None:
        """The next event, or None when there is none for now; raises the connection's
        ``TLSError`` once the events before the failure have been handed out."""
        if self._events:
            return self._events.popleft()
        if self._error is not None:
            raise self._error
        return None

    def data_to_send(self) -> bytes:
        """Bytes to write to the peer (possibly empty)."""
        self._flush_handshake()
        if not self._out:
            return b""
        out = bytes(self._out)
        self._out.clear()
        return out

    def send_application_data(self, data: bytes | bytearray | memoryview) -> None:
        """Encrypt ``data`` into application_data records (split at ``max_fragment``)."""
        self._check_can_send()
        if not self.handshake_complete:
            raise TLSError("ERR_NOT_CONNECTED", ErrorKind.USAGE, "the handshake is not complete")
        view = memoryview(data).cast("B")
        step = self.config.max_fragment
        for i in range(0, len(view), step):
            self._write_record(ContentType.application_data, view[i : i + step])

    def key_update(self, request: bool = False) -> None:
        """Send a KeyUpdate and move to our next sending key (RFC 8446 4.6.3); with
        ``request`` the peer must answer with its own."""
        self._check_can_send()
        if not self.handshake_complete:
            raise TLSError("ERR_NOT_CONNECTED", ErrorKind.USAGE, "KeyUpdate before the handshake completed")
        self._send_key_update(request)

    def close(self) -> None:
        """Send close_notify (once). The peer's close_notify arrives as
        :class:`CloseNotifyReceived`; ``closed`` is True when both happened."""
        self._send_close_notify()

    def shutdown_send(self) -> None:
        """Half-close: send close_notify but go on reading (TLS 1.3 allows it, RFC 8446 6.1)."""
        self._send_close_notify()

    # ================================================================ failure and alerts

    def _fail(self, exc: TLSError, send_alert: bool = True) -> None:
        if self._error is not None:
            return
        self._error = exc
        if self._trace.mask & _T.HANDSHAKE:
            self._trace.emit(_T.HANDSHAKE, f"failed in {self.state.name}: {exc} [{exc.debug}]")
        if send_alert and exc.alert is not None and not self.send_closed and exc.kind is not ErrorKind.ALERT:
            self._hs_out.clear()  # a half-built flight must not follow the alert
            self._send_alert(exc.alert)
        self.send_closed = True
        self.receive_closed = True

    def _send_alert(self, description: int) -> None:
        # TLS 1.3 ignores the level, but peers print it: close_notify and user_canceled are
        # warnings, everything else fatal (RFC 8446 6: "all alerts ... fatal" but level kept).
        level = (
            AlertLevel.warning if description in (_AD.close_notify, _AD.user_canceled) else AlertLevel.fatal
        )
        if self._trace.mask & _T.ALERT:
            self._trace.emit(_T.ALERT, f"send {level.name} {name_of(AlertDescription, description)}")
        self._write_record(ContentType.alert, bytes((level, description)))

    def _send_close_notify(self) -> None:
        if self.send_closed:
            return
        self._flush_handshake()
        if self.faults is None or self.faults.on_close_notify():
            self._send_alert(_AD.close_notify)
        self.send_closed = True

    def _check_can_send(self) -> None:
        if self._error is not None:
            raise TLSError("ERR_CLOSED", ErrorKind.CLOSED, f"the connection failed earlier: {self._error}")
        if self.send_closed:
            raise TLSError("ERR_SEND_CLOSED", ErrorKind.USAGE, "close_notify was already sent")

    # ================================================================ record layer (RFC 8446 5)

    def _handle_record(self, content_type: int, header: memoryview, fragment: memoryview) -> None:
        length = len(fragment)
        if content_type == ContentType.change_cipher_spec:
            # RFC 8446 5: one unprotected 0x01 byte, between the first ClientHello and the
            # peer's Finished, is dropped; anything else is unexpected_message.
            if (
                bytes(fragment) == CCS_BODY
                and not self.handshake_complete
                and (self.is_client or self._first_client_hello_seen)
            ):
                if self._trace.mask & _T.RECORD:
                    self._trace.emit(_T.RECORD, "recv change_cipher_spec (middlebox compatibility), dropped")
                return
            raise _err(
                "ERR_UNEXPECTED_MESSAGE", "unexpected change_cipher_spec record", _AD.unexpected_message
            )
        if self._read is None:
            if length > MAX_PLAINTEXT_LENGTH:
                raise _err("ERR_RECORD_OVERFLOW", f"plaintext record of {length} bytes", _AD.record_overflow)
            if self._trace.mask & _T.RECORD:
                self._trace.emit(
                    _T.RECORD, f"recv {name_of(ContentType, content_type)} len={length} (plaintext)"
                )
            if content_type == ContentType.application_data:
                raise _err(
                    "ERR_UNEXPECTED_MESSAGE", "application data before the handshake", _AD.unexpected_message
                )
            self._handle_content(content_type, fragment)
            return
        if content_type == ContentType.alert and not self.handshake_complete and length == 2:
            # A peer that failed before it had our keys sends its alert in clear; accept it so
            # that the user learns why (a debugging tool should report the peer's reason).
            self._handle_content(content_type, fragment)
            return
        if content_type != ContentType.application_data:
            raise _err(
                "ERR_UNEXPECTED_MESSAGE",
                f"unprotected {name_of(ContentType, content_type)} record after keys were installed",
                _AD.unexpected_message,
            )
        if length > MAX_CIPHERTEXT_LENGTH_TLS13:
            raise _err("ERR_RECORD_OVERFLOW", f"protected record of {length} bytes", _AD.record_overflow)
        seq = self._read_seq
        try:
            inner = self._read.open(header, fragment, seq)
        except DecryptError as exc:
            raise _err(
                "ERR_BAD_RECORD_MAC",
                f"record {seq} ({self._read_epoch} keys) failed authentication: {exc}",
                _AD.bad_record_mac,
            ) from exc
        self._read_seq = seq + 1
        if len(inner) > MAX_PLAINTEXT_LENGTH + 1:
            raise _err("ERR_RECORD_OVERFLOW", f"inner plaintext of {len(inner)} bytes", _AD.record_overflow)
        try:
            inner_type, content = split_inner_plaintext(inner)
        except DecodeError as exc:
            raise _err("ERR_UNEXPECTED_MESSAGE", str(exc), _AD.unexpected_message) from exc
        if self._trace.mask & _T.RECORD:
            self._trace.emit(
                _T.RECORD,
                f"recv {name_of(ContentType, inner_type)} len={len(content)} "
                f"({self._read_epoch} keys, seq {seq}, record len={length})",
            )
        if inner_type == ContentType.application_data:
            if self._read_epoch != "application":
                raise _err(
                    "ERR_UNEXPECTED_MESSAGE",
                    "application data under handshake keys (0-RTT is not accepted)",
                    _AD.unexpected_message,
                )
            if self._hs_in:
                # RFC 8446 5.1: handshake messages must not be interleaved with other types.
                raise _err(
                    "ERR_UNEXPECTED_MESSAGE",
                    "application data inside a fragmented handshake message",
                    _AD.unexpected_message,
                )
            self._events.append(ApplicationData(content))
            return
        self._handle_content(inner_type, memoryview(content))

    def _handle_content(self, content_type: int, content: memoryview) -> None:
        if content_type == ContentType.handshake:
            if not content:
                raise _err("ERR_UNEXPECTED_MESSAGE", "empty handshake record", _AD.unexpected_message)
            self._hs_in += content
            self._process_handshake_buffer()
        elif content_type == ContentType.alert:
            self._handle_alert(content)
        else:
            raise _err(
                "ERR_UNEXPECTED_MESSAGE",
                f"unexpected {name_of(ContentType, content_type)} record",
                _AD.unexpected_message,
            )

    def _handle_alert(self, content: memoryview) -> None:
        if len(content) != 2:
            raise _err("ERR_DECODE", f"alert record of {len(content)} bytes (must be 2)", _AD.decode_error)
        if self._hs_in:
            raise _err(
                "ERR_UNEXPECTED_MESSAGE",
                "alert inside a fragmented handshake message",
                _AD.unexpected_message,
            )
        alert = Alert(content[0], content[1])
        if self._trace.mask & _T.ALERT:
            self._trace.emit(_T.ALERT, f"recv level={alert.level} {alert.name}")
        if alert.description == _AD.close_notify:
            self.receive_closed = True
            self._events.append(CloseNotifyReceived())
            return
        desc: AlertDescription | int
        try:
            desc = AlertDescription(alert.description)
        except ValueError:
            desc = alert.description
        self._events.append(AlertReceived(alert.level, desc))
        if alert.description == _AD.user_canceled:
            return  # RFC 8446 6.1: a warning; a close_notify should follow
        # RFC 8446 6.2: every other alert is fatal whatever its level says.
        self._fail(
            _err(
                "ERR_PEER_ALERT",
                f"the peer sent a fatal alert: {alert.name} ({alert.description}) in state {self.state.name}",
                alert.description,
                ErrorKind.ALERT,
            )
        )

    def _write_record(self, content_type: int, content: bytes | bytearray | memoryview) -> None:
        if self._write is None:
            # Plaintext records: handshake messages may be split across several records.
            for i in range(0, max(len(content), 1), MAX_PLAINTEXT_LENGTH):
                chunk = content[i : i + MAX_PLAINTEXT_LENGTH]
                # The first ClientHello uses record version 0x0301 for old middleboxes
                # (RFC 8446 5.1 allows it; everyone does it).
                version = 0x0301 if self.is_client and self.state is State.CLIENT_START else 0x0303
                self._out += bytes(
                    (content_type, version >> 8, version & 0xFF, len(chunk) >> 8, len(chunk) & 0xFF)
                )
                self._out += chunk
                if self._trace.mask & _T.RECORD:
                    self._trace.emit(
                        _T.RECORD, f"send {name_of(ContentType, content_type)} len={len(chunk)} (plaintext)"
                    )
            return
        block = self.config.record_padding
        step = MAX_PLAINTEXT_LENGTH
        for i in range(0, max(len(content), 1), step):
            chunk = bytes(content[i : i + step])
            padding = 0
            if block:
                # RFC 8446 5.4: pad to a multiple of the block, within the 2^14+1 limit.
                padding = min((-(len(chunk) + 1)) % block, MAX_PLAINTEXT_LENGTH - len(chunk))
            inner = build_inner_plaintext(content_type, chunk, padding)
            record = bytearray(self._write.seal(inner, self._write_seq))
            if self._trace.mask & _T.RECORD:
                self._trace.emit(
                    _T.RECORD,
                    f"send {name_of(ContentType, content_type)} len={len(chunk)} padding={padding} "
                    f"({self._write_epoch} keys, seq {self._write_seq}, record len={len(record) - 5})",
                )
            self._write_seq += 1
            if self.faults is not None:
                self.faults.on_protected_record(record)
            self._out += record

    def _send_ccs(self) -> None:
        self._out += b"\x14\x03\x03\x00\x01\x01"
        self._ccs_sent = True
        if self._trace.mask & _T.RECORD:
            self._trace.emit(_T.RECORD, "send change_cipher_spec (middlebox compatibility)")

    def _set_write_key(self, secret: bytes, epoch: str) -> None:
        self._flush_handshake()  # what was queued goes out under the old key
        assert self.suite is not None
        if self._write is None and self._want_ccs and not self._ccs_sent:
            self._send_ccs()  # RFC 8446 D.4: just before our first protected record
        self._write = Tls13Protection(self.suite, secret)
        self._write_seq = 0
        self._write_epoch = epoch
        if self._trace.mask & _T.KEYS:
            self._trace.emit(_T.KEYS, f"install write key: {epoch} ({self.suite.name})")

    def _set_read_key(self, secret: bytes, epoch: str) -> None:
        assert self.suite is not None
        if self._more_handshake_data:
            # RFC 8446 5.1: a handshake message must not span a key change.
            raise _err(
                "ERR_UNEXPECTED_MESSAGE",
                "handshake data continues across a key change",
                _AD.unexpected_message,
            )
        self._read = Tls13Protection(self.suite, secret)
        self._read_seq = 0
        self._read_epoch = epoch
        if self._trace.mask & _T.KEYS:
            self._trace.emit(_T.KEYS, f"install read key: {epoch} ({self.suite.name})")

    # ================================================================ handshake layer

    def _send_handshake(self, msg: HandshakeMessage) -> bytes:
        data = encode_handshake(msg)
        if self._transcript is not None:
            self._transcript.update(data)
        self._hs_out += data
        if self._trace.mask & _T.MESSAGES:
            self._trace_message("send", msg)
        return data

    def _flush_handshake(self) -> None:
        if self._hs_out:
            data = bytes(self._hs_out)
            self._hs_out.clear()
            self._write_record(ContentType.handshake, data)

    def _trace_message(self, direction: str, msg: HandshakeMessage) -> None:
        fields = summary(msg)
        fields.pop("certificates", None)
        if isinstance(msg, Certificate):
            subjects = []
            for der in msg.der_list:
                try:
                    subjects.append(cx509.summarize_certificate(der).subject)
                except (CryptoError, DecodeError):
                    subjects.append("<undecodable>")
            fields["subjects"] = subjects
        text = " ".join(f"{k}={_fmt(v)}" for k, v in fields.items())
        self._trace.emit(_T.MESSAGES, f"{direction} {name_of(HandshakeType, msg.msg_type)} {text}")

    def _process_handshake_buffer(self) -> None:
        if len(self._hs_in) > _MAX_HANDSHAKE_BUFFER:
            raise _err("ERR_HANDSHAKE_TOO_LARGE", "handshake message larger than 1 MiB", _AD.decode_error)
        messages, consumed = frame_handshake(self._hs_in)
        if not messages:
            return
        data = bytes(self._hs_in[:consumed])
        del self._hs_in[:consumed]
        last = len(messages) - 1
        for i, (msg_type, at, length) in enumerate(messages):
            if self._error is not None:
                return
            # RFC 8446 5.1: no handshake data may follow a message that changes keys.
            self._more_handshake_data = i < last or bool(self._hs_in)
            raw = data[at : at + HANDSHAKE_HEADER_SIZE + length]
            # Check the table before decoding: an unexpected message is reported as such even
            # when its body would not parse.
            next_state(self.state, msg_type)
            try:
                msg = pull_handshake(Buffer(raw), tls13=True)
            except DecodeError as exc:
                raise _err(
                    "ERR_DECODE", f"malformed {name_of(HandshakeType, msg_type)}: {exc}", _AD.decode_error
                ) from exc
            if self._trace.mask & _T.MESSAGES:
                self._trace_message("recv", msg)
            self._dispatch(msg, raw)

    def _transition(self, msg_type: int, branch: Branch | None = None) -> None:
        new = next_state(self.state, msg_type, branch)
        self._enter(new)

    def _transition_on_send(self, msg_type: HandshakeType) -> None:
        self._enter(next_state_on_send(self.state, msg_type))

    def _enter(self, new: State) -> None:
        old, self.state = self.state, new
        if old is not new and self._trace.mask & _T.HANDSHAKE:
            self._trace.emit(_T.HANDSHAKE, f"{old.name} -> {new.name}")
        if self.faults is not None:
            desc = self.faults.on_enter_state(new)
            if desc is not None:
                raise _err(
                    "ERR_INJECTED_ALERT",
                    f"fault injection: sending {name_of(AlertDescription, desc)} in {new.name}",
                    desc,
                    ErrorKind.INTERNAL,
                )

    def _dispatch(self, msg: HandshakeMessage, raw: bytes) -> None:
        if self.is_client:
            if isinstance(msg, ServerHello):
                self._client_on_server_hello(msg, raw)
            elif isinstance(msg, EncryptedExtensions):
                self._client_on_encrypted_extensions(msg, raw)
            elif isinstance(msg, CertificateRequest):
                self._client_on_certificate_request(msg, raw)
            elif isinstance(msg, Certificate):
                self._on_certificate(msg, raw)
            elif isinstance(msg, CertificateVerify):
                self._on_certificate_verify(msg, raw)
            elif isinstance(msg, Finished):
                self._client_on_finished(msg, raw)
            elif isinstance(msg, NewSessionTicket):
                self._client_on_new_session_ticket(msg)
            elif isinstance(msg, KeyUpdate):
                self._on_key_update(msg)
            else:  # the table allowed the type, so this is a codec/engine mismatch
                raise _err(
                    "ERR_INTERNAL",
                    f"no handler for {type(msg).__name__}",
                    _AD.internal_error,
                    ErrorKind.INTERNAL,
                )
        else:
            if isinstance(msg, ClientHello):
                self._server_on_client_hello(msg, raw)
            elif isinstance(msg, Certificate):
                self._on_certificate(msg, raw)
            elif isinstance(msg, CertificateVerify):
                self._on_certificate_verify(msg, raw)
            elif isinstance(msg, Finished):
                self._server_on_finished(msg, raw)
            elif isinstance(msg, KeyUpdate):
                self._on_key_update(msg)
            else:
                raise _err(
                    "ERR_INTERNAL",
                    f"no handler for {type(msg).__name__}",
                    _AD.internal_error,
                    ErrorKind.INTERNAL,
                )

    # ---------------------------------------------------------------- key log

    def _log_secret(self, label: str, secret: bytes) -> None:
        if self._trace.mask & _T.KEYS:
            self._trace.emit(_T.KEYS, f"derived {label} ({len(secret)} bytes)")
        cb = self.config.key_log_callback
        if cb is not None:
            cb(format_line(label, self.client_random, secret))

    def _derive_handshake_secrets(self, shared: bytes) -> None:
        assert self.suite is not None and self._transcript is not None
        self._schedule = KeySchedule(self.suite.hash_name)
        self._schedule.handshake(shared)
        hello_hash = self._transcript.digest()
        self._client_hs_secret = self._schedule.client_handshake_traffic_secret(hello_hash)
        self._log_secret("CLIENT_HANDSHAKE_TRAFFIC_SECRET", self._client_hs_secret)
        self._server_hs_secret = self._schedule.server_handshake_traffic_secret(hello_hash)
        self._log_secret("SERVER_HANDSHAKE_TRAFFIC_SECRET", self._server_hs_secret)

    def _derive_application_secrets(self) -> None:
        """After the server Finished is in the transcript (RFC 8446 7.1)."""
        assert self._schedule is not None and self._transcript is not None
        self._schedule.master()
        h = self._transcript.digest()
        self._client_ap_secret = self._schedule.client_application_traffic_secret_0(h)
        self._log_secret("CLIENT_TRAFFIC_SECRET_0", self._client_ap_secret)
        self._server_ap_secret = self._schedule.server_application_traffic_secret_0(h)
        self._log_secret("SERVER_TRAFFIC_SECRET_0", self._server_ap_secret)
        self._log_secret("EXPORTER_SECRET", self._schedule.exporter_master_secret(h))

    # ---------------------------------------------------------------- client

    def _build_client_hello(self) -> ClientHello:
        cfg = self.config
        shares = tuple(
            wx.KeyShareEntry(g, self._public_share(g)) for g in cfg.groups if g in self._key_shares
        )
        exts: list[wx.Extension] = []
        if cfg.server_name and not _is_ip(cfg.server_name):
            # RFC 6066 3: literal IP addresses are not permitted in server_name.
            exts.append(wx.Extension(ExtensionType.server_name, wx.push_server_name_list((cfg.server_name,))))
        exts += [
            wx.Extension(ExtensionType.supported_versions, wx.push_supported_versions((_TLS13,))),
            wx.Extension(ExtensionType.supported_groups, wx.push_supported_groups(tuple(cfg.groups))),
            wx.Extension(
                ExtensionType.signature_algorithms, wx.push_signature_schemes(self._offered_schemes)
            ),
            wx.Extension(ExtensionType.key_share, wx.push_key_share_client(shares)),
            # Without psk_key_exchange_modes servers send no NewSessionTicket (RFC 8446 4.2.9).
            wx.Extension(
                ExtensionType.psk_key_exchange_modes,
                wx.push_psk_key_exchange_modes((PskKeyExchangeMode.psk_dhe_ke,)),
            ),
        ]
        if cfg.alpn_protocols:
            exts.append(
                wx.Extension(
                    ExtensionType.application_layer_protocol_negotiation,
                    wx.push_alpn_protocols(tuple(p.encode() for p in cfg.alpn_protocols)),
                )
            )
        if self._cookie is not None:
            exts.append(wx.Extension(ExtensionType.cookie, wx.push_cookie(self._cookie)))
        return ClientHello(
            legacy_version=_LEGACY_VERSION,
            random=self.client_random,
            legacy_session_id=self._session_id,
            cipher_suites=tuple(cfg.cipher_suites),
            legacy_compression_methods=b"\x00",
            extensions=tuple(exts),
        )

    def _public_share(self, group: int) -> bytes:
        # generate_key_share returns the public bytes with the key; keep both.
        return self._public_shares[group]

    def _client_on_server_hello(self, msg: ServerHello, raw: bytes) -> None:
        hrr = msg.random == HRR_RANDOM
        version_data = _find(msg.extensions, ExtensionType.supported_versions)
        if version_data is None:
            raise _err(
                "ERR_PROTOCOL_VERSION",
                f"the server chose {name_of(ProtocolVersion, msg.legacy_version)}; "
                "this engine speaks only TLS 1.3",
                _AD.protocol_version,
            )
        try:
            version = wx.pull_selected_version(version_data)
        except DecodeError as exc:
            raise _err("ERR_DECODE", str(exc), _AD.decode_error) from exc
        if version != _TLS13:
            raise _err(
                "ERR_PROTOCOL_VERSION", f"the server selected version 0x{version:04x}", _AD.illegal_parameter
            )
        if msg.legacy_version != _LEGACY_VERSION:
            raise _err(
                "ERR_PROTOCOL_VERSION", "ServerHello.legacy_version is not 0x0303", _AD.protocol_version
            )
        if msg.legacy_session_id_echo != self._session_id:
            raise _err(
                "ERR_ILLEGAL_PARAMETER", "legacy_session_id_echo differs from ours", _AD.illegal_parameter
            )
        if msg.cipher_suite not in self.config.cipher_suites:
            raise _err(
                "ERR_ILLEGAL_PARAMETER",
                f"the server chose cipher suite {name_of(CipherSuite, msg.cipher_suite)} we did not offer",
                _AD.illegal_parameter,
            )
        if msg.legacy_compression_method != 0:
            raise _err("ERR_ILLEGAL_PARAMETER", "non-null compression method", _AD.illegal_parameter)
        if self._hrr_suite is not None and msg.cipher_suite != self._hrr_suite:
            raise _err(
                "ERR_ILLEGAL_PARAMETER",
                "ServerHello cipher suite differs from the HelloRetryRequest's",
                _AD.illegal_parameter,
            )
        key_share = _find(msg.extensions, ExtensionType.key_share)
        self.suite = SUITES[msg.cipher_suite]
        self.cipher_suite = CipherSuite(msg.cipher_suite)
        if hrr:
            self._transition(HandshakeType.server_hello, Branch.HELLO_RETRY_REQUEST)
            self._client_on_hello_retry_request(msg, raw, key_share)
            return
        if key_share is None:
            raise _err(
                "ERR_MISSING_EXTENSION",
                "no key_share (PSK-only modes are not offered)",
                _AD.missing_extension,
            )
        try:
            share = wx.pull_key_share_server(key_share)
        except DecodeError as exc:
            raise _err("ERR_DECODE", str(exc), _AD.decode_error) from exc
        private = self._key_shares.get(share.group)
        if private is None:
            raise _err(
                "ERR_ILLEGAL_PARAMETER",
                f"server key share for {name_of(NamedGroup, share.group)}, for which we sent none",
                _AD.illegal_parameter,
            )
        try:
            shared = cx509.shared_secret(share.group, private, share.key_exchange)
        except CryptoError as exc:
            raise _err(
                "ERR_ILLEGAL_PARAMETER", f"bad server key share: {exc}", _AD.illegal_parameter
            ) from exc
        self.group = NamedGroup(share.group)
        if self._transcript is None:
            self._transcript = Transcript(self.suite.hash_name)
            self._transcript.update(self._client_hello_bytes)
        self._transcript.update(raw)
        self._derive_handshake_secrets(shared)
        self._key_shares.clear()
        self._set_read_key(self._server_hs_secret, "handshake")
        # Install our handshake key now, not at our Finished: an alert about the server's
        # flight must already be encrypted (RFC 8446 6, 7.3).
        self._set_write_key(self._client_hs_secret, "handshake")
        self._transition(HandshakeType.server_hello)

    def _client_on_hello_retry_request(self, msg: ServerHello, raw: bytes, key_share: bytes | None) -> None:
        assert self.suite is not None
        group: int | None = None
        if key_share is not None:
            try:
                group = wx.pull_key_share_hrr(key_share)
            except DecodeError as exc:
                raise _err("ERR_DECODE", str(exc), _AD.decode_error) from exc
            # RFC 8446 4.1.4: the group must be one we support and not one we already sent.
            if group not in self.config.groups or group in self._key_shares:
                raise _err(
                    "ERR_ILLEGAL_PARAMETER",
                    f"HelloRetryRequest asks for {name_of(NamedGroup, group)}, which we "
                    + ("already sent" if group in self._key_shares else "do not support"),
                    _AD.illegal_parameter,
                )
        cookie = _find(msg.extensions, ExtensionType.cookie)
        if cookie is not None:
            try:
                self._cookie = wx.pull_cookie(cookie)
            except DecodeError as exc:
                raise _err("ERR_DECODE", str(exc), _AD.decode_error) from exc
        if group is None and cookie is None:
            # RFC 8446 4.1.4: an HRR that would not change the ClientHello is illegal.
            raise _err("ERR_ILLEGAL_PARAMETER", "HelloRetryRequest asks for no change", _AD.illegal_parameter)
        self.hello_retry = True
        self._hrr_suite = msg.cipher_suite
        self._transcript = Transcript(self.suite.hash_name)
        self._transcript.update(self._client_hello_bytes)
        self._transcript.hello_retry_request()
        self._transcript.update(raw)
        self._events.append(HelloRetryRequestReceived(NamedGroup(group) if group is not None else None))
        if group is not None:
            # A key_share in the HRR replaces our shares by one for its group (4.1.2);
            # without one (a cookie-only HRR) the shares stay as they were.
            self._key_shares.clear()
            self._public_shares.clear()
            self._new_key_share(group)
        # RFC 8446 D.4 allows our CCS before the second ClientHello or before our first
        # encrypted flight; the latter (see _set_write_key) also suits servers that keep no
        # state across the HRR (openssl s_server -stateless fails on a CCS before ClientHello2).
        hello = self._build_client_hello()
        self._client_hello = hello
        self._client_hello_bytes = self._send_handshake(hello)

    def _new_key_share(self, group: int) -> None:
        private, public = cx509.generate_key_share(group)
        self._key_shares[group] = private
        self._public_shares[group] = public

    def _client_on_encrypted_extensions(self, msg: EncryptedExtensions, raw: bytes) -> None:
        assert self._transcript is not None
        alpn = _find(msg.extensions, ExtensionType.application_layer_protocol_negotiation)
        if alpn is not None:
            try:
                names = wx.pull_alpn_protocols(alpn)
            except DecodeError as exc:
                raise _err("ERR_DECODE", str(exc), _AD.decode_error) from exc
            offered = [p.encode() for p in self.config.alpn_protocols]
            if len(names) != 1 or names[0] not in offered:
                raise _err(
                    "ERR_ILLEGAL_PARAMETER", f"server ALPN {names!r} was not offered", _AD.illegal_parameter
                )
            self.alpn = names[0].decode("latin-1")
        for forbidden in (
            ExtensionType.key_share,
            ExtensionType.supported_versions,
            ExtensionType.pre_shared_key,
        ):
            if _find(msg.extensions, forbidden) is not None:
                raise _err(
                    "ERR_ILLEGAL_PARAMETER",
                    f"{name_of(ExtensionType, forbidden)} is not allowed in EncryptedExtensions",
                    _AD.illegal_parameter,
                )
        self._transcript.update(raw)
        self._transition(HandshakeType.encrypted_extensions)

    def _client_on_certificate_request(self, msg: CertificateRequest, raw: bytes) -> None:
        assert self._transcript is not None
        if msg.certificate_request_context:
            raise _err(
                "ERR_ILLEGAL_PARAMETER",
                "non-empty certificate_request_context in the handshake",
                _AD.illegal_parameter,
            )
        algs = _find(msg.extensions, ExtensionType.signature_algorithms)
        if algs is None:
            raise _err(
                "ERR_MISSING_EXTENSION",
                "CertificateRequest without signature_algorithms",
                _AD.missing_extension,
            )
        try:
            self._peer_schemes = wx.pull_signature_schemes(algs)
        except DecodeError as exc:
            raise _err("ERR_DECODE", str(exc), _AD.decode_error) from exc
        self._cert_requested = msg
        self._transcript.update(raw)
        self._transition(HandshakeType.certificate_request)

    def _client_on_finished(self, msg: Finished, raw: bytes) -> None:
        assert self._transcript is not None and self.suite is not None
        self._check_finished(msg, self._server_hs_secret, "server")
        self._transcript.update(raw)
        self._derive_application_secrets()
        self._set_read_key(self._server_ap_secret, "application")
        # Our second flight, under the client handshake key (RFC 8446 4.4).
        if self._cert_requested is not None:
            self._send_certificate_and_verify(self._cert_requested.certificate_request_context)
        self._send_finished(self._client_hs_secret)
        self._flush_handshake()
        self._schedule_resumption()
        self._set_write_key(self._client_ap_secret, "application")
        self._transition(HandshakeType.finished)
        self._complete()

    def _client_on_new_session_ticket(self, msg: NewSessionTicket) -> None:
        assert self.suite is not None
        psk = resumption_psk(self.suite.hash_name, self._resumption_secret, msg.ticket_nonce)
        self._transition(HandshakeType.new_session_ticket)
        self._events.append(
            NewSessionTicketReceived(
                msg.ticket_lifetime, msg.ticket_age_add, msg.ticket_nonce, msg.ticket, psk
            )
        )

    # ---------------------------------------------------------------- server

    def _server_on_client_hello(self, msg: ClientHello, raw: bytes) -> None:
        cfg = self.config
        second = self.state is State.SERVER_EXPECT_SECOND_CLIENT_HELLO
        self._first_client_hello_seen = True
        versions_data = _find(msg.extensions, ExtensionType.supported_versions)
        versions: tuple[int, ...] = ()
        if versions_data is not None:
            try:
                versions = wx.pull_supported_versions(versions_data)
            except DecodeError as exc:
                raise _err("ERR_DECODE", str(exc), _AD.decode_error) from exc
        if _TLS13 not in versions:
            raise _err(
                "ERR_PROTOCOL_VERSION",
                "the client does not offer TLS 1.3 (supported_versions), the only version of this engine",
                _AD.protocol_version,
            )
        if msg.legacy_compression_methods != b"\x00":
            raise _err("ERR_ILLEGAL_PARAMETER", "compression methods other than null", _AD.illegal_parameter)
        if second:
            # RFC 8446 4.1.2: the second ClientHello repeats the first but for listed changes.
            assert self._client_hello is not None
            if msg.random != self._client_hello.random or msg.legacy_session_id != self._session_id:
                raise _err(
                    "ERR_ILLEGAL_PARAMETER",
                    "second ClientHello changed random or session id",
                    _AD.illegal_parameter,
                )
        self._client_hello = msg
        self.client_random = msg.random
        self._session_id = msg.legacy_session_id
        self._want_ccs = cfg.middlebox_compat and bool(msg.legacy_session_id)
        # Cipher suite: ours first (server preference).
        suite_code = next((s for s in cfg.cipher_suites if s in msg.cipher_suites), None)
        if suite_code is None:
            offered = ", ".join(name_of(CipherSuite, s) for s in msg.cipher_suites)
            raise _err(
                "ERR_NO_SHARED_CIPHER",
                f"no cipher suite in common (client offered {offered})",
                _AD.handshake_failure,
            )
        if second and suite_code != self._hrr_suite:
            raise _err(
                "ERR_ILLEGAL_PARAMETER",
                "second ClientHello does not allow the HRR cipher suite",
                _AD.illegal_parameter,
            )
        groups_data = _find(msg.extensions, ExtensionType.supported_groups)
        shares_data = _find(msg.extensions, ExtensionType.key_share)
        algs_data = _find(msg.extensions, ExtensionType.signature_algorithms)
        for name, value in (
            ("supported_groups", groups_data),
            ("key_share", shares_data),
            ("signature_algorithms", algs_data),
        ):
            if value is None:
                # RFC 8446 9.2: a certificate-based handshake needs all three.
                raise _err("ERR_MISSING_EXTENSION", f"ClientHello without {name}", _AD.missing_extension)
        assert groups_data is not None and shares_data is not None and algs_data is not None
        try:
            client_groups = wx.pull_supported_groups(groups_data)
            shares = wx.pull_key_share_client(shares_data)
            self._peer_schemes = wx.pull_signature_schemes(algs_data)
            sni_data = _find(msg.extensions, ExtensionType.server_name)
            names = wx.pull_server_name_list(sni_data) if sni_data is not None else ()
            alpn_data = _find(msg.extensions, ExtensionType.application_layer_protocol_negotiation)
            client_alpn = wx.pull_alpn_protocols(alpn_data) if alpn_data is not None else ()
        except DecodeError as exc:
            raise _err("ERR_DECODE", str(exc), _AD.decode_error) from exc
        share_groups = [s.group for s in shares]
        if len(set(share_groups)) != len(share_groups):
            raise _err("ERR_ILLEGAL_PARAMETER", "two key shares for one group", _AD.illegal_parameter)
        self.server_name = names[0] if names else None
        # Our signature scheme: the first our key can make that the client accepts.
        assert cfg.credential is not None
        ours = x509_engine.compatible_schemes(cfg.credential.private_key)
        self._our_scheme = next((s for s in ours if s in self._peer_schemes), None)
        if self._our_scheme is None:
            raise _err(
                "ERR_NO_SHARED_SIGNATURE_SCHEME",
                "the client accepts no signature scheme our key can make",
                _AD.handshake_failure,
            )
        # ALPN (RFC 7301 3.2): ours in order, first the client also offers.
        if client_alpn and cfg.alpn_protocols:
            chosen = next((p for p in cfg.alpn_protocols if p.encode() in client_alpn), None)
            if chosen is None:
                raise _err(
                    "ERR_NO_APPLICATION_PROTOCOL",
                    f"no common ALPN protocol (client: {client_alpn!r})",
                    _AD.no_application_protocol,
                )
            self.alpn = chosen
        # Group: a share we can use, else a HelloRetryRequest for a common group (4.1.1).
        share = next((s for g in cfg.groups for s in shares if s.group == g), None)
        self.suite = SUITES[suite_code]
        self.cipher_suite = CipherSuite(suite_code)
        if share is None:
            if second:
                raise _err(
                    "ERR_ILLEGAL_PARAMETER",
                    "second ClientHello has no key share for the HRR group",
                    _AD.illegal_parameter,
                )
            group = next((g for g in cfg.groups if g in client_groups), None)
            if group is None:
                raise _err("ERR_NO_SHARED_GROUP", "no supported group in common", _AD.handshake_failure)
            self._send_hello_retry_request(msg, raw, suite_code, group)
            return
        if second and share.group != self._hrr_group:
            raise _err(
                "ERR_ILLEGAL_PARAMETER",
                "second ClientHello key share is not for the HRR group",
                _AD.illegal_parameter,
            )
        private, public = cx509.generate_key_share(share.group)
        try:
            shared = cx509.shared_secret(share.group, private, share.key_exchange)
        except CryptoError as exc:
            raise _err(
                "ERR_ILLEGAL_PARAMETER", f"bad client key share: {exc}", _AD.illegal_parameter
            ) from exc
        self.group = NamedGroup(share.group)
        if self._transcript is None:
            self._transcript = Transcript(self.suite.hash_name)
        self._transcript.update(raw)
        branch = Branch.CLIENT_AUTH_REQUESTED if cfg.client_auth is not ClientAuth.NONE else None
        server_hello = ServerHello(
            legacy_version=_LEGACY_VERSION,
            random=os.urandom(32),
            legacy_session_id_echo=self._session_id,
            cipher_suite=suite_code,
            legacy_compression_method=0,
            extensions=(
                wx.Extension(ExtensionType.supported_versions, wx.push_selected_version(_TLS13)),
                wx.Extension(
                    ExtensionType.key_share, wx.push_key_share_server(wx.KeyShareEntry(share.group, public))
                ),
            ),
        )
        self._send_handshake(server_hello)
        self._derive_handshake_secrets(shared)
        self._set_write_key(self._server_hs_secret, "handshake")
        self._set_read_key(self._client_hs_secret, "handshake")
        # EncryptedExtensions (RFC 8446 4.3.1)
        ee: list[wx.Extension] = []
        if self.server_name is not None:
            ee.append(wx.Extension(ExtensionType.server_name, b""))  # RFC 6066 3: acknowledged
        if self.alpn is not None:
            ee.append(
                wx.Extension(
                    ExtensionType.application_layer_protocol_negotiation,
                    wx.push_alpn_protocols((self.alpn.encode(),)),
                )
            )
        self._send_handshake(EncryptedExtensions(tuple(ee)))
        if branch is not None:
            self._cert_requested = CertificateRequest(
                b"",
                (
                    wx.Extension(
                        ExtensionType.signature_algorithms, wx.push_signature_schemes(self._offered_schemes)
                    ),
                ),
            )
            self._send_handshake(self._cert_requested)
        self._send_certificate_and_verify(b"", server=True)
        self._send_finished(self._server_hs_secret)
        self._flush_handshake()
        self._derive_application_secrets()
        self._set_write_key(self._server_ap_secret, "application")
        self._transition(HandshakeType.client_hello, branch)

    def _send_hello_retry_request(self, msg: ClientHello, raw: bytes, suite_code: int, group: int) -> None:
        assert self.suite is not None
        self._hrr_suite = suite_code
        self._hrr_group = group
        self.hello_retry = True
        self._transcript = Transcript(self.suite.hash_name)
        self._transcript.update(raw)
        self._transcript.hello_retry_request()
        hrr = ServerHello(
            legacy_version=_LEGACY_VERSION,
            random=HRR_RANDOM,
            legacy_session_id_echo=self._session_id,
            cipher_suite=suite_code,
            legacy_compression_method=0,
            extensions=(
                wx.Extension(ExtensionType.supported_versions, wx.push_selected_version(_TLS13)),
                wx.Extension(ExtensionType.key_share, wx.push_key_share_hrr(group)),
            ),
        )
        self._send_handshake(hrr)
        self._flush_handshake()
        if self._want_ccs:
            self._send_ccs()  # RFC 8446 D.4: after the server's first handshake message
        self._events.append(HelloRetryRequestSent(NamedGroup(group)))
        self._transition(HandshakeType.client_hello, Branch.HELLO_RETRY_REQUEST)

    def _server_on_finished(self, msg: Finished, raw: bytes) -> None:
        assert self._transcript is not None
        self._check_finished(msg, self._client_hs_secret, "client")
        self._transcript.update(raw)
        self._schedule_resumption()
        self._set_read_key(self._client_ap_secret, "application")
        self._transition(HandshakeType.finished)
        self._complete()
        for _ in range(self.config.session_tickets):
            self._send_new_session_ticket()
        self._flush_handshake()

    def _send_new_session_ticket(self) -> None:
        # Resumption is not implemented on the server side: the ticket is opaque random bytes
        # that no later handshake will accept. Clients still get to record one (RFC 8446 4.6.1).
        nonce = self._tickets_sent.to_bytes(8, "big")
        self._tickets_sent += 1
        self._send_handshake(
            NewSessionTicket(
                ticket_lifetime=self.config.ticket_lifetime,
                ticket_age_add=int.from_bytes(os.urandom(4), "big"),
                ticket_nonce=nonce,
                ticket=os.urandom(32),
            )
        )

    # ---------------------------------------------------------------- both sides

    def _schedule_resumption(self) -> None:
        assert self._schedule is not None and self._transcript is not None
        self._resumption_secret = self._schedule.resumption_master_secret(self._transcript.digest())
        if self._trace.mask & _T.KEYS:
            self._trace.emit(_T.KEYS, "derived resumption_master_secret")

    def _send_certificate_and_verify(self, context: bytes, server: bool = False) -> None:
        cred = self.config.credential
        if cred is None:
            # RFC 8446 4.4.2: a client without a certificate answers with an empty one.
            self._send_handshake(Certificate(context, ()))
            return
        if server:
            scheme = self._our_scheme
        else:
            ours = x509_engine.compatible_schemes(cred.private_key)
            scheme = next((s for s in ours if s in self._peer_schemes), None)
            if scheme is None:
                # Nothing the server accepts: send no certificate and let it decide.
                self._send_handshake(Certificate(context, ()))
                return
        assert scheme is not None and self._transcript is not None
        self._send_handshake(Certificate(context, tuple(CertificateEntry(der) for der in cred.chain)))
        content = _CV_PAD + (_CV_SERVER if server else _CV_CLIENT) + self._transcript.digest()
        try:
            signature = cx509.sign(cred.private_key, scheme, content)
        except CryptoError as exc:
            raise _err(
                "ERR_INTERNAL",
                f"cannot sign CertificateVerify: {exc}",
                _AD.internal_error,
                ErrorKind.INTERNAL,
            ) from exc
        self._send_handshake(CertificateVerify(scheme, signature))

    def _send_finished(self, base_key: bytes) -> None:
        assert self.suite is not None and self._transcript is not None
        verify_data = finished_verify_data(self.suite.hash_name, base_key, self._transcript.digest())
        self._send_handshake(Finished(verify_data))

    def _check_finished(self, msg: Finished, base_key: bytes, whose: str) -> None:
        assert self.suite is not None and self._transcript is not None
        expected = finished_verify_data(self.suite.hash_name, base_key, self._transcript.digest())
        if not hmac.compare_digest(expected, msg.verify_data):
            raise _err("ERR_BAD_FINISHED", f"the {whose} Finished does not verify", _AD.decrypt_error)

    def _on_certificate(self, msg: Certificate, raw: bytes) -> None:
        assert self._transcript is not None
        # RFC 8446 4.4.2: empty for the server's, and our in-handshake CertificateRequest always
        # has an empty context for the client to echo (no post-handshake authentication).
        if msg.certificate_request_context:
            raise _err("ERR_ILLEGAL_PARAMETER", "certificate_request_context mismatch", _AD.illegal_parameter)
        chain = msg.der_list
        self._transcript.update(raw)
        if not chain:
            if self.is_client:
                # RFC 8446 4.4.2.4: the server must send a certificate.
                raise _err("ERR_DECODE", "the server sent an empty Certificate", _AD.decode_error)
            if self.config.client_auth is ClientAuth.REQUIRED:
                raise _err("ERR_CERT_REQUIRED", "the client sent no certificate", _AD.certificate_required)
            self._transition(HandshakeType.certificate, Branch.EMPTY_CERTIFICATE)
            return
        self.peer_certificates = chain
        if self.config.verify:
            self._verify_peer_chain(chain)
        elif self._trace.mask & _T.HANDSHAKE:
            self._trace.emit(_T.HANDSHAKE, "peer certificate NOT verified (verify=False)")
        self._transition(HandshakeType.certificate)

    def _verify_peer_chain(self, chain: tuple[bytes, ...]) -> None:
        at = self._now or datetime.now(UTC)
        try:
            if self.is_client:
                assert self.config.server_name is not None
                cx509.verify_chain(
                    chain[0], chain[1:], list(self.config.trust_roots), self.config.server_name, at
                )
            else:
                x509_engine.verify_client_chain(chain[0], chain[1:], self.config.trust_roots, at)
        except cx509.CertificateUnknownCA as exc:
            raise _err("ERR_CERT_UNKNOWN_CA", str(exc), _AD.unknown_ca) from exc
        except cx509.CertificateExpired as exc:
            raise _err("ERR_CERT_EXPIRED", str(exc), _AD.certificate_expired) from exc
        except cx509.CertificateNotYetValid as exc:
            # RFC 8446 6.2: certificate_expired covers "expired or not currently valid".
            raise _err("ERR_CERT_NOT_YET_VALID", str(exc), _AD.certificate_expired) from exc
        except cx509.CertificateHostnameMismatch as exc:
            raise _err("ERR_CERT_HOSTNAME", str(exc), _AD.bad_certificate) from exc
        except cx509.CertificateChainTooLong as exc:
            raise _err("ERR_CERT_CHAIN_TOO_LONG", str(exc), _AD.bad_certificate) from exc
        except (cx509.CertificateVerifyError, cx509.CertificateDecodeError) as exc:
            raise _err("ERR_CERT_INVALID", str(exc), _AD.bad_certificate) from exc
        except UsageError as exc:
            raise _err("ERR_CERT_UNKNOWN_CA", f"cannot verify: {exc}", _AD.unknown_ca) from exc
        if self._trace.mask & _T.HANDSHAKE:
            self._trace.emit(_T.HANDSHAKE, "peer certificate chain verified")

    def _on_certificate_verify(self, msg: CertificateVerify, raw: bytes) -> None:
        assert self._transcript is not None
        scheme = msg.algorithm
        allowed = self._offered_schemes
        if scheme is None or scheme not in allowed:
            raise _err(
                "ERR_ILLEGAL_PARAMETER",
                f"CertificateVerify uses {name_of(SignatureScheme, scheme or 0)}, which we did not offer",
                _AD.illegal_parameter,
            )
        content = _CV_PAD + (_CV_SERVER if self.is_client else _CV_CLIENT) + self._transcript.digest()
        try:
            cx509.verify_signature(self.peer_certificates[0], scheme, content, msg.signature)
        except CryptoError as exc:
            raise _err(
                "ERR_BAD_SIGNATURE", f"CertificateVerify does not verify: {exc}", _AD.decrypt_error
            ) from exc
        self.peer_signature_scheme = SignatureScheme(scheme)
        self._transcript.update(raw)
        self._transition(HandshakeType.certificate_verify)

    def _complete(self) -> None:
        assert self.cipher_suite is not None and self.group is not None
        if self.is_client:
            assert self.peer_signature_scheme is not None
            scheme = self.peer_signature_scheme
        else:
            assert self._our_scheme is not None
            scheme = SignatureScheme(self._our_scheme)
        self._events.append(
            HandshakeComplete(
                cipher_suite=self.cipher_suite,
                group=self.group,
                alpn=self.alpn,
                server_name=self.server_name,
                signature_scheme=scheme,
                peer_certificates=self.peer_certificates,
                hello_retry=self.hello_retry,
            )
        )

    # ---------------------------------------------------------------- KeyUpdate (RFC 8446 4.6.3)

    def _send_key_update(self, request: bool) -> None:
        assert self._write is not None and self.suite is not None
        value = KeyUpdateRequest.update_requested if request else KeyUpdateRequest.update_not_requested
        self._send_handshake(KeyUpdate(value))
        self._flush_handshake()
        self._write = self._write.next_generation()
        self._write_seq = 0
        self._write_generation += 1
        if self._trace.mask & _T.KEYS:
            self._trace.emit(_T.KEYS, f"write key updated to generation {self._write_generation}")
        if self.config.key_log_update_lines:
            self._log_update_line(write=True)

    def _on_key_update(self, msg: KeyUpdate) -> None:
        if msg.request_update not in (0, 1):
            raise _err(
                "ERR_ILLEGAL_PARAMETER",
                f"KeyUpdate request_update={msg.request_update}",
                _AD.illegal_parameter,
            )
        assert self._read is not None
        self._transition(HandshakeType.key_update)
        if self._more_handshake_data:
            raise _err(
                "ERR_UNEXPECTED_MESSAGE",
                "handshake data continues across a KeyUpdate",
                _AD.unexpected_message,
            )
        self._read = self._read.next_generation()
        self._read_seq = 0
        self._read_generation += 1
        if self._trace.mask & _T.KEYS:
            self._trace.emit(_T.KEYS, f"read key updated to generation {self._read_generation}")
        if self.config.key_log_update_lines:
            self._log_update_line(write=False)
        requested = msg.request_update == KeyUpdateRequest.update_requested
        if requested and not self.send_closed:
            # Answer before our next application data; one answer covers several requests.
            self._send_key_update(False)
        self._events.append(KeyUpdateReceived(requested))

    def _log_update_line(self, write: bool) -> None:
        # OpenSSL-style CLIENT_/SERVER_TRAFFIC_SECRET_N. The secret is derived again here so
        # that Tls13Protection keeps its secret private.
        assert self.suite is not None
        ours_client = self.is_client == write
        generation = self._write_generation if write else self._read_generation
        secret = self._client_ap_secret if ours_client else self._server_ap_secret
        for _ in range(generation):
            secret = next_traffic_secret(self.suite.hash_name, secret)
        label = f"{'CLIENT' if ours_client else 'SERVER'}_TRAFFIC_SECRET_{generation}"
        self._log_secret(label, secret)
