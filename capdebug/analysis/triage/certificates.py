"""Certificate checks of the server's leaf, from the typed summaries of ``crypto.x509`` (dates
as datetimes) and its one hostname rule (:func:`~capdebug.crypto.x509.hostname_matches`: no
Common Name fallback, RFC 6125 6.4.4), the same rule the engine verifies with."""

from __future__ import annotations

from datetime import UTC, datetime

from ...crypto.certinfo import CertSummary, hostname_matches
from ...wire.handshake import Certificate
from ..events import HandshakeEvent
from ..messages import certificates
from .catalog import Verdict
from .model import Conn

__all__ = ["certificate_verdicts", "chain"]


def chain(ev: HandshakeEvent) -> tuple[CertSummary | str, ...]:
    return certificates(ev.message) if isinstance(ev.message, Certificate) else ()


def certificate_verdicts(c: Conn) -> list[Verdict]:
    if c.certificate is None:
        return []
    sent = chain(c.certificate)
    if not sent or isinstance(sent[0], str):
        return []
    leaf = sent[0]
    frame = c.certificate.frame
    at = datetime.fromtimestamp(c.certificate.ts_ns / 1e9, UTC)
    out: list[Verdict] = []
    nb, na = leaf.not_before, leaf.not_after
    if at > na:
        out.append(
            Verdict(
                "certificate_problem",
                "error",
                "server",
                frame,
                f"the server certificate expired on {na.date()} (captured {at.date()})",
            )
        )
    if at < nb:
        out.append(
            Verdict(
                "certificate_problem",
                "error",
                "server",
                frame,
                f"the server certificate is not valid before {nb.isoformat()} "
                f"(captured {at.isoformat()}): check clocks",
            )
        )
    if c.sni and not hostname_matches(leaf, c.sni):
        out.append(
            Verdict(
                "certificate_problem",
                "error",
                "server",
                frame,
                f"the SNI {c.sni} is not among the certificate's names "
                f"({', '.join(leaf.sans) or leaf.subject})",
            )
        )
    if leaf.self_signed:
        out.append(
            Verdict(
                "certificate_problem",
                "warning",
                "server",
                frame,
                f"the server certificate is self-signed ({leaf.subject})",
            )
        )
    if leaf.key_type.startswith("RSA ") and 0 < leaf.key_bits < 2048:
        out.append(Verdict("certificate_problem", "warning", "server", frame, f"weak key: {leaf.key_type}"))
    return out
