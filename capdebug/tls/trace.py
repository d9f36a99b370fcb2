"""Engine tracing: named categories, enabled at run time, free when off.

Categories (``CAPDEBUG_TRACE`` takes their lower-case names, comma separated, or ``all``):

``handshake``  state transitions of the handshake state machine
``messages``   handshake messages sent and received, with their decoded fields
``keys``       key schedule events (which secret was derived, which key installed) -- never
               the secret values themselves; secrets only go to ``key_log_callback``
``record``     records sent and received: content type, length, epoch, sequence number
``alert``      alerts sent and received

Zero cost when off: every call site tests ``tracer.mask & TraceCategory.X`` (one integer AND)
before it formats anything, so a disabled trace never builds a string.
"""

from __future__ import annotations

import enum
import os
import sys
from collections.abc import Callable, Mapping

from ..errors import UsageError

__all__ = ["ENV_VAR", "TraceCallback", "TraceCategory", "Tracer", "parse_categories", "stderr_sink"]

ENV_VAR = "CAPDEBUG_TRACE"


class TraceCategory(enum.IntFlag):
    """One bit per trace category."""

    NONE = 0
    HANDSHAKE = 1
    MESSAGES = 2
    KEYS = 4
    RECORD = 8
    ALERT = 16
    ALL = HANDSHAKE | MESSAGES | KEYS | RECORD | ALERT


TraceCallback = Callable[[TraceCategory, str], None]
"""Receives the category of a trace line and the line itself (no newline)."""

_NAMES = {
    "handshake": TraceCategory.HANDSHAKE,
    "messages": TraceCategory.MESSAGES,
    "keys": TraceCategory.KEYS,
    "record": TraceCategory.RECORD,
    "alert": TraceCategory.ALERT,
    "all": TraceCategory.ALL,
}


def parse_categories(spec: str) -> TraceCategory:
    """``"handshake,record"`` -> the flags; empty means none. Unknown names are a usage error,
    because a misspelt category silently tracing nothing wastes a debugging session."""
    mask = TraceCategory.NONE
    for raw in spec.split(","):
        name = raw.strip().lower()
        if not name:
            continue
        try:
            mask |= _NAMES[name]
        except KeyError:
            known = ", ".join(_NAMES)
            raise UsageError(f"unknown trace category {name!r} (known: {known})") from None
    return mask


def stderr_sink(category: TraceCategory, line: str) -> None:
    """The default sink when tracing is enabled from the environment without a callback."""
    sys.stderr.write(f"[{category.name.lower() if category.name else category.value}] {line}\n")


class Tracer:
    """Dispatches trace lines to one callback. ``mask`` is public so that call sites can test
    it before formatting: ``if t.mask & TraceCategory.RECORD: t.emit(TraceCategory.RECORD, ...)``.
    """

    __slots__ = ("callback", "mask", "prefix")

    def __init__(self, mask: TraceCategory, callback: TraceCallback | None, prefix: str = "") -> None:
        self.mask = int(mask) if callback is not None else 0
        self.callback = callback
        self.prefix = prefix

    @classmethod
    def create(
        cls,
        categories: TraceCategory | None,
        callback: TraceCallback | None,
        prefix: str = "",
        environ: Mapping[str, str] | None = None,
    ) -> Tracer:
        """Categories given explicitly win; ``None`` reads ``CAPDEBUG_TRACE``. A callback given
        without categories traces everything; categories without a callback go to stderr."""
        if categories is None:
            env = os.environ if environ is None else environ
            spec = env.get(ENV_VAR)
            if spec is not None:
                categories = parse_categories(spec)
            elif callback is not None:
                categories = TraceCategory.ALL
            else:
                categories = TraceCategory.NONE
        if categories and callback is None:
            callback = stderr_sink
        return cls(categories, callback, prefix)

    def emit(self, category: TraceCategory, line: str) -> None:
        if self.mask & category and self.callback is not None:
            self.callback(category, self.prefix + line)

    def warn(self, line: str) -> None:
        """Always delivered, even with every category off: for things a user must not miss,
        such as certificate verification being disabled. Goes to stderr without a callback."""
        (self.callback or stderr_sink)(TraceCategory.HANDSHAKE, self.prefix + "WARNING: " + line)
