"""Which key opens which record: key-log lookups, TLS 1.2 session reuse, and diagnosis.

The decoder asks this module for the record protection of a direction at each stage of a
connection; when a key is absent, :func:`explain_missing` says why in one stable reason code
and a sentence, the way a person reading Wireshark's TLS debug log would conclude it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Final

from ..crypto.keylog import KeyLog
from ..crypto.prf12 import LEGACY_PRF, derive_keys12
from ..crypto.protection import BytesLike, Protection, Tls13Protection, tls12_protection
from ..crypto.record import RecordDirection
from ..crypto.rsa_kx import master_from_premaster
from ..crypto.suites import SUITES, SuiteParams, suite
from ..errors import DecodeError, DecryptError
from ..wire.constants import ExtensionType, ProtocolVersion, version_name
from ..wire.extensions import ext
from ..wire.handshake import ClientHello, NewSessionTicket12, ServerHello
from ..wire.handshake12 import pull_encrypted_premaster
from .events import Reason

__all__ = [
    "Keys",
    "MissingKeys",
    "Role",
    "SessionFacts",
    "SessionStore",
    "Stage",
    "explain_missing",
    "no_rsa_help",
    "rsa_master_secret",
    "tls12_keys",
    "tls13_later_stages",
    "tls13_next_stage",
]


class Role(enum.IntEnum):
    """Which side sent a direction's records (an index: ``session.dirs[role]``)."""

    CLIENT = 0
    SERVER = 1


class Stage(enum.Enum):
    """Which keys protect a direction's records (RFC 8446 7.1 traffic secrets; RFC 5246 6.3
    key block)."""

    EARLY = "early"
    """client_early_traffic_secret (0-RTT)."""
    HANDSHAKE = "handshake"
    """[sender]_handshake_traffic_secret."""
    APPLICATION = "app"
    """[sender]_application_traffic_secret_N."""
    TLS12 = "tls12"
    """The TLS 1.2 key block, from ChangeCipherSpec on."""


_LABELS13: Final = {
    (Stage.EARLY, Role.CLIENT): "CLIENT_EARLY_TRAFFIC_SECRET",
    (Stage.HANDSHAKE, Role.CLIENT): "CLIENT_HANDSHAKE_TRAFFIC_SECRET",
    (Stage.HANDSHAKE, Role.SERVER): "SERVER_HANDSHAKE_TRAFFIC_SECRET",
    (Stage.APPLICATION, Role.CLIENT): "CLIENT_TRAFFIC_SECRET_0",
    (Stage.APPLICATION, Role.SERVER): "SERVER_TRAFFIC_SECRET_0",
}
_STAGES13: Final = (Stage.EARLY, Stage.HANDSHAKE, Stage.APPLICATION)
_VERSION_TEXT: Final = {ProtocolVersion.TLS1_2: "1.2", ProtocolVersion.TLS1_3: "1.3"}
"""The key log's names of the versions (``KeyLog.labels_missing``) and of the messages."""
_ENCRYPTED_CLIENT_HELLO: Final = 0xFE0D
"""The encrypted_client_hello extension (draft-ietf-tls-esni 5)."""
_MAX_TRIAL_KEYS: Final = 512
"""Bound on candidate keys tried for a connection picked up mid-stream."""


class Keys(RecordDirection):
    """The record layer of one direction at one stage, as a passive observer uses it: the
    shared :class:`~capdebug.crypto.record.RecordDirection` (protection, sequence number,
    limits, KeyUpdate) plus the stage and the key-log label that named the secret."""

    __slots__ = ("is_tls13", "label", "record_overhead", "stage")

    def __init__(
        self,
        prot: Protection,
        stage: Stage,
        label: str,
        *,
        tls13: bool,
        secret: bytes = b"",
        generation: int = 0,
    ) -> None:
        super().__init__(
            prot, version="1.3" if tls13 else "1.2", epoch=stage.value, secret=secret, generation=generation
        )
        self.stage = stage
        self.label = label
        self.is_tls13 = tls13
        # Bound once: counted records subtract it on the per-record path.
        self.record_overhead = self.overhead

    @property
    def prot(self) -> Protection:
        protection = self.protection
        assert protection is not None
        return protection

    def next_generation(self) -> Keys:
        """After a KeyUpdate (RFC 8446 7.2): the next traffic secret, sequence numbers from 0."""
        successor = self.key_update()
        assert isinstance(successor, Keys)
        return successor

    def _successor(self, protection: Tls13Protection, secret: bytes, generation: int) -> Keys:
        return Keys(protection, self.stage, self.label, tls13=True, secret=secret, generation=generation)


