"""Records to events: what a record's content is, and the events it makes.

Every event built from a record or a handshake message (``HandshakeEvent``, ``AlertEvent``,
``AppDataEvent``, ``HeartbeatEvent``, ``CcsEvent``) is constructed in this module and nowhere
else in the decoder, so that a change of how events are built is made here once.

A record is in the clear or protected; a protected one is opened by trial decryption
(``trial.py``) and its inner content dispatched as a clear one. Handshake records feed the
direction's handshake buffer, framed into messages (messages can span records, and records can
carry several messages); each message goes to the stage table (``stages.py``).
"""

from __future__ import annotations

from ...wire.alert import alert_name
from ...wire.constants import ContentType, ProtocolVersion
from ...wire.handshake import ServerHello, frame_handshake, handshake_name
from ..events import AlertEvent, AppDataEvent, CcsEvent, HandshakeEvent, HeartbeatEvent, Reason
from ..messages import parse_handshake
from .session import ROLE_NAME, _Direction, _Session
from .stages import _Stages

_V13 = ProtocolVersion.TLS1_3
MAX_HANDSHAKE_MESSAGE = 1 << 20
"""Declared handshake message length the decoder buffers at most (the engine's bound too: a
certificate chain over 1 MiB is an attack, not a chain). RFC 8446 4 allows 2**24 - 1."""


