"""Who rejected whom: alerts that end a handshake, read against the certificate they answer.

A TLS 1.3 server checks the client's second flight (Certificate, CertificateVerify, Finished;
RFC 8446 4.4) after it has sent its own Finished, so a rejection of the client's certificate
arrives *after* the client considers the handshake done. An alert there, before any
NewSessionTicket or data from the server, ends a handshake the server never completed.

Without keys the alert is a short protected record. An encrypted alert is 19 bytes with every
TLS 1.3 AEAD suite (2-byte alert, 1-byte inner content type, 16-byte tag; RFC 8446 5.2), a
NewSessionTicket is well over 100 and a server's first answer to a request is usually larger
too, so a server that answers the client's second flight with one or two records of at most
:data:`_SHORT` bytes and then closes has most likely rejected it.
"""

from __future__ import annotations

from datetime import UTC, datetime

from ...crypto.certinfo import CertSummary
from ..events import AlertEvent
from .catalog import CLIENT_CERT_CAUSES, Verdict
from .certificates import chain
from .model import TLS13, Conn, Side

__all__ = [
    "answers_second_flight",
    "closed_after_client_flight",
    "later_alerts",
    "peer_chain",
    "rejected_without_keys",
]

_SHORT = 32
"""An encrypted alert (19 bytes) with room for record padding: no ticket or response is this small."""
_ALERT = 19
"""A protected TLS 1.3 alert: 2 bytes, the inner content type and a 16-byte tag."""
_ABOUT_THE_FLIGHT = frozenset({40, 42, 43, 44, 45, 46, 48, 49, 51, 116})
"""Alerts that can only be about the handshake messages themselves: handshake_failure, the
certificate alerts, unknown_ca, access_denied, decrypt_error (CertificateVerify or Finished),
certificate_required (RFC 8446 6.2). Others (bad_record_mac, decode_error...) may be about
application data the client sent after its Finished."""
_CERTIFICATE_FLIGHT = 150
"""A client's protected second flight above this size carries a certificate (a Finished alone
is 53 or 69 bytes protected)."""


def answers_second_flight(c: Conn, i: int, a: AlertEvent) -> bool:
    """Does the server's alert ``a`` answer the client's TLS 1.3 second flight, before the server
    accepted it (no NewSessionTicket or data from the server since the client's Finished)?"""
    if i != 1 or c.version != TLS13:
        return False
    client, server = c.sides
    if client.finished is None or client.finished[0] > a.frame:
        return False
    data_first = (client.first_app is not None and client.first_app[0] <= a.frame) or any(
        u.frame <= a.frame for u in client.undecryptable
    )
    if data_first and a.description not in _ABOUT_THE_FLIGHT:
        # The client sent application data before this alert: a bad_record_mac (say) may be
        # about that data, a post-handshake failure, not a rejection of the handshake.
        return False
    return server.after_peer_finished is None or server.after_peer_finished >= a.frame


def rejected_without_keys(c: Conn) -> Verdict | None:
    """Without keys: did a TLS 1.3 server answer the client's second flight with one or two
    short protected records (encrypted alerts) and close, with no ticket? (See the module.)"""
    client, server = c.sides
    if c.version != TLS13 or client.finished is not None or c.server_hello is None or not client.protected:
        return None
    flight_frame = client.protected[0][0]
    flight = sum(n for f, _, n in client.protected if f == flight_frame)
    after = [r for r in server.protected if r[0] > flight_frame]
    if server.gaps or client.gaps:
        return None  # a ticket or a response may be among the bytes the capture lost
    if len(server.protected) < server.protected_records or not 1 <= len(after) <= 2:
        return None  # the server sent more than was kept: not a short answer
    if any(n > _SHORT for _, _, n in after):
        return None
    if len(after) == 2 and any(after[0][0] < f < after[1][0] for f, _, _ in client.protected):
        # The client wrote between the server's two records, and the server wrote again: a
        # conversation (e.g. a short reply, then close_notify answering the client's), since
        # after a fatal alert neither side sends anything more (RFC 8446 6.2).
        return None
    if any(f > after[0][0] and n == _ALERT for f, _, n in client.protected):
        # The client answered the server's first short record with what has the size of its own
        # close_notify: it read a short response, not a fatal alert (after which it would send
        # nothing; a request crossing the alert in flight is bigger).
        return None
    end = server.fin or server.rst
    closer = "the server closed TCP"
    if end is None or end[0] < after[-1][0]:
        end = client.fin or client.rst
        closer = "the client closed TCP"
        if end is None:
            return None
    sizes = " and ".join(f"{n} bytes" for _, _, n in after)
    had_cert = flight > _CERTIFICATE_FLIGHT
    confidence = "high" if len(after) == 1 and after[0][2] == 19 and had_cert else "medium"
    what = (
        f"the client's second flight ({flight} bytes protected, large enough to carry a client certificate)"
        if had_cert
        else f"the client's second flight ({flight} bytes protected: Finished, likely no certificate)"
    )
    cause = (
        "the server most likely rejected the client's certificate (unknown_ca, certificate_expired, "
        "bad_certificate, access_denied)"
        if had_cert
        else "the server most likely rejected the handshake (certificate_required when it wants a "
        "client certificate, or decrypt_error)"
    )
    return Verdict(
        "likely_handshake_rejected",
        "error",
        "server",
        after[0][0],
        f"the server answered {what} with {len(after)} short protected record(s) ({sizes}: the size "
        f"of an encrypted alert), sent no NewSessionTicket, and {closer}: {cause}. Inferred without "
        f"keys, confidence {confidence}; keys would name the alert",
        confidence,
    )


