"""Record protection: one object per direction and key, with the sequence number explicit.

The sequence number is a parameter, not hidden state: the record-direction object of
:mod:`capdebug.crypto.record` owns it and the record size limits, because the capture decoder
does trial decryption (after a lost segment it may try seq, seq+1, ...). Objects are cheap to
keep: the AEAD context, the IV as an integer and the static parts of the nonce and AAD are built
once, so that a record costs one nonce, one AAD and the AEAD call.

* TLS 1.3: RFC 8446 section 5.2 (AAD = the record header) and 5.3 (nonce = iv XOR seq).
* TLS 1.2 AEAD: RFC 5246 section 6.2.3.3 (AAD = seq || type || version || length),
  RFC 5288 section 3 and RFC 6655 section 3 (nonce = 4-byte salt || 8-byte explicit nonce),
  RFC 7905 section 2 (ChaCha20-Poly1305: nonce = iv XOR seq, no explicit part).
* TLS 1.2 CBC-HMAC lives in :mod:`capdebug.crypto.cbc`.
"""

from __future__ import annotations

import struct
from typing import Final, Literal, Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESCCM, AESGCM, ChaCha20Poly1305

from ..errors import CryptoError, DecryptError, UsageError
from .prf12 import Keys12
from .schedule13 import traffic_keys
from .suites import SuiteParams

__all__ = [
    "SEQUENCE_LIMIT",
    "Protection",
    "Tls12AeadProtection",
    "Tls13Protection",
    "tls12_protection",
]

BytesLike = bytes | bytearray | memoryview

_APPLICATION_DATA: Final = 23
_TLS12: Final = 0x0303
#: Sequence numbers are uint64 and never wrap (RFC 8446 section 5.3, RFC 5246 section 6.1).
SEQUENCE_LIMIT: Final = 1 << 64
_HEADER: Final = struct.Struct(">BHH")
_AAD12: Final = struct.Struct(">QBHH")

Aead = AESGCM | AESCCM | ChaCha20Poly1305


class Protection(Protocol):
    """What the decoder and the engine need of any record protection.

    ``open_record`` takes the 5-byte record header as received and the fragment, and returns the
    protected payload: for TLS 1.3 the TLSInnerPlaintext (content, type, zero padding), for TLS
    1.2 the plaintext fragment. ``seal_record`` is the inverse and returns the whole record;
    for TLS 1.3 ``content_type`` is the outer type (application_data) and ``payload`` the
    TLSInnerPlaintext. Both raise :class:`~capdebug.errors.DecryptError` on authentication failure.
    """

    @property
    def params(self) -> SuiteParams: ...

    def open_record(self, header: BytesLike, fragment: BytesLike, seq: int) -> bytes: ...

    def seal_record(self, content_type: int, payload: bytes, seq: int) -> bytes: ...


def _make_aead(params: SuiteParams, key: bytes) -> Aead:
    try:
        if params.cipher == "AES-GCM":
            return AESGCM(key)
        if params.cipher == "CHACHA20-POLY1305":
            return ChaCha20Poly1305(key)
        if params.cipher in ("AES-CCM", "AES-CCM8"):
            return AESCCM(key, tag_length=params.tag_len)
    except ValueError as exc:
        raise CryptoError(f"{params.name}: bad key: {exc}") from exc
    raise UsageError(f"{params.name} is not an AEAD suite")


def _check_seq(seq: int) -> None:
    if not 0 <= seq < SEQUENCE_LIMIT:
        raise UsageError(f"sequence number {seq} out of range")


class Tls13Protection:
    """TLS 1.3 record protection for one direction and one traffic secret (RFC 8446 5.2-5.3)."""

    __slots__ = ("_aead", "_iv", "_overhead", "params")

    def __init__(self, params: SuiteParams, traffic_secret: bytes) -> None:
        if params.version != "1.3":
            raise UsageError(f"{params.name} is not a TLS 1.3 suite")
        key, iv = traffic_keys(params.hash_name, traffic_secret, params.key_len, params.iv_len)
        self.params = params
        self._aead = _make_aead(params, key)
        self._iv = int.from_bytes(iv, "big")
        self._overhead = params.tag_len

    def __repr__(self) -> str:
        return f"Tls13Protection({self.params.name})"

    def open_record(self, header: BytesLike, ciphertext: BytesLike, seq: int) -> bytes:
        """Decrypt one record's encrypted_record; ``header`` is its 5-byte header, the AAD.

        Returns the TLSInnerPlaintext with its padding: stripping it is the wire layer's job.
        """
        if not 0 <= seq < SEQUENCE_LIMIT:
            _check_seq(seq)
        try:
            return self._aead.decrypt((self._iv ^ seq).to_bytes(12, "big"), ciphertext, header)
        except InvalidTag as exc:
            raise DecryptError(f"{self.params.name}: bad record tag at seq {seq}") from exc

    def seal(self, inner_plaintext: bytes, seq: int) -> bytes:
        """Encrypt a TLSInnerPlaintext into a complete application_data record.

        The record size limits are checked by :class:`~capdebug.crypto.record.RecordDirection`.
        """
        _check_seq(seq)
        length = len(inner_plaintext) + self._overhead
        if length > 0xFFFF:  # the uint16 length field; the protocol's limit is RecordDirection's
            raise UsageError(f"record of {length} bytes does not fit a record header")
        header = _HEADER.pack(_APPLICATION_DATA, _TLS12, length)
        return header + self._aead.encrypt((self._iv ^ seq).to_bytes(12, "big"), inner_plaintext, header)

    def open(self, header: BytesLike, ciphertext: BytesLike, seq: int) -> bytes:
        # A method, not an alias: mypyc compiles no method aliases (open_record is the hot one).
        return self.open_record(header, ciphertext, seq)

    def seal_record(self, content_type: int, payload: bytes, seq: int) -> bytes:
        if content_type != _APPLICATION_DATA:
            raise UsageError("TLS 1.3 protected records are always of type application_data")
        return self.seal(payload, seq)


