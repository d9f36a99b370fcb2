"""Records to events: what a record's content is, and the events it makes.

Every event built from a record or a handshake message (``HandshakeEvent``, ``AlertEvent``,
``AppDataEvent``, ``HeartbeatEvent``, ``CcsEvent``) is constructed in this module and nowhere
else in the decoder, so that a change of how events are built is made here once.

A record is in the clear or protected; a protected one is opened by trial decryption
(``trial.py``) and its inner content dispatched as a clear one. Handshake records feed the
direction's handshake buffer, framed into messages (messages can span records, and records can
carry several messages); each message goes to the stage table (``stages.py``).

TLS 1.3 records that no key opens all look alike: application_data, with the true type inside
(RFC 8446 5.2). Where one stands still says, without keys, that it can only be handshake, so it
is shown as ``encrypted_handshake`` and never counted as application bytes:

- the server's protected records before the client's first one after the ServerHello: the
  server's flight EncryptedExtensions..Finished (RFC 8446 4.4.4: the client cannot send
  application data before its Finished, and the server's records come before the client's
  answer on the wire). Only 0.5-RTT data (a server writing before the client's Finished,
  RFC 8446 4.4.4 note) would be counted as handshake, and those rarely exist;
- the client's first protected record after the ServerHello (its Finished, or its Certificate
  when the server asked for one), and up to its third while none had the size of a Finished
  record (Certificate, CertificateVerify, Finished in separate records, as OpenSSL sends them);
  a record of exactly that size (4 + hash + 1 + tag bytes, no padding) ends the flight. A
  client that packs its whole flight into one record and goes on with application data has
  its next one or two records counted as handshake: the one guess this makes.

What stays unknowable: a padded record, a post-handshake message (NewSessionTicket,
KeyUpdate, post-handshake authentication) and, when the client offered early data, the client's
records at all (0-RTT data may still arrive after the ServerHello): those are counted as
application data. A record of an alert's size (2 + 1 + tag bytes) is never taken for handshake:
a side that rejects the handshake sends just that.
"""

from __future__ import annotations

from typing import Final

from ...wire.alert import alert_name
from ...wire.constants import ContentType, HandshakeType, ProtocolVersion
from ...wire.handshake import ServerHello, frame_handshake, handshake_name
from ..events import AlertEvent, AppDataEvent, CcsEvent, HandshakeEvent, HeartbeatEvent, Reason
from ..keys import Role
from ..messages import parse_handshake
from .session import ROLE_NAME, _Direction, _Session
from .stages import _Stages

_V13: Final = ProtocolVersion.TLS1_3
_SHA384_SUITES: Final = frozenset({0x1302})
"""TLS 1.3 suites whose hash is SHA-384 (RFC 8446 B.4): a 48-byte Finished, else 32."""
_CCM_8: Final = 0x1305
"""TLS_AES_128_CCM_8_SHA256: an 8-byte tag, every other TLS 1.3 suite a 16-byte tag."""
_CLIENT_FLIGHT: Final = 2
"""Index (from 0) of the client's last record that may still be its handshake flight when
no Finished-sized record came before: Certificate (0), CertificateVerify (1), Finished (2)."""
_KNOWN_TYPES: Final = frozenset(int(t) for t in HandshakeType)
MAX_HANDSHAKE_MESSAGE: Final = 1 << 20
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
        elif not d.encrypted and not session.sh_seen and ctype == ContentType.application_data:
            # A ClientHello but no ServerHello seen (the server's first flight was lost):
            # application data before it can only be protected (recovery.lost_hello_keys).
            d.encrypted = True
        if not d.encrypted or (
            ctype != ContentType.application_data
            and (session.version is _V13 or (session.version is None and session.client_random is not None))
        ):
            # TLS 1.3 protects records as application_data only (RFC 8446 5.2): an alert or
            # handshake record is in the clear even after the keys changed (e.g. an alert sent
            # before the sender switched keys, a ClientHello after HelloRetryRequest).
            if ctype == ContentType.alert and (len(record) != 7 or record[5] not in (1, 2)):
                # Not a clear alert (two bytes, level 1 or 2: RFC 5246 7.2): a TLS 1.2 one,
                # protected, whose ChangeCipherSpec or hellos the capture lost.
                self._opaque(session, d, ctype, record, frame, ts)
                return
            self._content(session, d, ctype, record[5:], frame, ts, encrypted=False)
            return
        # Protected record.
        if session.sh_seen:
            d.sealed += 1
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
        elif d.keys is None and session.version is _V13 and self._hidden_handshake(session, d, length):
            self._emit(session, _encrypted_handshake(session, frame, ts, role, length))
        else:
            self._emit(session, AppDataEvent(session.number, frame, ts, role, length, False))

    def _bulk_event(self, session: _Session, d: _Direction, length: int, frame: int, ts: int) -> None:
        """A protected application-data record counted without opening it."""
        role = ROLE_NAME[d.role]
        if d.keys is None and session.sh_seen:
            d.sealed += 1
            if session.version is _V13 and self._hidden_handshake(session, d, length):
                self._emit(session, _encrypted_handshake(session, frame, ts, role, length))
                return
        self._emit(session, AppDataEvent(session.number, frame, ts, role, length, False))

    @staticmethod
    def _hidden_handshake(session: _Session, d: _Direction, length: int) -> bool:
        """Is this unopened TLS 1.3 record (``length`` bytes after the header, already counted
        in ``d.sealed``) handshake by where it stands? (See the module docstring.)"""
        if not session.sh_seen or session.hrr:
            return False
        tag = 8 if session.suite == _CCM_8 else 16
        if length == 3 + tag:
            return False  # an alert's size
        if d.role is Role.SERVER:
            return session.dirs[Role.CLIENT].sealed == 0
        if session.early_offered or d.hidden_done:
            return False
        index = d.sealed - 1
        finished = 4 + (48 if session.suite in _SHA384_SUITES else 32) + 1 + tag
        if length == finished:
            d.hidden_done = True
            return index <= _CLIENT_FLIGHT
        if index >= _CLIENT_FLIGHT:
            d.hidden_done = True
            return False
        return True

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
                if sink is not None and session.wanted:
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
            if length > MAX_HANDSHAKE_MESSAGE and buf[0] in _KNOWN_TYPES:
                # An unknown type with a huge length is more likely encrypted bytes read as
                # plaintext (a TLS 1.2 Finished whose ServerHello the capture lost) than a
                # message: it waits like any other, and its direction is explained at the end.
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


def _encrypted_handshake(session: _Session, frame: int, ts: int, role: str, length: int) -> HandshakeEvent:
    """An unopened record that can only be handshake (TLS 1.2's encrypted Finished by its
    content type, TLS 1.3's by where it stands)."""
    return HandshakeEvent(session.number, frame, ts, role, -1, "encrypted_handshake", True, None, length)
