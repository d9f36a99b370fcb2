"""The sans-IO TLS engine (TLS 1.3, RFC 8446; TLS 1.2, RFC 5246): one :class:`Connection` per
client or server. The version is negotiated by the hellos (``client.py``/``server.py``); the
TLS 1.2 handlers are in ``client12.py``, ``server12.py`` and ``hs12.py``.

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

1. **records** (RFC 8446 section 5): ``frame_records`` cuts the stream; each record is opened
   by the read :class:`~capdebug.crypto.record.RecordDirection` (the record layer the capture
   decoder shares: protection, sequence number, size limits), and what we send is sealed by
   the write one; the rules for which content types may come with which keys are in
   :func:`records.handle_record <capdebug.tls.records.handle_record>`;
2. **handshake messages** (section 4): fragments are joined, ``frame_handshake`` cuts them,
   and each message is checked against the transition table of ``state.py`` *before* its
   handler runs; handlers only process messages that are allowed. The handlers live in
   ``client.py``, ``server.py`` and (for what both sides send and check) ``auth.py``, as
   functions of the connection;
3. **events**: handlers append frozen events (``events.py``) to a queue.

A failure at any layer becomes a :class:`~capdebug.errors.TLSError` stored at its place in the
event stream: the fatal alert RFC 8446 section 6 asks for is queued for the peer at once
(``data_to_send()`` returns it), nothing more is read or sent, and ``next_event()`` raises the
error after handing out the events that came before it.

Secrets are reported through ``config.key_log_callback`` the moment they are derived, so a
handshake that fails after the ServerHello still leaves a key log that decrypts the failure.
"""

from __future__ import annotations

import dataclasses
import os
from collections import deque
from collections.abc import Callable
from datetime import datetime

from .._buffer import Buffer
from ..crypto import x509 as cx509
from ..crypto import x509_engine
from ..crypto.keylog import format_line
from ..crypto.record import RecordDirection
from ..crypto.schedule13 import KeySchedule, Transcript
from ..crypto.suites import SuiteParams
from ..errors import CryptoError, DecodeError, ErrorKind, TLSError, UsageError
from ..wire import extensions as wx
from ..wire.constants import (
    AlertDescription,
    CipherSuite,
    ContentType,
    ExtensionType,
    HandshakeType,
    NamedGroup,
    ProtocolVersion,
    SignatureScheme,
    name_of,
    version_name,
)
from ..wire.handshake import (
    HANDSHAKE_HEADER_SIZE,
    Certificate,
    CertificateRequest,
    CertificateRequest12,
    ClientHello,
    HandshakeMessage,
    encode_handshake,
    frame_handshake,
    pull_handshake,
)
from ..wire.record import RECORD_HEADER_SIZE, RecordTooLong, frame_records
from . import client, client12, early, keyupdate, records, server, server12
from ._common import AD, T, err, fmt
from .config import ClientAuth, TLSConfig
from .events import Event
from .faults import Faults
from .session import Session, TicketState
from .state import Branch, Received, State, next_state, next_state_on_send
from .trace import Tracer

__all__ = ["Connection"]

_MAX_HANDSHAKE_BUFFER = 1 << 20  # a certificate chain larger than 1 MiB is an attack, not a chain


