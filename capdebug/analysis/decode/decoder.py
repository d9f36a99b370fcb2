"""The :class:`Decoder`: packets in, events out (see the package docstring).

It composes the layers of the package, each a module with one idea, stacked so that each only
calls the ones below it: output ordering (``order``) < trial decryption (``trial``) < the stage
table (``stages``) < records to events (``content``) < bulk counting (``bulk``) < resync
(``resync``) < sniffing (``sniff``) < framing (``framing``) < this class, which owns the state
and takes the net layer's events.
"""

from __future__ import annotations

import collections
from collections.abc import Sequence

from ...crypto.keylog import KeyLog
from ...net.flow import (
    Connection,
    ConnectionClosed,
    ConnectionStarted,
    StreamData,
    StreamGap,
    StreamOverlap,
    TcpFlag,
    TcpTracker,
)
from ...net.health import WATCH, HealthObserver
from ...net.reassembly import GAP_LOST
from ...net.tcp import ACK, TcpSegment, decode_tcp
from ...pcap import FrameFilter
from ...pcap.model import SECRETS_TYPE_TLS_KEYLOG, Packet, SecretsBlock
from .. import keys as keymod
from ..events import DecodeEvent, EvictedEvent, OverlapEvent, TcpHealthEvent
from .framing import _Framing
from .order import _Held
from .session import ROLE_NAME, DecodeOptions, _Session

__all__ = ["Decoder"]

_NO_EVENTS: Sequence[DecodeEvent] = ()


