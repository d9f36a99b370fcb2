"""capdebug: debug TLS on the wire."""

from __future__ import annotations

from .errors import (
    CapdebugError,
    CaptureError,
    CaptureFormatError,
    CryptoError,
    DecodeError,
    DecryptError,
    ErrorKind,
    KeyLogError,
    NeedData,
    TLSError,
    UsageError,
)

__version__ = "0.1.0"

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
    "__version__",
]