def closed_after_client_flight(c: Conn) -> Verdict | None:
    """Did the server close right after the client's certificate flight, saying nothing: no
    alert, no Finished (TLS 1.2), no NewSessionTicket or data (TLS 1.3)? A server that checks
    the client's certificate after the TLS library accepted it (Node's ``rejectUnauthorized``,
    an application's own check) drops the connection that way: a rejection without an alert."""
    client, server = c.sides
    end = min((at for at in (server.fin, server.rst) if at is not None), default=None)
    if end is None or c.server_hello is None or server.alerts or server.gaps or client.gaps:
        return None
    if client.fin is not None and client.fin[0] < end[0]:
        return None  # the client left first
    if client.finished is not None:
        # Keys, or TLS 1.2 (the client's flight is visible): it must have carried a certificate.
        if c.client_certificate is None or not chain(c.client_certificate):
            return None
        flight = client.finished[0]
        if (c.version == TLS13 and server.after_peer_finished is not None) or (
            c.version != TLS13 and server.finished is not None
        ):
            return None  # the server went on: it accepted the flight
        how = "with a client certificate"
    elif c.version == TLS13 and client.protected and len(server.protected) == server.protected_records:
        # Without keys: the client's protected second flight, and nothing from the server after it.
        flight = client.protected[0][0]
        size = sum(n for f, _, n in client.protected if f == flight)
        if size <= _CERTIFICATE_FLIGHT or any(f > flight for f, _, _ in server.protected):
            return None
        how = f"({size} bytes protected, large enough to carry a client certificate)"
    else:
        return None
    if end[0] < flight or (server.last_app is not None and server.last_app[0] > flight):
        return None
    closed = "FIN" if server.fin is not None and server.fin == end else "RST"
    chain_text = client_chain(c)
    return Verdict(
        "likely_handshake_rejected",
        "error",
        "server",
        end[0],
        f"the server closed TCP ({closed}) right after the client's second flight {how}, without an "
        "alert, a Finished, a NewSessionTicket or data: it most likely rejected the client's "
        "certificate without saying so (e.g. Node's rejectUnauthorized, or an application check "
        "after the TLS handshake). Inferred, confidence medium; the server's log names the reason"
        + chain_text,
        "medium",
    )


def later_alerts(side: Side, a: AlertEvent) -> str:
    """The alerts the same side sent after ``a``, as a clause (empty when none)."""
    more = [x for x in side.alerts if x.frame >= a.frame and x is not a]
    if not more:
        return ""
    names = ", ".join(x.name if x.description is not None else "an encrypted alert" for x in more)
    return f"; the same side then also sent {names} (frame {more[0].frame})"


def _check_client_leaf(leaf: CertSummary, at: datetime) -> list[str]:
    problems = []
    if at > leaf.not_after:
        problems.append(f"expired on {leaf.not_after.date()} (captured {at.date()})")
    if at < leaf.not_before:
        problems.append(f"not valid before {leaf.not_before.isoformat()}: check clocks")
    eku = leaf.extended_key_usage
    if eku is not None and "clientAuth" not in eku and "anyExtendedKeyUsage" not in eku:
        problems.append(f"its extended key usage ({', '.join(eku)}) does not allow client authentication")
    if leaf.self_signed:
        problems.append("self-signed")
    return problems


def peer_chain(c: Conn, i: int, a: AlertEvent) -> str:
    """For a certificate alert sent by side ``i``: the chain it rejected (the peer's), with the
    checks that can be made from the capture; the server's chain when the client rejects, the
    client's when the server does."""
    if i == 0:
        names = [f"{x.subject} (issuer {x.issuer})" for x in (chain(c.certificate) if c.certificate else ())
                 if not isinstance(x, str)]  # fmt: skip
        return ". Server chain sent: " + " <- ".join(names) if names else ""
    cause = CLIENT_CERT_CAUSES.get(a.name, "")
    prefix = f" (rejecting the client: {cause})" if cause else ""
    if c.client_certificate is None:
        if c.sides[0].finished is None and c.version == TLS13 and c.certificate_request is None:
            return prefix
        return prefix + ". The client's certificate is not visible in the capture"
    return prefix + client_chain(c)


def client_chain(c: Conn) -> str:
    """The client's certificate chain as a clause, with the checks the capture allows."""
    if c.client_certificate is None:
        return ""
    sent = [x for x in chain(c.client_certificate) if not isinstance(x, str)]
    if not sent:
        return ". The client sent an empty Certificate (no client certificate)"
    at = datetime.fromtimestamp(c.client_certificate.ts_ns / 1e9, UTC)
    leaf = sent[0]
    parts = [
        f"{x.subject} (issuer {x.issuer}, valid {x.not_before.date()} to {x.not_after.date()})" for x in sent
    ]
    detail = ". Client chain sent: " + " <- ".join(parts)
    problems = _check_client_leaf(leaf, at)
    if problems:
        detail += "; the client certificate is " + "; ".join(problems)
    issuers = {x.subject for x in sent}
    top = sent[-1]
    if top.issuer not in issuers:
        detail += f"; the chain ends at {top.issuer}, which the server must trust for client certificates"
    return detail
