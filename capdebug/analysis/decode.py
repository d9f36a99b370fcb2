"""The TLS stream decoder: captured packets in, per-connection TLS events out.

Theory of operation
-------------------
Packets flow through three stages, all pure and streaming:

1. ``net``: each frame is decoded to a TCP segment and fed to the :class:`TcpTracker`, which
   reassembles each direction of each connection and emits in-order stream data, gaps, and
   SYN/FIN/RST flags, each tagged with the frame that completed it.
2. Here, each direction of a connection is a :class:`_Direction`: a receive buffer that is framed
   into TLS records (RFC 8446 5.1) as data arrives. A record is dispatched by its content type;
   protected records are opened with the direction's current :class:`_Keys`.
3. Handshake records feed a per-direction handshake buffer, framed into messages (messages can
   span records, and records can carry several messages). Messages drive the key changes:

   ========  ===============================================================================
   TLS 1.3   server: ServerHello -> handshake keys -> its Finished -> application keys;
             client: (early keys) -> handshake keys -> its Finished -> application keys;
             KeyUpdate in a direction -> that direction's next generation (RFC 8446 7.2).
   TLS 1.2   ChangeCipherSpec in a direction -> that direction's key-block keys, seq 0.
   ========  ===============================================================================

Keys come from the key log by client_random. Where the expected key is absent, each direction
keeps a short list of *next* candidate keys and tries them when the current key fails (a rejected
0-RTT, a key log holding only application secrets); a success is proven by the AEAD tag or MAC.
After a stream gap the sequence number is unknown, so the next record is tried over a small
window of sequence numbers. A connection picked up mid-stream (no ClientHello) is recovered the
same way: every TLS 1.3 application secret in the key log is tried on its first records.

Nothing unauthenticated is ever returned as plaintext; every failure becomes an
:class:`UndecryptableEvent` with a stable reason code, reported once per direction and reason.

Consumers choose their cost: ``decrypt_app_data=False`` (triage) decrypts only the records that
can change what happens next (handshake, alerts, and TLS 1.3 records small enough to be an alert
or KeyUpdate); bulk application data is counted, not decrypted.

Output order is capture order. A connection is shown once its first payload looks like TLS;
until then its events (and everything after them) are held, so that non-TLS connections are
dropped without reordering anything. A connection still without payload
:data:`_UNDECIDED_FRAMES` frames after its first is shown without waiting longer: a rule on its
own frames only, so it decides alike whatever else the capture holds (or a share of it) and
whichever frames the frame filter took. Connection numbers count every TCP
connection in order of first appearance (as Wireshark's ``tcp.stream`` + 1), so numbers skip
where a connection was not TLS.
"""

from __future__ import annotations

import collections
import itertools
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from ..crypto.keylog import KeyLog
from ..errors import CryptoError, DecodeError
from ..net.flow import (
    ConnectionClosed,
    ConnectionStarted,
    Deliver,
    StreamData,
    StreamGap,
    TcpFlag,
    TcpTracker,
)
from ..net.tcp import decode_tcp, format_endpoint
from ..pcap import FrameFilter
from ..pcap.model import SECRETS_TYPE_TLS_KEYLOG, Packet, SecretsBlock
from ..wire.alert import alert_name
from ..wire.constants import ContentType, HandshakeType
from ..wire.handshake import NewSessionTicket12, ServerHello, frame_handshake, handshake_name
from ..wire.record import looks_like_tls, split_inner_plaintext
from . import keys as keymod
from .events import (
    AlertEvent,
    AppDataEvent,
    CcsEvent,
    ConnectionEvent,
    DecodeEvent,
    GapEvent,
    HandshakeEvent,
    HeartbeatEvent,
    Reason,
    RecoveredEvent,
    TcpEvent,
    UndecryptableEvent,
)
from .messages import parse_handshake

__all__ = ["DecodeOptions", "Decoder"]

