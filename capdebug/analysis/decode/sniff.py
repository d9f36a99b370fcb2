"""The first bytes of a direction: is this TLS, and who is the client?

A connection is TLS when its first payload looks like a TLS client's first flight
(``wire.record.looks_like_tls``), or, picked up mid-stream, when a record boundary can be found
in it. Without a captured SYN the ClientHello's sender is the client; without a ClientHello
either, the lower port serves. An SSL 2.0 compatible ClientHello (RFC 5246 E.2) is shown and
the direction is not decoded further.
"""

from __future__ import annotations

from ...wire.constants import ContentType, HandshakeType
from ...wire.record import looks_like_tls
from ..events import Reason
from ..keys import Role
from .order import UNDECIDED_FRAMES
from .resync import _Resync, find_boundary
from .session import _Direction, _Session


class _Sniffing(_Resync):
    """Sniffing and role guessing (a layer of :class:`Decoder`)."""

    def _start(self, session: _Session, d: _Direction, net_dir: int, frame: int, ts: int) -> bool:
        """First bytes of a direction: is this TLS, and who is the client?"""
        buf = d.buf
        if len(buf) < 6:
            return False
        verdict = looks_like_tls(bytes(buf[:16]))
        if not session.decided and frame - session.first_frame > UNDECIDED_FRAMES:
            self._decide(session, None)  # its time was up: shown, as _drain would have done
        if not session.decided:
            # A connection picked up mid-stream is TLS too when a record boundary can be found.
            tls = verdict or (not session.conn.roles_from_syn and find_boundary(buf, 0) is not None)
            self._decide(session, tls)
            if not tls:
                return False
            if not session.conn.roles_from_syn:
                self._guess_roles(session, net_dir, buf)
        d.started = True
        d.resync = not verdict
        if buf[0] == 0x80 or (buf[0] & 0x80 and buf[2] == 1):
            self._sslv2(session, d, frame, ts)
            return False
        return True

    def _guess_roles(self, session: _Session, net_dir: int, buf: bytearray) -> None:
        """No SYN captured: the ClientHello's sender is the client; else the lower port serves."""
        conn = session.conn
        if buf[0] == ContentType.handshake and len(buf) > 5 and buf[5] == HandshakeType.client_hello:
            session.flip = net_dir == 1
            session.roles_from = "client_hello"
        else:
            client_port, server_port = conn.client[1], conn.server[1]
            session.flip = client_port < server_port
            session.roles_from = "guess"
        if session.flip:
            session.dirs = (session.dirs[1], session.dirs[0])
            session.dirs[0].role, session.dirs[1].role = Role.CLIENT, Role.SERVER

    def _sslv2(self, session: _Session, d: _Direction, frame: int, ts: int) -> None:
        self._sslv2_event(session, d, frame, ts)
        self._undecryptable(
            session,
            d,
            frame,
            ts,
            Reason.SSLV2,
            "SSLv2-compatible ClientHello: a very old client; nothing after it is decoded",
        )
        d.dead = True