class MissingKeys(Exception):  # noqa: N818 - a result, not an error condition of the library
    """Keys for a TLS 1.2 direction cannot be had; carries the reason code."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


# -- facts from the hellos -------------------------------------------------------------------


@dataclass(slots=True)
class SessionFacts:
    """What a session's hellos said that the key lookups need (RFC 8446 4.1.2-4.1.4, RFC 5246
    7.4.1). The decoder keeps one per connection and hands the hellos to
    :meth:`note_client_hello` / :meth:`note_server_hello`; every function of this module reads
    it, none writes anything else of the decoder's."""

    client_random: bytes | None = None
    server_random: bytes | None = None
    version: ProtocolVersion | None = None
    """TLS1_2 or TLS1_3 once a ServerHello was seen (supported_versions decides)."""
    suite: int | None = None
    hrr: bool = False
    """The last ServerHello was a HelloRetryRequest."""
    sh_seen: bool = False
    early_offered: bool = False
    ch_session_id: bytes = b""
    ch_ticket: bytes | None = None
    sh_session_id: bytes = b""
    etm: bool = False
    client_version: int = 0
    """ClientHello.legacy_version: the first two bytes of an RSA pre-master (RFC 5246 7.4.7.1)."""
    ech_offered: bool = False
    """The ClientHello carried encrypted_client_hello (0xfe0d, draft-ietf-tls-esni)."""
    server_version: int = 0
    """ServerHello.legacy_version: below TLS 1.3, the version negotiated (TLS 1.0 and 1.1 have
    their own PRF, and TLS 1.0 no explicit CBC IV)."""
    ems: bool = False
    """The ServerHello accepted extended_master_secret (RFC 7627)."""
    transcript: list[bytes] | None = None
    """TLS 1.2 handshake messages from the ClientHello to the ClientKeyExchange, kept only when
    an RSA key exchange may be decrypted (the RFC 7627 session hash)."""
    master: bytes | None = None
    """The master secret recovered from an RSA ClientKeyExchange (private key or RSA line)."""
    rsa_problem: str | None = None
    """Why the RSA ClientKeyExchange could not be decrypted (for the explanation)."""
    unreadable_hello: str | None = None
    """Why a hello that was in the capture could not be read (an oversized declared length):
    said instead of "started mid-connection" when no hello's facts are known."""
    randoms: list[bytes] = field(default_factory=list)
    """The client_randoms of renegotiations, in order (``client_random`` is the latest)."""
    hello_cut: tuple[int, ...] = ()
    """Frames the snaplen cut short before any ClientHello was read: the handshake is in the
    capture, but not whole (set by the decoder from its snaplen gaps)."""

    def note_client_hello(self, hello: ClientHello) -> None:
        random = bytes(hello.random)
        if self.client_random is None:
            self.client_random = random
        elif self.version is ProtocolVersion.TLS1_2 and self.sh_seen and random != self.client_random:
            # A TLS 1.2 renegotiation (RFC 5246 7.4.1.2, RFC 5746): a new handshake under the
            # current keys, whose own randoms (its CLIENT_RANDOM line) and master secret take
            # over at its ChangeCipherSpec. (TLS 1.3 forbids it; a ClientHello after a
            # HelloRetryRequest repeats the random, RFC 8446 4.1.2.)
            self.client_random = random
            self.randoms.append(random)
            self.master = None
            self.rsa_problem = None
        self.client_version = int(hello.legacy_version)
        self.ech_offered = ext(hello, _ENCRYPTED_CLIENT_HELLO) is not None
        self.ch_session_id = bytes(hello.legacy_session_id)
        ticket = ext(hello, ExtensionType.session_ticket)
        self.ch_ticket = ticket or None
        self.early_offered = ext(hello, ExtensionType.early_data) is not None

    def note_server_hello(self, hello: ServerHello) -> None:
        self.sh_seen = True
        self.server_random = bytes(hello.random)
        self.server_version = int(hello.legacy_version)
        self.suite = int(hello.cipher_suite)
        sv = ext(hello, ExtensionType.supported_versions)
        if sv is not None and len(sv) == 2 and int.from_bytes(sv, "big") == ProtocolVersion.TLS1_3:
            self.version = ProtocolVersion.TLS1_3
        else:
            self.version = ProtocolVersion.TLS1_2
        if hello.is_hello_retry_request:
            self.hrr = True
            return
        self.hrr = False
        self.etm = ext(hello, ExtensionType.encrypt_then_mac) is not None
        self.ems = ext(hello, ExtensionType.extended_master_secret) is not None
        self.sh_session_id = bytes(hello.legacy_session_id_echo)


