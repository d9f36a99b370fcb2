"""The TLS 1.3 key schedule (RFC 8446 section 7.1) and the transcript hash (section 4.4.1).

HKDF (RFC 5869) is built on the standard library's HMAC: the inputs are a few dozen bytes, and
``hmac.digest`` is a single C call, cheaper than constructing a ``cryptography`` HKDF object.

Theory of operation: the schedule is a chain of three extracts,
``PSK -> Early Secret -> (EC)DHE -> Handshake Secret -> 0 -> Master Secret``; each stage's
secrets are ``Derive-Secret(stage, label, Transcript-Hash(messages so far))``. ``KeySchedule``
holds the current stage and refuses to derive a secret of a stage it has not reached, which
catches engine bugs early instead of producing keys that silently fail to decrypt.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from collections.abc import Callable

from ..errors import CryptoError, UsageError

__all__ = [
    "KeySchedule",
    "Transcript",
    "derive_secret",
    "finished_key",
    "finished_verify_data",
    "hash_len",
    "hkdf_expand",
    "hkdf_expand_label",
    "hkdf_extract",
    "next_traffic_secret",
    "resumption_psk",
    "traffic_keys",
]

_HASHES: dict[str, Callable[..., hashlib._Hash]] = {
    "sha256": hashlib.sha256,
    "sha384": hashlib.sha384,
}
_HASH_LEN = {"sha256": 32, "sha384": 48}

# RFC 8446 section 4.4.1: the synthetic handshake type that replaces ClientHello1 after a
# HelloRetryRequest.
_MESSAGE_HASH = 254


def hash_len(hash_name: str) -> int:
    """Output length of ``hash_name`` ("sha256" or "sha384")."""
    try:
        return _HASH_LEN[hash_name]
    except KeyError:
        raise UsageError(f"unsupported TLS 1.3 hash {hash_name!r}") from None


def hkdf_extract(hash_name: str, salt: bytes, ikm: bytes) -> bytes:
    """HKDF-Extract (RFC 5869 section 2.2); an empty salt means HashLen zeros."""
    n = hash_len(hash_name)
    return hmac.digest(salt or bytes(n), ikm, hash_name)


def hkdf_expand(hash_name: str, prk: bytes, info: bytes, length: int) -> bytes:
    """HKDF-Expand (RFC 5869 section 2.3)."""
    n = hash_len(hash_name)
    if length > 255 * n:
        raise UsageError(f"HKDF-Expand length {length} exceeds 255*HashLen")
    out = b""
    block = b""
    counter = 1
    while len(out) < length:
        block = hmac.digest(prk, block + info + bytes((counter,)), hash_name)
        out += block
        counter += 1
    return out[:length]


def hkdf_expand_label(hash_name: str, secret: bytes, label: bytes, context: bytes, length: int) -> bytes:
    """HKDF-Expand-Label (RFC 8446 section 7.1): the HkdfLabel struct with the "tls13 " prefix."""
    full_label = b"tls13 " + label
    if len(full_label) > 255 or len(context) > 255:
        raise UsageError("HKDF-Expand-Label label or context too long")
    info = struct.pack(">HB", length, len(full_label)) + full_label + bytes((len(context),)) + context
    return hkdf_expand(hash_name, secret, info, length)


def derive_secret(hash_name: str, secret: bytes, label: bytes, transcript_hash: bytes) -> bytes:
    """Derive-Secret (RFC 8446 section 7.1), taking the transcript hash already computed."""
    return hkdf_expand_label(hash_name, secret, label, transcript_hash, hash_len(hash_name))


def _empty_hash(hash_name: str) -> bytes:
    return _HASHES[hash_name]().digest()


def next_traffic_secret(hash_name: str, secret: bytes) -> bytes:
    """application_traffic_secret_N+1 after a KeyUpdate (RFC 8446 section 7.2)."""
    return hkdf_expand_label(hash_name, secret, b"traffic upd", b"", hash_len(hash_name))


def traffic_keys(hash_name: str, secret: bytes, key_len: int, iv_len: int) -> tuple[bytes, bytes]:
    """The record protection (key, iv) of a traffic secret (RFC 8446 section 7.3)."""
    return (
        hkdf_expand_label(hash_name, secret, b"key", b"", key_len),
        hkdf_expand_label(hash_name, secret, b"iv", b"", iv_len),
    )


def finished_key(hash_name: str, base_key: bytes) -> bytes:
    """finished_key from a handshake traffic secret (RFC 8446 section 4.4.4)."""
    return hkdf_expand_label(hash_name, base_key, b"finished", b"", hash_len(hash_name))


def finished_verify_data(hash_name: str, base_key: bytes, transcript_hash: bytes) -> bytes:
    """Finished.verify_data (RFC 8446 section 4.4.4). For a PSK binder (section 4.2.11.2) pass the
    binder_key as ``base_key`` and the truncated-ClientHello hash."""
    return hmac.digest(finished_key(hash_name, base_key), transcript_hash, hash_name)


def resumption_psk(hash_name: str, resumption_master_secret: bytes, ticket_nonce: bytes) -> bytes:
    """The PSK of a NewSessionTicket (RFC 8446 section 4.6.1)."""
    return hkdf_expand_label(
        hash_name, resumption_master_secret, b"resumption", ticket_nonce, hash_len(hash_name)
    )


class KeySchedule:
    """One connection's TLS 1.3 key schedule (RFC 8446 section 7.1).

    ``KeySchedule(hash, psk)`` computes the Early Secret; ``handshake(shared)`` advances to the
    Handshake Secret; ``master()`` to the Master Secret. The ``*_secret(transcript_hash)``
    methods derive the secrets of the current stage from a transcript hash the caller supplies
    (see :class:`Transcript`).
    """

    __slots__ = ("_stage", "early_secret", "handshake_secret", "hash_len", "hash_name", "master_secret")

    def __init__(self, hash_name: str, psk: bytes | None = None) -> None:
        self.hash_name = hash_name
        self.hash_len = hash_len(hash_name)
        # Without a PSK the IKM is a string of HashLen zeros (RFC 8446 section 7.1).
        self.early_secret = hkdf_extract(hash_name, b"", psk or bytes(self.hash_len))
        self.handshake_secret = b""
        self.master_secret = b""
        self._stage = 0

    def __repr__(self) -> str:
        stage = ("early", "handshake", "master")[self._stage]
        return f"KeySchedule(hash_name={self.hash_name!r}, stage={stage!r})"

    def _at(self, stage: int, what: str) -> None:
        if self._stage != stage:
            raise CryptoError(f"key schedule: cannot derive {what} at this stage")

    def _derive(self, secret: bytes, label: bytes, transcript_hash: bytes) -> bytes:
        return derive_secret(self.hash_name, secret, label, transcript_hash)

    # -- Early Secret ----------------------------------------------------------------------

    def binder_key(self, *, external: bool) -> bytes:
        """binder_key: "ext binder" for an external PSK, "res binder" for a resumption PSK."""
        self._at(0, "binder_key")
        label = b"ext binder" if external else b"res binder"
        return self._derive(self.early_secret, label, _empty_hash(self.hash_name))

    def client_early_traffic_secret(self, client_hello_hash: bytes) -> bytes:
        self._at(0, "client_early_traffic_secret")
        return self._derive(self.early_secret, b"c e traffic", client_hello_hash)

    def early_exporter_master_secret(self, client_hello_hash: bytes) -> bytes:
        self._at(0, "early_exporter_master_secret")
        return self._derive(self.early_secret, b"e exp master", client_hello_hash)

    def handshake(self, shared_secret: bytes | None) -> None:
        """Advance to the Handshake Secret with the (EC)DHE shared secret (None for psk_ke mode,
        where HashLen zeros stand in for it)."""
        self._at(0, "handshake_secret")
        salt = self._derive(self.early_secret, b"derived", _empty_hash(self.hash_name))
        ikm = shared_secret if shared_secret is not None else bytes(self.hash_len)
        self.handshake_secret = hkdf_extract(self.hash_name, salt, ikm)
        self._stage = 1

    # -- Handshake Secret ------------------------------------------------------------------

    def client_handshake_traffic_secret(self, hello_hash: bytes) -> bytes:
        """From Transcript-Hash(ClientHello...ServerHello)."""
        self._at(1, "client_handshake_traffic_secret")
        return self._derive(self.handshake_secret, b"c hs traffic", hello_hash)

    def server_handshake_traffic_secret(self, hello_hash: bytes) -> bytes:
        self._at(1, "server_handshake_traffic_secret")
        return self._derive(self.handshake_secret, b"s hs traffic", hello_hash)

    def master(self) -> None:
        """Advance to the Master Secret."""
        self._at(1, "master_secret")
        salt = self._derive(self.handshake_secret, b"derived", _empty_hash(self.hash_name))
        self.master_secret = hkdf_extract(self.hash_name, salt, bytes(self.hash_len))
        self._stage = 2

    # -- Master Secret ---------------------------------------------------------------------

    def client_application_traffic_secret_0(self, server_finished_hash: bytes) -> bytes:
        """From Transcript-Hash(ClientHello...server Finished)."""
        self._at(2, "client_application_traffic_secret_0")
        return self._derive(self.master_secret, b"c ap traffic", server_finished_hash)

    def server_application_traffic_secret_0(self, server_finished_hash: bytes) -> bytes:
        self._at(2, "server_application_traffic_secret_0")
        return self._derive(self.master_secret, b"s ap traffic", server_finished_hash)

    def exporter_master_secret(self, server_finished_hash: bytes) -> bytes:
        self._at(2, "exporter_master_secret")
        return self._derive(self.master_secret, b"exp master", server_finished_hash)

    def resumption_master_secret(self, client_finished_hash: bytes) -> bytes:
        """From Transcript-Hash(ClientHello...client Finished)."""
        self._at(2, "resumption_master_secret")
        return self._derive(self.master_secret, b"res master", client_finished_hash)


class Transcript:
    """Running transcript hash of handshake messages (RFC 8446 section 4.4.1).

    ``digest()`` hashes a copy, so it can be taken at every point the schedule needs
    (after ServerHello, after server Finished, ...) without ending the running hash.
    """

    __slots__ = ("_hash", "hash_name")

    def __init__(self, hash_name: str, initial: bytes = b"") -> None:
        hash_len(hash_name)
        self.hash_name = hash_name
        self._hash = _HASHES[hash_name](initial)

    def __repr__(self) -> str:
        return f"Transcript(hash_name={self.hash_name!r})"

    def update(self, message: bytes | bytearray | memoryview) -> None:
        """Add one complete handshake message, header included (type, uint24 length, body)."""
        self._hash.update(message)

    def digest(self) -> bytes:
        """Transcript-Hash of the messages so far; the running hash continues."""
        return self._hash.copy().digest()

    def hello_retry_request(self) -> None:
        """Replace ClientHello1 by message_hash after a HelloRetryRequest (section 4.4.1).

        Call it after ClientHello1 and before adding the HelloRetryRequest itself.
        """
        inner = self._hash.digest()
        self._hash = _HASHES[self.hash_name](bytes((_MESSAGE_HASH, 0, 0, len(inner))) + inner)

    def copy(self) -> Transcript:
        new = Transcript.__new__(Transcript)
        new.hash_name = self.hash_name
        new._hash = self._hash.copy()
        return new
