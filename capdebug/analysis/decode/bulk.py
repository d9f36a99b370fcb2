"""Bulk records: protected application data counted without being opened.

Consumers choose their cost: ``decrypt_app_data=False`` (triage) decrypts only the records that
can change what happens next or explain a close: handshake, alerts, records small enough to be an
alert, a KeyUpdate or an HTTP/2 control frame, and the first records of each direction (tickets,
HTTP/1 request and status lines, the HTTP/2 preface). Bulk application data is counted, not
decrypted, and (with the frame filter) its bytes are dropped unread. Records no key can open are
counted the same way.
"""

from __future__ import annotations

from typing import Final

from ..keys import Stage
from .content import _Content
from .session import ROLE_NAME, _Direction, _Session

_APPLICATION: Final = Stage.APPLICATION
_TLS12: Final = Stage.TLS12
"""TLS 1.2 has one stage from ChangeCipherSpec on; its application_data records are as bulk as
TLS 1.3's (the Finished is a handshake record, never asked about here)."""
"""Bound once: reading an enum member off its class costs a slow attribute lookup per record."""
_SMALL_PROTECTED: Final = 64
"""In triage mode, protected records up to this size are decrypted: TLS 1.3 alerts (19 bytes
with a 16-byte tag), KeyUpdate (21), and the HTTP/2 control frames that explain a close
(GOAWAY 17 bytes, RST_STREAM 13, SETTINGS ACK 9, plus the record's overhead)."""
_FIRST_OPENED: Final = 4
"""In triage mode, the first application-stage records of a direction are opened anyway:
TLS 1.3 NewSessionTickets come there, and so do the HTTP/1 request and status lines and the
HTTP/2 preface and SETTINGS that tell the application layer (TLS 1.2 as well as 1.3)."""


class _Bulk(_Content):
    """Counting records unread (a layer of :class:`Decoder`)."""

    def _is_bulk(self, session: _Session, d: _Direction, length: int) -> bool:
        """Can this protected application_data record be counted without opening it? When
        nothing can be learned from it: no keys at all (already explained), or triage's bulk
        data, whose only effect is on the sequence number, unless the consumer's
        ``record_wanted`` asks for it (HTTP/2 frames and header blocks across records)."""
        keys = d.keys
        if keys is None:
            # Explained is not hopeless while trial decryption has a recovery to try (no
            # ClientHello seen, or no ServerHello: trial._open): a capture that starts after
            # the ClientHello explains the server's direction at its ServerHello, before any
            # of its records came.
            return (
                not d.candidates
                and d.explained is not None
                and (d.recovery_tried or (session.client_random is not None and session.sh_seen))
            )
        if (
            self.options.decrypt_app_data
            or d.candidates
            or (d.seq_unknown and not d.lost_seq)
            or (keys.stage is not _APPLICATION and keys.stage is not _TLS12)
            or length <= _SMALL_PROTECTED
            or keys.seq < _FIRST_OPENED
        ):
            return False
        wanted = self.options.record_wanted
        if wanted is None:
            return True
        # CBC padding makes the content length an upper bound only (RFC 5246 6.2.3.2).
        exact = keys.is_tls13 or not keys.prot.params.mac_len
        return not wanted(session.number, ROLE_NAME[d.role], length - keys.record_overhead, exact)

    def _count_bulk(self, session: _Session, d: _Direction, length: int, frame: int, ts: int) -> None:
        keys = d.keys
        if keys is not None:
            keys.seq += 1
            length -= keys.record_overhead
        self._bulk_event(session, d, length, frame, ts)

    def _bulk(self, session: _Session, d: _Direction, length: int, frame: int, ts: int) -> bool:
        if not self._is_bulk(session, d, length):
            return False
        self._count_bulk(session, d, length, frame, ts)
        return True