class Connection:
    """One TLS 1.3 or 1.2 connection, client or server. See the module docstring."""

    def __init__(
        self,
        config: TLSConfig,
        *,
        is_client: bool,
        now: datetime | Callable[[], datetime] | None = None,
        faults: Faults | None = None,
        session: Session | None = None,
        early_data: bytes | None = None,
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
        self._rx = RecordDirection()
        """The records we receive: plaintext until the first read key (crypto/record.py)."""
        self._tx = RecordDirection()
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
        # TLS 1.2 (RFC 5246)
        self.version: ProtocolVersion | None = None
        """The negotiated version, once the hellos have settled it."""
        self.server_random = b""
        self._master_secret = b""
        self._premaster = b""
        self._our_public = b""
        self._ems = False
        self._etm = False
        self._secure_renegotiation = False
        self._pending_rx: RecordDirection | None = None
        """TLS 1.2: the read direction that the peer's ChangeCipherSpec switches to."""
        self._pending_tx: RecordDirection | None = None
        self._hs_messages = bytearray()
        """TLS 1.2: the handshake messages themselves, for CertificateVerify (RFC 5246 7.4.8)."""
        self._cert_request12: CertificateRequest12 | None = None
        self._resumed12 = False
        """TLS 1.2 abbreviated handshake (a session ID or RFC 5077 ticket was accepted)."""
        self._ticket12: tuple[int, bytes] | None = None
        """Client: (lifetime hint, ticket) of the TLS 1.2 NewSessionTicket."""
        self._ticket_expected = False
        """TLS 1.2: the server acknowledged session_ticket and will send a NewSessionTicket."""
        # TLS 1.3 resumption (psk.py)
        self._session = session if is_client else None
        """Client: the session to offer (dropped when it cannot apply)."""
        self._psk = b""
        """The PSK the handshake uses, once both sides agreed on it."""
        self._ticket_state: TicketState | None = None
        self._replayed_ticket = False
        """Server: a ticket was offered a second time (and refused)."""
        # TLS 1.3 0-RTT (early.py)
        self._early_data = early_data if is_client else None
        self._offered_early_data = False
        self._early_data_sent = 0
        self._early_accepted: bool | None = None
        self._skip_early = 0
        """Server: rejected 0-RTT bytes still to skip (RFC 8446 4.2.10)."""
        self._early_budget = 0
        self._key_update_owed = False
        """The peer requested a KeyUpdate not yet answered (RFC 8446 4.6.3)."""
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

    def _now_ms(self) -> int | None:
        """The time the driver gave us, in ms since the epoch (ticket ages, RFC 8446 4.6.1)."""
        at = self._now() if callable(self._now) else self._now
        return None if at is None else int(at.timestamp() * 1000)

    @property
    def resumed(self) -> bool:
        """TLS 1.3: the handshake was authenticated by a resumption PSK."""
        return bool(self._psk) or self._resumed12

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
        offers_tls13 = ProtocolVersion.TLS1_3 in client.offered_versions(self)
        # RFC 8446 D.4: a non-empty legacy_session_id makes the server echo it and send CCS.
        self._session_id = os.urandom(32) if self.config.middlebox_compat and offers_tls13 else b""
        s = self._session
        if s is not None and s.version == ProtocolVersion.TLS1_2:
            # RFC 5246 7.4.1.2: the ID to resume; with a ticket, a fresh ID the server echoes
            # when it accepts the ticket (RFC 5077 3.4).
            self._session_id = os.urandom(32) if s.ticket else s.session_id
        if offers_tls13:
            for group in self.config.initial_key_share_groups:
                client.new_key_share(self, group)
        hello = client.build_client_hello(self)
        self._client_hello = hello
        self._client_hello_bytes = self._send_handshake(hello)
        self._flush_handshake()  # in state START, so the record says 0x0301 (see records.write_record)
        self._transition_on_send(HandshakeType.client_hello)
        early.client_sent_hello(self, self._client_hello_bytes)

    def receive_data(self, data: bytes | bytearray | memoryview) -> None:
        """Feed bytes received from the peer. Failures surface through ``next_event()``."""
        if self._error is not None or self.receive_closed:
            return  # RFC 8446 6.1: data after a closure alert is ignored; after a failure too
        if not self._started:
            self.start_handshake()
        self._in += data
        try:
            found, consumed = frame_records(self._in)
        except RecordTooLong as exc:
            self._fail(err("ERR_RECORD_OVERFLOW", f"bad record header: {exc}", AD.record_overflow))
            return
        except DecodeError as exc:
            self._fail(err("ERR_DECODE", f"bad record header: {exc}", AD.decode_error))
            return
        if not found:
            return
        # Take the complete records out as one immutable copy: views into it can outlive this
        # call (in a stored exception's traceback) without pinning the receive buffer.
        complete = bytes(self._in[:consumed])
        del self._in[:consumed]
        view = memoryview(complete)
        try:
            for content_type, at, length in found:
                if self._error is not None or self.receive_closed:
                    break
                body = at + RECORD_HEADER_SIZE
                records.handle_record(self, content_type, view[at:body], view[body : body + length])
        except TLSError as exc:
            self._fail(exc)
        if self._key_update_owed:
            # RFC 8446 4.6.3: one KeyUpdate of ours answers every request that arrived while
            # we were silent (10,000 requests in one read got 10,000 replies).
            self._key_update_owed = False
            if self._error is None and not self.send_closed:
                keyupdate.send(self, False)
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
            err(
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
            records.write_record(self, ContentType.application_data, view[i : i + step])

    def key_update(self, request: bool = False) -> None:
        """Send a KeyUpdate and move to our next sending key (RFC 8446 4.6.3); with
        ``request`` the peer must answer with its own."""
        self._check_can_send()
        if not self.handshake_complete:
            raise TLSError("ERR_NOT_CONNECTED", ErrorKind.USAGE, "KeyUpdate before the handshake completed")
        keyupdate.send(self, request)

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
        if self._trace.mask & T.HANDSHAKE:
            self._trace.emit(T.HANDSHAKE, f"failed in {self.state.name}: {exc} [{exc.debug}]")
        if send_alert and exc.alert is not None and not self.send_closed and exc.kind is not ErrorKind.ALERT:
            self._hs_out.clear()  # a half-built flight must not follow the alert
            records.send_alert(self, exc.alert)
        self.send_closed = True
        self.receive_closed = True

    def _send_close_notify(self) -> None:
        if self.send_closed:
            return
        self._flush_handshake()
        if self.faults is None or self.faults.on_close_notify():
            records.send_alert(self, AD.close_notify)
        self.send_closed = True

    def _check_can_send(self) -> None:
        if self._error is not None:
            raise TLSError("ERR_CLOSED", ErrorKind.CLOSED, f"the connection failed earlier: {self._error}")
        if self.send_closed and (self.faults is None or not self.faults.may_send_after_close()):
            raise TLSError("ERR_SEND_CLOSED", ErrorKind.USAGE, "close_notify was already sent")

    # ================================================================ handshake layer

    def _send_handshake(self, msg: HandshakeMessage) -> bytes:
        data = encode_handshake(msg)
        if self._transcript is not None:
            self._transcript.update(data)
        self._hs_out += data if self.faults is None else self.faults.on_handshake_out(msg.msg_type, data)
        if self._trace.mask & T.MESSAGES:
            self._trace_message("send", msg)
        return data

    def _flush_handshake(self) -> None:
        if self._hs_out:
            data = bytes(self._hs_out)
            self._hs_out.clear()
            records.write_record(self, ContentType.handshake, data)

    def _trace_message(self, direction: str, msg: HandshakeMessage) -> None:
        # The message's own fields, generically: naming them for people is the analysis layer's
        # job (analysis/describe.py), which the engine does not import.
        fields: dict[str, object] = {}
        for f in dataclasses.fields(msg):
            value = getattr(msg, f.name)
            if f.name == "extensions":
                value = [name_of(ExtensionType, e.type) for e in value]
            elif f.name == "cipher_suites":
                value = [name_of(CipherSuite, s) for s in value]
            elif f.name == "cipher_suite":
                value = name_of(CipherSuite, value)
            elif f.name == "algorithm" and isinstance(value, int):
                value = name_of(SignatureScheme, value)
            elif f.name == "legacy_version":
                value = version_name(value)
            elif isinstance(value, tuple) and value and not isinstance(value[0], int | str):
                value = f"<{len(value)} items>"
            fields[f.name] = value
        if isinstance(msg, Certificate):
            subjects = []
            for der in msg.der_list:
                try:
                    subjects.append(cx509.summarize_certificate(der).subject)
                except (CryptoError, DecodeError):
                    subjects.append("<undecodable>")
            fields["subjects"] = subjects
        text = " ".join(f"{k}={fmt(v)}" for k, v in fields.items())
        self._trace.emit(T.MESSAGES, f"{direction} {name_of(HandshakeType, msg.msg_type)} {text}")

    def _process_handshake_buffer(self) -> None:
        if len(self._hs_in) > _MAX_HANDSHAKE_BUFFER:
            raise err("ERR_HANDSHAKE_TOO_LARGE", "handshake message larger than 1 MiB", AD.decode_error)
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
                msg = pull_handshake(Buffer(raw), tls13=self.version != ProtocolVersion.TLS1_2)
            except wx.DuplicateExtension as exc:
                # RFC 8446 4.2; OpenSSL also answers illegal_parameter.
                raise err(
                    "ERR_ILLEGAL_PARAMETER",
                    f"{name_of(HandshakeType, msg_type)}: {exc}",
                    AD.illegal_parameter,
                ) from exc
            except DecodeError as exc:
                raise err(
                    "ERR_DECODE", f"malformed {name_of(HandshakeType, msg_type)}: {exc}", AD.decode_error
                ) from exc
            if self._trace.mask & T.MESSAGES:
                self._trace_message("recv", msg)
            self._dispatch(msg, raw)

    def _transition(self, msg_type: Received | int, branch: Branch | None = None) -> None:
        new = next_state(self.state, msg_type, branch)
        self._enter(new)

    def _transition_on_send(self, msg_type: HandshakeType) -> None:
        self._enter(next_state_on_send(self.state, msg_type))

    def _enter(self, new: State) -> None:
        old, self.state = self.state, new
        if old is not new and self._trace.mask & T.HANDSHAKE:
            self._trace.emit(T.HANDSHAKE, f"{old.name} -> {new.name}")
        if self.faults is not None:
            desc = self.faults.on_enter_state(new)
            if desc is not None:
                raise err(
                    "ERR_INJECTED_ALERT",
                    f"fault injection: sending {name_of(AlertDescription, desc)} in {new.name}",
                    desc,
                    ErrorKind.INTERNAL,
                )

    def _dispatch(self, msg: HandshakeMessage, raw: bytes) -> None:
        if self.version == ProtocolVersion.TLS1_2:
            (client12 if self.is_client else server12).dispatch(self, msg, raw)
        else:
            (client if self.is_client else server).dispatch(self, msg, raw)

    # ---------------------------------------------------------------- key log

    def _log_secret(self, label: str, secret: bytes) -> None:
        if self._trace.mask & T.KEYS:
            self._trace.emit(T.KEYS, f"derived {label} ({len(secret)} bytes)")
        cb = self.config.key_log_callback
        if cb is not None:
            cb(format_line(label, self.client_random, secret))

    def _derive_handshake_secrets(self, shared: bytes) -> None:
        assert self.suite is not None and self._transcript is not None
        self._schedule = KeySchedule(self.suite.hash_name, self._psk or None)
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

    # ---------------------------------------------------------------- both sides

    def _verify_peer_chain(self, chain: tuple[bytes, ...]) -> None:
        # The engine reads no clock (ARCHITECTURE.md): its driver passes the time, as a datetime
        # or as a clock of its own, e.g. ``lambda: datetime.now(UTC)``.
        at = self._now() if callable(self._now) else self._now
        if at is None:
            raise err(
                "ERR_NO_TIME",
                "verifying certificates needs the time: pass Connection(now=...)",
                AD.internal_error,
                ErrorKind.USAGE,
            )
        try:
            if self.is_client:
                assert self.config.server_name is not None
                cx509.verify_chain(
                    chain[0], chain[1:], list(self.config.trust_roots), self.config.server_name, at
                )
            else:
                x509_engine.verify_client_chain(chain[0], chain[1:], self.config.trust_roots, at)
        except cx509.CertificateUnknownCA as exc:
            raise err("ERR_CERT_UNKNOWN_CA", str(exc), AD.unknown_ca) from exc
        except cx509.CertificateExpired as exc:
            raise err("ERR_CERT_EXPIRED", str(exc), AD.certificate_expired) from exc
        except cx509.CertificateNotYetValid as exc:
            # RFC 8446 6.2: certificate_expired covers "expired or not currently valid".
            raise err("ERR_CERT_NOT_YET_VALID", str(exc), AD.certificate_expired) from exc
        except cx509.CertificateHostnameMismatch as exc:
            raise err("ERR_CERT_HOSTNAME", str(exc), AD.bad_certificate) from exc
        except cx509.CertificateChainTooLong as exc:
            raise err("ERR_CERT_CHAIN_TOO_LONG", str(exc), AD.bad_certificate) from exc
        except (cx509.CertificateVerifyError, cx509.CertificateDecodeError) as exc:
            raise err("ERR_CERT_INVALID", str(exc), AD.bad_certificate) from exc
        except UsageError as exc:
            raise err("ERR_CERT_UNKNOWN_CA", f"cannot verify: {exc}", AD.unknown_ca) from exc
        if self._trace.mask & T.HANDSHAKE:
            self._trace.emit(T.HANDSHAKE, "peer certificate chain verified")