# -- TLS 1.3 ------------------------------------------------------------------------------------


def _params13(session: SessionFacts) -> SuiteParams | None:
    params = suite(session.suite) if session.suite is not None else None
    if params is None or params.version != "1.3":
        return None
    return params


def tls13_next_stage(keylog: KeyLog, session: SessionFacts, role: Role, stage: Stage) -> Keys | None:
    """The keys of ``role`` at ``stage``, or None without a secret."""
    if session.client_random is None:
        return None
    label = _LABELS13.get((stage, role))
    if label is None:
        return None
    secret = keylog.get(session.client_random, label)
    if secret is None:
        return None
    candidates: list[SuiteParams]
    params = _params13(session)
    if params is not None:
        candidates = [params]
    elif stage is Stage.EARLY:
        # Early data precedes the ServerHello: the suite is the PSK's, unknown here; the hash
        # length narrows it and the AEAD tag decides (RFC 8446 4.2.10).
        candidates = [p for p in SUITES.values() if p.version == "1.3" and p.hash_len == len(secret)]
        if len(candidates) != 1:
            return _EarlyKeys.build(candidates, secret, label)
    else:
        return None
    params = candidates[0]
    if params.hash_len != len(secret):
        return None
    return Keys(Tls13Protection(params, secret), stage, label, tls13=True, secret=secret)


class _EarlyKeys(Keys):
    """Early keys while the suite is not known: try each suite with a fitting hash."""

    __slots__ = ("_all",)
    _all: list[Tls13Protection]

    @classmethod
    def build(cls, candidates: list[SuiteParams], secret: bytes, label: str) -> Keys | None:
        if not candidates:
            return None
        prots = [Tls13Protection(p, secret) for p in candidates]
        keys = cls(prots[0], Stage.EARLY, label, tls13=True, secret=secret)
        keys._all = prots
        return keys

    def open_at(self, header: BytesLike, fragment: BytesLike, seq: int) -> tuple[int, BytesLike]:
        """Each candidate suite in turn until one authenticates; from then on, that one."""
        error: DecryptError | None = None
        for prot in self._all:
            self.protection = prot
            try:
                result = super().open_at(header, fragment, seq)
            except DecryptError as exc:
                error = exc
                continue
            self._all = [prot]
            return result
        assert error is not None
        raise error


def tls13_later_stages(keylog: KeyLog, session: SessionFacts, role: Role, after: Stage) -> list[Keys]:
    """Keys of the stages after ``after``, tried when the expected key is missing or fails."""
    out = []
    for stage in _STAGES13[_STAGES13.index(after) + 1 :]:
        keys = tls13_next_stage(keylog, session, role, stage)
        if keys is not None:
            out.append(keys)
    return out


# -- TLS 1.2 ------------------------------------------------------------------------------------