_UNDECIDED_FRAMES = 20_000
"""Frames after its first that a connection without payload may keep the output waiting."""
_MAX_HELD = 20_000
"""Events held behind an undecided connection before the frame filter gives way (so that the
next frame goes through feed_packet, which decides it when its time is up)."""
_MAX_RECORD = (1 << 14) + 2048
"""Largest record any version allows (RFC 5246 6.2.3)."""
_SMALL_PROTECTED = 64
"""In triage mode, TLS 1.3 protected records up to this size are decrypted: alerts (19 bytes
with a 16-byte tag), KeyUpdate (21), and other control messages."""
_FIRST_OPENED = 4
"""In triage mode, the first TLS 1.3 application-stage records of a direction are opened
anyway: NewSessionTickets come there, and they are not application data."""
_RESYNC_WINDOW = 65_536
"""How far to look for a record boundary after a gap before giving up on a direction."""
_SEQ_WINDOW = 64
"""Sequence numbers tried after a gap or at a mid-stream start."""
_SAYS_WHAT_ELSE_WAS_SEEN = frozenset((Reason.NO_KEY, Reason.KEYLOG_OTHER_SESSIONS, Reason.RSA_KEY_EXCHANGE))
"""Reasons chosen (and worded) from the capture's other sessions: which client_randoms it
holds, which earlier session a TLS 1.2 resumption could take its master secret from."""
_MAX_PENDING = _MAX_HELD + 4096
"""Events piled up by data the frame filter delivered before it stops taking frames, so that
the next frame goes through feed_packet, which hands them out."""
_NO_EVENTS: Sequence[DecodeEvent] = ()
_MAX_TRIAL_RECORDS = 8
"""Records tried with mid-stream candidate keys (or, after a gap, on a window of sequence
numbers) before giving up on a direction."""
_TRIAL_BUDGET = 8192
"""Trial decryptions one direction may spend to recover a connection picked up mid-stream
(every candidate secret times the window of sequence numbers, on the first records)."""
_RECOVERY_SWEEPS = ((0, 2), (2, 8), (8, _SEQ_WINDOW))
"""Mid-stream recovery tries every candidate on these ranges of sequence numbers in turn."""
_ROLE = ("client", "server")


@dataclass(slots=True)
class DecodeOptions:
    """What the consumer needs from the decoder."""

    decrypt_app_data: bool = True
    """Decrypt and authenticate every application-data record (decrypt) or only what can
    change the course of the connection (triage)."""
    app_data_sink: Callable[[int, str, bytes], None] | None = None
    """Called with (conn, "client"|"server", plaintext) for every decrypted application record."""
    conns: frozenset[int] | None = None
    """Only these connection numbers (None: all)."""
    partition: tuple[int, int] | None = None
    """``(k, n)``: only the connections of share ``k`` of ``n`` (see
    :attr:`capdebug.net.TcpTracker.partition`), numbered within the share; see
    :attr:`Decoder.first_frames` and :attr:`Decoder.partition_dependent` to put shares together."""


class _Direction:
    """One direction of one TLS connection: record framing, handshake buffer, keys."""

    __slots__ = (
        "buf",
        "candidates",
        "dead",
        "encrypted",
        "explained",
        "failures",
        "hs_buf",
        "hs_encrypted",
        "keys",
        "lost_seq",
        "need",
        "off",
        "recovery_tried",
        "reported",
        "resync",
        "role",
        "scan_from",
        "seq_unknown",
        "skip",
        "skip_length",
        "started",
        "trials",
        "undecided",
        "want",
    )

    def __init__(self, role: int) -> None:
        self.role = role
        self.buf = bytearray()
        self.off = 0
        self.hs_buf = bytearray()
        self.hs_encrypted = False
        self.keys: keymod.Keys | None = None
        """Current record protection, None while records are in the clear."""
        self.candidates: list[keymod.Keys] = []
        """Keys to try, in order, when the current ones fail."""
        self.encrypted = False
        """Records are protected from here on (keys or not)."""
        self.reported: set[str] = set()
        self.dead = False
        self.resync = False
        self.seq_unknown = False
        self.trials: int | None = None
        """Mid-stream recovery: how many more trial decryptions it may spend (None: not
        recovering)."""
        self.lost_seq = False
        """After a gap, no record in a row opened: the sequence number is given up on."""
        self.started = False
        self.failures = 0
        """Records in a row that no key (or, after a gap, no nearby sequence number) opened."""
        self.scan_from = 0
        self.undecided: list[int] = []
        """Resynchronising: the buffer is searched up to ``scan_from``, and of those offsets
        only ``undecided`` could still be a record boundary."""
        self.recovery_tried = False
        self.need = 0
        """Bytes still missing from the incomplete record at the front of the buffer."""
        self.skip = 0
        """Bytes of a bulk record still to drop unread (triage), and that record's length."""
        self.skip_length = 0
        self.explained: str | None = None
        """The key stage whose absence was already explained (explained once, not per record)."""
        self.want = "handshake"
        """The key stage this direction expects next (for explaining a missing key)."""


