"""Output holding and ordering: events leave the decoder in capture order.

A connection is shown once its first payload looks like TLS; until then its events (and every
event after them, of any connection) are held, so that non-TLS connections are dropped without
reordering anything. A connection still without payload :data:`UNDECIDED_FRAMES` frames after
its first is shown without waiting longer: a rule on its own frames only, so it decides alike
whatever else the capture holds (or a share of it) and whichever frames the frame filter took.

Events whose roles may still flip (the connection's own event, TCP flags) are held as raw parts
and made when the roles are final (:meth:`_Output._materialize`).
"""

from __future__ import annotations

import collections
from dataclasses import dataclass
from typing import Any

from ...crypto.keylog import KeyLog
from ...net.flow import TcpTracker
from ...net.tcp import format_endpoint
from ...pcap.model import Interface
from ..events import ConnectionEvent, DecodeEvent, Reason, TcpEvent, UndecryptableEvent
from .session import ROLE_NAME, DecodeOptions, _Direction, _Session

UNDECIDED_FRAMES = 20_000
"""Frames after its first that a connection without payload may keep the output waiting."""
MAX_HELD = 20_000
"""Events held behind an undecided connection before the frame filter gives way (so that the
next frame goes through feed_packet, which decides it when its time is up)."""
_SAYS_WHAT_ELSE_WAS_SEEN = frozenset((Reason.NO_KEY, Reason.KEYLOG_OTHER_SESSIONS, Reason.RSA_KEY_EXCHANGE))
"""Reasons chosen (and worded) from the capture's other sessions: which client_randoms it
holds, which earlier session a TLS 1.2 resumption could take its master secret from."""


@dataclass(slots=True)
class _Held:
    """An output slot: a ready event, or the raw parts of one whose roles are not final."""

    session: _Session
    event: DecodeEvent | None
    raw: tuple[Any, ...] | None = None


class _Output:
    """The decoder's output side (the base of :class:`Decoder`): emit, hold, decide, drain."""

    keylog: KeyLog
    options: DecodeOptions
    partition_dependent: bool
    _tracker: TcpTracker
    _held: collections.deque[_Held]
    _out: list[DecodeEvent]
    interfaces: list[Interface]

    def _role(self, session: _Session, net_dir: int) -> int:
        return net_dir ^ 1 if session.flip else net_dir

    def _emit(self, session: _Session, event: DecodeEvent) -> None:
        if not session.wanted:
            return
        if self._held:
            self._held.append(_Held(session, event))
        else:
            self._out.append(event)

    def _emit_raw(self, session: _Session, raw: tuple[Any, ...]) -> None:
        if not session.wanted:
            return
        if session.decided:
            if session.is_tls:
                self._emit(session, self._materialize(session, raw))
            return
        self._held.append(_Held(session, None, raw))

    def _materialize(self, session: _Session, raw: tuple[Any, ...]) -> DecodeEvent:
        if raw[0] == "tcp":
            _, frame, ts, net_dir, flag = raw
            return TcpEvent(session.number, frame, ts, ROLE_NAME[self._role(session, net_dir)], flag)
        conn = session.conn
        client, server = (conn.server, conn.client) if session.flip else (conn.client, conn.server)
        return ConnectionEvent(
            session.number,
            format_endpoint(*client),
            format_endpoint(*server),
            session.first_frame,
            session.roles_from,
            self._interface_name(session),
        )

    def _interface_name(self, session: _Session) -> str | None:
        """Where the connection was first seen, when the capture has several interfaces."""
        interfaces = self.interfaces
        if len(interfaces) < 2 or session.interface >= len(interfaces):
            return None
        return interfaces[session.interface].name or f"interface {session.interface}"

    def _undecryptable(
        self, session: _Session, d: _Direction, frame: int, ts: int, reason: str, msg: str
    ) -> None:
        """Say once per direction and reason why records are not decrypted."""
        if reason in d.reported:
            return
        d.reported.add(reason)
        if reason in _SAYS_WHAT_ELSE_WAS_SEEN and len(self.keylog):
            self.partition_dependent = True
        self._emit(session, UndecryptableEvent(session.number, frame, ts, ROLE_NAME[d.role], reason, msg))

    def _decide(self, session: _Session, is_tls: bool | None) -> None:
        """Fix whether a connection is shown. ``None``: it ended without payload: show it
        (a refused or reset connection attempt is worth seeing)."""
        if session.decided:
            return
        session.decided = True
        if session.prelude is not None:
            # It ended in plaintext: shown when TLS was expected (see sniff._prelude_shown).
            is_tls = session.prelude_shown()
            session.prelude = None
            for d in session.dirs:
                d.dead = True
        session.is_tls = True if is_tls is None else is_tls
        if not session.is_tls:
            for d in session.dirs:
                d.dead = True

    def _drain(self, frame: int, final: bool = False) -> list[DecodeEvent]:
        held = self._held
        out = self._out
        while held:
            slot = held[0]
            session = slot.session
            if not session.decided:
                if not final and frame - session.first_frame <= UNDECIDED_FRAMES:
                    break
                self._decide(session, None)
            held.popleft()
            if slot.raw is not None:
                if session.is_tls:
                    out.append(self._materialize(session, slot.raw))
            elif slot.event is not None and session.is_tls:
                out.append(slot.event)
        self._out = []
        return out
