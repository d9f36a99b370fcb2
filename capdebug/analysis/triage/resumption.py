"""How a session was resumed, and which earlier connection of the capture issued it.

TLS 1.2 resumes by session ID (the server echoes the ID the client offered, RFC 5246 7.4.1.3)
or by session ticket (RFC 5077 3.1: the client sends the ticket in the session_ticket
extension); TLS 1.3 by a PSK, usually a ticket from a NewSessionTicket (RFC 8446 4.2.11, 4.6.1).
The issuer is found by the bytes: a session ID a server gave in a full handshake, or a ticket
it sent. TLS 1.3 tickets are encrypted, so their issuer is visible only with keys. Connections
are named by their first frame, which stays the same however the capture is shared out."""

from __future__ import annotations

from ...errors import DecodeError
from ...wire.constants import ExtensionType
from ...wire.extensions import ext, pull_offered_psks
from ...wire.handshake import ClientHello, NewSessionTicket, NewSessionTicket12, ServerHello
from .model import Conn

__all__ = ["Issued", "issuer_clause", "note_issued", "resume_key", "resumed_how"]

Issued = dict[tuple[str, bytes], int]
"""("id", session_id) or ("ticket", ticket) -> first frame of the connection that issued it."""


def note_issued(issued: Issued, c: Conn, msg: object) -> None:
    """Remember a session ID from a server's full TLS 1.2 handshake or a ticket it sent."""
    if isinstance(msg, ServerHello) and msg.legacy_session_id_echo:
        hello = c.client_hello.message if c.client_hello else None
        if not isinstance(hello, ClientHello) or hello.legacy_session_id != msg.legacy_session_id_echo:
            issued.setdefault(("id", msg.legacy_session_id_echo), c.first_frame)
    elif isinstance(msg, NewSessionTicket | NewSessionTicket12) and msg.ticket:
        issued.setdefault(("ticket", msg.ticket), c.first_frame)


def _offered_ticket(hello: ClientHello, index: int | None) -> bytes | None:
    if index is not None:
        data = ext(hello, ExtensionType.pre_shared_key)
        if data is None:
            return None
        try:
            identities = pull_offered_psks(data).identities
        except DecodeError:
            return None
        return identities[index].identity if index < len(identities) else None
    return ext(hello, ExtensionType.session_ticket) or None


def issuer_clause(frame: int) -> str:
    return f", issued by the earlier connection starting at frame {frame}"


def resume_key(c: Conn) -> tuple[str, bytes] | None:
    """What a resumed connection's session is known by (see :data:`Issued`)."""
    hello = c.client_hello.message if c.client_hello else None
    if not c.resumed or not isinstance(hello, ClientHello):
        return None
    ticket = _offered_ticket(hello, c.psk_index)
    return ("ticket", ticket) if ticket is not None else ("id", hello.legacy_session_id)


def resumed_how(c: Conn, issued: Issued, psk_index: int | None) -> tuple[str, int | None]:
    """(how, first frame of the issuing connection or None) for a resumed connection."""
    hello = c.client_hello.message if c.client_hello else None
    if not isinstance(hello, ClientHello):
        return "resumed", None
    ticket = _offered_ticket(hello, psk_index)
    if psk_index is not None:
        how = "PSK (a session ticket)" if ticket is not None else "PSK"
    elif ticket is not None:
        how = "session ticket"
    else:
        how = "session ID"
    key = ("ticket", ticket) if ticket is not None else ("id", hello.legacy_session_id)
    source = issued.get(key)
    return how, source if source is not None and source < c.first_frame else None
