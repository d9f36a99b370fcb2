"""The accumulator: :class:`Triage` reads the decoder's events one by one into
:class:`~.model.Conn` summaries; :meth:`Triage.reports` applies the rules."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Final, overload

from ...net.health import DirectionHealth
from ...net.reassembly import GAP_OUT_OF_ORDER
from ...wire.constants import CipherSuite, name_of, version_name
from ...wire.handshake import ClientHello, EncryptedExtensions, ServerHello
from ..app import AppFact, H2Watch
from ..events import (
    AlertEvent,
    AppDataEvent,
    ConnectionEvent,
    DecodeEvent,
    EvictedEvent,
    GapEvent,
    HandshakeEvent,
    OverlapEvent,
    PlaintextEvent,
    RecoveredEvent,
    TcpEvent,
    TcpHealthEvent,
    UndecryptableEvent,
    UpgradeEvent,
)
from ..messages import alpn, early_data, negotiated_version, psk_selected, server_name
from .app_rules import app_facts
from .model import (
    KEPT_EVENTS,
    KEPT_PROTECTED,
    TLS12,
    TLS13,
    WHO,
    AppSummary,
    Bare,
    Conn,
    ConnectionReport,
    Side,
    matters,
)
from .resumption import Issued, issuer_clause, note_issued, resume_key, resumed_how
from .rules import verdicts

__all__ = ["Reports", "Triage", "TriageShare", "merge_shares", "triage"]


class Triage:
    """Accumulates events; :meth:`reports` gives the verdicts."""

    def __init__(self, *, slow_handshake_s: float = 1.0) -> None:
        self.conns: dict[int, Conn | Bare] = {}
        """Every connection so far: a :class:`Bare` record while it carried only TCP flags."""
        self._quiet_sides: dict[DirectionHealth, DirectionHealth] = {}
        self._servers: dict[str, str] = {}
        """Server endpoints, each text kept once (a flood's attempts share one)."""
        self.slow_handshake_s = slow_handshake_s
        self.issued: Issued = {}
        self._plain: dict[tuple[int, str], deque[tuple[bytes, list[list[AppFact] | None]]]] = {}
        """Decrypted records' first bytes (from :meth:`app_data`) waiting for their events,
        each with a slot for the facts HTTP/2 gave when the record was opened."""
        self._h2: dict[int, H2Watch] = {}
        """HTTP/2 followed as the decoder opens records (see :mod:`..app.h2`), per connection
        until it closes."""

    def app_data(self, conn: int, who: str, data: bytes) -> None:
        """The decoder's ``app_data_sink``: called with each decrypted application_data
        record's plaintext, in the order of their :class:`AppDataEvent` per direction (the
        events may come later: the decoder holds them while it orders packets). Only the
        first bytes are kept (request/status lines); HTTP/2 reads the whole record now. Give
        the decoder :meth:`record_wanted` and :meth:`gap` too: HTTP/2 needs to know of every
        record it does not see."""
        slot: list[list[AppFact] | None] = [None]
        self._plain.setdefault((conn, who), deque()).append((bytes(data[:4096]), slot))
        watch = self._h2.get(conn)
        if watch is None:
            watch = self._h2[conn] = H2Watch()
        watch.record(who == "server", data, slot)

    def record_wanted(self, conn: int, who: str, length: int, exact: bool) -> bool:
        """The decoder's ``record_wanted``: open a record triage would count unread? Only on an
        HTTP/2 connection, when the record may hold a frame header or a header block."""
        watch = self._h2.get(conn)
        if watch is None:
            return False
        return watch.wants(who == "server", length, exact)

    def gap(self, conn: int, who: str, size: int, frame: int, cause: str) -> None:
        """The decoder's ``gap_sink``: bytes of a direction missing from the capture."""
        watch = self._h2.get(conn)
        if watch is not None:
            watch.unread(who == "server", 0, False, f"{size} bytes missing from the capture at frame {frame}")

    def add(self, ev: DecodeEvent) -> None:
        if type(ev) is AppDataEvent:
            # Most events of a capture, handled here only: event classes are final (frozen
            # dataclasses, never subclassed), so the general path below sees no application data.
            found = self.conns.get(ev.conn)
            if found is None:
                return
            c = found if isinstance(found, Conn) else self._expand(ev.conn)
            if c.first_ts is None:
                c.first_ts = ev.ts_ns
            c.last_ts = ev.ts_ns
            if ev.frame > c.last_frame:
                c.last_frame = ev.frame
            sides = c.sides
            if ev.decrypted and self._plain:
                waiting = self._plain.get((ev.conn, ev.from_))
                if waiting:
                    data, slot = waiting.popleft()
                    facts = slot[0]
                    if facts is None:
                        facts = app_facts(c, data)
                    else:
                        c.h2 = True  # followed as HTTP/2 (see ..app.h2)
                    for f in facts:
                        c.note_app(ev.frame, WHO[ev.from_], f, ev.ts_ns)
            if ev.from_ == "server":
                self._app_data(c, sides[1], sides[0], ev)
            else:
                self._app_data(c, sides[0], sides[1], ev)
            return
        found = self.conns.get(ev.conn)
        if isinstance(ev, ConnectionEvent):
            servers = self._servers
            server = servers.get(ev.server, ev.server)
            if len(servers) < 4096:  # a scan of many servers is not worth a growing table
                servers[server] = server
            self.conns[ev.conn] = Bare(ev.conn, ev.client, server, ev.first_frame, ev.roles_from)
            return
        if found is None:
            return
        if isinstance(found, Conn):
            c = found
        elif self._bare(found, ev):
            return
        else:
            c = self._expand(ev.conn)
        ts = getattr(ev, "ts_ns", None)
        if ts is not None:
            if c.first_ts is None:
                c.first_ts = ts
            c.last_ts = ts
        frame = getattr(ev, "frame", 0)
        c.last_frame = max(c.last_frame, frame)
        who = WHO.get(getattr(ev, "from_", ""), 0)
        side = c.sides[who]
        if isinstance(ev, TcpEvent):
            at = (ev.frame, ev.ts_ns)
            if ev.flag == "SYN" and side.syn is None:
                side.syn = at
            elif ev.flag == "FIN" and side.fin is None:
                side.fin = at
            elif ev.flag == "RST" and side.rst is None:
                side.rst = at
            if ev.flag == "RST" or (c.sides[0].fin is not None and c.sides[1].fin is not None):
                self._app_done(c)
        elif isinstance(ev, HandshakeEvent):
            c.tls_seen = True
            self._handshake(c, side, ev)
        elif isinstance(ev, AlertEvent):
            c.tls_seen = True
            side.alerts.append(ev)
            side.likely_close = ev.frame if ev.description is None else None
            side.last_unread = ev.description is None
            if ev.description == 0:
                if side.close_notify is None:
                    side.close_notify = (ev.frame, ev.ts_ns)
            elif ev.level == 2 or (ev.level is None and ev.description is not None):
                if side.fatal_alert is None:
                    side.fatal_alert = ev
        elif isinstance(ev, GapEvent):
            side.gaps += 1
            side.gap_bytes += ev.size
            if ev.cause == "snaplen":
                side.snaplen_gaps += len(ev.cut_frames) or 1
                side.snaplen_bytes += ev.size
            elif ev.cause == "capture":
                side.capture_gaps += 1
            elif ev.cause == "network":
                side.network_gaps += 1
            elif ev.cause == GAP_OUT_OF_ORDER:
                side.out_of_order_gaps += 1
        elif isinstance(ev, UndecryptableEvent):
            side.undecryptable.append(ev)
        elif isinstance(ev, UpgradeEvent):
            c.upgrades.append(ev)
        elif isinstance(ev, PlaintextEvent):
            c.plaintext.append(ev)
        elif isinstance(ev, TcpHealthEvent):
            c.health = ev
        elif isinstance(ev, OverlapEvent):
            c.overlaps += 1
            if c.overlap is None:
                c.overlap = ev
        elif isinstance(ev, EvictedEvent):
            c.evicted = ev
        elif isinstance(ev, RecoveredEvent):
            if c.recovered is None:
                c.recovered = ev

    def _bare(self, b: Bare, ev: DecodeEvent) -> bool:
        """Read ``ev`` into a connection's :class:`Bare` record, as :meth:`add` would into a
        :class:`Conn`; False when it needs the full summary."""
        t = type(ev)
        if t is TcpEvent:
            assert isinstance(ev, TcpEvent)
            if ev.conn in self._h2 and ev.flag != "SYN":
                return False  # records were opened: their HTTP/2 state is kept at the close
            who = WHO.get(ev.from_, 0)
            flag = _FLAGS.get(ev.flag)
            if flag is not None and not any(w == who and f == flag for w, f, _, _ in b.tcp):
                b.tcp += ((who, flag, ev.frame, ev.ts_ns),)
        elif t is TcpHealthEvent:
            assert isinstance(ev, TcpHealthEvent)
            # A flood's attempts each have one, whose answering side saw nothing: that side's
            # facts, all alike, are kept once.
            client, server = self._quiet(ev.client), self._quiet(ev.server)
            if client is not ev.client or server is not ev.server:
                ev = TcpHealthEvent(ev.conn, ev.frame, ev.ts_ns, client, server, ev.connect_ns)
            b.health = ev
        elif t is EvictedEvent:
            assert isinstance(ev, EvictedEvent)
            b.evicted = ev
        else:
            return False
        if b.first_ts is None:
            b.first_ts = ev.ts_ns
        b.last_ts = ev.ts_ns
        if ev.frame > b.last_frame:
            b.last_frame = ev.frame
        return True

    def _quiet(self, h: DirectionHealth) -> DirectionHealth:
        """``h`` itself, or an equal one already kept when the side sent nothing at all."""
        if h.last_frame:
            return h
        return self._quiet_sides.setdefault(h, h)

    def _expand(self, number: int) -> Conn:
        """The connection's full summary from now on (its :class:`Bare` record expanded)."""
        found = self.conns[number]
        c = found if isinstance(found, Conn) else found.expand()
        self.conns[number] = c
        return c

    @staticmethod
    def _app_data(c: Conn, side: Side, peer: Side, ev: AppDataEvent) -> None:
        c.tls_seen = True
        if ev.early:
            c.early_records += 1
        side.app_records += 1
        side.app_bytes += ev.length
        # 19 bytes: 2-byte alert + content type + 16-byte tag (every TLS 1.3 AEAD suite).
        tls13_alert_size = not ev.decrypted and ev.length == 19 and c.version == TLS13
        side.likely_close = ev.frame if tls13_alert_size else None
        side.last_unread = not ev.decrypted
        if not ev.decrypted:
            side.protected_records += 1
            if len(side.protected) < KEPT_PROTECTED:
                side.protected.append((ev.frame, ev.ts_ns, ev.length))
        if side.after_peer_finished is None and peer.finished is not None:
            side.after_peer_finished = ev.frame
        at = (ev.frame, ev.ts_ns)
        if not tls13_alert_size:
            side.last_data = at
        if side.first_app is None:
            side.first_app = at
        side.last_app = at
        if side.close_notify is not None and side.app_after_own_close is None:
            side.app_after_own_close = at
        if peer.close_notify is not None:
            side.app_after_peer_close += 1
        if (
            side.app_after_peer_end is None
            and not tls13_alert_size  # this side's own close_notify, unreadable, is not a request
            and (peer.close_notify is not None or peer.fin is not None)
        ):
            side.app_after_peer_end = at

    def _handshake(self, c: Conn, side: Side, ev: HandshakeEvent) -> None:
        msg = ev.message
        side.last_handshake = ev.name
        side.likely_close = None
        side.last_unread = ev.name == "encrypted_handshake"
        name = ev.name
        me = 0 if side is c.sides[0] else 1
        peer = c.sides[1 - me]
        if c.client_hello is not None or name == "client_hello":
            c.last_handshake_from = me
        note_issued(self.issued, c, msg)
        if side.after_peer_finished is None and peer.finished is not None:
            side.after_peer_finished = ev.frame
        if name == "client_hello" and c.client_hello is None:
            c.client_hello = ev
            hello = msg if isinstance(msg, ClientHello) else None
            c.sni = server_name(hello) if hello else None
            c.early_data_offered = early_data(hello) if hello else False
        elif name == "hello_retry_request":
            c.hrr = ev
        elif name == "server_hello":
            c.server_hello = ev
            sh = msg if isinstance(msg, ServerHello) else None
            c.version = negotiated_version(sh) if sh else None
            c.cipher_suite = sh.cipher_suite if sh else None
            chosen = alpn(sh) if sh else None
            if chosen is not None:
                c.alpn = chosen
            if sh is not None and (index := psk_selected(sh)) is not None:
                c.resumed = True
                c.psk_index = index
            elif c.version == TLS12 and c.client_hello is not None:
                # TLS 1.2 resumption: the server echoes the client's session ID (RFC 5246 7.4.1.3).
                c.resumed = False  # decided at the server's next message
        elif name == "encrypted_extensions":
            c.encrypted_extensions = ev
            ee = msg if isinstance(msg, EncryptedExtensions) else None
            chosen = alpn(ee) if ee else None
            if chosen is not None:
                c.alpn = chosen
            if c.early_data_offered:
                c.early_data_accepted = early_data(ee) if ee else False
        elif name == "certificate" and ev.from_ == "server" and c.certificate is None:
            c.certificate = ev
        elif name == "certificate" and ev.from_ == "client" and c.client_certificate is None:
            c.client_certificate = ev
        elif name == "certificate_request" and c.certificate_request is None:
            c.certificate_request = ev.frame
        elif name == "finished":
            if side.finished is None:
                side.finished = (ev.frame, ev.ts_ns)
            if (
                c.version == TLS12
                and ev.from_ == "server"
                and c.certificate is None
                and c.sides[0].finished is None
            ):
                c.resumed = True  # abbreviated handshake: the server's Finished comes first
        elif name == "key_update":
            side.key_updates += 1
        elif name == "encrypted_handshake" and c.version == TLS12 and side.finished is None:
            side.finished = (ev.frame, ev.ts_ns)  # the first protected handshake message is Finished
        elif name == "encrypted_handshake" and c.version == TLS13:
            # An unopened record that can only be handshake by where it stands (decode/content.py):
            # not application bytes, but still one of the side's protected records for the rules
            # that read record sizes (rejection.py).
            side.protected_records += 1
            if len(side.protected) < KEPT_PROTECTED:
                side.protected.append((ev.frame, ev.ts_ns, ev.length))

    def _app_done(self, c: Conn) -> None:
        """No more records will be opened on ``c``: keep what HTTP/2 lost, free its state."""
        watch = self._h2.pop(c.number, None)
        if watch is not None and watch.h2:
            c.app_summary.lost = watch.lost()

    def reports(self) -> Reports:
        """Every connection's report, in order (see :class:`Reports`)."""
        return Reports(self)

    def report(self, conn: int) -> ConnectionReport | None:
        """One connection's verdicts as of now (e.g. when it closes during a live capture)."""
        c = self.conns.get(conn)
        return None if c is None else self._report(c)

    def _report(self, found: Conn | Bare) -> ConnectionReport:
        c = found if isinstance(found, Conn) else found.expand()
        watch = self._h2.get(c.number)
        if watch is not None and watch.h2:
            c.app_summary.lost = watch.lost()
        if c.resumed and c.resumed_how is None:
            c.resumed_how, c.resumed_from = resumed_how(c, self.issued, c.psk_index)
        duration = (
            (c.last_ts - c.first_ts) / 1e9 if c.first_ts is not None and c.last_ts is not None else None
        )
        return ConnectionReport(
            c.number,
            c.client,
            c.server,
            c.first_frame,
            c.sni,
            version_name(c.version) if c.version is not None else "TLS 1.3" if c.recovered else None,
            name_of(CipherSuite, c.cipher_suite)
            if c.cipher_suite is not None
            else c.recovered.cipher_suite
            if c.recovered
            else None,
            c.alpn,
            duration,
            c.sides[0].app_bytes,
            c.sides[1].app_bytes,
            verdicts(c, slow_handshake_s=self.slow_handshake_s),
            resume_key(c) if c.resumed_from is None else None,
            _app_summary(c),
        )


_FLAGS: Final = {"SYN": "syn", "FIN": "fin", "RST": "rst"}
"""TcpEvent flag -> the :class:`Side` field it sets (the first one of each side is kept)."""


class Reports(Sequence[ConnectionReport]):
    """The reports of a :class:`Triage`, in connection order: those of connections that carried
    TLS or any data are made at once; those of :class:`Bare` connections (a SYN flood's
    hundreds of thousands of attempts) each time they are read, so that only their small
    records stay in memory while the reports are written out one by one. Read it through
    (``list(reports)``) to keep every report."""

    __slots__ = ("_items", "_triage")

    def __init__(self, triage: Triage) -> None:
        self._triage = triage
        self._items: list[ConnectionReport | Bare] = [
            c if type(c) is Bare else triage._report(c)
            for c in sorted(triage.conns.values(), key=lambda c: c.number)
        ]

    def __len__(self) -> int:
        return len(self._items)

    @overload
    def __getitem__(self, index: int) -> ConnectionReport: ...
    @overload
    def __getitem__(self, index: slice) -> list[ConnectionReport]: ...
    def __getitem__(self, index: int | slice) -> ConnectionReport | list[ConnectionReport]:
        if isinstance(index, slice):
            return [self._made(item) for item in self._items[index]]
        return self._made(self._items[index])

    def __iter__(self) -> Iterator[ConnectionReport]:
        made = self._made
        for item in self._items:
            yield made(item)

    def _made(self, item: ConnectionReport | Bare) -> ConnectionReport:
        return self._triage._report(item) if type(item) is Bare else item  # type: ignore[return-value]

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Sequence) and not isinstance(other, str | bytes):
            return list(self) == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"<Reports of {len(self)} connections>"