class _Session:
    """Everything known about one TCP connection carrying (possibly) TLS."""

    __slots__ = (
        "ch_session_id",
        "ch_ticket",
        "client_random",
        "conn",
        "decided",
        "dirs",
        "early_offered",
        "etm",
        "fast",
        "first_frame",
        "flip",
        "hrr",
        "is_tls",
        "roles_from",
        "server_random",
        "sh_seen",
        "sh_session_id",
        "suite",
        "version",
        "wanted",
    )

    def __init__(self, conn: Any, first_frame: int, wanted: bool) -> None:
        self.conn = conn
        self.first_frame = first_frame
        self.wanted = wanted
        self.decided = False
        self.is_tls = False
        self.flip = False
        self.roles_from = "syn" if conn.roles_from_syn else "guess"
        self.dirs = (_Direction(0), _Direction(1))
        self.client_random: bytes | None = None
        self.server_random: bytes | None = None
        self.version: str | None = None
        self.suite: int | None = None
        self.hrr = False
        self.sh_seen = False
        self.early_offered = False
        self.ch_session_id = b""
        self.ch_ticket: bytes | None = None
        self.sh_session_id = b""
        self.etm = False
        self.fast = False
        """Its frames may be taken by the tracker's frame filter (see Decoder.frame_filter)."""

    @property
    def number(self) -> int:
        return int(self.conn.id)


@dataclass(slots=True)
class _Held:
    """An output slot: a ready event, or the raw parts of one whose roles are not final."""

    session: _Session
    event: DecodeEvent | None
    raw: tuple[Any, ...] | None = None


