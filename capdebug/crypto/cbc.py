"""Legacy AES-CBC with HMAC record protection (TLS 1.0 to 1.2), quarantined here.

* MAC-then-encrypt, explicit per-record IV: RFC 5246 section 6.2.3.2 (GenericBlockCipher),
  MAC input from section 6.2.3.1; TLS 1.1 is the same (RFC 4346 6.2.3.2).
* TLS 1.0 (RFC 2246 6.2.3.2): no explicit IV. The first record's IV comes from the key block,
  and each later record's IV is the last ciphertext block of the record before it.
* Encrypt-then-MAC: RFC 7366 section 3, where the MAC covers the IV and the ciphertext.

The decoder needs to reject bad padding and bad MACs, not to resist a padding oracle: it never
answers anyone. Both failures raise the same :class:`~capdebug.errors.DecryptError` anyway, as a
server's bad_record_mac would (RFC 5246 section 7.2.2), so the engine does not leak which failed.
"""

from __future__ import annotations

import hmac
import os
import struct

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from ..errors import CryptoError, DecryptError, UsageError
from .protection import SEQUENCE_LIMIT, BytesLike
from .suites import SuiteParams

__all__ = ["Tls12CbcProtection"]

_BLOCK = 16
_TLS12 = 0x0303
_MAC_HEADER = struct.Struct(">QBHH")  # seq_num, type, version, length (RFC 5246 section 6.2.3.1)
_HEADER = struct.Struct(">BHH")


