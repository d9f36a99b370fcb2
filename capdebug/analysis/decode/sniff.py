"""The first bytes of a direction: is this TLS, and who is the client?

A connection is TLS when its first payload looks like a TLS client's first flight
(``wire.record.looks_like_tls``), or, picked up mid-stream, when a record boundary can be found
in it. Without a captured SYN the ClientHello's sender is the client; without a ClientHello
either, the lower port serves. An SSL 2.0 compatible ClientHello (RFC 5246 E.2) is shown and
the direction is not decoded further.
"""

from __future__ import annotations

from typing import Final

from ...net.flow import Endpoint, TcpFlag
from ...wire.constants import ContentType, HandshakeType
from ...wire.record import looks_like_tls
from ..events import PlaintextEvent, Reason, UpgradeEvent
from ..keys import Role
from ..prelude import Prelude, Upgrade, classify, never_upgrades, preview
from .order import UNDECIDED_FRAMES
from .resync import _Resync, find_boundary
from .session import ROLE_NAME, _Direction, _Session

MAX_KNOWN_SERVERS: Final = 65536
"""Server endpoints remembered for guessing roles (memory bound: a scan meets many)."""


class _Sniffing(_Resync):
    """Sniffing and role guessing (a layer of :class:`Decoder`)."""

    _servers: set[Endpoint]
    partition_dependent: bool

    def _start(self, session: _Session, d: _Direction, net_dir: int, frame: int, ts: int) -> bool:
        """First bytes of a direction: is this TLS, and who is the client?"""
        if session.prelude is not None:
            return self._prelude(session, frame, ts)
        buf = d.buf
        if len(buf) < 6:
            return False
        verdict = looks_like_tls(bytes(buf[:16]))
        if not session.decided and frame - session.first_frame > UNDECIDED_FRAMES:
            self._decide(session, None)  # its time was up: shown, as _drain would have done
        if not session.decided and not session.tentative:
            # A connection picked up mid-stream is TLS too when a record boundary can be found.
            tls = verdict or (not session.conn.roles_from_syn and find_boundary(buf, 0) is not None)
            if not tls:
                # Plaintext first: follow it until TLS starts (STARTTLS and relatives).
                if not session.conn.roles_from_syn:
                    self._guess_roles(session, net_dir, buf)
                if never_upgrades(buf) and not session.on_tls_port():
                    self._decide(session, False)  # plain HTTP or SSH: no need to hold the output
                    return False
                session.prelude = Prelude()
                return self._prelude(session, frame, ts)
            if not session.conn.roles_from_syn:
                self._guess_roles(session, net_dir, buf)
            if session.roles_from == "guess" and len(self.keylog):
                # No SYN or hello: the roles are a guess that a TLS 1.3 traffic secret of the key
                # log may prove or turn round (trial.py); shown once it has had its chance.
                session.tentative = True
            else:
                self._decide(session, tls)
        elif not verdict and d.role == Role.SERVER and session.conn.roles_from_syn and _is_text(buf):
            # A server answering TLS in plaintext (an HTTP 400 to a ClientHello): say what it
            # sent; a TLS record never starts with a printable byte.
            self._plaintext(session, d, frame, ts)
            d.dead = True
            return False
        d.started = True
        d.resync = not verdict
        if buf[0] == 0x80 or (buf[0] & 0x80 and buf[2] == 1):
            self._sslv2(session, d, frame, ts)
            return False
        return True

    def _data(self, session: _Session, net_dir: int, data: bytes, frame: int, ts: int) -> None:
        """Stream data in (framing.py): the bytes after an upgrade are fed again through it."""
        raise NotImplementedError

    def _prelude(self, session: _Session, frame: int, ts: int) -> bool:
        """A connection that began in plaintext: follow it; at an upgrade, frame TLS from the
        byte after the command (client) and after the reply (server)."""
        prelude = session.prelude
        assert prelude is not None
        client, server = session.dirs
        for d in session.dirs:
            if d.buf and "plaintext" not in d.reported:
                self._plaintext(session, d, frame, ts)
        if session.decided:
            return False
        result = prelude.advance(client.buf, server.buf, frame, ts)
        if result is not None:
            self._emit(session, _upgrade_event(session, result))
        if result is not None and result.accepted:
            session.prelude = None
            self._decide(session, True)
            for d, at in ((client, result.client_at), (server, result.server_at)):
                rest = bytes(d.buf[at:])
                d.buf.clear()
                d.off = 0
                if rest:
                    self._data(session, int(d.role) ^ (1 if session.flip else 0), rest, frame, ts)
        elif prelude.done:
            self._decide(session, None)
        return False

    def _served(self, endpoint: Endpoint) -> None:
        """``endpoint`` is a server (its connection's roles are known): remembered, up to a
        bound, to tell the roles of connections picked up mid-stream (:meth:`_guess_roles`)."""
        if len(self._servers) < MAX_KNOWN_SERVERS:
            self._servers.add(endpoint)

    def _prelude_closed(self, session: _Session, ev: TcpFlag) -> None:
        """FIN or RST while in plaintext: a client that sent nothing may have refused the
        server's greeting (MySQL without CLIENT_SSL, see Prelude.client_closed)."""
        prelude = session.prelude
        assert prelude is not None
        direction = int(ev.direction)
        if self._role(session, direction) != Role.CLIENT or ev.conn.streams[direction].carried_data:
            return
        client, server = session.dirs
        result = prelude.client_closed(client.buf, server.buf, self._at(ev), ev.ts_ns)
        if result is not None:
            self._emit(session, _upgrade_event(session, result))

    def _at(self, ev: TcpFlag) -> int:
        raise NotImplementedError

    def _plaintext(self, session: _Session, d: _Direction, frame: int, ts: int) -> None:
        d.reported.add("plaintext")
        self._emit(
            session,
            PlaintextEvent(session.number, frame, ts, ROLE_NAME[d.role], classify(d.buf), preview(d.buf)),
        )

    def _guess_roles(self, session: _Session, net_dir: int, buf: bytearray) -> None:
        """No SYN captured: a hello's sender tells; else an endpoint that served
        another connection of the capture serves this one (a pool of connections to a server on
        a high port, e.g. gRPC's 50051, picked up mid-stream); else the lower port serves."""
        conn = session.conn
        hello = buf[5] if buf[0] == ContentType.handshake and len(buf) > 5 else None
        if hello == HandshakeType.client_hello or hello == HandshakeType.server_hello:
            # The ClientHello's sender is the client, the ServerHello's (or a
            # HelloRetryRequest's) the server.
            session.flip = net_dir == (1 if hello == HandshakeType.client_hello else 0)
            session.roles_from = "client_hello" if hello == HandshakeType.client_hello else "server_hello"
            self._served(conn.client if session.flip else conn.server)
        else:
            lower = conn.client[1] < conn.server[1]
            served = self._servers
            if (conn.client in served) != (conn.server in served):
                session.flip = conn.client in served
                if session.flip != lower:
                    # Learnt from other connections: a share of the capture alone may not know.
                    self.partition_dependent = True
            else:
                session.flip = lower
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


def _is_text(buf: bytearray) -> bool:
    # bytes(): mypyc (2.4) cannot compile all() over a bytearray (an internal error).
    return all(32 <= b < 127 or b in (9, 10, 13) for b in bytes(buf[:6]))


def _upgrade_event(session: _Session, u: Upgrade) -> UpgradeEvent:
    who = "server" if u.reply else "client"
    return UpgradeEvent(
        session.number,
        u.reply_frame,
        u.ts_ns,
        u.protocol,
        u.command,
        u.command_frame,
        u.reply,
        u.accepted,
        who,
    )
