"""The stage table: which keys protect a direction's records next.

Everything that decides a key change lives in this module (the ``tls/state.py`` discipline).
A handshake message, once its facts are noted (:class:`~capdebug.analysis.keys.SessionFacts`),
is looked up as ``(version, sender, handshake type)`` in :data:`KEY_STEPS`; a ChangeCipherSpec
as ``(version, sender)`` in :data:`CCS_STEPS`. ``version`` is what the ServerHello chose
(``None`` before one is seen). No entry: the message changes no keys.

   ========  ===============================================================================
   TLS 1.3   server: ServerHello -> handshake keys -> its Finished -> application keys;
             client: (early keys) -> handshake keys -> its Finished -> application keys;
             KeyUpdate in a direction -> that direction's next generation (RFC 8446 7.2).
   TLS 1.2   ChangeCipherSpec in a direction -> that direction's key-block keys, seq 0.
   ========  ===============================================================================

Two steps depend on the message's content, not its type (as ``tls/state.py``'s branches): a
ServerHello that is a HelloRetryRequest installs nothing (RFC 8446 4.1.4), and a ClientHello
moves the client to early keys only when it offers early data (RFC 8446 4.2.10).
"""

from __future__ import annotations

import enum
from typing import Any

from ...wire.constants import HandshakeType, ProtocolVersion
from ...wire.handshake import ClientKeyExchange, NewSessionTicket12
from .. import keys as keymod
from ..events import Reason
from ..keys import Role, Stage
from ..recovery import recover_renamed
from .session import _Direction, _Session
from .trial import TRIAL_BUDGET, _Trial

__all__ = ["CCS_STEPS", "KEY_STEPS", "KeyStep"]


class KeyStep(enum.Enum):
    """What a message makes the decoder install next."""

    EARLY_IF_OFFERED = "client: early keys if its ClientHello offered early data (RFC 8446 4.2.10)"
    HANDSHAKE_KEYS = "both: handshake keys, unless a HelloRetryRequest (RFC 8446 7.1)"
    APPLICATION_KEYS = "sender: application keys after its Finished (RFC 8446 7.1)"
    HANDSHAKE_AFTER_EARLY = "client: handshake keys after its EndOfEarlyData (RFC 8446 4.5)"
    NEXT_GENERATION = "sender: the next traffic secret after its KeyUpdate (RFC 8446 7.2)"
    REMEMBER_SESSION = "TLS 1.2: remember the master secret for resumption (RFC 5246 7.3)"
    REMEMBER_TICKET = "TLS 1.2: remember a NewSessionTicket for resumption (RFC 5077 3.3)"
    KEY_BLOCK = "sender: TLS 1.2 key-block keys from its ChangeCipherSpec on (RFC 5246 7.1)"
    RSA_PREMASTER = "client: TLS 1.2 RSA pre-master secret from its ClientKeyExchange (RFC 5246 7.4.7.1)"


_V12, _V13 = ProtocolVersion.TLS1_2, ProtocolVersion.TLS1_3
_ANY_VERSION: tuple[ProtocolVersion | None, ...] = (None, _V12, _V13)
_H = HandshakeType

#: (version, sender, handshake type) -> key step. Missing: no key change.
KEY_STEPS: dict[tuple[ProtocolVersion | None, Role, int], KeyStep] = {
    **{(v, Role.CLIENT, _H.client_hello): KeyStep.EARLY_IF_OFFERED for v in _ANY_VERSION},
    (_V13, Role.SERVER, _H.server_hello): KeyStep.HANDSHAKE_KEYS,
    (_V12, Role.SERVER, _H.server_hello): KeyStep.REMEMBER_SESSION,
    (_V12, Role.CLIENT, _H.client_key_exchange): KeyStep.RSA_PREMASTER,
    (_V13, Role.CLIENT, _H.finished): KeyStep.APPLICATION_KEYS,
    (_V13, Role.SERVER, _H.finished): KeyStep.APPLICATION_KEYS,
    **{(v, Role.CLIENT, _H.end_of_early_data): KeyStep.HANDSHAKE_AFTER_EARLY for v in _ANY_VERSION},
    (_V13, Role.CLIENT, _H.key_update): KeyStep.NEXT_GENERATION,
    (_V13, Role.SERVER, _H.key_update): KeyStep.NEXT_GENERATION,
    **{(v, r, _H.new_session_ticket): KeyStep.REMEMBER_TICKET for v in (None, _V12) for r in Role},
}

#: (version, sender) of a ChangeCipherSpec -> key step. Missing: no key change (TLS 1.3's is a
#: compatibility no-op, RFC 8446 D.4).
CCS_STEPS: dict[tuple[ProtocolVersion | None, Role], KeyStep] = {
    (_V12, Role.CLIENT): KeyStep.KEY_BLOCK,
    (_V12, Role.SERVER): KeyStep.KEY_BLOCK,
}

del _H