class Decoder:
    """Turn a capture's packets into TLS events (see the module docstring)."""

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
        self._tracker = TcpTracker(partition=self.options.partition)
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

    # -- input ------------------------------------------------------------------------------

    def feed_packet(self, frame: int, pkt: Packet, linktype: int) -> Sequence[DecodeEvent]:
        """Decode one captured frame; returns the events that are ready, in capture order
        (a shared empty sequence when there are none: do not modify it)."""
        seg = decode_tcp(linktype, pkt.data)
        if seg is None:
            return _NO_EVENTS
        self._snaplen_cut = seg.truncated
        for ev in self._tracker.feed(frame, pkt.ts_ns, seg):
            if type(ev) is StreamData:
                session = self._sessions.get(ev.conn.id)
                if session is not None:
                    self._data(session, ev.direction, ev.data, ev.frame, ev.ts_ns)
            else:
                self._net_event(ev)
        if not self._out and not self._held:
            return _NO_EVENTS
        return self._drain(frame)

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
        return self._tracker.frame_filter()

    def feed_secrets(self, block: SecretsBlock) -> None:
        if block.secrets_type == SECRETS_TYPE_TLS_KEYLOG:
            self.keylog.merge(KeyLog.parse(block.data, source=f"secrets block at byte {block.offset}"))

    def finish(self) -> list[DecodeEvent]:
        """End of capture: flush reassembly and every held event."""
        # Holes still open at the end are not blamed on whichever frame was fed last (with the
        # frame filter, that is not even the capture's last frame).
        self._snaplen_cut = False
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
                self._gap(session, int(ev.direction), ev.size, ev.frame, ev.ts_ns)
        elif isinstance(ev, ConnectionStarted):
            conn = ev.conn
            wanted = self.options.conns is None or conn.id in self.options.conns
            session = _Session(conn, conn.first_frame, wanted)
            self._sessions[conn.id] = session
            self._emit_raw(session, ("conn",))
            if self._direct:
                self._tracker.deliver_direct(conn, self._deliver(session))
        elif isinstance(ev, ConnectionClosed):
            session = self._sessions.pop(ev.conn.id, None)
            if session is not None:
                self._decide(session, None)

    # -- output -------------------------------------------------------------------------------

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
            return TcpEvent(session.number, frame, ts, _ROLE[self._role(session, net_dir)], flag)
        conn = session.conn
        client, server = (conn.server, conn.client) if session.flip else (conn.client, conn.server)
        return ConnectionEvent(
            session.number,
            format_endpoint(*client),
            format_endpoint(*server),
            session.first_frame,
            session.roles_from,
        )

    def _decide(self, session: _Session, is_tls: bool | None) -> None:
        """Fix whether a connection is shown. ``None``: it ended without payload: show it
        (a refused or reset connection attempt is worth seeing)."""
        if session.decided:
            return
        session.decided = True
        session.is_tls = True if is_tls is None else is_tls
        if not session.is_tls:
            for d in session.dirs:
                d.dead = True

    def _drain(self, frame: int, final: bool = False) -> list[DecodeEvent]:
        self._tracker.hold = False
        held = self._held
        out = self._out
        while held:
            slot = held[0]
            session = slot.session
            if not session.decided:
                if not final and frame - session.first_frame <= _UNDECIDED_FRAMES:
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

    # -- stream data --------------------------------------------------------------------------

    def _data(self, session: _Session, net_dir: int, data: bytes, frame: int, ts: int) -> None:
        d = session.dirs[net_dir ^ 1 if session.flip else net_dir]
        if d.dead:
            return
        if d.skip:
            # Inside a bulk record that triage counts without reading: drop its bytes.
            n = min(d.skip, len(data))
            d.skip -= n
            if d.skip:
                return
            self._count_bulk(session, d, d.skip_length, frame, ts)
            data = data[n:]
            if not data:
                return
        d.buf += data
        if d.need:
            # The record at the front is still incomplete: framing can wait (O(1) per segment).
            if d.need > len(data):
                d.need -= len(data)
                return
            d.need = 0
        if not d.started:
            if not self._start(session, d, net_dir, frame, ts):
                return
            role = self._role(session, net_dir)
            d = session.dirs[role]
        if d.resync and not self._resync(session, d, frame, ts):
            return
        self._frame(session, d, frame, ts)

    def _start(self, session: _Session, d: _Direction, net_dir: int, frame: int, ts: int) -> bool:
        """First bytes of a direction: is this TLS, and who is the client?"""
        buf = d.buf
        if len(buf) < 6:
            return False
        verdict = looks_like_tls(bytes(buf[:16]))
        if not session.decided and frame - session.first_frame > _UNDECIDED_FRAMES:
            self._decide(session, None)  # its time was up: shown, as _drain would have done
        if not session.decided:
            # A connection picked up mid-stream is TLS too when a record boundary can be found.
            tls = verdict or (not session.conn.roles_from_syn and _find_boundary(buf, 0) is not None)
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
            session.dirs[0].role, session.dirs[1].role = 0, 1

    def _sslv2(self, session: _Session, d: _Direction, frame: int, ts: int) -> None:
        self._emit(
            session,
            HandshakeEvent(session.number, frame, ts, _ROLE[d.role], 1, "client_hello", False, sslv2=True),
        )
        self._undecryptable(
            session,
            d,
            frame,
            ts,
            Reason.SSLV2,
            "SSLv2-compatible ClientHello: a very old client; nothing after it is decoded",
        )
        d.dead = True

    def _gap(self, session: _Session, net_dir: int, size: int, frame: int, ts: int) -> None:
        d = session.dirs[self._role(session, net_dir)]
        if d.dead:
            return
        cause = "snaplen" if self._snaplen_cut else "lost"
        self._emit(session, GapEvent(session.number, frame, ts, _ROLE[d.role], size, cause))
        # Bytes before the gap that never formed a whole record are lost with it.
        d.buf.clear()
        d.off = 0
        d.need = 0
        d.skip = 0
        d.scan_from = 0
        d.undecided = []
        d.hs_buf.clear()
        d.resync = True
        if d.encrypted:
            d.seq_unknown = True
        if not d.started:
            d.started = True

    def _resync(self, session: _Session, d: _Direction, frame: int, ts: int) -> bool:
        """Find the next record boundary after a gap or a corrupt record (as _find_boundary),
        as data arrives: each call looks again only at the offsets the data could not yet
        decide (plausible headers of incomplete records: rare) and at the new bytes, so the
        search is linear in the data however long it waits."""
        buf = d.buf
        end = len(buf)
        limit = min(end - 5, d.off + _RESYNC_WINDOW)
        # Header starts cannot overlap (a start's 2nd and 3rd bytes are not a content type),
        # so non-overlapping matches are all of them.
        candidates = itertools.chain(
            (pos for pos in d.undecided if pos >= d.off),
            (m.start() for m in _HEADER_START.finditer(buf, max(d.off, d.scan_from), limit + 3)),
        )
        at: int | None = None
        undecided: list[int] = []
        for pos in candidates:
            verdict = _boundary_at(buf, pos, end)
            if verdict > 0:
                at = pos
                break
            if verdict == 0:
                undecided.append(pos)
        d.undecided = undecided
        if at is None:
            d.scan_from = limit + 1
            if len(d.buf) - d.off > _RESYNC_WINDOW:
                self._undecryptable(
                    session,
                    d,
                    frame,
                    ts,
                    Reason.NOT_TLS,
                    "no TLS record boundary found after a gap or corrupt record; "
                    "the rest of this direction is not decoded",
                )
                d.dead = True
            return False
        d.off = at
        d.resync = False
        d.scan_from = 0
        d.undecided = []
        return True

    def _frame(self, session: _Session, d: _Direction, frame: int, ts: int) -> None:
        buf = d.buf
        off = d.off
        end = len(buf)
        # Records are cut out through a view (one copy, not two); made only when one is, as
        # most calls in triage only count records or wait for more bytes.
        view: memoryview | None = None
        try:
            while end - off >= 5 and not d.dead:
                ctype = buf[off]
                length = (buf[off + 3] << 8) | buf[off + 4]
                if ctype < 20 or ctype > 25 or buf[off + 1] != 3 or length > _MAX_RECORD:
                    self._undecryptable(
                        session,
                        d,
                        frame,
                        ts,
                        Reason.NOT_TLS,
                        f"bytes at stream offset are not a TLS record (type {ctype}, length {length}); "
                        "looking for the next record boundary",
                    )
                    d.off = off + 1
                    d.resync = True
                    if view is not None:
                        view.release()
                        view = None
                    if self._resync(session, d, frame, ts):
                        self._frame(session, d, frame, ts)
                    return
                if end - off < 5 + length:
                    if (
                        ctype == ContentType.application_data
                        and d.encrypted
                        and end - off > 5
                        and self._is_bulk(d, length)
                    ):
                        d.skip = 5 + length - (end - off)
                        d.skip_length = length
                        off = end
                        if not session.fast and self._direct:
                            self._skip_unread(session)
                    else:
                        d.need = 5 + length - (end - off)
                    break
                if (
                    ctype != ContentType.application_data
                    or not d.encrypted
                    or not self._bulk(session, d, length, frame, ts)
                ):
                    if view is None:
                        view = memoryview(buf)
                    self._record(session, d, ctype, bytes(view[off : off + 5 + length]), frame, ts)
                off += 5 + length
        finally:
            if view is not None:
                view.release()
        if d.dead:
            return
        # Compact lazily: O(bytes read) overall, as h11's ReceiveBuffer.
        if off == end:
            buf.clear()
            d.off = 0
        elif off > 65536 and off * 2 > end:
            del buf[:off]
            d.off = 0
        else:
            d.off = off

    # -- records ------------------------------------------------------------------------------

    def _is_bulk(self, d: _Direction, length: int) -> bool:
        """Can this protected application_data record be counted without opening it? When
        nothing can be learned from it: no keys at all (already explained), or triage's bulk
        data, whose only effect is on the sequence number."""
        keys = d.keys
        if keys is None:
            return not d.candidates and d.explained is not None
        return not (
            self.options.decrypt_app_data
            or d.candidates
            or (d.seq_unknown and not d.lost_seq)
            or (
                keys.tls13 and (keys.stage != "app" or length <= _SMALL_PROTECTED or keys.seq < _FIRST_OPENED)
            )
        )

    def _deliver(self, session: _Session) -> tuple[Deliver, Deliver]:
        """Where the frame filter hands each direction's data: as feed_packet would, then
        out of the filter's way whenever events pile up (so that they are handed out)."""

        def deliver(net_dir: int) -> Deliver:
            def take(data: bytes, frame: int, ts: int) -> None:
                self._data(session, net_dir, data, frame, ts)
                if len(self._out) + len(self._held) > _MAX_PENDING:
                    self._tracker.hold = True

            return take

        return deliver(0), deliver(1)

    def _skip_unread(self, session: _Session) -> None:
        """From the first record dropped unread on (its roles are settled: records are
        protected), the frame filter drops the middle of such records without copying them."""
        session.fast = True
        dirs = session.dirs
        flip = 1 if session.flip else 0
        self._tracker.deliver_direct(session.conn, self._deliver(session), (dirs[flip], dirs[1 - flip]))

    def _count_bulk(self, session: _Session, d: _Direction, length: int, frame: int, ts: int) -> None:
        keys = d.keys
        if keys is not None:
            keys.seq += 1
            length -= keys.overhead
        self._emit(session, AppDataEvent(session.number, frame, ts, _ROLE[d.role], length, False))

    def _bulk(self, session: _Session, d: _Direction, length: int, frame: int, ts: int) -> bool:
        if not self._is_bulk(d, length):
            return False
        self._count_bulk(session, d, length, frame, ts)
        return True

    def _record(
        self, session: _Session, d: _Direction, ctype: int, record: bytes, frame: int, ts: int
    ) -> None:
        if ctype == ContentType.change_cipher_spec:
            self._emit(session, CcsEvent(session.number, frame, ts, _ROLE[d.role]))
            if session.version == "1.2":
                self._ccs12(session, d, frame, ts)
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
            and (session.version == "1.3" or (session.version is None and session.client_random is not None))
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

    def _open(
        self, session: _Session, d: _Direction, ctype: int, record: bytes, frame: int, ts: int
    ) -> tuple[int, bytes, bool] | None:
        """Authenticate and decrypt a protected record with the current or a candidate key.
        Returns (content type, content, early) or None (reported as undecryptable)."""
        if d.keys is None and not d.candidates and session.client_random is None and not d.recovery_tried:
            # Picked up mid-stream: try every application secret the key log holds.
            # Sessions whose ClientHello was seen belong to other connections.
            d.recovery_tried = True
            d.candidates = keymod.recover_mid_stream(self.keylog, d.role, exclude=self._capture_randoms)
            if d.candidates:
                self.partition_dependent = True
            d.seq_unknown = bool(d.candidates)
            d.trials = _TRIAL_BUDGET
        if d.lost_seq:
            return None  # said once (stream_gap); the record is shown unopened
        tried = False
        for keys, seq in self._trials(d):
            tried = True
            try:
                plain = keys.open(record, seq)
            except CryptoError:
                continue
            if keys is not d.keys:
                d.keys = keys
                idx = d.candidates.index(keys)
                del d.candidates[: idx + 1]
                if session.client_random is None:
                    d.candidates = []
                    self._emit(
                        session,
                        RecoveredEvent(
                            session.number,
                            frame,
                            ts,
                            _ROLE[d.role],
                            keys.label,
                            keys.prot.params.name,
                            seq,
                        ),
                    )
            keys.seq = seq + 1
            d.seq_unknown = False
            d.failures = 0
            d.trials = None
            if keys.tls13:
                try:
                    inner, content = split_inner_plaintext(plain)
                except DecodeError:
                    self._undecryptable(
                        session, d, frame, ts, Reason.NOT_TLS, "decrypted record has no content type"
                    )
                    return None
                return inner, content, keys.stage == "early"
            return ctype, plain, False
        if not tried:
            self._explain_missing(session, d, frame, ts, want=d.want)
            return None
        d.failures += 1
        if d.keys is None:
            # The expected key is missing (later-stage candidates wait for their records), or
            # no mid-stream trial key fits: say so once, and stop trying after a few records.
            self._explain_missing(session, d, frame, ts, want=d.want)
            if session.client_random is None and d.failures >= _MAX_TRIAL_RECORDS:
                d.candidates = []
                d.seq_unknown = False
            return None
        if d.seq_unknown:
            self._undecryptable(
                session,
                d,
                frame,
                ts,
                Reason.STREAM_GAP,
                "bytes are missing from the stream and no nearby sequence number authenticates the "
                "records after the gap",
            )
            # The window slides on past this record (the count below); after a few such
            # records in a row the number is lost for good (a capture missing many segments),
            # and trying every record against a whole window would cost more than the rest of
            # the decoding together.
            if d.failures >= _MAX_TRIAL_RECORDS:
                d.lost_seq = True
        else:
            self._undecryptable(
                session,
                d,
                frame,
                ts,
                Reason.BAD_TAG,
                f"authentication failed with the key log's {d.keys.label}: the secret is wrong "
                "(another session's, or from a different run) or the record was modified",
            )
        d.keys.seq += 1  # keep counting so that a later record can still authenticate
        return None

    def _trials(self, d: _Direction) -> Iterator[tuple[keymod.Keys, int]]:
        """(keys, sequence number) pairs to try on a protected record, likeliest first."""
        keys_list = ([d.keys] if d.keys is not None else []) + d.candidates
        if not d.seq_unknown:
            for keys in keys_list:
                yield keys, keys.seq
        elif d.trials is None:
            for keys in keys_list:
                for seq in range(keys.seq, keys.seq + _SEQ_WINDOW):
                    yield keys, seq
        else:
            # Mid-stream recovery: every candidate on the first numbers, then further, within a
            # budget (a key log of another hop can hold thousands of secrets, and each try
            # authenticates a whole record).
            for lo, hi in _RECOVERY_SWEEPS:
                for keys in keys_list:
                    for seq in range(keys.seq + lo, keys.seq + hi):
                        if d.trials is None or d.trials <= 0:
                            d.candidates = []
                            d.trials = None
                            d.failures = _MAX_TRIAL_RECORDS
                            return
                        d.trials -= 1
                        yield keys, seq

    def _opaque(
        self, session: _Session, d: _Direction, ctype: int, record: bytes, frame: int, ts: int
    ) -> None:
        """A protected record we could not open: say what is visible."""
        role = _ROLE[d.role]
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

    # -- content ------------------------------------------------------------------------------

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
        role = _ROLE[d.role]
        if ctype == ContentType.handshake:
            if d.hs_encrypted != encrypted and d.hs_buf:
                d.hs_buf.clear()  # a message cannot span a key change (RFC 8446 5.1)
            d.hs_encrypted = encrypted
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
                    _ROLE[d.role],
                    msg_type,
                    "hello_retry_request" if hrr else handshake_name(msg_type),
                    encrypted,
                    parsed,
                    len(message) - 4,
                    error,
                ),
            )
            self._after_message(session, d, msg_type, parsed, frame, ts)

    def _after_message(
        self, session: _Session, d: _Direction, msg_type: int, parsed: Any, frame: int, ts: int
    ) -> None:
        """Key changes and session facts that a handshake message implies."""
        if parsed is None:
            return
        if msg_type == HandshakeType.client_hello and d.role == 0:
            keymod.note_client_hello(session, parsed)
            if session.client_random is not None:
                self._capture_randoms.add(session.client_random)
                late = self._late_secrets.get(session.client_random)
                if late is not None and frame <= late:
                    self._undecryptable(
                        session,
                        d,
                        frame,
                        ts,
                        Reason.LATE_SECRETS,
                        f"the secrets of this session are in a Decryption Secrets Block after frame {late}, "
                        "behind the packets they unlock (Wireshark reads them too late); decrypted anyway",
                    )
            if session.early_offered and not session.hrr:
                # 0-RTT: the client's next protected records use early keys (RFC 8446 4.2.10).
                d.encrypted = True
                d.want = "early"
                d.keys = keymod.tls13_next_stage(self.keylog, session, 0, "early")
        elif msg_type == HandshakeType.server_hello and d.role == 1:
            keymod.note_server_hello(session, parsed)
            if session.hrr:
                return
            self._install_initial_keys(session, frame, ts)
        elif msg_type == HandshakeType.finished and session.version == "1.3":
            d.want = "app"
            keys = keymod.tls13_next_stage(self.keylog, session, d.role, "app")
            if keys is not None:
                d.keys = keys
                d.candidates = []
            elif d.keys is not None:
                d.keys = None
                self._explain_missing(session, d, frame, ts, want="app")
        elif msg_type == HandshakeType.end_of_early_data and d.role == 0:
            d.want = "handshake"
            keys = keymod.tls13_next_stage(self.keylog, session, 0, "handshake")
            d.keys = keys
            d.candidates = []
        elif msg_type == HandshakeType.key_update and session.version == "1.3" and d.keys is not None:
            d.keys = d.keys.next_generation()
        elif isinstance(parsed, NewSessionTicket12):
            self._store.note_ticket(session, parsed)

    def _install_initial_keys(self, session: _Session, frame: int, ts: int) -> None:
        client, server = session.dirs
        if session.version == "1.3":
            server.encrypted = True
            server.keys = keymod.tls13_next_stage(self.keylog, session, 1, "handshake")
            server.candidates = keymod.tls13_later_stages(self.keylog, session, 1, "handshake")
            # The client's early records (if any) were set up at its ClientHello; from here its
            # protected records use handshake keys unless early keys still authenticate them.
            client.encrypted = True
            server.want = "handshake"
            hs = keymod.tls13_next_stage(self.keylog, session, 0, "handshake")
            later = keymod.tls13_later_stages(self.keylog, session, 0, "handshake")
            if client.keys is not None and client.keys.stage == "early":
                client.candidates = [k for k in (hs, *later) if k is not None]
            else:
                client.keys = hs
                client.candidates = later
            if server.keys is None and session.wanted:
                self._explain_missing(session, server, frame, ts)
        else:
            self._store.note_session(session, self.keylog)

    def _ccs12(self, session: _Session, d: _Direction, frame: int, ts: int) -> None:
        d.encrypted = True
        d.hs_buf.clear()
        if session.version is None and not session.sh_seen:
            d.keys = None
            return
        try:
            d.keys = keymod.tls12_keys(self.keylog, self._store, session, d.role, self._capture_randoms)
        except keymod.MissingKeys as exc:
            d.keys = None
            d.explained = d.want  # this is the explanation for every record that follows
            self._undecryptable(session, d, frame, ts, exc.reason, str(exc))

    def _explain_missing(
        self, session: _Session, d: _Direction, frame: int, ts: int, want: str = "handshake"
    ) -> None:
        if d.explained == want:
            return
        d.explained = want
        reason, message = keymod.explain_missing(self.keylog, session, d.role, want, self._capture_randoms)
        self._undecryptable(session, d, frame, ts, reason, message)

    def _undecryptable(
        self, session: _Session, d: _Direction, frame: int, ts: int, reason: str, msg: str
    ) -> None:
        if reason in d.reported:
            return
        d.reported.add(reason)
        if reason in _SAYS_WHAT_ELSE_WAS_SEEN and len(self.keylog):
            self.partition_dependent = True
        self._emit(session, UndecryptableEvent(session.number, frame, ts, _ROLE[d.role], reason, msg))