class Tls12CbcProtection:
    """TLS 1.1+/1.2 AES-CBC-HMAC record protection for one direction."""

    __slots__ = ("_algorithm", "_etm", "_hmac", "_iv", "_mac_len", "_seen", "_seen_iv", "params")

    def __init__(
        self,
        params: SuiteParams,
        key: bytes,
        mac_key: bytes,
        encrypt_then_mac: bool,
        implicit_iv: bytes | None = None,
    ) -> None:
        if params.cipher != "AES-CBC" or params.mac_name is None:
            raise UsageError(f"{params.name} is not a CBC suite")
        if len(mac_key) != params.mac_len:
            raise UsageError(f"{params.name}: MAC key must be {params.mac_len} bytes")
        try:
            self._algorithm = algorithms.AES(key)
        except ValueError as exc:
            raise CryptoError(f"{params.name}: bad key: {exc}") from exc
        self.params = params
        self._etm = encrypt_then_mac
        # A keyed HMAC copied per record saves re-hashing the padded key each time.
        self._hmac = hmac.new(mac_key, digestmod=params.mac_name)
        self._mac_len = params.mac_len
        self._iv = implicit_iv
        """TLS 1.0: the IV of the next record not yet seen (None: explicit IVs)."""
        self._seen = b""
        self._seen_iv = b""
        """TLS 1.0: the last ciphertext block of the record last opened, and the IV it used: a
        record tried again (another sequence number) takes the same IV."""

    def __repr__(self) -> str:
        etm = ", encrypt_then_mac" if self._etm else ""
        return f"Tls12CbcProtection({self.params.name}{etm})"

    def _mac(self, seq: int, content_type: int, version: int, data: BytesLike) -> bytes:
        h = self._hmac.copy()
        h.update(_MAC_HEADER.pack(seq, content_type, version, len(data)))
        h.update(data)
        return h.digest()

    def _bad(self, seq: int, why: str) -> DecryptError:
        return DecryptError(f"{self.params.name}: bad record MAC at seq {seq} ({why})")

    def open(self, content_type: int, version: int, fragment: BytesLike, seq: int) -> bytes:
        """Check and decrypt a TLSCiphertext.fragment; return the plaintext content."""
        if not 0 <= seq < SEQUENCE_LIMIT:
            raise UsageError(f"sequence number {seq} out of range")
        view = fragment if isinstance(fragment, memoryview) else memoryview(fragment)
        mac_len = self._mac_len
        # The IV block in front of the ciphertext (TLS 1.1+), or none (TLS 1.0: chained).
        explicit = _BLOCK if self._iv is None else 0
        if self._etm:
            enc_len = len(view) - mac_len
            if enc_len < explicit + _BLOCK or enc_len % _BLOCK:
                raise self._bad(seq, f"length {len(view)}")
            iv = None if explicit else self._chained_iv(view[enc_len - _BLOCK : enc_len])
            expected = self._mac(seq, content_type, version, view[:enc_len])
            if not hmac.compare_digest(expected, view[enc_len:]):
                raise self._bad(seq, "MAC")
            plain = self._decrypt(view[:enc_len], iv)
            content_len = _unpad(plain)
            if content_len < 0:
                raise self._bad(seq, "padding")
            return plain[:content_len]
        if len(view) < explicit + mac_len + 1 or len(view) % _BLOCK:
            raise self._bad(seq, f"length {len(view)}")
        iv = None if explicit else self._chained_iv(view[-_BLOCK:])
        plain = self._decrypt(view, iv)
        unpadded = _unpad(plain)
        content_len = unpadded - mac_len
        if unpadded < 0 or content_len < 0:
            raise self._bad(seq, "padding")
        pview = memoryview(plain)
        expected = self._mac(seq, content_type, version, pview[:content_len])
        if not hmac.compare_digest(expected, pview[content_len:unpadded]):
            raise self._bad(seq, "MAC")
        return plain[:content_len]

    def _chained_iv(self, last_block: memoryview) -> bytes:
        """TLS 1.0: the IV of the record whose last ciphertext block is ``last_block`` (the
        chain of the module docstring); a record tried again gets the IV it had."""
        assert self._iv is not None
        last = bytes(last_block)
        if last != self._seen:
            self._seen, self._seen_iv = last, self._iv
            self._iv = last
        return self._seen_iv

    def _decrypt(self, data: memoryview, iv: bytes | None = None) -> bytes:
        """CBC-decrypt ``data``: IV block then ciphertext, or only ciphertext with ``iv``."""
        # A CBC context per record: the IV changes every record, and (measured) a long-lived ECB
        # context with a big-integer XOR for the chaining is slower on full-size records.
        if iv is None:
            iv, data = bytes(data[:_BLOCK]), data[_BLOCK:]
        decryptor = Cipher(self._algorithm, modes.CBC(iv)).decryptor()
        return decryptor.update(data) + decryptor.finalize()

    def _encrypt(self, iv: bytes, padded: bytes) -> bytes:
        encryptor = Cipher(self._algorithm, modes.CBC(iv)).encryptor()
        return iv + encryptor.update(padded) + encryptor.finalize()

    def seal(
        self, content_type: int, version: int, plaintext: bytes, seq: int, iv: bytes | None = None
    ) -> bytes:
        """Protect ``plaintext`` into a TLSCiphertext.fragment with a fresh random IV (or ``iv``)."""
        if not 0 <= seq < SEQUENCE_LIMIT:
            raise UsageError(f"sequence number {seq} out of range")
        if iv is None:
            iv = os.urandom(_BLOCK)
        elif len(iv) != _BLOCK:
            raise UsageError("CBC IV must be 16 bytes")
        if self._etm:
            encrypted = self._encrypt(iv, _pad(plaintext))
            return encrypted + self._mac(seq, content_type, version, encrypted)
        mac = self._mac(seq, content_type, version, plaintext)
        return self._encrypt(iv, _pad(plaintext + mac))

    def open_record(self, header: BytesLike, fragment: BytesLike, seq: int) -> bytes:
        return self.open(header[0], (header[1] << 8) | header[2], fragment, seq)

    def seal_record(self, content_type: int, payload: bytes, seq: int) -> bytes:
        fragment = self.seal(content_type, _TLS12, payload, seq)
        return _HEADER.pack(content_type, _TLS12, len(fragment)) + fragment


def _pad(data: bytes) -> bytes:
    """Minimal padding: padding_length+1 bytes, each equal to padding_length (section 6.2.3.2)."""
    pad = _BLOCK - 1 - len(data) % _BLOCK
    return data + bytes((pad,)) * (pad + 1)


def _unpad(plain: bytes) -> int:
    """Length of ``plain`` without its padding, or -1 when the padding is malformed."""
    if not plain:
        return -1
    pad = plain[-1]
    end = len(plain) - pad - 1
    if end < 0 or plain.count(pad, end) != pad + 1:
        return -1
    return end
