"""The TLS record layer framing (RFC 8446 section 5, RFC 5246 section 6.2).

``scan_records`` is the one record framer, the hot path of both drivers: it walks a
reassembled TCP stream and returns where each complete record is, without creating an object
per record and without copying, and stops at a header that cannot be TLS, so that a stream that
is not TLS (or lost sync after a gap) is not buffered forever waiting for a bogus length. The
engine uses it through ``frame_records`` (a bad header is a :class:`DecodeError`); the capture
decoder reads the stop position and resynchronises on top of it. The limits of RFC 8446 5.1/5.2
and RFC 5246 6.2 are defined here once.

Also here: the first-bytes sniffing of a stream, the SSL 2.0 compatible ClientHello
(RFC 5246 appendix E.2) and TLSInnerPlaintext (RFC 8446 section 5.2).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from .._buffer import Buffer
from ..errors import DecodeError, NeedData

__all__ = [
    "CCS_BODY",
    "MAX_CIPHERTEXT_LENGTH",
    "MAX_CIPHERTEXT_LENGTH_TLS13",
    "MAX_CONTENT_TYPE",
    "MAX_PLAINTEXT_LENGTH",
    "MIN_CONTENT_TYPE",
    "RECORD_HEADER_SIZE",
    "SCAN_BAD_HEADER",
    "SCAN_BAD_PARTIAL_HEADER",
    "SCAN_NEED_DATA",
    "RecordHeader",
    "RecordTooLong",
    "SSLv2ClientHello",
    "build_inner_plaintext",
    "frame_records",
    "looks_like_tls",
    "parse_sslv2_client_hello",
    "pull_record_header",
    "push_record_header",
    "push_sslv2_client_hello",
    "scan_records",
    "split_inner_plaintext",
]

RECORD_HEADER_SIZE: Final = 5
#: TLSPlaintext.length bound, 2^14 (RFC 8446 section 5.1, RFC 5246 section 6.2.1).
MAX_PLAINTEXT_LENGTH: Final = 1 << 14
#: TLSCiphertext.length bound of TLS 1.3, 2^14 + 256 (RFC 8446 section 5.2).
MAX_CIPHERTEXT_LENGTH_TLS13: Final = (1 << 14) + 256
#: TLSCiphertext.length bound of TLS 1.2, 2^14 + 2048 (RFC 5246 section 6.2.3): the loosest
#: bound of any version, used by the framer, which does not know the version yet.
MAX_CIPHERTEXT_LENGTH: Final = (1 << 14) + 2048
#: The only valid ChangeCipherSpec body (RFC 5246 section 7.1, RFC 8446 section 5).
CCS_BODY: Final = b"\x01"

#: Content types a record header may carry: change_cipher_spec (20) .. tls12_cid (25, RFC 9146).
MIN_CONTENT_TYPE: Final = 20
MAX_CONTENT_TYPE: Final = 25

#: How :func:`scan_records` stopped: the data ends (at a record boundary or inside a record
#: whose header is fine so far), at a whole header that cannot be TLS, or at the first bytes
#: of one (fewer than 5 bytes, and those already cannot be TLS).
SCAN_NEED_DATA: Final = 0
SCAN_BAD_HEADER: Final = 1
SCAN_BAD_PARTIAL_HEADER: Final = 2


class RecordTooLong(DecodeError):  # noqa: N818 - a kind of DecodeError, named for what is wrong
    """A record header whose length is above any version's bound: an engine answers it with
    record_overflow (RFC 5246 7.2.2, RFC 8446 5.2), not decode_error."""


@dataclass(frozen=True, slots=True)
class RecordHeader:
    """TLSPlaintext / TLSCiphertext header (RFC 8446 section 5.1)."""

    content_type: int
    """ContentType (for TLS 1.3 protected records the outer type, application_data)."""
    legacy_version: int
    """0x0303 for TLS 1.2/1.3 records; 0x0301 is allowed in a first ClientHello."""
    length: int
    """Length of the fragment that follows the 5-byte header."""


def pull_record_header(buf: Buffer) -> RecordHeader:
    """Read and sanity-check a record header (the checks of :func:`frame_records`)."""
    content_type = buf.pull_uint8()
    legacy_version = buf.pull_uint16()
    length = buf.pull_uint16()
    _check_header(content_type, legacy_version >> 8, length, buf.pos - RECORD_HEADER_SIZE)
    return RecordHeader(content_type, legacy_version, length)


def push_record_header(buf: Buffer, header: RecordHeader) -> None:
    buf.push_uint8(header.content_type)
    buf.push_uint16(header.legacy_version)
    buf.push_uint16(header.length)


def _check_header(content_type: int, major: int, length: int, at: int) -> None:
    if not MIN_CONTENT_TYPE <= content_type <= MAX_CONTENT_TYPE:
        raise DecodeError(f"not a TLS record at offset {at}: content type {content_type}")
    if major != 3:
        raise DecodeError(f"not a TLS record at offset {at}: version major {major}")
    if length > MAX_CIPHERTEXT_LENGTH:
        raise RecordTooLong(f"record at offset {at} is {length} bytes, more than 2^14+2048")


def scan_records(
    data: bytes | bytearray | memoryview, offset: int = 0
) -> tuple[list[tuple[int, int, int]], int, int]:
    """Find the complete records in ``data[offset:]`` (RFC 8446 5.1, RFC 5246 6.2.1).

    Returns ``([(content_type, header_offset, length), ...], stop, how)``: ``header_offset``
    is an index into ``data`` (the fragment starts 5 bytes later); ``stop`` is the index of the
    first byte not consumed: the end of the last complete record, or the header where the scan
    stopped; ``how`` says why it stopped (:data:`SCAN_NEED_DATA`, :data:`SCAN_BAD_HEADER`,
    :data:`SCAN_BAD_PARTIAL_HEADER`). Whatever part of a header is present is checked, so
    garbage is seen as soon as its first byte arrives, however the stream is cut: a header
    cannot be TLS with a content type outside 20..25, a version major other than 3, or a
    length above 2^14+2048.
    """
    if isinstance(data, memoryview) and data.format != "B":
        data = data.cast("B")
    end = len(data)
    pos = offset
    records: list[tuple[int, int, int]] = []
    append = records.append
    while pos < end:
        content_type = data[pos]
        if (
            content_type < MIN_CONTENT_TYPE
            or content_type > MAX_CONTENT_TYPE
            or (pos + 1 < end and data[pos + 1] != 3)
        ):
            return (
                records,
                pos,
                SCAN_BAD_HEADER if end - pos >= RECORD_HEADER_SIZE else SCAN_BAD_PARTIAL_HEADER,
            )
        if pos + RECORD_HEADER_SIZE > end:
            break
        length = (data[pos + 3] << 8) | data[pos + 4]
        if length > MAX_CIPHERTEXT_LENGTH:
            return records, pos, SCAN_BAD_HEADER
        next_pos = pos + RECORD_HEADER_SIZE + length
        if next_pos > end:
            break
        append((content_type, pos, length))
        pos = next_pos
    return records, pos, SCAN_NEED_DATA


def frame_records(
    data: bytes | bytearray | memoryview, offset: int = 0
) -> tuple[list[tuple[int, int, int]], int]:
    """:func:`scan_records` for a peer that must speak TLS (the engine).

    Returns ``(records, consumed)``: ``consumed`` counts bytes from ``offset`` up to the end of
    the last complete record; an incomplete record at the end is left for the next call.
    Raises :class:`DecodeError` for a header that cannot be TLS (see :func:`scan_records`),
    :class:`RecordTooLong` when only its length is wrong.
    """
    if isinstance(data, memoryview) and data.format != "B":
        data = data.cast("B")
    records, stop, how = scan_records(data, offset)
    if how != SCAN_NEED_DATA:
        present = data[stop : stop + RECORD_HEADER_SIZE]
        if not MIN_CONTENT_TYPE <= present[0] <= MAX_CONTENT_TYPE:
            raise DecodeError(f"not a TLS record at offset {stop}: content type {present[0]}")
        if present[1] != 3:
            raise DecodeError(f"not a TLS record at offset {stop}: version major {present[1]}")
        length = (present[3] << 8) | present[4]
        raise RecordTooLong(f"record at offset {stop} is {length} bytes, more than 2^14+2048")
    return records, stop - offset


def looks_like_tls(data: bytes | bytearray | memoryview) -> bool:
    """Do the first bytes of a stream look like a TLS client's first flight?

    True for a handshake record header (type 22, version 3.x with x <= 4) and for an SSL 2.0
    compatible ClientHello (RFC 5246 appendix E.2). With fewer than 3 bytes the answer is
    False; callers sniffing a stream should wait for at least 5 bytes.
    """
    n = len(data)
    if n < 3:
        return False
    b0 = data[0]
    if b0 == 22:
        if data[1] != 3 or data[2] > 4:
            return False
        # A ClientHello record is never empty nor oversized.
        return n < 5 or 0 < ((data[3] << 8) | data[4]) <= MAX_CIPHERTEXT_LENGTH
    if b0 & 0x80:
        # 2-byte SSLv2 header with msg_type client_hello, then the version the client offers.
        if data[2] != 1:
            return False
        if n >= 5:
            return data[3] == 3 or (data[3] == 0 and data[4] == 2)
        return True
    return False


@dataclass(frozen=True, slots=True)
class SSLv2ClientHello:
    """An SSL 2.0 compatible ClientHello (RFC 5246 appendix E.2)."""

    version: int
    """The highest version the client supports (0x0301.. for a TLS client; 0x0002 for SSL 2.0)."""
    cipher_specs: tuple[int, ...]
    """V2CipherSpec values (3 bytes each); TLS suites appear as 0x00XXYY."""
    session_id: bytes
    challenge: bytes
    """16..32 bytes; used right-aligned as the ClientHello.random."""
    length: int
    """Bytes the message occupies on the wire, including its 2-byte header."""


def parse_sslv2_client_hello(data: bytes | bytearray | memoryview) -> SSLv2ClientHello:
    """Parse an SSL 2.0 compatible ClientHello at the start of ``data`` (RFC 5246 E.2).

    :class:`NeedData` when ``data`` holds only part of it, :class:`DecodeError` when it is not
    one (no high bit in the 2-byte header, msg_type not 1, lengths that do not add up).
    """
    buf = Buffer(data)
    header = buf.pull_uint16()
    if not header & 0x8000:
        raise DecodeError("SSLv2 record header without the high bit (3-byte header form)")
    msg_length = header & 0x7FFF
    if msg_length > buf.remaining:
        raise NeedData(f"SSLv2 ClientHello of {msg_length} bytes, have {buf.remaining}")
    body = Buffer(buf.pull_view(msg_length))
    try:
        msg_type = body.pull_uint8()
        if msg_type != 1:
            raise DecodeError(f"SSLv2 message type {msg_type} is not client_hello")
        version = body.pull_uint16()
        cipher_spec_length = body.pull_uint16()
        session_id_length = body.pull_uint16()
        challenge_length = body.pull_uint16()
        if cipher_spec_length % 3:
            raise DecodeError(f"SSLv2 cipher_spec_length {cipher_spec_length} is not a multiple of 3")
        if 9 + cipher_spec_length + session_id_length + challenge_length != msg_length:
            raise DecodeError("SSLv2 ClientHello lengths do not add up to msg_length")
        if not 16 <= challenge_length <= 32:
            raise DecodeError(f"SSLv2 challenge of {challenge_length} bytes (must be 16..32)")
        specs = body.pull_view(cipher_spec_length)
        cipher_specs = tuple(
            (specs[i] << 16) | (specs[i + 1] << 8) | specs[i + 2] for i in range(0, cipher_spec_length, 3)
        )
        session_id = body.pull_bytes(session_id_length)
        challenge = body.pull_bytes(challenge_length)
    except NeedData as exc:  # the message is complete, so running short inside it is malformed
        raise DecodeError(f"malformed SSLv2 ClientHello: {exc}") from exc
    return SSLv2ClientHello(version, cipher_specs, session_id, challenge, 2 + msg_length)


def push_sslv2_client_hello(buf: Buffer, hello: SSLv2ClientHello) -> None:
    """Write ``hello`` (its ``length`` field is ignored; the real length is written)."""
    msg_length = 9 + 3 * len(hello.cipher_specs) + len(hello.session_id) + len(hello.challenge)
    if msg_length > 0x7FFF:
        raise ValueError("SSLv2 ClientHello too long for a 2-byte header")
    buf.push_uint16(0x8000 | msg_length)
    buf.push_uint8(1)
    buf.push_uint16(hello.version)
    buf.push_uint16(3 * len(hello.cipher_specs))
    buf.push_uint16(len(hello.session_id))
    buf.push_uint16(len(hello.challenge))
    for spec in hello.cipher_specs:
        buf.push_bytes(spec.to_bytes(3, "big"))
    buf.push_bytes(hello.session_id)
    buf.push_bytes(hello.challenge)


def split_inner_plaintext(plaintext: bytes | bytearray | memoryview) -> tuple[int, bytes]:
    """Undo TLSInnerPlaintext (RFC 8446 section 5.2): ``(content_type, content)``.

    The real content type is the last non-zero byte; the zeros after it are padding. A
    plaintext of only zeros is a :class:`DecodeError` (the RFC's unexpected_message).
    """
    # rstrip scans from the end in C; the padding can be up to 2^14 bytes.
    stripped = bytes(plaintext).rstrip(b"\x00")
    if not stripped:
        raise DecodeError("TLSInnerPlaintext has no non-zero content type")
    return stripped[-1], stripped[:-1]


def build_inner_plaintext(content_type: int, content: bytes, padding: int = 0) -> bytes:
    """TLSInnerPlaintext (RFC 8446 section 5.2): content, type byte, ``padding`` zeros."""
    if not 0 < content_type < 256:
        raise ValueError(f"content type {content_type} cannot end a TLSInnerPlaintext")
    return b"".join((content, bytes((content_type,)), bytes(padding)))
