"""The base of the event model (:mod:`capdebug.analysis.events`): :class:`DecodeEvent`, the
reason codes of ``undecryptable`` events, and the JSON encoder every event line goes through."""

from __future__ import annotations

import json
from dataclasses import fields
from typing import Any, Final

__all__ = ["DecodeEvent", "Reason", "encode_json"]

#: The encoder of ``decrypt --json`` lines: compact, UTF-8 kept as is (the C encoder).
encode_json: Final = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode

# Values a template may write without JSON escaping; anything else takes the generic path.
PLAIN_FROM: Final = frozenset(("client", "server"))
PLAIN_FLAGS: Final = frozenset(("SYN", "FIN", "RST"))


class Reason:
    """Stable reason codes of ``undecryptable`` events."""

    NO_KEY: Final = "no_key"
    """No secrets for this session's client_random in any key log."""
    KEYLOG_OTHER_SESSIONS: Final = "keylog_other_sessions"
    """No secrets for this session, and none of the key log's sessions are in the capture."""
    MISSING_LABELS: Final = "missing_labels"
    """Secrets exist for this client_random but not the ones this version needs."""
    SECRET_LENGTH: Final = "secret_length"
    """The secret's length does not fit the negotiated suite's hash."""
    NO_HANDSHAKE: Final = "no_handshake"
    """The handshake is not in the capture and no key log secret decrypts the records."""
    STREAM_GAP: Final = "stream_gap"
    """Bytes are missing from the TCP stream; records after the gap cannot be placed."""
    BAD_TAG: Final = "bad_tag"
    """Authentication failed: the secret is wrong (another session's, or corrupt)."""
    UNSUPPORTED_SUITE: Final = "unsupported_suite"
    """capdebug cannot decrypt the negotiated cipher suite."""
    LATE_SECRETS: Final = "late_secrets"
    """The Decryption Secrets Block comes after the packets it unlocks (decrypted anyway)."""
    RSA_KEY_EXCHANGE: Final = "rsa_no_master_secret"
    """TLS 1.2 session with no CLIENT_RANDOM line (an RSA private key would be needed)."""
    SSLV2: Final = "sslv2"
    """SSLv2-compatible ClientHello: nothing after it is decoded."""
    NOT_TLS: Final = "not_tls"
    """The stream stopped looking like TLS (corrupt records)."""
    OVERSIZED_HANDSHAKE: Final = "oversized_handshake"
    """A handshake message declared a length beyond the decoder's bound (a hello declaring
    16 MB): it is not buffered, and the keys that depend on it cannot be found."""


class DecodeEvent:
    """The base of the events. Each event is a slotted dataclass whose fields are ``Final``
    (mypy rejects any assignment to an event outside its ``__init__``), with an explicit
    ``__init__``: with the generated one (or a decorator of ours, or ``frozen=True``) mypyc
    would keep the events interpreted classes, built through a Python-level ``__init__`` on
    the per-record path (README, "Compiled build"). The pure-Python cost is the same as the
    generated slotted ``__init__``; a frozen dataclass costs ~9,000 more instructions per event
    (cachegrind, 7 fields: each field set through ``object.__setattr__``). Equality and hash
    are the dataclass's (all fields but a handshake event's message)."""

    __slots__ = ()

    @property
    def conn(self) -> int:
        """1-based connection number in order of first appearance."""
        raise NotImplementedError

    def __reduce__(self) -> tuple[type[DecodeEvent], tuple[object, ...]]:
        # A compiled event is built by its __init__ only (mypyc), so pickle its fields as the
        # arguments of the class (they are in __init__'s order).
        return type(self), tuple(getattr(self, f.name) for f in fields(self))  # type: ignore[arg-type]

    def to_json(self) -> dict[str, Any]:
        raise NotImplementedError

    def to_json_line(self) -> str:
        """:meth:`to_json` encoded as one ``decrypt --json`` line (no newline). The frequent
        events override it with a template giving the same bytes (tests/decode compares both
        on every fixture): building the dict and encoding it cost ~5 us an event, the template
        under 2."""
        return encode_json(self.to_json())
