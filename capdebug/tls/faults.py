"""Fault injection for reproducing failures on demand (used by scenarios, ``serve``/``connect
--fault`` and tests).

A :class:`Faults` object is handed to a ``Connection`` (record- and handshake-level faults,
applied inside the sans-IO engine) and to the socket wrapper in ``io.py`` (transport-level
faults: RST instead of FIN, delays, stalls). Each fault is armed once and fires once (or a
given number of times), so that a scenario reads as a list of "what goes wrong where"::

    faults = Faults()
    faults.tamper_next_record()                  # flip a bit in the next protected record
    faults.alert_at(State.CLIENT_EXPECT_FINISHED, AlertDescription.HANDSHAKE_FAILURE)
    faults.drop_close_notify = True              # close() sends no close_notify
    faults.rst_instead_of_fin = True             # io: SO_LINGER 0, so close() sends RST
    faults.delay_before_send = 0.2               # io: seconds before each write

Nothing is active by default: ``Faults()`` changes nothing, and a connection without one has no
fault code on its path at all. Faults only ever change what *we* send (or when, or whether we
read); they never weaken checks of what we receive, so a fault-injected peer still tests the
other side's real error handling.

Some faults are about the *configuration* a connection is made with, not about the engine's
behaviour: which suites or groups are offered, which certificate is presented, whether a client
certificate is asked for or withheld. Those are recorded here (``certificate``, ``client_auth``,
``withhold_client_certificate``, ``offer_suites``, ``offer_groups``) and applied by whoever
builds the :class:`~capdebug.tls.config.TLSConfig` (:meth:`Faults.configure` and
:func:`fault_credential`, called by the CLI or a scenario with the time it read).

:data:`FAULTS` names every fault the command line knows, one line each; :func:`parse_faults`
turns ``"premature-close,bad-mac"`` into a :class:`Faults`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..errors import UsageError
from ..wire.constants import AlertDescription, CipherSuite, ContentType, HandshakeType, NamedGroup
from .config import ClientAuth, Credential, TLSConfig
from .state import State

if TYPE_CHECKING:
    from ..crypto.testpki import Issued

__all__ = ["CERTIFICATE_FAULTS", "FAULTS", "FaultSpec", "Faults", "fault_credential", "parse_faults"]

#: Certificate faults: what is wrong with the certificate a side presents.
CERTIFICATE_FAULTS = ("expired", "not-yet-valid", "wrong-host", "self-signed", "unknown-ca")


@dataclass(slots=True)
class Faults:
    """Armed faults. Mutable on purpose: firing a one-shot fault disarms it."""

    tamper_records: int = 0
    """How many of the next protected records to corrupt (one bit of the AEAD tag flipped)."""
    tamper_skip: int = 0
    """Protected records to let through untouched before tampering starts."""
    tamper_content_type: int | None = None
    """Only records of this inner content type count for tampering (None: every record)."""
    truncate_records: int = 0
    """Cut the next protected application_data record to half its length, then FIN (io)."""
    alerts_at: dict[State, int] = field(default_factory=dict)
    """Send this fatal alert (and fail) on entering the state, instead of carrying on."""
    drop_close_notify: bool = False
    """``close()``/``shutdown_send()`` mark the side closed but send no close_notify."""
    send_after_close_notify: bool = False
    """Application data may still be sent after our close_notify (a protocol violation)."""
    half_close_after_handshake: bool = False
    """io: send close_notify and shut TCP down for writing as soon as the handshake is done."""
    rst_instead_of_fin: bool = False
    """io: close the socket with SO_LINGER 0 so the kernel sends RST, not FIN."""
    rst_during_handshake: bool = False
    """io: abort with RST instead of reading the peer's first answer (handshake cut short)."""
    delay_before_send: float = 0.0
    """io: sleep this many seconds before each socket write (slow peer)."""
    delay_first_byte: float = 0.0
    """io: sleep this many seconds before our first write (the ClientHello, or the server's
    first flight: a slow handshake)."""
    stall_s: float = 0.0
    """io: once the handshake is done, do not read for this many seconds (the peer's TCP
    window fills and it sees a zero window)."""
    key_update_storm: int = 0
    """io: send this many KeyUpdates right after the handshake."""
    hold_back: int | None = None
    """A handshake message type to send after the next one (messages out of order)."""
    # -- configuration faults, applied by configure() and fault_credential() ----------------
    certificate: str | None = None
    """One of :data:`CERTIFICATE_FAULTS`: the certificate we present is broken that way."""
    client_auth: ClientAuth | None = None
    """Server: ask for a client certificate (REQUIRED or OPTIONAL)."""
    withhold_client_certificate: bool = False
    """Client: present no certificate even when asked."""
    offer_suites: tuple[CipherSuite, ...] | None = None
    offer_groups: tuple[NamedGroup, ...] | None = None
    fired: list[str] = field(default_factory=list)
    """What fired, in order: for assertions and trace."""
    _held: bytes | None = field(default=None, repr=False)
    _fin_pending: bool = field(default=False, repr=False)

    def tamper_next_record(self, count: int = 1, skip: int = 0, content_type: int | None = None) -> None:
        self.tamper_records = count
        self.tamper_skip = skip
        self.tamper_content_type = content_type

    def alert_at(self, state: State, description: int) -> None:
        self.alerts_at[state] = int(description)

    @property
    def active(self) -> bool:
        """Is anything armed at all?"""
        return self != Faults()

    # -- configuration ------------------------------------------------------------------------

    def configure(self, config: TLSConfig) -> TLSConfig:
        """``config`` with the configuration faults applied (certificates: see
        :func:`fault_credential`)."""
        out = config
        if self.offer_suites is not None:
            out = dataclasses.replace(out, cipher_suites=self.offer_suites)
        if self.offer_groups is not None:
            out = dataclasses.replace(out, groups=self.offer_groups, key_share_groups=None)
        if self.client_auth is not None:
            out = dataclasses.replace(out, client_auth=self.client_auth)
        if self.withhold_client_certificate:
            out = dataclasses.replace(out, credential=None)
        if out is not config:
            self.fired.append("configure")
        return out

    # -- hooks called by the engine --------------------------------------------------------

    def on_protected_record(self, record: bytearray, content_type: int) -> None:
        """Called with each protected record (header included) just before it is queued."""
        if self.truncate_records > 0 and content_type == ContentType.application_data:
            self.truncate_records -= 1
            # Keep the header (it still announces the full length) and half the body: the peer
            # waits for the rest and then sees the FIN (io closes right after this record).
            del record[5 + (len(record) - 5) // 2 :]
            self._fin_pending = True
            self.fired.append("truncate_record")
            return
        if self.tamper_records <= 0:
            return
        if self.tamper_content_type is not None and content_type != self.tamper_content_type:
            return
        if self.tamper_skip > 0:
            self.tamper_skip -= 1
            return
        self.tamper_records -= 1
        # The last byte is part of the AEAD tag: the peer's open() must fail with
        # bad_record_mac whatever the cipher (RFC 8446 5.2).
        record[-1] ^= 0x01
        self.fired.append("tamper_record")

    def on_enter_state(self, state: State) -> int | None:
        """The alert description to send on entering ``state``, if one is armed."""
        desc = self.alerts_at.pop(state, None)
        if desc is not None:
            self.fired.append(f"alert_at:{state.name}")
        return desc

    def on_close_notify(self) -> bool:
        """False when close_notify must be dropped."""
        if self.drop_close_notify:
            self.fired.append("drop_close_notify")
            return False
        return True

    def may_send_after_close(self) -> bool:
        """True when application data may follow our own close_notify (the fault)."""
        if self.send_after_close_notify:
            self.fired.append("send_after_close_notify")
            return True
        return False

    def on_handshake_out(self, msg_type: int, data: bytes) -> bytes:
        """The encoded handshake message(s) to queue now instead of ``data``: a held-back
        message goes out right after the one that follows it (RFC 8446 4: out of order)."""
        if self._held is not None:
            held, self._held = self._held, None
            self.fired.append("out_of_order")
            return data + held
        if self.hold_back is not None and msg_type == self.hold_back:
            self.hold_back = None
            self._held = data
            return b""
        return data

    def take_fin(self) -> bool:
        """io: True once, after a truncated record was queued (close with FIN now)."""
        pending, self._fin_pending = self._fin_pending, False
        return pending


def fault_credential(
    issue: str, now: dt.datetime, *, client: bool = False, ca: Issued | None = None
) -> tuple[Credential, Issued]:
    """A credential with the certificate fault ``issue`` (one of :data:`CERTIFICATE_FAULTS`),
    issued by ``ca`` (or a fresh CA; for ``unknown-ca`` always a fresh one the peer does not
    know). Returns the credential and the CA that issued it. ``now`` is read by the caller."""
    # Imported here: key generation is needed only by the commands that make certificates.
    from ..crypto import x509_engine
    from ..crypto.testpki import LeafOptions, make_ca, make_leaf

    if issue not in CERTIFICATE_FAULTS:
        raise UsageError(f"unknown certificate fault {issue!r} (known: {', '.join(CERTIFICATE_FAULTS)})")
    options = LeafOptions(
        client=client,
        expired=issue == "expired",
        not_yet_valid=issue == "not-yet-valid",
        self_signed=issue == "self-signed",
    )
    if issue == "wrong-host":
        options = dataclasses.replace(options, hostnames=("wrong.example",))
    issuer = make_ca(now) if ca is None or issue == "unknown-ca" else ca
    leaf = make_leaf(issuer, now, options)
    chain = (leaf.cert_der,) if options.self_signed else (leaf.cert_der, issuer.cert_der)
    return Credential(chain, x509_engine.load_private_key(leaf.key_pem)), issuer


@dataclass(frozen=True, slots=True)
class FaultSpec:
    """One fault the command line knows."""

    name: str
    summary: str
    apply: Callable[[Faults, str | None], None]
    """Arms the fault; the second argument is the text after ``=`` (None when absent)."""
    argument: str | None = None
    """What the ``=VALUE`` means, when the fault takes one."""


def _flag(attr: str, value: object = True) -> Callable[[Faults, str | None], None]:
    def apply(f: Faults, arg: str | None) -> None:
        setattr(f, attr, value)

    return apply


def _seconds(attr: str, default: float) -> Callable[[Faults, str | None], None]:
    def apply(f: Faults, arg: str | None) -> None:
        try:
            value = float(arg) if arg is not None else default
        except ValueError:
            raise UsageError(f"expected seconds, got {arg!r}") from None
        if not 0 <= value <= 3600:
            raise UsageError(f"seconds must be 0..3600, got {arg!r}")
        setattr(f, attr, value)

    return apply


def _count(attr: str, default: int) -> Callable[[Faults, str | None], None]:
    def apply(f: Faults, arg: str | None) -> None:
        if arg is not None and not arg.isdigit():
            raise UsageError(f"expected a count, got {arg!r}")
        value = int(arg) if arg is not None else default
        if not 1 <= value <= 100_000:
            raise UsageError(f"count must be 1..100000, got {arg!r}")
        setattr(f, attr, value)

    return apply


def _bad_mac(f: Faults, arg: str | None) -> None:
    # The first protected record: the peer fails (bad_record_mac) whether it is a server
    # reading our Finished or a client reading our EncryptedExtensions.
    f.tamper_next_record(1)


def _bad_mac_data(f: Faults, arg: str | None) -> None:
    f.tamper_next_record(1, content_type=ContentType.application_data)


def _alert_at(f: Faults, arg: str | None) -> None:
    state_name, _, alert_name = (arg or "").partition(":")
    try:
        state = State[state_name]
        desc = AlertDescription[alert_name] if alert_name else AlertDescription.internal_error
    except KeyError:
        raise UsageError(
            f"alert-at=STATE[:ALERT], e.g. alert-at=SERVER_EXPECT_FINISHED:handshake_failure; "
            f"states: {', '.join(s.name for s in State)}"
        ) from None
    f.alert_at(state, desc)


def _certificate(issue: str) -> Callable[[Faults, str | None], None]:
    return _flag("certificate", issue)


def _hold_back(f: Faults, arg: str | None) -> None:
    name = arg or "encrypted_extensions"
    try:
        f.hold_back = HandshakeType[name]
    except KeyError:
        raise UsageError(f"out-of-order=MESSAGE, e.g. encrypted_extensions; not {name!r}") from None


def _suites(f: Faults, arg: str | None) -> None:
    try:
        f.offer_suites = tuple(CipherSuite[n.strip()] for n in (arg or "").split("+") if n.strip())
    except KeyError as exc:
        raise UsageError(f"offer-suites: unknown cipher suite {exc}") from None
    if not f.offer_suites:
        raise UsageError("offer-suites=SUITE[+SUITE...]")


def _groups(f: Faults, arg: str | None) -> None:
    try:
        f.offer_groups = tuple(NamedGroup[n.strip()] for n in (arg or "").split("+") if n.strip())
    except KeyError as exc:
        raise UsageError(f"offer-groups: unknown group {exc}") from None
    if not f.offer_groups:
        raise UsageError("offer-groups=GROUP[+GROUP...]")


FAULTS: dict[str, FaultSpec] = {
    s.name: s
    for s in (
        FaultSpec(
            "premature-close", "close TCP (FIN) without sending close_notify", _flag("drop_close_notify")
        ),
        FaultSpec("reset", "close with an RST (SO_LINGER 0) instead of a FIN", _flag("rst_instead_of_fin")),
        FaultSpec(
            "reset-during-handshake",
            "abort with an RST on receiving the peer's first handshake bytes, instead of answering",
            _flag("rst_during_handshake"),
        ),
        FaultSpec(
            "data-after-close-notify",
            "keep sending application data after our own close_notify",
            _flag("send_after_close_notify"),
        ),
        FaultSpec(
            "half-close",
            "send close_notify and shut down writing right after the handshake, keep reading",
            _flag("half_close_after_handshake"),
        ),
        FaultSpec(
            "delay-first-byte",
            "wait before our first write (default 1.5 s)",
            _seconds("delay_first_byte", 1.5),
            "seconds",
        ),
        FaultSpec(
            "delay-each-write", "wait before every write", _seconds("delay_before_send", 0.2), "seconds"
        ),
        FaultSpec(
            "alert-at",
            "send a fatal alert on entering a handshake state",
            _alert_at,
            "STATE[:ALERT]",
        ),
        FaultSpec("bad-mac", "corrupt the AEAD tag of our first protected record", _bad_mac),
        FaultSpec("bad-mac-data", "corrupt the AEAD tag of our first application data record", _bad_mac_data),
        FaultSpec(
            "truncate-record",
            "send half of our first application data record, then FIN",
            _flag("truncate_records", 1),
        ),
        FaultSpec(
            "out-of-order",
            "send a handshake message after the one that should follow it",
            _hold_back,
            "MESSAGE",
        ),
        FaultSpec("offer-suites", "offer (or accept) only these cipher suites", _suites, "SUITE[+SUITE...]"),
        FaultSpec("offer-groups", "offer (or accept) only these groups", _groups, "GROUP[+GROUP...]"),
        FaultSpec("expired-cert", "present an expired certificate", _certificate("expired")),
        FaultSpec(
            "not-yet-valid-cert",
            "present a certificate valid only from tomorrow",
            _certificate("not-yet-valid"),
        ),
        FaultSpec("wrong-host-cert", "present a certificate for wrong.example", _certificate("wrong-host")),
        FaultSpec("self-signed-cert", "present a self-signed certificate", _certificate("self-signed")),
        FaultSpec(
            "unknown-ca-cert",
            "present a certificate from a CA the peer does not know",
            _certificate("unknown-ca"),
        ),
        FaultSpec(
            "client-cert-required",
            "server: require a client certificate",
            _flag("client_auth", ClientAuth.REQUIRED),
        ),
        FaultSpec(
            "withhold-client-cert",
            "client: send no certificate even when asked",
            _flag("withhold_client_certificate"),
        ),
        FaultSpec(
            "key-update-storm",
            "send many KeyUpdates right after the handshake (default 100)",
            _count("key_update_storm", 100),
            "count",
        ),
        FaultSpec(
            "stall",
            "stop reading after the handshake so the peer's TCP window fills (default 3 s)",
            _seconds("stall_s", 3.0),
            "seconds",
        ),
    )
}


def parse_faults(spec: str | list[str] | tuple[str, ...]) -> Faults:
    """``"premature-close,delay-first-byte=2"`` (or a list of such strings) -> armed Faults."""
    parts = [spec] if isinstance(spec, str) else list(spec)
    faults = Faults()
    for item in (p.strip() for part in parts for p in part.split(",")):
        if not item:
            continue
        name, eq, arg = item.partition("=")
        fs = FAULTS.get(name)
        if fs is None:
            raise UsageError(f"unknown fault {name!r} (see --fault list)")
        if eq and fs.argument is None:
            raise UsageError(f"fault {name!r} takes no value")
        try:
            fs.apply(faults, arg if eq else None)
        except UsageError as exc:
            raise UsageError(f"--fault {name}: {exc}") from None
    return faults
