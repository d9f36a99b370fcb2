"""Cipher suite parameters: what each IANA cipher suite code means for the record layer.

The table is keyed by the plain IANA code (``0x1301``) so that this module does not depend on
the wire layer's enums; each entry carries its IANA name. Sources:

* TLS 1.3: RFC 8446 section B.4.
* TLS 1.2 AES-GCM: RFC 5288 (RSA, DHE) and RFC 5289 (ECDHE); nonce layout in RFC 5288 section 3.
* TLS 1.2 AES-CCM: RFC 6655 (RSA, DHE) and RFC 7251 (ECDHE-ECDSA).
* TLS 1.2 ChaCha20-Poly1305: RFC 7905.
* TLS 1.2 AES-CBC with HMAC: RFC 5246 appendix A.5 and C, RFC 5289 (ECDHE SHA-256/384).

For TLS 1.2, ``hash_name`` is the PRF hash (RFC 5246 section 5: SHA-256 unless the suite names
SHA-384), which for the ``_SHA`` CBC suites differs from the record MAC (``mac_name`` = sha1).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["SUITES", "Cipher", "KeyExchange", "SuiteParams", "suite"]

Cipher = Literal["AES-GCM", "CHACHA20-POLY1305", "AES-CCM", "AES-CCM8", "AES-CBC"]
KeyExchange = Literal["ECDHE", "DHE", "RSA"]

_HASH_LEN = {"sha1": 20, "sha256": 32, "sha384": 48}


@dataclass(frozen=True, slots=True)
class SuiteParams:
    """Record-layer parameters of one cipher suite."""

    code: int
    """IANA code point, e.g. 0x1301."""
    name: str
    """IANA name, e.g. ``TLS_AES_128_GCM_SHA256``."""
    version: Literal["1.3", "1.2"]
    """The protocol version whose record layer the suite uses."""
    hash_name: str
    """HKDF hash (TLS 1.3) or PRF hash (TLS 1.2): ``sha256`` or ``sha384``."""
    hash_len: int
    cipher: Cipher
    key_len: int
    iv_len: int
    """Fixed IV from the key schedule: 12 for TLS 1.3 and TLS 1.2 ChaCha20, the 4-byte salt for
    TLS 1.2 GCM/CCM, 16 for CBC (only TLS 1.0 uses it; TLS 1.1+ CBC IVs are explicit)."""
    record_iv_len: int
    """Explicit per-record nonce or IV carried in the fragment: 8 for TLS 1.2 GCM/CCM, 16 for CBC."""
    tag_len: int
    """AEAD tag length; 0 for CBC (authenticated by the MAC)."""
    kx: KeyExchange | None
    """TLS 1.2 key exchange; None for TLS 1.3 suites, which do not fix it."""
    auth: Literal["RSA", "ECDSA"] | None = None
    """TLS 1.2 server authentication; None for TLS 1.3."""
    mac_name: str | None = None
    """HMAC hash of CBC suites (``sha1``, ``sha256``, ``sha384``); None for AEAD suites."""
    mac_len: int = 0

    @property
    def is_aead(self) -> bool:
        return self.cipher != "AES-CBC"


def _t13(code: int, name: str, hash_name: str, cipher: Cipher, key_len: int, tag_len: int) -> SuiteParams:
    return SuiteParams(
        code, name, "1.3", hash_name, _HASH_LEN[hash_name], cipher, key_len, 12, 0, tag_len, None
    )


def _kx_auth(name: str) -> tuple[KeyExchange, Literal["RSA", "ECDSA"]]:
    if name.startswith("TLS_ECDHE_ECDSA_"):
        return "ECDHE", "ECDSA"
    if name.startswith("TLS_ECDHE_RSA_"):
        return "ECDHE", "RSA"
    if name.startswith("TLS_DHE_RSA_"):
        return "DHE", "RSA"
    if name.startswith("TLS_RSA_"):
        return "RSA", "RSA"
    raise AssertionError(name)


def _t12_aead(code: int, name: str) -> SuiteParams:
    kx, auth = _kx_auth(name)
    hash_name = "sha384" if name.endswith("_SHA384") else "sha256"
    key_len = 32 if "_AES_256_" in name else 16
    cipher: Cipher
    if "_CHACHA20_POLY1305_" in name:
        # RFC 7905 section 2: 12-byte fixed IV XORed with the sequence number, no explicit nonce.
        return SuiteParams(code, name, "1.2", hash_name, _HASH_LEN[hash_name], "CHACHA20-POLY1305",
                           32, 12, 0, 16, kx, auth)  # fmt: skip
    if "_GCM_" in name:
        cipher, tag_len = "AES-GCM", 16
    elif name.endswith("_CCM_8"):
        cipher, tag_len = "AES-CCM8", 8
    else:
        cipher, tag_len = "AES-CCM", 16
    # RFC 5288 section 3 / RFC 6655 section 3: 4-byte salt from the key block + 8-byte explicit nonce.
    return SuiteParams(code, name, "1.2", hash_name, _HASH_LEN[hash_name], cipher, key_len, 4, 8,
                       tag_len, kx, auth)  # fmt: skip


def _t12_cbc(code: int, name: str) -> SuiteParams:
    kx, auth = _kx_auth(name)
    mac_name = {"SHA": "sha1", "SHA256": "sha256", "SHA384": "sha384"}[name.rsplit("_", 1)[1]]
    hash_name = "sha384" if mac_name == "sha384" else "sha256"
    key_len = 32 if "_AES_256_" in name else 16
    return SuiteParams(code, name, "1.2", hash_name, _HASH_LEN[hash_name], "AES-CBC", key_len, 16, 16,
                       0, kx, auth, mac_name, _HASH_LEN[mac_name])  # fmt: skip


_TABLE: tuple[SuiteParams, ...] = (
    # RFC 8446 section B.4
    _t13(0x1301, "TLS_AES_128_GCM_SHA256", "sha256", "AES-GCM", 16, 16),
    _t13(0x1302, "TLS_AES_256_GCM_SHA384", "sha384", "AES-GCM", 32, 16),
    _t13(0x1303, "TLS_CHACHA20_POLY1305_SHA256", "sha256", "CHACHA20-POLY1305", 32, 16),
    _t13(0x1304, "TLS_AES_128_CCM_SHA256", "sha256", "AES-CCM", 16, 16),
    _t13(0x1305, "TLS_AES_128_CCM_8_SHA256", "sha256", "AES-CCM8", 16, 8),
    # RFC 5288, RFC 5289: AES-GCM
    _t12_aead(0x009C, "TLS_RSA_WITH_AES_128_GCM_SHA256"),
    _t12_aead(0x009D, "TLS_RSA_WITH_AES_256_GCM_SHA384"),
    _t12_aead(0x009E, "TLS_DHE_RSA_WITH_AES_128_GCM_SHA256"),
    _t12_aead(0x009F, "TLS_DHE_RSA_WITH_AES_256_GCM_SHA384"),
    _t12_aead(0xC02B, "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"),
    _t12_aead(0xC02C, "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384"),
    _t12_aead(0xC02F, "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"),
    _t12_aead(0xC030, "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384"),
    # RFC 7905: ChaCha20-Poly1305
    _t12_aead(0xCCA8, "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256"),
    _t12_aead(0xCCA9, "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256"),
    _t12_aead(0xCCAA, "TLS_DHE_RSA_WITH_CHACHA20_POLY1305_SHA256"),
    # RFC 6655, RFC 7251: AES-CCM
    _t12_aead(0xC09C, "TLS_RSA_WITH_AES_128_CCM"),
    _t12_aead(0xC09D, "TLS_RSA_WITH_AES_256_CCM"),
    _t12_aead(0xC09E, "TLS_DHE_RSA_WITH_AES_128_CCM"),
    _t12_aead(0xC09F, "TLS_DHE_RSA_WITH_AES_256_CCM"),
    _t12_aead(0xC0A0, "TLS_RSA_WITH_AES_128_CCM_8"),
    _t12_aead(0xC0A1, "TLS_RSA_WITH_AES_256_CCM_8"),
    _t12_aead(0xC0A2, "TLS_DHE_RSA_WITH_AES_128_CCM_8"),
    _t12_aead(0xC0A3, "TLS_DHE_RSA_WITH_AES_256_CCM_8"),
    _t12_aead(0xC0AC, "TLS_ECDHE_ECDSA_WITH_AES_128_CCM"),
    _t12_aead(0xC0AD, "TLS_ECDHE_ECDSA_WITH_AES_256_CCM"),
    _t12_aead(0xC0AE, "TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8"),
    _t12_aead(0xC0AF, "TLS_ECDHE_ECDSA_WITH_AES_256_CCM_8"),
    # RFC 5246 appendix A.5, RFC 4492/8422, RFC 5289: AES-CBC with HMAC
    _t12_cbc(0x002F, "TLS_RSA_WITH_AES_128_CBC_SHA"),
    _t12_cbc(0x0033, "TLS_DHE_RSA_WITH_AES_128_CBC_SHA"),
    _t12_cbc(0x0035, "TLS_RSA_WITH_AES_256_CBC_SHA"),
    _t12_cbc(0x0039, "TLS_DHE_RSA_WITH_AES_256_CBC_SHA"),
    _t12_cbc(0x003C, "TLS_RSA_WITH_AES_128_CBC_SHA256"),
    _t12_cbc(0x003D, "TLS_RSA_WITH_AES_256_CBC_SHA256"),
    _t12_cbc(0x0067, "TLS_DHE_RSA_WITH_AES_128_CBC_SHA256"),
    _t12_cbc(0x006B, "TLS_DHE_RSA_WITH_AES_256_CBC_SHA256"),
    _t12_cbc(0xC009, "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA"),
    _t12_cbc(0xC00A, "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA"),
    _t12_cbc(0xC013, "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA"),
    _t12_cbc(0xC014, "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA"),
    _t12_cbc(0xC023, "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256"),
    _t12_cbc(0xC024, "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA384"),
    _t12_cbc(0xC027, "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256"),
    _t12_cbc(0xC028, "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384"),
)

SUITES: dict[int, SuiteParams] = {s.code: s for s in _TABLE}
"""Every cipher suite capdebug can decrypt, by IANA code."""


def suite(code: int) -> SuiteParams | None:
    """The parameters of cipher suite ``code``, or None when capdebug does not support it."""
    return SUITES.get(code)