class _Stages(_Trial):
    """Key changes driven by the table (a layer of :class:`Decoder`)."""

    _late_secrets: dict[bytes, int]
    _store: keymod.SessionStore

    def _after_message(
        self,
        session: _Session,
        d: _Direction,
        msg_type: int,
        parsed: Any,
        frame: int,
        ts: int,
        raw: bytes = b"",
    ) -> None:
        """Note a handshake message's session facts, then take the key step it implies."""
        if session.transcript is not None:
            session.transcript.append(raw)
        if parsed is None:
            return
        role = d.role
        if msg_type == HandshakeType.client_hello and role == Role.CLIENT:
            # The RFC 7627 session hash of an RSA key exchange needs the whole transcript; it
            # is kept only when RSA secrets were given (a few messages, never records).
            session.transcript = [raw] if self.keylog.has_rsa_material and raw else None
            session.note_client_hello(parsed)
            self._note_late_secrets(session, d, frame, ts)
        elif msg_type == HandshakeType.server_hello and role == Role.SERVER:
            session.note_server_hello(parsed)
        step = KEY_STEPS.get((session.version, role, msg_type))
        if step is None:
            return
        if step is KeyStep.EARLY_IF_OFFERED:
            if session.early_offered and not session.hrr:
                d.encrypted = True
                d.want = Stage.EARLY
                d.keys = keymod.tls13_next_stage(self.keylog, session, Role.CLIENT, Stage.EARLY)
        elif step is KeyStep.HANDSHAKE_KEYS:
            if not session.hrr:
                self._install_handshake_keys(session, frame, ts)
        elif step is KeyStep.REMEMBER_SESSION:
            if not session.hrr:
                self._store.note_session(session, self.keylog)
        elif step is KeyStep.APPLICATION_KEYS:
            if d.want is Stage.APPLICATION:
                # A Finished under the application keys ends post-handshake client
                # authentication (RFC 8446 4.6.2): it changes no keys.
                return
            d.want = Stage.APPLICATION
            keys = keymod.tls13_next_stage(self.keylog, session, role, Stage.APPLICATION)
            # Without the key, the first record that cannot be opened says why: an
            # undecryptable event always names a record of the capture (a side that sends
            # nothing after its Finished has nothing undecryptable).
            d.keys = keys
            if keys is not None:
                d.candidates = []
        elif step is KeyStep.HANDSHAKE_AFTER_EARLY:
            d.want = Stage.HANDSHAKE
            d.keys = keymod.tls13_next_stage(self.keylog, session, Role.CLIENT, Stage.HANDSHAKE)
            d.candidates = []
        elif step is KeyStep.NEXT_GENERATION:
            if d.keys is not None:
                d.keys = d.keys.next_generation()
        elif step is KeyStep.REMEMBER_TICKET and isinstance(parsed, NewSessionTicket12):
            self._store.note_ticket(session, parsed)
        elif step is KeyStep.RSA_PREMASTER and isinstance(parsed, ClientKeyExchange):
            transcript, session.transcript = session.transcript, None
            keymod.rsa_master_secret(self.keylog, session, parsed.body, transcript, session.conn.server)

    def _note_late_secrets(self, session: _Session, d: _Direction, frame: int, ts: int) -> None:
        if session.client_random is None:
            return
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

    def _install_handshake_keys(self, session: _Session, frame: int, ts: int) -> None:
        client, server = session.dirs
        server.encrypted = True
        server.keys = keymod.tls13_next_stage(self.keylog, session, Role.SERVER, Stage.HANDSHAKE)
        server.candidates = keymod.tls13_later_stages(self.keylog, session, Role.SERVER, Stage.HANDSHAKE)
        # The client's early records (if any) were set up at its ClientHello; from here its
        # protected records use handshake keys unless early keys still authenticate them.
        client.encrypted = True
        server.want = Stage.HANDSHAKE
        hs = keymod.tls13_next_stage(self.keylog, session, Role.CLIENT, Stage.HANDSHAKE)
        later = keymod.tls13_later_stages(self.keylog, session, Role.CLIENT, Stage.HANDSHAKE)
        if client.keys is not None and client.keys.stage is Stage.EARLY:
            client.candidates = [k for k in (hs, *later) if k is not None]
        else:
            client.keys = hs
            client.candidates = later
        if server.keys is None and hs is None and session.client_random is not None:
            # The key log does not know this ClientHello's random (Encrypted Client Hello names
            # the session by the inner one): its handshake secrets are tried (trial.py).
            for d in session.dirs:
                renamed = recover_renamed(self.keylog, session, d.role, self._capture_randoms)
                if renamed:
                    self.partition_dependent = True
                    d.candidates = renamed
                    d.seq_unknown = True
                    d.recovery_tried = True
                    d.trials = TRIAL_BUDGET
        if server.keys is None and session.wanted and session.client_random is None:
            # The ClientHello is not in the capture: said at once, as before mid-stream recovery
            # is considered (triage relies on it to call the capture incomplete, not the
            # handshake).
            self._explain_missing(session, server, frame, ts)

    def _change_cipher_spec(self, session: _Session, d: _Direction, frame: int, ts: int) -> None:
        """A ChangeCipherSpec record (its event is already out): the key step it implies."""
        if CCS_STEPS.get((session.version, d.role)) is not KeyStep.KEY_BLOCK:
            return
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
