"""The alert protocol (RFC 8446 section 6, RFC 5246 section 7.2)."""

from __future__ import annotations

from dataclasses import dataclass

from .._buffer import Buffer
from .constants import AlertDescription, name_of

__all__ = ["ALERT_SIZE", "Alert", "alert_name", "pull_alert", "push_alert"]

#: An alert is always exactly two bytes; a record may carry several (TLS 1.2) or a fragment.
ALERT_SIZE = 2


@dataclass(frozen=True, slots=True)
class Alert:
    """One alert message."""

    level: int
    """AlertLevel: warning(1) or fatal(2). TLS 1.3 ignores it (RFC 8446 section 6)."""
    description: int
    """AlertDescription."""

    @property
    def name(self) -> str:
        return alert_name(self.description)

    @property
    def is_closure(self) -> bool:
        """close_notify or user_canceled: the closure alerts of RFC 8446 section 6.1."""
        return self.description in (AlertDescription.close_notify, AlertDescription.user_canceled)


def pull_alert(buf: Buffer) -> Alert:
    level = buf.pull_uint8()
    description = buf.pull_uint8()
    return Alert(level, description)


def push_alert(buf: Buffer, alert: Alert) -> None:
    buf.push_uint8(alert.level)
    buf.push_uint8(alert.description)


def alert_name(description: int) -> str:
    """``"close_notify"`` or ``"unknown(0x00ff)"``."""
    return name_of(AlertDescription, description)
