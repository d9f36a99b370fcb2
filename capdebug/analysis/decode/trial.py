"""Trial decryption: which key and sequence number open a protected record.

Keys come from the key log by client_random. Where the expected key is absent, each direction
keeps a short list of *next* candidate keys and tries them when the current key fails (a
rejected 0-RTT, a key log holding only application secrets); a success is proven by the AEAD
tag or MAC. After a stream gap the sequence number is unknown, so the next record is tried over
a window of :data:`SEQ_WINDOW` sequence numbers. A connection picked up mid-stream (no
ClientHello) is recovered the same way: every TLS 1.3 application secret in the key log is
tried on its first records, within :data:`TRIAL_BUDGET` trials. So is a connection whose
ClientHello was captured but not the ServerHello (the server's first flight lost): the version
and suite are unknown, but the key log's TLS 1.3 handshake and traffic secrets of that
client_random, with each suite their length fits, are few (``recovery.lost_hello_keys``); the one
that authenticates a record fixes the suite, and the stage table goes on from there. Every
failure is said once per direction and reason; nothing unauthenticated is returned.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Final

from ...crypto.record import RecordOverflow
from ...errors import CryptoError, DecodeError
from ...net.flow import Endpoint
from ...wire.constants import ProtocolVersion
from .. import keys as keymod
from ..events import Reason, RecoveredEvent
from ..keys import Role, Stage
from ..recovery import RenamedKeys, lost_hello_keys, recover_mid_stream
from .order import _Output
from .session import ROLE_NAME, _Direction, _Session

SEQ_WINDOW: Final = 64
"""Sequence numbers tried after a gap or at a mid-stream start."""
MAX_TRIAL_RECORDS: Final = 8
"""Records tried with mid-stream candidate keys (or, after a gap, on a window of sequence
numbers) before giving up on a direction."""
TRIAL_BUDGET = 8192
"""Trial decryptions one direction may spend to recover a connection picked up mid-stream
(every candidate secret times the window of sequence numbers, on the first records)."""
_EARLY: Final = Stage.EARLY
"""Bound once: reading an enum member off its class costs a slow attribute lookup per record."""
_RECOVERY_SWEEPS: Final = ((0, 2), (2, 8), (8, SEQ_WINDOW))
"""Mid-stream recovery tries every candidate on these ranges of sequence numbers in turn."""


class _Trial(_Output):
    """Opening protected records (a layer of :class:`Decoder`)."""

    _capture_randoms: set[bytes]

    def _open(
        self, session: _Session, d: _Direction, ctype: int, record: bytes, frame: int, ts: int
    ) -> tuple[int, bytes, bool] | None:
        """Authenticate and decrypt a protected record with the current or a candidate key.
        Returns (content type, content, early) or None (reported as undecryptable)."""
        if d.keys is None and not d.candidates and session.client_random is None and not d.recovery_tried:
            # Picked up mid-stream: try every application secret the key log holds.
            # Sessions whose ClientHello was seen belong to other connections.
            d.recovery_tried = True
            d.candidates = recover_mid_stream(
                self.keylog, d.role, exclude=self._capture_randoms, either_role=session.tentative
            )
            if d.candidates:
                self.partition_dependent = True
            d.seq_unknown = bool(d.candidates)
            d.trials = TRIAL_BUDGET
        elif (
            d.keys is None
            and not d.candidates
            and not session.sh_seen
            and not d.recovery_tried
            and session.client_random is not None
            and d.want is not _EARLY
        ):
            # The ClientHello was captured, the ServerHello not: its session's TLS 1.3 secrets.
            d.recovery_tried = True
            d.candidates = lost_hello_keys(self.keylog, session.client_random, d.role)
            d.seq_unknown = bool(d.candidates)
            d.trials = TRIAL_BUDGET
        if d.lost_seq:
            return None  # said once (stream_gap); the record is shown unopened
        tried = False
        header = record[:5]
        fragment = record[5:]
        current = d.keys
        # The common case, one key and its next number, without a generator.
        trials = (
            ((current, current.seq),)
            if current is not None and not d.candidates and not d.seq_unknown
            else self._trials(d)
        )
        for keys, seq in trials:
            tried = True
            try:
                content_type, content = keys.open_at(header, fragment, seq)
            except CryptoError:
                continue
            except RecordOverflow as exc:
                self._undecryptable(
                    session,
                    d,
                    frame,
                    ts,
                    Reason.NOT_TLS,
                    f"{exc}: over the limit of RFC 8446 5.2 / RFC 5246 6.2",
                )
                return None
            except DecodeError:
                # Authenticated, but a TLSInnerPlaintext of padding alone (RFC 8446 5.4).
                self._undecryptable(
                    session, d, frame, ts, Reason.NOT_TLS, "decrypted record has no content type"
                )
                return None
            if keys is not d.keys:
                d.keys = keys
                idx = d.candidates.index(keys)
                del d.candidates[: idx + 1]
                if session.client_random is not None and not session.sh_seen:
                    self._lost_hello_found(session, d, keys)
                if session.tentative:
                    self._roles_proven(session, d, keys.label)
                if isinstance(keys, RenamedKeys):
                    self._renamed_found(session, d, keys, frame, ts, seq)
                if session.client_random is None or not session.sh_seen:
                    if session.client_random is None:
                        d.candidates = []
                    self._recovered(session, d, keys, frame, ts, seq)
            keys.seq = seq + 1
            d.seq_unknown = False
            d.failures = 0
            d.trials = None
            return content_type, bytes(content), keys.stage is _EARLY
        lost_hello = (
            d.keys is None
            and session.client_random is not None
            and not session.sh_seen
            and d.want is not _EARLY
        )
        if not tried:
            if lost_hello:
                self._lost_hello_unopened(session, d, frame, ts)
            else:
                self._explain_missing(session, d, frame, ts, want=d.want)
            return None
        d.failures += 1
        if lost_hello:
            self._lost_hello_unopened(session, d, frame, ts)
            if d.failures >= MAX_TRIAL_RECORDS:
                d.candidates = []
                d.seq_unknown = False
            return None
        if d.keys is None:
            # The expected key is missing (later-stage candidates wait for their records), or
            # no mid-stream trial key fits: say so once, and stop trying after a few records.
            self._explain_missing(session, d, frame, ts, want=d.want)
            if session.client_random is None and d.failures >= MAX_TRIAL_RECORDS:
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
            if d.failures >= MAX_TRIAL_RECORDS:
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

    def _roles_proven(self, session: _Session, d: _Direction, label: str) -> None:
        """Direction ``d``, whose roles were guessed, opened a record with the key log's ``label``
        (a CLIENT_ or SERVER_TRAFFIC_SECRET_N): that proves which side is the client. The guess
        is turned round when it was wrong (the same direction objects, their roles swapped)."""
        if d.role != (Role.CLIENT if label.startswith("CLIENT_") else Role.SERVER):
            session.flip = not session.flip
            session.dirs = (session.dirs[1], session.dirs[0])
            session.dirs[0].role, session.dirs[1].role = Role.CLIENT, Role.SERVER
        session.roles_from = "keys"
        self._decide(session, True)
        for x in session.dirs:
            if x.candidates:
                prefix = "CLIENT_" if x.role == Role.CLIENT else "SERVER_"
                x.candidates = [k for k in x.candidates if k.label.startswith(prefix)]
        conn = session.conn
        self._served(conn.client if session.flip else conn.server)

    def _served(self, endpoint: Endpoint) -> None:
        raise NotImplementedError

    def _renamed_found(
        self, session: _Session, d: _Direction, keys: RenamedKeys, frame: int, ts: int, seq: int
    ) -> None:
        """A handshake secret of another client_random of the key log opened ``d``'s record
        (Encrypted Client Hello): that random names the session from now on, for both
        directions and every later stage."""
        session.client_random = keys.client_random
        self._capture_randoms.add(keys.client_random)
        d.candidates = keymod.tls13_later_stages(self.keylog, session, d.role, Stage.HANDSHAKE)
        other = session.dirs[1 - d.role]
        if other.keys is None:
            other.keys = keymod.tls13_next_stage(self.keylog, session, other.role, Stage.HANDSHAKE)
            other.candidates = keymod.tls13_later_stages(self.keylog, session, other.role, Stage.HANDSHAKE)
            other.seq_unknown = False
            other.trials = None
        self._recovered(session, d, keys, frame, ts, seq, keys.client_random.hex())

    def _recovered(
        self,
        session: _Session,
        d: _Direction,
        keys: keymod.Keys,
        frame: int,
        ts: int,
        seq: int,
        client_random: str | None = None,
    ) -> None:
        """Say which key-log secret opened ``d``'s records without the usual lookup."""
        event = RecoveredEvent(
            session.number,
            frame,
            ts,
            ROLE_NAME[d.role],
            keys.label,
            keys.prot.params.name,
            seq,
            client_random,
        )
        self._emit(session, event)

    def _lost_hello_found(self, session: _Session, d: _Direction, keys: keymod.Keys) -> None:
        """A secret of the session opened a record although its ServerHello was lost: that
        fixes the version and suite (for the stage table's next keys), and the direction's
        stage. The other direction tries only that suite."""
        params = keys.prot.params
        session.version = ProtocolVersion.TLS1_3
        session.suite = params.code
        d.want = keys.stage
        d.candidates = [k for k in d.candidates if k.prot.params is params and k.stage is not keys.stage]
        other = session.dirs[1 - d.role]
        if other.candidates and other.keys is None:
            other.candidates = [k for k in other.candidates if k.prot.params is params]

    def _lost_hello_unopened(self, session: _Session, d: _Direction, frame: int, ts: int) -> None:
        self._undecryptable(
            session,
            d,
            frame,
            ts,
            Reason.NO_HANDSHAKE,
            "the ServerHello is not in the capture (the server's first flight was lost): no TLS 1.3 "
            "handshake or traffic secret of this session in the key log authenticates the records, "
            "and TLS 1.2 records cannot be decrypted without the ServerHello's random and suite",
        )

    def _trials(self, d: _Direction) -> Iterator[tuple[keymod.Keys, int]]:
        """(keys, sequence number) pairs to try on a protected record, likeliest first."""
        keys_list = ([d.keys] if d.keys is not None else []) + d.candidates
        if not d.seq_unknown:
            for keys in keys_list:
                yield keys, keys.seq
        elif d.trials is None:
            for keys in keys_list:
                for seq in range(keys.seq, keys.seq + SEQ_WINDOW):
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
                            d.failures = MAX_TRIAL_RECORDS
                            return
                        d.trials -= 1
                        yield keys, seq

    def _explain_missing(
        self, session: _Session, d: _Direction, frame: int, ts: int, want: Stage = Stage.HANDSHAKE
    ) -> None:
        """Say (once per stage) why the direction has no key for ``want``."""
        if d.explained is want:
            return
        d.explained = want
        reason, message = keymod.explain_missing(self.keylog, session, d.role, want, self._capture_randoms)
        self._undecryptable(session, d, frame, ts, reason, message)