_HEADER_START = re.compile(rb"[\x14-\x18]\x03[\x00-\x04]")
"""What _plausible_header accepts of a record header's first three bytes (content type,
version major, minor): searched for by the regular expression engine, so that looking for a
boundary in random ciphertext costs a scan in C, not a Python step per byte."""


def _plausible_header(buf: bytearray | bytes, at: int) -> int:
    """Length of the record whose header is at ``at`` if it looks like one, else -1."""
    ctype = buf[at]
    if ctype < 20 or ctype > 24 or buf[at + 1] != 3 or buf[at + 2] > 4:
        return -1
    length = (buf[at + 3] << 8) | buf[at + 4]
    if length == 0 or length > _MAX_RECORD:
        return -1
    return length


def _boundary_at(buf: bytearray, at: int, end: int) -> int:
    """Is ``at`` a record boundary: 1 yes (two records in a row parse, or one reaches exactly
    the end of the data), -1 no, 0 cannot tell yet (a plausible record not complete yet)."""
    length = _plausible_header(buf, at)
    if length < 0:
        return -1
    nxt = at + 5 + length
    if nxt == end:
        return 1
    if nxt + 5 <= end:
        return 1 if _plausible_header(buf, nxt) >= 0 else -1
    return 0


def _find_boundary(buf: bytearray, start: int) -> int | None:
    """The first offset from ``start`` where two records in a row parse (or one record
    reaching exactly the end of the data). None when the data cannot tell yet."""
    end = len(buf)
    stop = min(end - 5, start + _RESYNC_WINDOW) + 3
    for found in _HEADER_START.finditer(buf, start, stop):
        if _boundary_at(buf, found.start(), end) > 0:
            return found.start()
    return None
