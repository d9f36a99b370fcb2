"""Verdicts from the application layer (HTTP, read only where triage decrypted a record):
a close announced by the application, and a gateway's error response."""

from __future__ import annotations

from ..app import AppFact, http1_facts, http2_facts
from .catalog import Verdict
from .model import NAMES, Conn

__all__ = ["app_facts", "app_verdicts"]

_GATEWAY = {502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout"}


def app_facts(c: Conn, data: bytes) -> list[AppFact]:
    """The facts of one decrypted record, by the negotiated ALPN (by content without one)."""
    if c.alpn == "h2" or (c.alpn is None and c.h2):
        c.h2 = True
        return http2_facts(data)
    if c.alpn is None and data.startswith(b"PRI * HTTP/2.0"):
        c.h2 = True
        return http2_facts(data)
    if c.alpn in (None, "http/1.1", "http/1.0"):
        return http1_facts(data)
    return []


def app_verdicts(c: Conn) -> list[Verdict]:
    out: list[Verdict] = []
    for frame, i, fact, _ts in c.app:
        if fact.kind == "response" and fact.code in _GATEWAY:
            out.append(
                Verdict(
                    "proxy_error",
                    "error",
                    NAMES[i],
                    frame,
                    f"the {NAMES[i]} answered {fact.code} {_GATEWAY[fact.code]} ({fact.text}): a proxy or "
                    "gateway "
                    "could not get a good answer from its upstream",
                )
            )
    closing = [(frame, i, fact) for frame, i, fact, _ts in c.app if fact.closes]
    if closing:
        frame, i, fact = closing[-1]
        ends = [
            at[0]
            for s in c.sides
            for at in (s.close_notify, s.fin, s.rst)
            if at is not None and at[0] >= frame
        ]
        if ends:
            out.append(
                Verdict(
                    "app_close",
                    "info",
                    NAMES[i],
                    frame,
                    f"the {NAMES[i]} announced the end of the connection at the application layer "
                    f"({fact.text}); the close (frame {min(ends)}) followed it",
                )
            )
    return out
