"""capdebug's sans-IO TLS 1.3 and 1.2 engine.

``Connection`` is fed bytes and returns bytes and events; ``TLSSocket`` drives one over a
socket (blocking or not). See ``state.py`` for the theory of operation.
"""

from .config import ClientAuth, Credential, TLSConfig
from .connection import Connection
from .events import (
    AlertReceived,
    ApplicationData,
    CloseNotifyReceived,
    Event,
    HandshakeComplete,
    HelloRetryRequestReceived,
    HelloRetryRequestSent,
    KeyUpdateReceived,
    NewSessionTicketReceived,
    RenegotiationRefused,
)
from .faults import Faults
from .io import BlockedError, TLSSocket

__all__ = [
    "AlertReceived",
    "ApplicationData",
    "BlockedError",
    "ClientAuth",
    "CloseNotifyReceived",
    "Connection",
    "Credential",
    "Event",
    "Faults",
    "HandshakeComplete",
    "HelloRetryRequestReceived",
    "HelloRetryRequestSent",
    "KeyUpdateReceived",
    "NewSessionTicketReceived",
    "RenegotiationRefused",
    "TLSConfig",
    "TLSSocket",
]
