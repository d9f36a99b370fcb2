"""The one exception tree of capdebug.

::

    CapdebugError                   anything capdebug raises on purpose; the CLI prints
    │                               str(exc) on one line and exits with exc.exit_code
    ├── UsageError                  the caller asked for something impossible (exit 2)
    ├── CaptureFormatError          a capture file cannot be read (names the byte offset)
    ├── KeyLogError                 a key log file cannot be used at all
    ├── DecodeError                 bytes on the wire do not parse (malformed)
    │   ├── NeedData                ... or are only truncated: more bytes may fix it
    │   ├── crypto.record.RecordOverflow            a record over RFC 8446 5.1/5.2, RFC 5246 6.2
    │   ├── wire.extensions.DuplicateExtension      two extensions of one type (RFC 8446 4.2)
    │   └── crypto.x509.CertificateDecodeError      a certificate's DER does not parse
    ├── CryptoError                 a cryptographic operation failed
    │   ├── DecryptError            AEAD tag or MAC did not verify (wrong key, tampering)
    │   ├── crypto.record.SequenceOverflow          a sequence number would pass 2^64
    │   ├── crypto.x509.CertificateVerifyError      a chain does not verify; one subclass per
    │   │                           reason: ...UnknownCA, ...Expired, ...NotYetValid,
    │   │                           ...HostnameMismatch, ...Invalid (with a stable .reason)
    │   ├── crypto.x509.SignatureError              a signature does not verify
    │   └── crypto.x509.KeyExchangeError            a peer's key share is unusable
    ├── TLSError                    the TLS engine failed; carries name, kind and debug
    │   └── tls.io.BlockedError     a non-blocking socket would block (kind BLOCKED)
    └── CaptureError                running tcpdump / ssh failed (capture/)

Subclasses live beside the code that raises them (named above with their module) so that
this module needs no knowledge of X.509 or sockets.

Third-party exceptions are wrapped with their cause (``raise DecryptError(...) from exc``) so
that nothing outside this tree escapes the library on bad input.
"""

from __future__ import annotations

import enum
import os
import sys
import traceback

__all__ = [
    "CapdebugError",
    "CaptureError",
    "CaptureFormatError",
    "CryptoError",
    "DecodeError",
    "DecryptError",
    "ErrorKind",
    "KeyLogError",
    "NeedData",
    "TLSError",
    "UsageError",
    "print_stacktraces",
]


class CapdebugError(Exception):
    """Base of every error capdebug raises on purpose."""

    exit_code: int = 1


class UsageError(CapdebugError):
    """Bad usage: a missing file, an impossible combination of options."""

    exit_code = 2


class CaptureFormatError(CapdebugError):
    """A capture file is not a readable pcap/pcapng file."""

    exit_code = 2

    def __init__(self, message: str, offset: int | None = None) -> None:
        self.offset = offset
        if offset is not None:
            message = f"{message} (at byte offset {offset})"
        super().__init__(message)


class KeyLogError(CapdebugError):
    """A key log file cannot be used at all (individual bad lines are only warnings)."""

    exit_code = 2


class DecodeError(CapdebugError):
    """Malformed bytes: a length that overruns its block, an impossible value."""


class NeedData(DecodeError):  # noqa: N818 - dpkt's name; it is a DecodeError
    """Truncated bytes: the structure is incomplete and more input may complete it."""


class CryptoError(CapdebugError):
    """A cryptographic operation failed."""


class DecryptError(CryptoError):
    """Record authentication failed: wrong key, wrong sequence number or tampering."""


class ErrorKind(enum.Enum):
    """The s2n-style type of an engine error: what the caller should do about it."""

    BLOCKED = "blocked"  # retry when the socket is readable/writable
    ALERT = "alert"  # the peer sent a fatal alert
    PROTOCOL = "protocol"  # the peer broke the protocol; an alert was queued for it
    CLOSED = "closed"  # the connection is closed (cleanly or prematurely)
    IO = "io"  # the socket failed
    USAGE = "usage"  # the application called the API wrongly
    INTERNAL = "internal"  # a bug in capdebug


_print_stacktrace = False


def print_stacktraces(enabled: bool) -> None:
    """Print the stack wherever a :class:`TLSError` is created (a debugging aid, process-wide).

    A switch, not an environment read: this module is imported by the pure layers, which read
    no environment; the edge (the ``capdebug`` command) reads ``CAPDEBUG_PRINT_STACKTRACE``."""
    global _print_stacktrace
    _print_stacktrace = enabled


class TLSError(CapdebugError):
    """An engine failure with a stable ``name`` (``ERR_BAD_RECORD_MAC``), a ``kind`` and a
    ``debug`` string naming where it was raised.

    After :func:`print_stacktraces` ``(True)`` (the ``capdebug`` command calls it when
    ``CAPDEBUG_PRINT_STACKTRACE=1``), the stack is printed where the error is created.
    """

    def __init__(
        self,
        name: str,
        kind: ErrorKind,
        message: str,
        *,
        alert: int | None = None,
        debug: str | None = None,
    ) -> None:
        self.name = name
        self.kind = kind
        self.alert = alert
        if debug is None:
            frame = sys._getframe(1)
            debug = f"{os.path.basename(frame.f_code.co_filename)}:{frame.f_lineno}"
        self.debug = debug
        super().__init__(f"{name}: {message}")
        if _print_stacktrace:
            traceback.print_stack(sys._getframe(1), file=sys.stderr)


class CaptureError(CapdebugError):
    """tcpdump or ssh could not run, was refused, or died."""