class SessionStore:
    """Master secrets by session ID and by ticket, for resumed TLS 1.2 sessions whose own
    client_random is missing from the key log (RFC 5246 7.3, RFC 5077)."""

    def __init__(self) -> None:
        self.by_session_id: dict[bytes, bytes] = {}
        self.by_ticket: dict[bytes, bytes] = {}
        self._pending_ticket: dict[int, bytes] = {}

    def note_session(self, session: SessionFacts, keylog: KeyLog) -> None:
        ms = self.master_secret(session, keylog)
        sid = session.sh_session_id
        if ms is not None and sid:
            self.by_session_id.setdefault(sid, ms)
        ticket = self._pending_ticket.pop(id(session), None)
        if ms is not None and ticket:
            self.by_ticket[ticket] = ms

    def note_ticket(self, session: SessionFacts, ticket_msg: NewSessionTicket12) -> None:
        ticket = bytes(ticket_msg.ticket)
        if not ticket or session.client_random is None:
            return
        # Called from the decoder with the keylog via master_secret lookups at CCS time.
        self._pending_ticket[id(session)] = ticket

    def remember_ticket(self, session: SessionFacts, master: bytes) -> None:
        ticket = self._pending_ticket.pop(id(session), None)
        if ticket:
            self.by_ticket[ticket] = master

    def master_secret(self, session: SessionFacts, keylog: KeyLog) -> bytes | None:
        if session.client_random is not None:
            ms = keylog.get(session.client_random, "CLIENT_RANDOM")
            if ms is not None:
                return ms
        if session.master is not None:
            return session.master
        sid = session.sh_session_id
        if sid and sid == session.ch_session_id and sid in self.by_session_id:
            return self.by_session_id[sid]
        if session.ch_ticket and session.ch_ticket in self.by_ticket:
            return self.by_ticket[session.ch_ticket]
        return None


def rsa_master_secret(
    keylog: KeyLog,
    session: SessionFacts,
    body: bytes,
    transcript: list[bytes] | None,
    server: tuple[bytes, int],
) -> None:
    """An RSA ClientKeyExchange (RFC 5246 7.4.7.1): recover the pre-master secret from the key
    log's ``RSA`` line or a private key scoped to ``server``, and keep the master secret in
    ``session.master`` (or why not in ``session.rsa_problem``)."""
    params = suite(session.suite) if session.suite is not None else None
    if params is None or params.kx != "RSA" or not keylog.has_rsa_material:
        return
    if session.client_random is None or session.server_random is None:
        return
    try:
        encrypted = pull_encrypted_premaster(body)
    except DecodeError:
        session.rsa_problem = "the RSA ClientKeyExchange is malformed: its pre-master secret cannot be read"
        return
    premaster = keylog.rsa_premaster(encrypted)
    tried = 0
    if premaster is None:
        for key in keylog.rsa_keys:
            if not key.applies_to(server):
                continue
            tried += 1
            premaster = key.decrypt_premaster(encrypted, session.client_version)
            if premaster is not None:
                break
    if premaster is None:
        if tried:
            session.rsa_problem = (
                f"none of the {tried} RSA private key(s) given for this server decrypts the "
                "pre-master secret (the server used another key; a wrong key yields no secret)"
            )
        elif keylog.rsa_keys:
            session.rsa_problem = (
                "no RSA private key given applies to this server (check the @HOST:PORT scope) and "
                "no RSA key-log line matches its encrypted pre-master secret"
            )
        else:
            session.rsa_problem = "no RSA key-log line matches this session's encrypted pre-master secret"
        return
    legacy = ProtocolVersion.TLS1_0 <= session.server_version < ProtocolVersion.TLS1_2
    master = master_from_premaster(
        LEGACY_PRF if legacy else params.hash_name,
        premaster,
        session.client_random,
        session.server_random,
        transcript,
        session.ems,
    )
    if master is None:
        session.rsa_problem = (
            "the pre-master secret was recovered, but the extended master secret needs the whole "
            "handshake up to the ClientKeyExchange, which is not all in the capture"
        )
        return
    session.master = master


