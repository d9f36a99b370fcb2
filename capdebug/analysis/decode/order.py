"""Output holding and ordering: events leave the decoder in capture order.

A connection is shown once its first payload looks like TLS; until then its events (and every
event after them, of any connection) are held, so that non-TLS connections are dropped without
reordering anything. A connection still without payload :data:`UNDECIDED_FRAMES` frames after
its first is shown without waiting longer: a rule on its own frames only, so it decides alike
whatever else the capture holds (or a share of it) and whichever frames the frame filter took.

Events whose roles may still flip (the connection's own event, TCP flags) are held as raw parts
and made when the roles are final (:meth:`_Output._materialize`).

Frame order. Reassembly releases what waited behind a hole (the gap, the bytes after it, a FIN)
only when the hole is given up, with the frames those arrived in: earlier than the frame that
releases them, and earlier than events of the other direction and of other connections made in
between (a FIN ten seconds later would come first). So while a connection holds bytes behind a
hole, every event whose frame is after the earliest of them (the *floor*) waits in a heap, and
leaves it in frame order when the hole is filled or given up. Events of one frame keep the order
they were made in. Before the undecided-connection hold above, so that both hold alike.

The frame-order hold is bounded by :data:`ORDER_WINDOW` frames per hole (a rule on the hole's own
frames, so that every share of a capture decides alike): a hole still open after that stops
holding the output, and what it releases later is shown at the frame that releases it.
"""

from __future__ import annotations

import collections
import heapq
from dataclasses import dataclass
from typing import Any, Final

from ...crypto.keylog import KeyLog
from ...net.flow import TcpTracker
from ...net.tcp import format_endpoint
from ...pcap.model import Interface
from ..events import ConnectionEvent, DecodeEvent, Reason, TcpEvent, UndecryptableEvent
from .session import ROLE_NAME, DecodeOptions, _Direction, _Session

UNDECIDED_FRAMES: Final = 20_000
"""Frames after its first that a connection without payload may keep the output waiting."""
MAX_HELD: Final = 20_000
"""Events held behind an undecided connection before the frame filter gives way (so that the
next frame goes through feed_packet, which decides it when its time is up)."""
ORDER_WINDOW = 1 << 17
"""Frames after its first held byte that a hole may hold the output back (see the docstring)."""
_SAYS_WHAT_ELSE_WAS_SEEN: Final = frozenset(
    (Reason.NO_KEY, Reason.KEYLOG_OTHER_SESSIONS, Reason.RSA_KEY_EXCHANGE)
)
"""Reasons chosen (and worded) from the capture's other sessions: which client_randoms it
holds, which earlier session a TLS 1.2 resumption could take its master secret from."""


def frame_of(event: DecodeEvent) -> int:
    """The frame an event is shown at (a connection's: its first)."""
    if type(event) is ConnectionEvent:
        return event.first_frame
    frame: int = event.frame  # type: ignore[attr-defined]  # every other event has one
    return frame


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
    _floor: int | None
    """The earliest frame that a hole may still release (None: no connection holds any)."""
    _holes: dict[int, int]
    """Connection id -> the earliest frame of what it holds behind holes."""
    _expired: set[int]
    """Connections whose hole stopped holding the output (:data:`ORDER_WINDOW`)."""
    _later: list[tuple[int, int, _Session, DecodeEvent | None, tuple[Any, ...] | None]]
    """The frame-order heap: (frame, arrival, session, event, raw parts)."""
    _arrivals: int
    plain_connections: int

    def _role(self, session: _Session, net_dir: int) -> int:
        return net_dir ^ 1 if session.flip else net_dir

    def _emit(self, session: _Session, event: DecodeEvent) -> None:
        if not session.wanted:
            return
        if session.tentative:
            self._decide(session, True)  # its roles are final from its first event on
        floor = self._floor
        if floor is not None:
            frame = frame_of(event)
            if frame > floor:
                self._arrivals += 1
                heapq.heappush(self._later, (frame, self._arrivals, session, event, None))
                return
        if self._held:
            self._held.append(_Held(session, event))
        else:
            self._out.append(event)

    def _emit_raw(self, session: _Session, raw: tuple[Any, ...]) -> None:
        if not session.wanted:
            return
        floor = self._floor
        if floor is not None:
            frame = raw[1] if raw[0] == "tcp" else session.first_frame
            if frame > floor:
                self._arrivals += 1
                heapq.heappush(self._later, (frame, self._arrivals, session, None, raw))
                return
        self._pass_raw(session, raw)

    def _pass_raw(self, session: _Session, raw: tuple[Any, ...]) -> None:
        if session.decided:
            if session.is_tls:
                self._emit(session, self._materialize(session, raw))
            return
        self._held.append(_Held(session, None, raw))

    # -- frame order (module docstring) ---------------------------------------------------------

    def _set_holes(self, conn_id: int, since: int | None) -> None:
        """Connection ``conn_id`` holds bytes behind holes since frame ``since`` (None: no
        more); the heap hands out what is now before the floor."""
        holes = self._holes
        if since is None or conn_id in self._expired:
            if since is None:
                self._expired.discard(conn_id)
            if holes.pop(conn_id, None) is None:
                return
        elif holes.get(conn_id) == since:
            return
        else:
            holes[conn_id] = since
        self._floor = min(holes.values()) if holes else None
        self._release_later()

    def _release_later(self) -> None:
        """Hand out what the heap holds up to the floor (all of it without a floor)."""
        floor = self._floor
        later = self._later
        while later and (floor is None or later[0][0] <= floor):
            _, _, session, event, raw = heapq.heappop(later)
            if raw is not None:
                self._pass_raw(session, raw)
            elif event is not None and (session.is_tls or not session.decided):
                # Through _emit: the floor may be set yet (it is below this frame).
                self._emit(session, event)

    def _expire_holes(self, frame: int) -> None:
        """Holes open for more than :data:`ORDER_WINDOW` frames stop holding the output."""
        for conn_id, since in list(self._holes.items()):
            if frame - since > ORDER_WINDOW:
                self._expired.add(conn_id)
                self._set_holes(conn_id, since)

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
        session.tentative = False
        if session.prelude is not None:
            # It ended in plaintext: shown when TLS was expected (see sniff._prelude_shown).
            is_tls = session.prelude_shown()
            session.prelude = None
            for d in session.dirs:
                d.dead = True
        session.is_tls = True if is_tls is None else is_tls
        if not session.is_tls:
            self.plain_connections += 1
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
