"""The record layer of one direction: version, epoch, protection, sequence number and limits.

One :class:`RecordDirection` per direction and key epoch is shared by the two drivers:

* the engine seals with :meth:`RecordDirection.seal` and opens with :meth:`RecordDirection.open`,
  both at the current sequence number, which they advance;
* the capture decoder, a passive observer, opens with :meth:`RecordDirection.open_at` at an
  explicit sequence number (trial windows after a stream gap) without changing any state, then
  calls :meth:`RecordDirection.advance` once it knows which number authenticated.

The limits are enforced here and nowhere else, each with a named error:

* plaintext fragments at most 2^14 bytes (RFC 8446 section 5.1, RFC 5246 section 6.2.1);
  a TLSInnerPlaintext at most 2^14 + 1 bytes (RFC 8446 section 5.4);
* protected records at most 2^14 + 256 bytes in TLS 1.3 (RFC 8446 section 5.2) and
  2^14 + 2048 in TLS 1.2 (RFC 5246 section 6.2.3): :class:`RecordOverflow`;
* sequence numbers below 2^64 (RFC 8446 section 5.3, RFC 5246 section 6.1): a direction that
  would wrap must rekey or close, :class:`SequenceOverflow`.

A KeyUpdate's next generation (RFC 8446 section 7.2) is :meth:`RecordDirection.key_update`; the
derivation itself is :func:`~capdebug.crypto.schedule13.next_traffic_secret`.
"""

from __future__ import annotations

from typing import Final, Literal

from .._buffer import Buffer
from ..errors import CryptoError, DecodeError, UsageError
from ..wire.record import (
    MAX_CIPHERTEXT_LENGTH,
    MAX_CIPHERTEXT_LENGTH_TLS13,
    MAX_PLAINTEXT_LENGTH,
    RecordHeader,
    build_inner_plaintext,
    push_record_header,
    split_inner_plaintext,
)
from .protection import SEQUENCE_LIMIT, BytesLike, Protection, Tls13Protection
from .schedule13 import next_traffic_secret
from .suites import SuiteParams

__all__ = [
    "SEQUENCE_LIMIT",
    "RecordDirection",
    "RecordOverflow",
    "SequenceOverflow",
]

_APPLICATION_DATA: Final = 23
_TLS12: Final = 0x0303
_MAX_INNER_PLAINTEXT: Final = MAX_PLAINTEXT_LENGTH + 1  # content + type byte + padding (RFC 8446 5.4)


class RecordOverflow(DecodeError):  # noqa: N818 - named after the alert it calls for
    """A record or its plaintext is longer than RFC 8446 5.1/5.2/5.4 or RFC 5246 6.2 allow
    (the ``record_overflow`` alert)."""

    def __init__(self, message: str, length: int, limit: int) -> None:
        super().__init__(message)
        self.length = length
        self.limit = limit


class SequenceOverflow(CryptoError):  # noqa: N818 - the condition, as RFC 8446 5.3 names it
    """The 64-bit sequence number is exhausted: the direction must rekey or close."""


Version = Literal["1.2", "1.3"]


