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
from typing import Any

from ...crypto.keylog import KeyLog
from ...net.defrag import Defragmenter
from ...net.flow import (
    Connection,
    ConnectionClosed,
    ConnectionStarted,
    Endpoint,
    StreamData,
    StreamGap,
    StreamOverlap,
    TcpFlag,
    TcpTracker,
)
from ...net.health import WATCH, HealthObserver
from ...net.kinds import DTLS, QUIC, frame_kind
from ...net.reassembly import GAP_LOST
from ...net.tcp import ACK, TcpSegment, decode_tcp
from ...net.twins import TwinFilter
from ...pcap import FrameFilter
from ...pcap.model import SECRETS_TYPE_TLS_KEYLOG, Interface, Packet, SecretsBlock
from .. import keys as keymod
from ..events import DecodeEvent, EvictedEvent, OverlapEvent, TcpHealthEvent
from .cuts import CutTracker
from .framing import _Framing
from .order import ORDER_WINDOW, _Held
from .session import ROLE_NAME, DecodeOptions, _Session

__all__ = ["Decoder", "describe_contents"]


def describe_contents(plain_connections: int, not_tcp: dict[str, int]) -> str:
    """What a capture held besides TLS: TCP connections without TLS, frames without TCP by
    kind (net/kinds.py), for saying why no TLS connection was found."""
    parts = []
    if plain_connections:
        parts.append(f"{plain_connections} TCP connection(s) carried no TLS")
    if not_tcp:
        kinds = sorted(not_tcp.items(), key=lambda kv: (-kv[1], kv[0]))
        listed = ", ".join(f"{n} {kind}" for kind, n in kinds[:6])
        more = f", {sum(n for _, n in kinds[6:])} other" if len(kinds) > 6 else ""
        parts.append(f"{sum(not_tcp.values())} frame(s) carried no TCP ({listed}{more})")
    return "; ".join(parts) or "the capture holds no TCP segment"


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
        self._finished: dict[int, tuple[_Session, int]] = {}
        """Sessions closed by both FINs, with the frame: the tracker may still report an RST
        (net/flow.py), for as long as it remembers the 4-tuple."""
        self._held: collections.deque[_Held] = collections.deque()
        self._out: list[DecodeEvent] = []
        self._floor: int | None = None
        self._holes: dict[int, int] = {}
        self._expired: set[int] = set()
        self._later: list[tuple[int, int, _Session, DecodeEvent | None, tuple[Any, ...] | None]] = []
        self._arrivals = 0
        self._now = 0
        """The frame being fed (at the end: the capture's last frame)."""
        self._ending = False
        self._store = keymod.SessionStore()
        self._capture_randoms: set[bytes] = set()
        self._servers: set[Endpoint] = set()
        """Endpoints that served a connection whose roles are known (sniff.py)."""
        self.interfaces: list[Interface] = []
        """The capture's interfaces (the reader's list, growing as pcapng IDBs are read): with
        more than one, each connection says where it was first seen and copies of a segment
        seen on two interfaces are decoded once (net/twins.py)."""
        self._twins: TwinFilter | None = None
        self._iface = 0
        """Interface of the frame being fed."""
        self._cuts = CutTracker()
        self._defrag = Defragmenter()
        self.not_tcp: dict[str, int] = {}
        """Frames that carry no TCP segment, by what they carry (net/kinds.py)."""
        self.plain_connections = 0
        """TCP connections that carried no TLS (and are not shown)."""
        """IP fragments waiting for the rest of their datagram (a tunnel's underlay fragments)."""
        """Segments the snaplen cut short, to tell the gaps they make from losses (cuts.py)."""
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
        seg = decode_tcp(linktype, pkt.data, self._defrag, pkt.ts_ns)
        if seg is None:
            kind = frame_kind(linktype, pkt.data)
            if kind is not None:
                self.not_tcp[kind] = self.not_tcp.get(kind, 0) + 1
            return _NO_EVENTS
        self._iface = pkt.interface
        if len(self.interfaces) > 1:
            if self._twins is None:
                self._twins = TwinFilter()
            if self._twins.is_twin(pkt.interface, seg):
                return _NO_EVENTS
        # TCP health (net/health.py) sees every frame that leaves the fast path; looked up
        # before feeding, as a RST takes the connection out of the table.
        tracker = self._tracker
        side = tracker.lookup(seg.src, seg.sport, seg.dst, seg.dport)
        if side is not None:
            self._observe(side[0], side[1], frame, pkt.ts_ns, seg, pkt.data, linktype)
        self._ack_from = -1 if side is None or not seg.flags & ACK else side[1]
        self._now = frame
        if seg.truncated and side is not None and pkt.orig_len > len(pkt.data):
            # Cut by the snaplen (a first IP fragment is "truncated" too, but whole); the first
            # segment of a connection is never a data segment worth this.
            missing = pkt.orig_len - len(pkt.data)
            self._cuts.record(side[0], side[1], seg.seq, seg.flags, len(seg.payload), missing, frame)
            session = self._sessions.get(side[0].id)
            if session is not None and session.client_random is None and session.roles_from == "syn":
                # Seen from its SYN with no ClientHello read yet: the hello itself is cut.
                session.hello_cut += (frame,)
        marks = self._cuts.marks(side[0]) if self._cuts.pending and side is not None else None
        events = tracker.feed(frame, pkt.ts_ns, seg)
        if marks is not None and events:
            self._cuts.classify(marks, events)
        for ev in events:
            if type(ev) is StreamData:
                session = self._sessions.get(ev.conn.id)
                if session is not None:
                    at = ev.frame
                    if self._expired and at < frame and ev.conn.id in self._expired:
                        at = frame  # its hole stopped holding the output (order.ORDER_WINDOW)
                    self._data(session, ev.direction, ev.data, at, ev.ts_ns)
            else:
                self._net_event(ev)
        if side is not None:
            # Holes: what reassembly holds behind them comes out later with earlier frames,
            # so the output waits for it (order.py, "Frame order").
            conn = side[0]
            holes = self._holes
            if conn.id in holes:
                if events:
                    self._track_holes(conn)
            elif conn.streams[side[1]].holding and conn.open and conn.id not in self._expired:
                # (A connection whose hole outlived ORDER_WINDOW no longer holds the output
                # back until it closes.)
                self._track_holes(conn)
            if self._floor is not None and frame - self._floor > ORDER_WINDOW:
                self._expire_holes(frame)
        if side is None and events:
            # The first segment of a connection: its observer was made by ConnectionStarted.
            side = tracker.lookup(seg.src, seg.sport, seg.dst, seg.dport)
            if side is not None:
                self._observe(side[0], side[1], frame, pkt.ts_ns, seg, pkt.data, linktype, first=True)
        if not self._out and not self._held:
            return _NO_EVENTS
        return self._drain(frame)

    @property
    def twins_dropped(self) -> dict[int, int]:
        """Interface index -> frames dropped as copies of a segment seen on another interface."""
        return {} if self._twins is None else dict(self._twins.dropped)

    @property
    def evicted(self) -> tuple[int, int]:
        """Connections pushed out of the full connection table so far, and how many of them
        had carried data (:attr:`DecodeOptions.max_connections`)."""
        return self._tracker.evicted, self._tracker.evicted_with_data

    def warnings(self) -> list[str]:
        """What the decoder has to say about the capture as a whole (once decoding is over)."""
        said = []
        quic = self.not_tcp.get(QUIC, 0)
        if quic:
            said.append(
                f"{quic} frame(s) are QUIC (HTTP/3 over UDP), whose TLS handshake and keys live "
                "inside QUIC: capdebug does not decode them; to debug over TLS, make the client "
                "use TCP (e.g. chrome --disable-quic, curl without --http3)"
            )
        dtls = self.not_tcp.get(DTLS, 0)
        if dtls:
            said.append(f"{dtls} frame(s) are DTLS (TLS over UDP): capdebug does not decode DTLS")
        defrag = self._defrag
        if defrag.incomplete:
            said.append(
                f"{defrag.incomplete} fragmented IP datagram(s) never completed ("
                f"{defrag.incomplete_fragments} fragment(s) held, the others missing from the "
                "capture or over 30 s apart): the TCP bytes they carried show as gaps. A capture "
                "filter on ports drops the fragments after the first, which carry no port: add "
                "'or (ip[6:2] & 0x1fff != 0)' to it"
            )
        if defrag.conflicts:
            said.append(
                f"{defrag.conflicts} IP fragment(s) overlapped another with different bytes (the "
                "first copy was used): fragments forged or rewritten on the path"
            )
        count, with_data = self.evicted
        if not count:
            return said
        tracker = self._tracker
        return [
            *said,
            f"{count} connection(s) dropped from the connection table, full at "
            f"{tracker.max_connections} open connections or {tracker.max_half_open} without data "
            f"({with_data} of them had carried data, the others were half-open): each has an "
            "'evicted' event and a connection_table_full verdict; --max-connections raises the "
            "limits (an eighth of it for connections without data)",
        ]

    def contents(self) -> str:
        """What the capture held besides the connections shown (see :func:`describe_contents`)."""
        return describe_contents(self.plain_connections, self.not_tcp)

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

    def finish(self, last_frame: int = 0) -> list[DecodeEvent]:
        """End of capture (its last frame ``last_frame``, if known): flush reassembly and every
        held event."""
        # Holes still open at the end are not blamed on whichever frame was fed last (with the
        # frame filter, that is not even the capture's last frame).
        self._ack_from = -1
        self._now = max(self._now, last_frame)
        self._ending = True
        self._defrag.finish()
        marks = self._cuts.marks(None)
        flushed = self._tracker.flush()
        if marks is not None:
            self._cuts.classify(marks, flushed)
        for ev in flushed:
            self._net_event(ev)
        for session in self._sessions.values():
            self._decide(session, None)
        self._sessions.clear()
        self._holes.clear()
        self._expired.clear()
        self._floor = None
        self._release_later()
        return self._drain(0, final=True)

    def _track_holes(self, conn: Connection) -> None:
        s = conn.streams
        since = None
        if conn.open:
            a, b = s[0].held_since, s[1].held_since
            since = a if b is None else b if a is None else min(a, b)
        self._set_holes(conn.id, since)

    # -- net events ---------------------------------------------------------------------------

    def _at(self, ev: StreamData | TcpFlag | StreamGap) -> int:
        """The frame an item is shown at: its own, unless its hole stopped holding the output
        (order.ORDER_WINDOW): then the frame that releases it."""
        frame = ev.frame
        if self._expired and ev.conn.id in self._expired and frame < self._now:
            return self._now
        return frame

    def _net_event(self, ev: object) -> None:
        if isinstance(ev, StreamData):
            session = self._sessions.get(ev.conn.id)
            if session is not None:
                self._data(session, int(ev.direction), ev.data, self._at(ev), ev.ts_ns)
        elif isinstance(ev, TcpFlag):
            session = self._sessions.get(ev.conn.id)
            if session is None and ev.flag == "RST" and (done := self._finished.pop(ev.conn.id, None)):
                session = done[0]  # an RST after both FINs: the end of the timeline
            if session is not None:
                if session.prelude is not None and ev.flag != "SYN":
                    self._prelude_closed(session, ev)  # a refusal MySQL shows only this way
                self._emit_raw(session, ("tcp", self._at(ev), ev.ts_ns, int(ev.direction), ev.flag))
        elif isinstance(ev, StreamGap):
            session = self._sessions.get(ev.conn.id)
            if session is not None:
                origin = self._cuts.origin(ev)
                if origin is not None:
                    reason, cut_frames = "snaplen", origin.frames
                else:
                    reason = ev.reason if ev.reason != GAP_LOST else self._gap_cause(ev)
                    cut_frames = ()
                self._gap(session, int(ev.direction), ev.size, self._at(ev), ev.ts_ns, reason, cut_frames)
        elif isinstance(ev, ConnectionStarted):
            conn = ev.conn
            options = self.options
            wanted = (options.conns is None or conn.id in options.conns) and (
                options.endpoints is None or options.endpoints(conn.client, conn.server)
            )
            session = _Session(conn, conn.first_frame, wanted)
            if conn.roles_from_syn:
                self._served(conn.server)
            session.interface = self._iface
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
            self._cuts.forget(ev.conn.id)
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
                        evicted[2],
                        streams[0].carried_data or streams[1].carried_data,
                        "connections" if evicted[2] == self._tracker.max_connections else "half_open",
                    ),
                )
            if session is not None:
                if health is not None:
                    self._health_event(session, health)
                self._decide(session, None)
                streams = ev.conn.streams
                if streams[0].fin_done and streams[1].fin_done and session.is_tls and not self._ending:
                    self._keep_finished(session)
            self._set_holes(ev.conn.id, None)

    def _keep_finished(self, session: _Session) -> None:
        """Keep a session closed by both FINs while the tracker remembers its 4-tuple (a rule
        on frames, as the tracker's), without its buffers."""
        now = self._now
        finished = self._finished
        for d in session.dirs:
            d.buf = bytearray()
            d.hs_buf = bytearray()
            d.keys = None
            d.candidates = []
            d.dead = True
        session.transcript = None
        finished[session.number] = (session, now)
        window = self._tracker.max_closed
        while finished:
            first = next(iter(finished.values()))
            if now - first[1] <= window:
                break
            del finished[first[0].number]

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
        if health.quiet():
            return
        facts = health.summary()
        if not facts.notable:
            return
        client, server = facts.sides
        if self._role(session, 0) == 1:
            client, server = server, client
        last = max(client.last_frame, server.last_frame)
        if self._ending:
            # Still open at the end of the capture: said there, in frame order.
            last = max(last, self._now)
        ts = max(client.last_ts_ns, server.last_ts_ns)
        self._emit(session, TcpHealthEvent(session.number, last, ts, client, server, facts.connect_ns))
