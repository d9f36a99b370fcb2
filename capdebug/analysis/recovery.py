"""Keys found without the usual lookup by the ClientHello's random, each proven by the AEAD tag
of a record (decode/trial.py tries them):

- a connection picked up mid-stream: every TLS 1.3 traffic secret of the key log
  (:func:`recover_mid_stream`);
- a session whose ServerHello the capture lost: its own handshake and traffic secrets, with
  each suite their length fits (:func:`lost_hello_keys`);
- a session the key log names by another client_random (Encrypted Client Hello names it by the
  inner ClientHello's): every handshake secret of the key log (:func:`recover_renamed`).
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Final

from ..crypto.keylog import KeyLog
from ..crypto.protection import Protection, Tls13Protection
from ..crypto.suites import SUITES
from .keys import _LABELS13, _MAX_TRIAL_KEYS, Keys, Role, SessionFacts, Stage, _params13

__all__ = ["RenamedKeys", "lost_hello_keys", "recover_mid_stream", "recover_renamed"]

_SUITES13: Final = tuple(p for p in SUITES.values() if p.version == "1.3")


class RenamedKeys(Keys):
    """Handshake keys of a key-log session whose client_random is not the ClientHello's on the
    wire (see :func:`recover_renamed`): which random the key log named it by."""

    __slots__ = ("client_random",)

    def __init__(self, prot: Protection, label: str, secret: bytes, client_random: bytes) -> None:
        super().__init__(prot, Stage.HANDSHAKE, label, tls13=True, secret=secret)
        self.client_random = client_random


def recover_renamed(
    keylog: KeyLog, session: SessionFacts, role: Role, exclude: Collection[bytes] = ()
) -> list[Keys]:
    """A TLS 1.3 session whose ClientHello.random the key log does not know, although its
    ServerHello is seen: with Encrypted Client Hello (draft-ietf-tls-esni) the key schedule runs
    on the *inner* ClientHello, encrypted on the wire, and the key log names the session by the
    inner random. Every handshake secret of ``role`` in the key log (but those of the randoms
    in ``exclude``: sessions of the capture), with the negotiated suite; the AEAD tag proves
    which. Empty when the suite is unknown or the key log knows the random after all."""
    params = _params13(session)
    if params is None or session.client_random is None or session.client_random in keylog:
        return []
    label = _LABELS13[(Stage.HANDSHAKE, role)]
    out: list[Keys] = []
    for entry in keylog.entries():
        if entry.label != label or entry.client_random in exclude or len(entry.secret) != params.hash_len:
            continue
        prot = Tls13Protection(params, entry.secret)
        out.append(RenamedKeys(prot, label, entry.secret, entry.client_random))
        if len(out) >= _MAX_TRIAL_KEYS:
            break
    return out


def recover_mid_stream(
    keylog: KeyLog, role: Role, exclude: Collection[bytes] = (), *, either_role: bool = False
) -> list[Keys]:
    """Every application secret of ``role`` in the key log (but those of the client_randoms in
    ``exclude``), with each suite that fits its length, for a connection whose handshake was
    not captured. The AEAD tag proves which. ``either_role``: the other role's secrets too,
    after ``role``'s (the roles are a guess, and the one that opens a record proves them)."""
    out: list[Keys] = []
    prefixes = ["CLIENT_TRAFFIC_SECRET_", "SERVER_TRAFFIC_SECRET_"]
    if role != Role.CLIENT:
        prefixes.reverse()
    for prefix in prefixes if either_role else prefixes[:1]:
        if _recover_role(keylog, prefix, exclude, out):
            break
    return out


def _recover_role(keylog: KeyLog, prefix: str, exclude: Collection[bytes], out: list[Keys]) -> bool:
    """Add the key log's secrets whose label starts with ``prefix`` to ``out``; True when the
    bound on trial keys is reached."""
    for entry in keylog.entries():
        if not entry.label.startswith(prefix) or entry.client_random in exclude:
            continue
        for params in _SUITES13:
            if params.hash_len != len(entry.secret):
                continue
            prot = Tls13Protection(params, entry.secret)
            out.append(Keys(prot, Stage.APPLICATION, entry.label, tls13=True, secret=entry.secret))
            if len(out) >= _MAX_TRIAL_KEYS:
                return True
    return False


def lost_hello_keys(keylog: KeyLog, client_random: bytes, role: Role) -> list[Keys]:
    """The TLS 1.3 keys a direction may use after its session's ServerHello was lost: the
    key log's handshake then first traffic secret of ``role`` for ``client_random`` (RFC 8446
    7.1), each with every TLS 1.3 suite whose hash has the secret's length (the ServerHello
    named the suite). Empty when the key log has none (e.g. a TLS 1.2 session)."""
    out: list[Keys] = []
    for stage in (Stage.HANDSHAKE, Stage.APPLICATION):
        label = _LABELS13[(stage, role)]
        secret = keylog.get(client_random, label)
        if secret is None:
            continue
        for params in _SUITES13:
            if params.hash_len == len(secret):
                out.append(Keys(Tls13Protection(params, secret), stage, label, tls13=True, secret=secret))
    return out