def tls12_keys(
    keylog: KeyLog, store: SessionStore, session: SessionFacts, role: Role, capture_randoms: set[bytes]
) -> Keys:
    """Key-block keys of ``role`` for a TLS 1.2 session after its ChangeCipherSpec."""
    if session.suite is None or session.client_random is None or session.server_random is None:
        raise MissingKeys(
            Reason.NO_HANDSHAKE, "the hellos are not in the capture, so TLS 1.2 keys cannot be derived"
        )
    params = suite(session.suite)
    if params is None or params.version != "1.2":
        raise MissingKeys(
            Reason.UNSUPPORTED_SUITE, f"cipher suite 0x{session.suite:04x} is not one capdebug can decrypt"
        )
    ms = store.master_secret(session, keylog)
    if ms is None:
        reason, message = _no_secret(keylog, session, ProtocolVersion.TLS1_2, capture_randoms)
        if params.kx == "RSA" and reason in (Reason.NO_KEY, Reason.KEYLOG_OTHER_SESSIONS):
            reason = Reason.RSA_KEY_EXCHANGE
            if session.rsa_problem is not None:
                message = session.rsa_problem
            else:
                message += (
                    "; this session uses RSA key exchange, so its CLIENT_RANDOM line, its RSA "
                    "line or the server's RSA private key (--rsa-key) can decrypt it"
                )
        elif keylog.rsa_keys and params.kx != "RSA":
            message += "; " + no_rsa_help(params.kx)
        raise MissingKeys(reason, message)
    store.remember_ticket(session, ms)
    sid = session.sh_session_id
    if sid:
        store.by_session_id.setdefault(sid, ms)
    if len(ms) != 48:
        raise MissingKeys(
            Reason.SECRET_LENGTH, f"CLIENT_RANDOM secret is {len(ms)} bytes, a master secret is 48"
        )
    legacy = ProtocolVersion.TLS1_0 <= session.server_version < ProtocolVersion.TLS1_2
    if legacy and params.is_aead:
        raise MissingKeys(
            Reason.UNSUPPORTED_SUITE,
            f"{params.name} with {version_name(session.server_version)}: an AEAD suite needs TLS 1.2",
        )
    if 0 < session.server_version < ProtocolVersion.TLS1_0:
        raise MissingKeys(
            Reason.UNSUPPORTED_SUITE,
            f"{version_name(session.server_version)} is not decrypted by capdebug (SSL 3.0 has its "
            "own MAC and key derivation)",
        )
    keys12 = derive_keys12(
        params, ms, session.client_random, session.server_random, LEGACY_PRF if legacy else None
    )
    prot = tls12_protection(
        params,
        keys12,
        "client" if role == 0 else "server",
        encrypt_then_mac=session.etm,
        tls10=session.server_version == ProtocolVersion.TLS1_0,
    )
    return Keys(prot, Stage.TLS12, "CLIENT_RANDOM", tls13=False)


# -- diagnosis ----------------------------------------------------------------------------------


def no_rsa_help(kx: str | None) -> str:
    """One sentence: why a server's RSA private key cannot decrypt this session."""
    what = "TLS 1.3" if kx is None else f"its {kx} key exchange"
    return (
        f"an RSA private key cannot help: with {what} the secret comes from an ephemeral "
        "Diffie-Hellman exchange and the server's key only signs, so only a key log has it"
    )


def _no_secret(
    keylog: KeyLog, session: SessionFacts, protocol: ProtocolVersion, capture_randoms: set[bytes]
) -> tuple[str, str]:
    version = _VERSION_TEXT[protocol]
    cr = session.client_random
    if not keylog.given:
        return Reason.NO_KEY, "no key log was given: pass --keylog FILE, set SSLKEYLOGFILE, or embed secrets"
    if len(keylog) == 0:
        given = ", ".join(keylog.sources) or f"{len(keylog.rsa_keys)} RSA private key(s)"
        return Reason.NO_KEY, f"the key sources given ({given}) hold no usable session secret"
    assert cr is not None
    if cr in keylog:
        have = sorted(keylog.secrets_for(cr))
        missing = keylog.labels_missing(cr, version)
        return (
            Reason.MISSING_LABELS,
            f"the key log has {', '.join(have)} for this session but TLS {version} needs "
            f"{', '.join(missing)}",
        )
    in_capture = keylog.client_randoms() & capture_randoms
    if not in_capture and capture_randoms:
        return (
            Reason.KEYLOG_OTHER_SESSIONS,
            f"none of the key log's {len(keylog.client_randoms())} sessions has appeared in this capture "
            "so far: it was probably written on another hop (a proxy or load balancer) or during "
            "another run",
        )
    return (
        Reason.NO_KEY,
        f"no secrets for client_random {cr.hex()[:16]}... in the key log "
        f"(it has keys for {len(in_capture)} other sessions of this capture)",
    )


