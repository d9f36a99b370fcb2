"""Self-encrypting session tickets (RFC 8446 4.6.1, RFC 5077 4): the server keeps no state
but a key; the ticket is the session's state sealed with AES-256-GCM under that key.

The layout inside is the engine's business (``tls/session.py``); this module only seals and
opens, and a ticket that does not open is simply not ours (a full handshake follows)."""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ..errors import DecryptError, UsageError

__all__ = ["TICKET_KEY_LEN", "open_ticket", "seal_ticket"]

TICKET_KEY_LEN = 32
_NONCE = 12
_AAD = b"capdebug ticket v1"


def seal_ticket(key: bytes, state: bytes) -> bytes:
    if len(key) != TICKET_KEY_LEN:
        raise UsageError(f"ticket key must be {TICKET_KEY_LEN} bytes")
    nonce = os.urandom(_NONCE)
    return nonce + AESGCM(key).encrypt(nonce, state, _AAD)


def open_ticket(key: bytes, ticket: bytes) -> bytes:
    """The state sealed in ``ticket``; :class:`DecryptError` when it is not one of ours."""
    if len(key) != TICKET_KEY_LEN:
        raise UsageError(f"ticket key must be {TICKET_KEY_LEN} bytes")
    if len(ticket) < _NONCE + 16:
        raise DecryptError("ticket too short")
    try:
        return AESGCM(key).decrypt(ticket[:_NONCE], ticket[_NONCE:], _AAD)
    except InvalidTag as exc:
        raise DecryptError("ticket does not open under our key") from exc