def _app_summary(c: Conn) -> AppSummary | None:
    summary = c.app_summary
    if summary.protocol is None:
        return None
    events = [(frame, side, f) for frame, side, f, _ts in c.app if matters(f)][:KEPT_EVENTS]
    unread = c.sides[0].protected_records + c.sides[1].protected_records
    return replace(
        summary,
        events=events,
        statuses=dict(summary.statuses),
        goaways=list(summary.goaways),
        unread_records=unread,
    )


@dataclass(slots=True)
class TriageShare:
    """What triaging one share of a capture gave (see ``DecodeOptions.partition``)."""

    reports: list[ConnectionReport]
    first_frames: list[int]
    """The first frame of each connection of the share, by its number within the share."""
    dependent: bool
    """The decoder said something that depends on the other shares' connections."""
    warnings: list[str]
    issued: Issued = field(default_factory=dict)
    """Session IDs and tickets the share's servers issued (see :mod:`.resumption`)."""
    plain_connections: int = 0
    """The share's TCP connections without TLS."""
    not_tcp: dict[str, int] = field(default_factory=dict)
    """Frames without TCP, by kind (every share reads them all)."""


def _with_issuer(r: ConnectionReport, shares: Sequence[TriageShare]) -> ConnectionReport:
    """A resumed connection whose issuer another share followed: name it as one process would."""
    if r.resume_key is None:
        return r
    found = [f for s in shares if (f := s.issued.get(r.resume_key)) is not None and f < r.first_frame]
    if not found:
        return r
    verdicts = [
        replace(v, detail=v.detail + issuer_clause(min(found))) if v.code == "resumed" else v
        for v in r.verdicts
    ]
    return replace(r, verdicts=verdicts, resume_key=None)


def merge_shares(shares: Sequence[TriageShare]) -> list[ConnectionReport]:
    """The reports of a capture triaged in shares, numbered as one decoder numbers them: by
    the order of every TCP connection's first frame, whichever share followed it."""
    rank = {frame: n for n, frame in enumerate(sorted(f for s in shares for f in s.first_frames), 1)}
    merged = [
        replace(_with_issuer(r, shares), conn=rank[s.first_frames[r.conn - 1]])
        for s in shares
        for r in s.reports
    ]
    merged.sort(key=lambda r: r.conn)
    return merged


def triage(events: Iterable[DecodeEvent], *, slow_handshake_s: float = 1.0) -> list[ConnectionReport]:
    t = Triage(slow_handshake_s=slow_handshake_s)
    for ev in events:
        t.add(ev)
    return list(t.reports())
