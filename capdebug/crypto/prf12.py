"""The TLS 1.2 PRF and the secrets derived with it (and TLS 1.0/1.1's, for their decryption).

* PRF and P_hash: RFC 5246 section 5. TLS 1.0 and 1.1 (RFC 2246 / RFC 4346 section 5): the
  secret's two halves (sharing a byte when its length is odd) through P_MD5 and P_SHA-1, XORed;
  asked for with the hash name :data:`LEGACY_PRF`.
* master_secret: RFC 5246 section 8.1; extended master secret: RFC 7627 section 4.
* key_block and its partition: RFC 5246 section 6.3.
* Finished.verify_data: RFC 5246 section 7.4.9.

The PRF hash is the suite's (``SuiteParams.hash_name``): SHA-256 unless the suite says SHA-384.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field

from ..errors import UsageError
from .suites import SuiteParams

__all__ = [
    "LEGACY_PRF",
    "Keys12",
    "derive_keys12",
    "extended_master_secret",
    "key_block",
    "master_secret",
    "prf",
    "verify_data12",
]

_MASTER_SECRET_LEN = 48
_VERIFY_DATA_LEN = 12


LEGACY_PRF = "md5+sha1"
"""The PRF "hash" of TLS 1.0 and 1.1 (see the module docstring)."""


def prf(hash_name: str, secret: bytes, label: bytes, seed: bytes, length: int) -> bytes:
    """PRF(secret, label, seed) = P_<hash>(secret, label + seed), RFC 5246 section 5; with
    :data:`LEGACY_PRF`, P_MD5(S1, label + seed) XOR P_SHA-1(S2, label + seed) (RFC 2246 5)."""
    if hash_name == LEGACY_PRF:
        half = (len(secret) + 1) // 2
        md5 = _p_hash("md5", secret[:half], label + seed, length)
        sha1 = _p_hash("sha1", secret[len(secret) - half :], label + seed, length)
        return bytes(a ^ b for a, b in zip(md5, sha1, strict=True))
    if hash_name not in ("sha256", "sha384"):
        raise UsageError(f"unsupported TLS 1.2 PRF hash {hash_name!r}")
    return _p_hash(hash_name, secret, label + seed, length)


def _p_hash(hash_name: str, secret: bytes, seed: bytes, length: int) -> bytes:
    """P_hash(secret, seed) cut to ``length`` bytes (RFC 5246 section 5)."""
    out = bytearray()
    a = seed  # A(0)
    while len(out) < length:
        a = hmac.digest(secret, a, hash_name)  # A(i) = HMAC_hash(secret, A(i-1))
        out += hmac.digest(secret, a + seed, hash_name)
    return bytes(out[:length])


def master_secret(hash_name: str, pre_master: bytes, client_random: bytes, server_random: bytes) -> bytes:
    """master_secret (RFC 5246 section 8.1)."""
    return prf(hash_name, pre_master, b"master secret", client_random + server_random, _MASTER_SECRET_LEN)


def extended_master_secret(hash_name: str, pre_master: bytes, session_hash: bytes) -> bytes:
    """master_secret with the extended_master_secret extension (RFC 7627 section 4): the seed is
    the hash of the handshake messages up to and including ClientKeyExchange."""
    return prf(hash_name, pre_master, b"extended master secret", session_hash, _MASTER_SECRET_LEN)


def key_block(
    hash_name: str, master_secret: bytes, server_random: bytes, client_random: bytes, length: int
) -> bytes:
    """key_block (RFC 5246 section 6.3); note the seed is server_random + client_random."""
    return prf(hash_name, master_secret, b"key expansion", server_random + client_random, length)


@dataclass(frozen=True, slots=True)
class Keys12:
    """The partitioned key_block of one TLS 1.2 connection (RFC 5246 section 6.3)."""

    client_write_mac: bytes = field(repr=False)
    server_write_mac: bytes = field(repr=False)
    client_write_key: bytes = field(repr=False)
    server_write_key: bytes = field(repr=False)
    client_write_iv: bytes = field(repr=False)
    """The GCM/CCM salt or the ChaCha20 IV. For CBC this is the TLS 1.0 implicit IV, which the
    explicit-IV record format of TLS 1.1+ never uses; it is derived anyway because it comes after
    the other keys and so costs nothing and changes nothing."""
    server_write_iv: bytes = field(repr=False)


def derive_keys12(
    params: SuiteParams,
    master_secret: bytes,
    client_random: bytes,
    server_random: bytes,
    prf_hash: str | None = None,
) -> Keys12:
    """Expand the master secret into the record keys of ``params`` (with the PRF of
    ``prf_hash`` when given: :data:`LEGACY_PRF` for TLS 1.0 and 1.1)."""
    mac, key, iv = params.mac_len, params.key_len, params.iv_len
    hash_name = prf_hash or params.hash_name
    block = key_block(hash_name, master_secret, server_random, client_random, 2 * (mac + key + iv))
    parts = []
    pos = 0
    for n in (mac, mac, key, key, iv, iv):
        parts.append(block[pos : pos + n])
        pos += n
    return Keys12(*parts)


def verify_data12(hash_name: str, master_secret: bytes, label: bytes | str, handshake_hash: bytes) -> bytes:
    """Finished.verify_data (RFC 5246 section 7.4.9); ``label`` is b"client finished" or
    b"server finished" and ``handshake_hash`` the hash of all handshake messages before this one."""
    if isinstance(label, str):
        label = label.encode("ascii")
    return prf(hash_name, master_secret, label, handshake_hash, _VERIFY_DATA_LEN)