class Tls12AeadProtection:
    """TLS 1.2 AEAD record protection (AES-GCM, AES-CCM, ChaCha20-Poly1305) for one direction."""

    __slots__ = ("_aead", "_explicit", "_iv", "_salt", "_tag_len", "params")

    def __init__(self, params: SuiteParams, key: bytes, fixed_iv: bytes) -> None:
        if params.version != "1.2" or not params.is_aead:
            raise UsageError(f"{params.name} is not a TLS 1.2 AEAD suite")
        if len(fixed_iv) != params.iv_len:
            raise UsageError(f"{params.name}: fixed IV must be {params.iv_len} bytes")
        self.params = params
        self._aead = _make_aead(params, key)
        self._explicit = params.record_iv_len
        self._salt = bytes(fixed_iv)
        self._iv = int.from_bytes(fixed_iv, "big")
        self._tag_len = params.tag_len

    def __repr__(self) -> str:
        return f"Tls12AeadProtection({self.params.name})"

    def open(self, content_type: int, version: int, fragment: BytesLike, seq: int) -> bytes:
        """Decrypt a TLSCiphertext.fragment (GenericAEADCipher, RFC 5246 section 6.2.3.3)."""
        if not 0 <= seq < SEQUENCE_LIMIT:
            _check_seq(seq)
        explicit = self._explicit
        length = len(fragment) - explicit - self._tag_len
        if length < 0:
            raise DecryptError(f"{self.params.name}: record of {len(fragment)} bytes is too short")
        view = fragment if isinstance(fragment, memoryview) else memoryview(fragment)
        if explicit:
            nonce = self._salt + view[:explicit]
            ciphertext: BytesLike = view[explicit:]
        else:
            nonce = (self._iv ^ seq).to_bytes(12, "big")
            ciphertext = view
        try:
            return self._aead.decrypt(nonce, ciphertext, _AAD12.pack(seq, content_type, version, length))
        except InvalidTag as exc:
            raise DecryptError(f"{self.params.name}: bad record tag at seq {seq}") from exc

    def seal(
        self, content_type: int, version: int, plaintext: bytes, seq: int, explicit_nonce: bytes | None = None
    ) -> bytes:
        """Encrypt ``plaintext`` into a TLSCiphertext.fragment. The explicit nonce defaults to the
        sequence number, which is unique per key as RFC 5288 section 3 requires."""
        _check_seq(seq)
        aad = _AAD12.pack(seq, content_type, version, len(plaintext))
        if self._explicit:
            if explicit_nonce is None:
                explicit_nonce = seq.to_bytes(8, "big")
            elif len(explicit_nonce) != self._explicit:
                raise UsageError(f"explicit nonce must be {self._explicit} bytes")
            return explicit_nonce + self._aead.encrypt(self._salt + explicit_nonce, plaintext, aad)
        return self._aead.encrypt((self._iv ^ seq).to_bytes(12, "big"), plaintext, aad)

    def open_record(self, header: BytesLike, fragment: BytesLike, seq: int) -> bytes:
        return self.open(header[0], (header[1] << 8) | header[2], fragment, seq)

    def seal_record(self, content_type: int, payload: bytes, seq: int) -> bytes:
        fragment = self.seal(content_type, _TLS12, payload, seq)
        return _HEADER.pack(content_type, _TLS12, len(fragment)) + fragment


def tls12_protection(
    params: SuiteParams,
    keys: Keys12,
    writer: Literal["client", "server"],
    *,
    encrypt_then_mac: bool = False,
    tls10: bool = False,
) -> Protection:
    """The protection of the records ``writer`` sends, from a partitioned key block.

    ``encrypt_then_mac`` (RFC 7366) and ``tls10`` (the implicit IV chain of TLS 1.0) only
    matter for CBC suites.
    """
    if writer == "client":
        mac_key, key, iv = keys.client_write_mac, keys.client_write_key, keys.client_write_iv
    else:
        mac_key, key, iv = keys.server_write_mac, keys.server_write_key, keys.server_write_iv
    if params.is_aead:
        return Tls12AeadProtection(params, key, iv)
    from .cbc import Tls12CbcProtection  # legacy stays in its own module

    return Tls12CbcProtection(params, key, mac_key, encrypt_then_mac, implicit_iv=iv if tls10 else None)
