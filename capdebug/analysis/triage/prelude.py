"""Verdicts about what came before TLS, or instead of it: an upgrade (STARTTLS and its
relatives) accepted, refused or not followed by TLS; plaintext where TLS was expected.

The facts are the decoder's ``upgrade`` and ``plaintext`` events (see
:mod:`capdebug.analysis.prelude`)."""

from __future__ import annotations

from ..events import OverlapEvent
from .catalog import Verdict
from .model import Conn

__all__ = ["prelude_verdicts"]


def prelude_verdicts(c: Conn) -> list[Verdict]:
    out: list[Verdict] = []
    accepted = next((u for u in c.upgrades if u.accepted), None)
    refused = [u for u in c.upgrades if not u.accepted]
    if refused and (accepted is None or accepted.protocol == "unknown"):
        u = refused[-1]
        anyway = "; the client sent its ClientHello anyway" if accepted is not None else ""
        if u.command:
            how = f"the server answered {u.command!r} with {u.reply!r}"
        else:  # MySQL: no command; the client closed after the server's greeting
            how = f"the server offered no TLS ({u.reply}) and the client closed without answering"
        out.append(Verdict("upgrade_refused", "error", "server", u.frame, f"{u.protocol}: {how}{anyway}"))
    elif accepted is not None:
        if accepted.protocol == "unknown":
            how = "TLS starts after plaintext: a ClientHello found in the client's stream"
        else:
            how = f"{accepted.protocol} upgraded to TLS: {accepted.command!r} answered {accepted.reply!r}"
        out.append(Verdict("upgraded", "info", None, accepted.frame, how))
        if c.client_hello is None:
            out.append(
                Verdict(
                    "tls_never_followed",
                    "error",
                    "client",
                    accepted.frame,
                    f"the server accepted {accepted.command!r} ({accepted.reply!r}) "
                    "but the client sent no ClientHello",
                )
            )
    if c.tls_seen or accepted is not None or refused:
        for p in c.plaintext:
            if p.from_ == "server" and c.client_hello is not None and not c.upgrades:
                out.append(
                    Verdict(
                        "not_tls_reply",
                        "error",
                        "server",
                        p.frame,
                        f"the server answered the ClientHello with {p.kind} plaintext: {p.text!r}",
                    )
                )
        return out
    for p in c.plaintext:
        if p.from_ == "client":
            if (o := _forged_opening(c, "client")) is not None:
                out.append(
                    Verdict(
                        "plaintext_to_tls_port",
                        "warning",
                        "path",
                        p.frame,
                        f"the first copy of the client's opening bytes is {p.kind} plaintext, but a "
                        f"later copy of them (frame {o.frame}) differs: likely injected on the path, "
                        f"not sent by the client (see overlap_conflict): {p.text!r}",
                        "medium",
                    )
                )
                break
            out.append(
                Verdict(
                    "plaintext_to_tls_port",
                    "error",
                    "client",
                    p.frame,
                    f"{p.kind} plaintext sent to {c.server}, a TLS port: {p.text!r}",
                )
            )
            break
    else:
        if c.plaintext:
            p = c.plaintext[0]
            out.append(
                Verdict(
                    "plaintext_to_tls_port",
                    "error",
                    p.from_,
                    p.frame,
                    f"only plaintext on a TLS port, {p.kind} from the {p.from_}: {p.text!r}",
                )
            )
    return out


_OPENING = 16
"""Stream bytes whose look decides TLS or plaintext (the record header and a little more)."""


def _forged_opening(c: Conn, who: str) -> OverlapEvent | None:
    """The conflicting copy when two copies of ``who``'s opening bytes differ: what was taken for
    plaintext may be an injected segment (the copy used is the first, decode/decoder.py)."""
    o = c.overlap
    if o is not None and o.from_ == who and o.offset < _OPENING:
        return o
    return None