class _Content(_Stages):
    """Record and message dispatch (a layer of :class:`Decoder`)."""

    def _record(
        self, session: _Session, d: _Direction, ctype: int, record: bytes, frame: int, ts: int
    ) -> None:
        if ctype == ContentType.change_cipher_spec:
            self._emit(session, CcsEvent(session.number, frame, ts, ROLE_NAME[d.role]))
            self._change_cipher_spec(session, d, frame, ts)
            return
        if not d.encrypted and session.client_random is None and not session.sh_seen:
            # No hello seen: picked up mid-stream. Application data, an alert longer than two
            # bytes, or a handshake record that is not a hello can only be protected.
            body = len(record) - 5
            if (
                ctype == ContentType.application_data
                or (ctype == ContentType.alert and body != 2)
                or (ctype == ContentType.handshake and (body < 4 or record[5] not in (1, 2)))
            ):
                d.encrypted = True
        if not d.encrypted or (
            ctype != ContentType.application_data
            and (session.version is _V13 or (session.version is None and session.client_random is not None))
        ):
            # TLS 1.3 protects records as application_data only (RFC 8446 5.2): an alert or
            # handshake record is in the clear even after the keys changed (e.g. an alert sent
            # before the sender switched keys, a ClientHello after HelloRetryRequest).
            self._content(session, d, ctype, record[5:], frame, ts, encrypted=False)
            return
        # Protected record.
        opened = self._open(session, d, ctype, record, frame, ts)
        if opened is None:
            self._opaque(session, d, ctype, record, frame, ts)
            return
        inner_type, content, early = opened
        self._content(session, d, inner_type, content, frame, ts, encrypted=True, early=early)

    def _opaque(
        self, session: _Session, d: _Direction, ctype: int, record: bytes, frame: int, ts: int
    ) -> None:
        """A protected record we could not open: say what is visible."""
        role = ROLE_NAME[d.role]
        length = len(record) - 5
        if ctype == ContentType.alert:
            self._emit(
                session,
                AlertEvent(session.number, frame, ts, role, None, None, "encrypted_alert", True, length),
            )
        elif ctype == ContentType.handshake:
            self._emit(
                session,
                HandshakeEvent(
                    session.number, frame, ts, role, -1, "encrypted_handshake", True, None, length
                ),
            )
        elif ctype == ContentType.heartbeat:
            self._emit(session, HeartbeatEvent(session.number, frame, ts, role, None))
        else:
            self._emit(session, AppDataEvent(session.number, frame, ts, role, length, False))

    def _bulk_event(self, session: _Session, d: _Direction, length: int, frame: int, ts: int) -> None:
        """A protected application-data record counted without opening it."""
        self._emit(session, AppDataEvent(session.number, frame, ts, ROLE_NAME[d.role], length, False))

    def _sslv2_event(self, session: _Session, d: _Direction, frame: int, ts: int) -> None:
        """An SSL 2.0 compatible ClientHello (RFC 5246 E.2), shown but not decoded."""
        self._emit(
            session,
            HandshakeEvent(
                session.number, frame, ts, ROLE_NAME[d.role], 1, "client_hello", False, sslv2=True
            ),
        )

    def _content(
        self,
        session: _Session,
        d: _Direction,
        ctype: int,
        content: bytes,
        frame: int,
        ts: int,
        *,
        encrypted: bool,
        early: bool = False,
    ) -> None:
        role = ROLE_NAME[d.role]
        if ctype == ContentType.handshake:
            if d.hs_encrypted != encrypted:
                d.hs_skip = 0
                if d.hs_buf:
                    d.hs_buf.clear()  # a message cannot span a key change (RFC 8446 5.1)
            d.hs_encrypted = encrypted
            if d.hs_skip:
                # The rest of a message too large to buffer: dropped (said at its header).
                n = min(d.hs_skip, len(content))
                d.hs_skip -= n
                content = content[n:]
            d.hs_buf += content
            self._messages(session, d, frame, ts, encrypted)
        elif ctype == ContentType.alert:
            if len(content) >= 2:
                level, desc = content[0], content[1]
                self._emit(
                    session,
                    AlertEvent(session.number, frame, ts, role, level, desc, alert_name(desc), encrypted),
                )
        elif ctype == ContentType.application_data:
            if encrypted:
                sink = self.options.app_data_sink
                if sink is not None:
                    sink(session.number, role, content)
            self._emit(
                session,
                AppDataEvent(session.number, frame, ts, role, len(content), encrypted, early),
            )
        elif ctype == ContentType.heartbeat:
            self._emit(
                session, HeartbeatEvent(session.number, frame, ts, role, content[0] if content else None)
            )
        elif ctype == ContentType.change_cipher_spec:
            self._emit(session, CcsEvent(session.number, frame, ts, role))

    def _messages(self, session: _Session, d: _Direction, frame: int, ts: int, encrypted: bool) -> None:
        buf = d.hs_buf
        msgs, consumed = frame_handshake(buf)
        messages = [(msg_type, bytes(buf[at : at + 4 + length])) for msg_type, at, length in msgs]
        if consumed:
            del buf[:consumed]
        for msg_type, message in messages:
            parsed, error = parse_handshake(message, session.version)
            hrr = isinstance(parsed, ServerHello) and parsed.is_hello_retry_request
            self._emit(
                session,
                HandshakeEvent(
                    session.number,
                    frame,
                    ts,
                    ROLE_NAME[d.role],
                    msg_type,
                    "hello_retry_request" if hrr else handshake_name(msg_type),
                    encrypted,
                    parsed,
                    len(message) - 4,
                    error,
                ),
            )
            self._after_message(session, d, msg_type, parsed, frame, ts, message)
        if len(buf) >= 4:
            length = (buf[1] << 16) | (buf[2] << 8) | buf[3]
            if length > MAX_HANDSHAKE_MESSAGE:
                self._oversized(session, d, buf[0], length, frame, ts, encrypted)

    def _oversized(
        self,
        session: _Session,
        d: _Direction,
        msg_type: int,
        length: int,
        frame: int,
        ts: int,
        encrypted: bool,
    ) -> None:
        """A handshake message declares more than :data:`MAX_HANDSHAKE_MESSAGE` bytes: say what it
        is (not "the handshake is missing"), and drop it rather than buffer up to 16 MB."""
        name = handshake_name(msg_type)
        error = (
            f"declared length {length} bytes exceeds the decoder's bound of {MAX_HANDSHAKE_MESSAGE} "
            "(no real handshake message is that large): not read"
        )
        role = ROLE_NAME[d.role]
        self._emit(
            session,
            HandshakeEvent(session.number, frame, ts, role, msg_type, name, encrypted, None, length, error),
        )
        if msg_type in (1, 2) and session.client_random is None:
            # The hello whose facts the key lookups need: every explanation says why they lack it.
            session.unreadable_hello = f"the {role}'s {name} (frame {frame}): {error}"
        self._undecryptable(
            session, d, frame, ts, Reason.OVERSIZED_HANDSHAKE, f"{name} (frame {frame}) {error}"
        )
        d.hs_skip = length - (len(d.hs_buf) - 4)
        d.hs_buf.clear()