class RecordDirection:
    """The records of one direction under one key (or in the clear, ``protection`` None).

    ``version`` decides the record format: TLS 1.3 protected records are application_data
    with a TLSInnerPlaintext inside; TLS 1.2 records keep their content type outside.
    """

    __slots__ = ("_secret", "epoch", "generation", "max_ciphertext", "protection", "seq", "version")

    def __init__(
        self,
        protection: Protection | None = None,
        *,
        version: Version = "1.3",
        epoch: str = "plaintext",
        secret: bytes = b"",
        generation: int = 0,
    ) -> None:
        self.protection = protection
        """The key, or None while records are in the clear."""
        self.version: Version = version
        self.epoch = epoch
        """A name for traces and errors: "plaintext", "early", "handshake", "application"..."""
        self.seq = 0
        """The sequence number of the next record (RFC 8446 5.3, RFC 5246 6.1)."""
        self.generation = generation
        """KeyUpdate generation of a TLS 1.3 application key (RFC 8446 7.2)."""
        self.max_ciphertext = MAX_CIPHERTEXT_LENGTH_TLS13 if version == "1.3" else MAX_CIPHERTEXT_LENGTH
        self._secret = secret

    @classmethod
    def tls13(
        cls, params: SuiteParams, traffic_secret: bytes, epoch: str, generation: int = 0
    ) -> RecordDirection:
        """A TLS 1.3 direction keyed by a traffic secret (RFC 8446 7.3), sequence number 0."""
        return cls(
            Tls13Protection(params, traffic_secret),
            version="1.3",
            epoch=epoch,
            secret=traffic_secret,
            generation=generation,
        )

    def __repr__(self) -> str:
        return f"RecordDirection({self.version}, {self.epoch}, {self.protection!r}, seq={self.seq})"

    @property
    def protected(self) -> bool:
        return self.protection is not None

    @property
    def overhead(self) -> int:
        """Bytes a protected record adds to its content (without padding): for TLS 1.3 the tag
        and the inner content type; for TLS 1.2 the explicit nonce or IV, the tag or the MAC
        (CBC padding comes on top). A passive observer counting records it does not open
        subtracts this to report the content length."""
        protection = self.protection
        if protection is None:
            return 0
        params = protection.params
        if self.version == "1.3":
            return params.tag_len + 1
        return params.record_iv_len + params.tag_len + params.mac_len

    @property
    def traffic_secret(self) -> bytes:
        """The TLS 1.3 traffic secret of this generation (empty for TLS 1.2 and plaintext)."""
        return self._secret

    # -- sequence numbers --------------------------------------------------------------------

    def advance(self, n: int = 1) -> None:
        """Count ``n`` records as received or sent (a passive observer's bookkeeping)."""
        seq = self.seq + n
        if seq > SEQUENCE_LIMIT:
            raise SequenceOverflow(f"{self.epoch} sequence number would pass 2^64")
        self.seq = seq

    # -- opening -----------------------------------------------------------------------------

    def open(self, header: BytesLike, fragment: BytesLike) -> tuple[int, BytesLike]:
        """Open the next record: ``(content_type, content)``; the sequence number advances only
        when the record authenticates. See :meth:`open_at` for the errors."""
        result = self.open_at(header, fragment, self.seq)
        if self.protection is not None:
            self.seq += 1
        return result

    def open_at(self, header: BytesLike, fragment: BytesLike, seq: int) -> tuple[int, BytesLike]:
        """Open a record as if it had number ``seq``, changing nothing (trial decryption).

        Returns ``(content_type, content)``: for TLS 1.3 the inner type and the content without
        padding; for TLS 1.2 and for plaintext the header's type and the fragment (plaintext
        fragments are returned as given, without a copy).

        Raises :class:`RecordOverflow` for a record or plaintext over its limit,
        :class:`SequenceOverflow` when ``seq`` is not below 2^64,
        :class:`~capdebug.errors.DecryptError` when the record does not authenticate and
        :class:`~capdebug.errors.DecodeError` for a TLSInnerPlaintext without a content type.
        """
        length = len(fragment)
        protection = self.protection
        if protection is None:
            if length > MAX_PLAINTEXT_LENGTH:
                raise RecordOverflow(f"plaintext record of {length} bytes", length, MAX_PLAINTEXT_LENGTH)
            return header[0], fragment
        if length > self.max_ciphertext:
            raise RecordOverflow(f"protected record of {length} bytes", length, self.max_ciphertext)
        if seq >= SEQUENCE_LIMIT or seq < 0:
            raise SequenceOverflow(f"{self.epoch} sequence number {seq} is not below 2^64")
        payload = protection.open_record(header, fragment, seq)
        if self.version == "1.3":
            if len(payload) > _MAX_INNER_PLAINTEXT:
                raise RecordOverflow(
                    f"inner plaintext of {len(payload)} bytes", len(payload), _MAX_INNER_PLAINTEXT
                )
            return split_inner_plaintext(payload)
        if len(payload) > MAX_PLAINTEXT_LENGTH:
            raise RecordOverflow(f"plaintext of {len(payload)} bytes", len(payload), MAX_PLAINTEXT_LENGTH)
        return header[0], payload

    # -- sealing -----------------------------------------------------------------------------

    def seal(
        self,
        content_type: int,
        content: BytesLike,
        *,
        padding: int = 0,
        legacy_version: int = _TLS12,
    ) -> bytes:
        """One whole record carrying ``content`` (at most 2^14 bytes) at the next number.

        ``padding`` zeros follow the TLS 1.3 inner content type (RFC 8446 5.4); it is clipped to
        the TLSInnerPlaintext limit. ``legacy_version`` is the header version of plaintext
        records (0x0301 in a first ClientHello, RFC 8446 5.1); protected records use 0x0303.
        """
        length = len(content)
        if length > MAX_PLAINTEXT_LENGTH:
            raise RecordOverflow(f"plaintext of {length} bytes", length, MAX_PLAINTEXT_LENGTH)
        protection = self.protection
        if protection is None:
            return _header(content_type, legacy_version, length) + content
        seq = self.seq
        if seq >= SEQUENCE_LIMIT:
            raise SequenceOverflow(f"{self.epoch} sequence number exhausted: rekey or close")
        if self.version == "1.3":
            padding = min(padding, MAX_PLAINTEXT_LENGTH - length)
            inner = build_inner_plaintext(content_type, bytes(content), padding)
            record = protection.seal_record(_APPLICATION_DATA, inner, seq)
        else:
            record = protection.seal_record(content_type, bytes(content), seq)
        self.seq = seq + 1
        return record

    # -- KeyUpdate ---------------------------------------------------------------------------

    def key_update(self) -> RecordDirection:
        """The direction after a KeyUpdate (RFC 8446 4.6.3, 7.2): the next traffic secret,
        the next generation, sequence numbers from 0. This direction is left as it was, so a
        passive observer can still try the old key on a reordered record."""
        protection = self.protection
        if self.version != "1.3" or protection is None or not self._secret:
            raise UsageError("KeyUpdate needs a TLS 1.3 direction keyed by its traffic secret")
        params = protection.params
        secret = next_traffic_secret(params.hash_name, self._secret)
        return self._successor(Tls13Protection(params, secret), secret, self.generation + 1)

    def _successor(self, protection: Tls13Protection, secret: bytes, generation: int) -> RecordDirection:
        """The next generation's direction; a subclass that carries more (a passive
        observer's stage and key-log label) overrides this to carry it along."""
        return RecordDirection(
            protection, version="1.3", epoch=self.epoch, secret=secret, generation=generation
        )


def _header(content_type: int, legacy_version: int, length: int) -> bytes:
    """The 5-byte TLSPlaintext header (RFC 8446 5.1), through the wire codec."""
    buf = Buffer()
    push_record_header(buf, RecordHeader(content_type, legacy_version, length))
    return buf.data()