def explain_missing(
    keylog: KeyLog,
    session: SessionFacts,
    role: Role,
    want: Stage,
    capture_randoms: set[bytes],
) -> tuple[str, str]:
    """Why the direction ``role`` has no key at stage ``want``: (reason code, sentence)."""
    cr = session.client_random
    if cr is None and session.hello_cut:
        frames = ", ".join(f"#{f}" for f in session.hello_cut[:4])
        return (
            Reason.NO_HANDSHAKE,
            f"the snaplen cut the handshake short (frames {frames}), so its ClientHello could not be read, "
            "and no application traffic secret in the key log decrypts these records: capture with -s 0",
        )
    if cr is None and session.unreadable_hello is not None:
        return Reason.OVERSIZED_HANDSHAKE, session.unreadable_hello
    if cr is None and session.sh_seen:
        if session.version is ProtocolVersion.TLS1_2:
            return (
                Reason.NO_HANDSHAKE,
                "the ClientHello is not in the capture: TLS 1.2 keys come from both hellos' randoms, "
                "and the client's random is what names the session in the key log",
            )
        return (
            Reason.NO_HANDSHAKE,
            "the ClientHello is not in the capture, and its client_random is what names the "
            "session's secrets in the key log: the handshake records stay encrypted; the application "
            "records are tried with every traffic secret of the key log ('recovered' says which fits)",
        )
    if cr is None and not len(keylog):
        return (
            Reason.NO_HANDSHAKE,
            "the handshake is not in the capture (it started mid-connection) and no key log was "
            "given: a TLS 1.3 key log's traffic secrets could still open these records",
        )
    if cr is None:
        return (
            Reason.NO_HANDSHAKE,
            "the handshake is not in the capture (it started mid-connection) and no application "
            "traffic secret in the key log decrypts these records",
        )
    protocol = session.version or ProtocolVersion.TLS1_3
    version = _VERSION_TEXT[protocol]
    params = suite(session.suite) if session.suite is not None else None
    if session.suite is not None and params is None:
        return Reason.UNSUPPORTED_SUITE, f"cipher suite 0x{session.suite:04x} is not one capdebug can decrypt"
    label = _LABELS13.get((want, role)) if protocol is ProtocolVersion.TLS1_3 else "CLIENT_RANDOM"
    if cr in keylog and label is not None:
        secret = keylog.get(cr, label)
        if secret is None:
            have = ", ".join(sorted(keylog.secrets_for(cr)))
            side = "client" if role == Role.CLIENT else "server"
            return (
                Reason.MISSING_LABELS,
                f"the key log has {have} for this session but not {label}, which the {side}'s "
                f"{want.value if version == '1.3' else ''} records need".replace("  ", " "),
            )
        if params is not None and protocol is ProtocolVersion.TLS1_3 and len(secret) != params.hash_len:
            return (
                Reason.SECRET_LENGTH,
                f"{label} is {len(secret)} bytes but {params.name} uses {params.hash_name} "
                f"({params.hash_len} bytes): the line belongs to another session or is corrupt",
            )
    reason, message = _no_secret(keylog, session, protocol, capture_randoms)
    if session.ech_offered and protocol is ProtocolVersion.TLS1_3 and cr is not None and cr not in keylog:
        message += (
            "; the ClientHello offers Encrypted Client Hello, and a key log names such a session by "
            "the inner ClientHello's random (encrypted on the wire): none of the key log's other "
            "handshake secrets opened these records either"
        )
    if keylog.rsa_keys and protocol is ProtocolVersion.TLS1_3:
        message += "; " + no_rsa_help(None)
    return reason, message