class Decoder(_Framing):
    """Turn a capture's packets into TLS events (see the package docstring)."""

    def __init__(
        self,
        keylog: KeyLog | None = None,
        options: DecodeOptions | None = None,
        *,
        late_secrets: dict[bytes, int] | None = None,
    ) -> None:
        self.keylog = keylog if keylog is not None else KeyLog()
        self.options = options or DecodeOptions()
        self._late_secrets = late_secrets or {}
        """client_random -> packets before the secrets block that brought its keys."""
        self._tracker = TcpTracker(
            self.options.max_out_of_order,
            partition=self.options.partition,
            max_connections=self.options.max_connections,
        )
        self.partition_dependent = False
        """Something was said that depends on the capture's other connections (which sessions
        of the key log it holds, which earlier session a TLS 1.2 resumption reuses, which
        secrets mid-stream recovery may skip): decoding one share of the capture alone may
        have said it differently."""
        self._sessions: dict[int, _Session] = {}
        self._held: collections.deque[_Held] = collections.deque()
        self._out: list[DecodeEvent] = []
        self._store = keymod.SessionStore()
        self._capture_randoms: set[bytes] = set()
        self._snaplen_cut = False
        """The frame being fed was cut short by the snaplen (a gap it causes is not a loss)."""
        self._direct = False
        """Connections take data straight from the tracker's frame filter (see frame_filter)."""
        self._health: dict[int, HealthObserver] = {}
        """TCP health per open connection, by id (net/health.py)."""
        self._ack_from = -1
        """Direction of the frame being fed when it acknowledges (a gap its ACK releases was
        received: the capture lost it), else -1."""

    # -- input ------------------------------------------------------------------------------

    def feed_packet(self, frame: int, pkt: Packet, linktype: int) -> Sequence[DecodeEvent]:
        """Decode one captured frame; returns the events that are ready, in capture order
        (a shared empty sequence when there are none: do not modify it)."""
        seg = decode_tcp(linktype, pkt.data)
        if seg is None:
            return _NO_EVENTS
        self._snaplen_cut = seg.truncated
        # TCP health (net/health.py) sees every frame that leaves the fast path; looked up
        # before feeding, as a RST takes the connection out of the table.
        tracker = self._tracker
        side = tracker.lookup(seg.src, seg.sport, seg.dst, seg.dport)
        if side is not None:
            self._observe(side[0], side[1], frame, pkt.ts_ns, seg, pkt.data, linktype)
        self._ack_from = -1 if side is None or not seg.flags & ACK else side[1]
        events = tracker.feed(frame, pkt.ts_ns, seg)
        for ev in events:
            if type(ev) is StreamData:
                session = self._sessions.get(ev.conn.id)
                if session is not None:
                    self._data(session, ev.direction, ev.data, ev.frame, ev.ts_ns)
            else:
                self._net_event(ev)
        if side is None and events:
            # The first segment of a connection: its observer was made by ConnectionStarted.
            side = tracker.lookup(seg.src, seg.sport, seg.dst, seg.dport)
            if side is not None:
                self._observe(side[0], side[1], frame, pkt.ts_ns, seg, pkt.data, linktype, first=True)
        if not self._out and not self._held:
            return _NO_EVENTS
        return self._drain(frame)

    @property
    def evicted(self) -> tuple[int, int]:
        """Connections pushed out of the full connection table so far, and how many of them
        had carried data (:attr:`DecodeOptions.max_connections`)."""
        return self._tracker.evicted, self._tracker.evicted_with_data

    def warnings(self) -> list[str]:
        """What the decoder has to say about the capture as a whole (once decoding is over)."""
        count, with_data = self.evicted
        if not count:
            return []
        return [
            f"{count} connection(s) dropped from the connection table, full at "
            f"{self._tracker.max_connections} open connections ({with_data} of them had carried "
            "data, the others were half-open): each has an 'evicted' event and a "
            "connection_table_full verdict; --max-connections raises the limit"
        ]

    @property
    def first_frames(self) -> list[int]:
        """With a partition: the first frame of each connection of the share, by number."""
        return self._tracker.first_frames

    def frame_filter(self) -> FrameFilter:
        """A frame filter for :meth:`capdebug.pcap.CaptureReader.skip_frames` (Ethernet frames):
        from now on the plain frames of each connection (in-order data, bare ACKs) are taken
        in without a packet object, and the middle of records this decoder counts without
        reading (triage's bulk data, records no key can open) is not even copied. Frames it
        takes must not be given to :meth:`feed_packet`; the events are the same as if they had
        been, and come out of the next :meth:`feed_packet` or :meth:`finish`."""
        self._direct = True
        return self._tracker.fast_path().frame_filter()

    def feed_secrets(self, block: SecretsBlock) -> None:
        if block.secrets_type == SECRETS_TYPE_TLS_KEYLOG:
            self.keylog.merge(KeyLog.parse(block.data, source=f"secrets block at byte {block.offset}"))

    def finish(self) -> list[DecodeEvent]:
        """End of capture: flush reassembly and every held event."""
        # Holes still open at the end are not blamed on whichever frame was fed last (with the
        # frame filter, that is not even the capture's last frame).
        self._snaplen_cut = False
        self._ack_from = -1
        for ev in self._tracker.flush():
            self._net_event(ev)
        for session in self._sessions.values():
            self._decide(session, None)
        self._sessions.clear()
        return self._drain(0, final=True)

    # -- net events ---------------------------------------------------------------------------

    def _net_event(self, ev: object) -> None:
        if isinstance(ev, StreamData):
            session = self._sessions.get(ev.conn.id)
            if session is not None:
                self._data(session, int(ev.direction), ev.data, ev.frame, ev.ts_ns)
        elif isinstance(ev, TcpFlag):
            session = self._sessions.get(ev.conn.id)
            if session is not None:
                self._emit_raw(session, ("tcp", ev.frame, ev.ts_ns, int(ev.direction), ev.flag))
        elif isinstance(ev, StreamGap):
            session = self._sessions.get(ev.conn.id)
            if session is not None:
                reason = ev.reason if ev.reason != GAP_LOST else self._gap_cause(ev)
                self._gap(session, int(ev.direction), ev.size, ev.frame, ev.ts_ns, reason)
        elif isinstance(ev, ConnectionStarted):
            conn = ev.conn
            wanted = self.options.conns is None or conn.id in self.options.conns
            session = _Session(conn, conn.first_frame, wanted)
            self._sessions[conn.id] = session
            self._emit_raw(session, ("conn",))
            self._health[conn.id] = HealthObserver()
            if self._direct:
                self._tracker.fast_path().attach(conn, self._deliver(session))
        elif isinstance(ev, StreamOverlap):
            session = self._sessions.get(ev.conn.id)
            if session is not None:
                self._show_conflicted(session)
                who = ROLE_NAME[self._role(session, int(ev.direction))]
                overlap = OverlapEvent(session.number, ev.frame, ev.ts_ns, who, ev.offset, ev.size, ev.differ)
                self._emit(session, overlap)
        elif isinstance(ev, ConnectionClosed):
            session = self._sessions.pop(ev.conn.id, None)
            health = self._health.pop(ev.conn.id, None)
            evicted = ev.conn.evicted
            if session is not None and evicted is not None:
                streams = ev.conn.streams
                self._emit(
                    session,
                    EvictedEvent(
                        session.number,
                        evicted[0],
                        evicted[1],
                        self._tracker.max_connections,
                        streams[0].carried_data or streams[1].carried_data,
                    ),
                )
            if session is not None:
                if health is not None:
                    self._health_event(session, health)
                self._decide(session, None)

    def _show_conflicted(self, session: _Session) -> None:
        """Two copies of its bytes differ: a connection taken for plaintext (or still undecided)
        is shown all the same, as the copy used may be the forged one (an injected segment
        that made a ClientHello look like something else). Nothing more of it is decoded."""
        if session.decided and session.is_tls:
            return
        if not session.decided:
            session.prelude = None
            self._decide(session, True)
        else:
            session.is_tls = True
            if not any(slot.session is session for slot in self._held):
                # Its events were dropped as not TLS: the connection's own event comes now.
                self._emit(session, self._materialize(session, ("conn",)))
        for d in session.dirs:
            d.dead = True

    # -- TCP health (net/health.py) ----------------------------------------------------------

    def _observe(
        self,
        conn: Connection,
        d: int,
        frame: int,
        ts: int,
        seg: TcpSegment,
        data: bytes,
        lt: int,
        *,
        first: bool = False,
    ) -> None:
        """``first``: the connection's first segment, seen after the tracker took it (it made
        the connection): nothing was seen before it."""
        health = self._health.get(conn.id)
        if health is None:
            return
        stream = conn.streams[d]
        nxt = None if first else stream.next_seq
        holes = not first and stream.buffered > 0
        size = len(seg.payload)
        said = health.observe(
            d, frame, ts, seg.seq, seg.ack, seg.flags, seg.window, size, nxt, holes, lt, data
        )
        if said and self._direct:
            fast = self._tracker.fast_path()
            if said == WATCH:
                # Trouble: from now on every frame of it comes here, to be measured.
                fast.watch(conn)
                return
            fast.unwatch(conn)
            session = self._sessions.get(conn.id)
            if session is not None and conn.open:
                if session.fast:
                    self._skip_unread(session)
                else:
                    fast.attach(conn, self._deliver(session))

    def _gap_cause(self, ev: StreamGap) -> str:
        """Who lost a hole's bytes: released by the receiver's ACK in this frame, the capture
        (the receiver had them); given up while the sender was still retransmitting what the
        receiver never acknowledged, the network."""
        d = int(ev.direction)
        if self._ack_from == 1 - d:
            return "capture"
        health = self._health.get(ev.conn.id)
        if health is not None and health.retransmitted(d):
            return "network"
        return "lost"

    def _health_event(self, session: _Session, health: HealthObserver) -> None:
        facts = health.summary()
        if not facts.notable:
            return
        client, server = facts.sides
        if self._role(session, 0) == 1:
            client, server = server, client
        last = max(client.last_frame, server.last_frame)
        ts = max(client.last_ts_ns, server.last_ts_ns)
        self._emit(session, TcpHealthEvent(session.number, last, ts, client, server, facts.connect_ns))
