"""Per-connection and per-direction state of the decoder, and what the consumer asks of it.

A :class:`_Session` is one TCP connection that carries (possibly) TLS; it *is* the
:class:`~capdebug.analysis.keys.SessionFacts` that the key lookups read (the hellos' facts),
plus the decoder's own bookkeeping. Each direction is a :class:`_Direction`: a receive buffer
framed into records, a handshake buffer, and the keys of its current stage.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from ...net.flow import DEFAULT_MAX_CONNECTIONS
from ...net.reassembly import DEFAULT_MAX_BUFFERED
from .. import keys as keymod
from ..keys import Role, Stage
from ..prelude import TLS_PORTS, Prelude

__all__ = ["ROLE_NAME", "DecodeOptions"]

ROLE_NAME: Final = ("client", "server")
"""Role -> the name events carry in ``from``."""


@dataclass(slots=True)
class DecodeOptions:
    """What the consumer needs from the decoder."""

    decrypt_app_data: bool = True
    """Decrypt and authenticate every application-data record (decrypt) or only what can
    change the course of the connection (triage)."""
    app_data_sink: Callable[[int, str, bytes], None] | None = None
    """Called with (conn, "client"|"server", plaintext) for every decrypted application record."""
    gap_sink: Callable[[int, str, int, int, str], None] | None = None
    """Called with (conn, "client"|"server", missing TCP bytes, frame, cause) at each gap of a
    direction, in order with that direction's ``app_data_sink`` calls: the plaintext written so
    far ends where the hole is."""
    record_wanted: Callable[[int, str, int, bool], bool] | None = None
    """Triage mode: asked (conn, "client"|"server", content length, exact) about each record
    it would count unread; True opens it (and gives it to ``app_data_sink``). ``exact`` is False
    when the length is an upper bound (CBC padding). When it answers False, the record is
    counted unread: the consumer knows from the answer what it misses."""
    conns: frozenset[int] | None = None
    """Only these connection numbers (None: all)."""
    endpoints: Callable[[tuple[bytes, int], tuple[bytes, int]], bool] | None = None
    """Only the connections whose (address, port) pair this accepts (None: all); the others,
    like those not in :attr:`conns`, produce no events and reach no sink."""
    max_out_of_order: int = DEFAULT_MAX_BUFFERED
    """Bytes per direction held behind a hole waiting for its retransmission; past it the hole
    is given up as a gap with cause ``"out_of_order"`` (:mod:`capdebug.net.reassembly`)."""
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    """Connections followed at once; past it the oldest without data (else the oldest) is
    dropped with an ``evicted`` event (:mod:`capdebug.net.flow`, "Bounded state")."""
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
        "hidden_done",
        "hs_buf",
        "hs_encrypted",
        "hs_skip",
        "keys",
        "lost_seq",
        "need",
        "off",
        "recovery_tried",
        "reported",
        "resync",
        "role",
        "scan_from",
        "sealed",
        "seq_unknown",
        "skip",
        "skip_length",
        "started",
        "trials",
        "undecided",
        "want",
    )

    def __init__(self, role: Role) -> None:
        self.role = role
        self.buf = bytearray()
        self.off = 0
        self.hs_buf = bytearray()
        self.hs_encrypted = False
        self.hs_skip = 0
        """Bytes still to drop of a handshake message too large to buffer (content.py)."""
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
        self.explained: Stage | None = None
        """The key stage whose absence was already explained (explained once, not per record)."""
        self.want = Stage.HANDSHAKE
        """The key stage this direction expects next (for explaining a missing key)."""
        self.sealed = 0
        """Protected records sent after the ServerHello (opened or not): with no key, where
        a TLS 1.3 record stands tells whether it can only be handshake (content.py)."""
        self.hidden_done = False
        """The client's unopened TLS 1.3 handshake flight is over (a Finished-sized record)."""


class _Session(keymod.SessionFacts):
    """Everything known about one TCP connection carrying (possibly) TLS: the hellos' facts
    (its base class, filled by the key lookups) and the decoder's bookkeeping."""

    __slots__ = (
        "conn",
        "decided",
        "dirs",
        "fast",
        "first_frame",
        "flip",
        "interface",
        "is_tls",
        "number",
        "prelude",
        "roles_from",
        "tentative",
        "wanted",
    )

    def __init__(self, conn: Any, first_frame: int, wanted: bool) -> None:
        keymod.SessionFacts.__init__(self)
        self.conn = conn
        self.number = int(conn.id)
        """The connection's number in the output (1-based, in order of first appearance)."""
        self.first_frame = first_frame
        self.wanted = wanted
        self.decided = False
        self.is_tls = False
        self.flip = False
        self.roles_from = "syn" if conn.roles_from_syn else "guess"
        self.tentative = False
        """TLS, with roles guessed: held undecided until a mid-stream key proves who is the
        client (decode/trial.py) or the connection's first event of its own is made."""
        self.dirs = (_Direction(Role.CLIENT), _Direction(Role.SERVER))
        self.prelude: Prelude | None = None
        """Following a plaintext start (see :mod:`capdebug.analysis.prelude`) until TLS starts."""
        self.interface = 0
        """Index of the capture interface its first frame came from."""
        self.fast = False
        """Its frames may be taken by the tracker's frame filter (see Decoder.frame_filter)."""

    def prelude_shown(self) -> bool:
        """A connection that stayed in plaintext is shown when TLS was expected: an upgrade
        was asked for (refused, or never answered), or its server port is a TLS port."""
        prelude = self.prelude
        if prelude is None:
            return False
        if prelude.refusals or prelude.asked:
            return True
        # Only a stream seen from its first byte: bytes picked up mid-stream may be TLS records
        # whose boundary was not found.
        return bool(self.conn.roles_from_syn) and self.on_tls_port()

    def on_tls_port(self) -> bool:
        conn = self.conn
        server = conn.client if self.flip else conn.server
        return int(server[1]) in TLS_PORTS
