"""capdebug: debug TLS on the wire.

The library's entry points (see README "Library API")::

    import capdebug

    keys = capdebug.load_keys("case.pcapng", ["keys.log"])
    for report in capdebug.triage_capture("case.pcapng", keys).reports:
        ...

The API names are loaded on first use (PEP 562), so ``import capdebug`` (and every command
that does not decode) stays as light as the error tree.
"""

from __future__ import annotations

import typing

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

if typing.TYPE_CHECKING:
    from .api import (
        CaptureKeys,
        Decoding,
        LivePipeline,
        PlaintextExporter,
        TriageResult,
        auto_jobs,
        decode_capture,
        load_keys,
        triage_capture,
    )
    from .crypto.keylog import KeyLog

__version__ = "0.1.0"

#: Public name -> the module it is loaded from on first use.
_LAZY = {
    "CaptureKeys": "api",
    "Decoding": "api",
    "LivePipeline": "api",
    "PlaintextExporter": "api",
    "TriageResult": "api",
    "auto_jobs": "api",
    "decode_capture": "api",
    "load_keys": "api",
    "triage_capture": "api",
    "KeyLog": "crypto.keylog",
}

__all__ = [
    "CapdebugError",
    "CaptureError",
    "CaptureFormatError",
    "CaptureKeys",
    "CryptoError",
    "DecodeError",
    "Decoding",
    "DecryptError",
    "ErrorKind",
    "KeyLog",
    "KeyLogError",
    "LivePipeline",
    "NeedData",
    "PlaintextExporter",
    "TLSError",
    "TriageResult",
    "UsageError",
    "__version__",
    "auto_jobs",
    "decode_capture",
    "load_keys",
    "triage_capture",
]


def __getattr__(name: str) -> typing.Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'capdebug' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # later lookups do not come back here
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
