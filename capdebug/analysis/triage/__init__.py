"""Verdicts: what went wrong on each connection, in plain words.

Triage reads the decoder's events (never the packets again) and keeps a small summary per
connection (:class:`~.model.Conn`): the hellos, the certificate, alerts, close_notify and TCP closes of
each side, data counts. At the end, :func:`verdicts` applies the rules of the catalog
(:data:`CATALOG`) to each summary. Every verdict has a stable ``code``, a ``severity``, the side
it is about (``by``), the frame that shows it, and a sentence.

Without keys, TLS 1.3 hides alerts inside application_data records. A protected record of
exactly 19 bytes (2-byte alert, 1-byte content type, 16-byte AEAD tag) that is the last record a
side sends before its FIN is almost always close_notify; triage says "likely close_notify
(encrypted, 19 bytes)" rather than calling it a premature close.

The parts: :mod:`.catalog` (codes and advice text), :mod:`.model` (what is kept per
connection), :mod:`.collect` (reading events), :mod:`.rules` and :mod:`.certificates` (verdicts).
"""

from __future__ import annotations

from .catalog import CATALOG, SEVERITY_RANK, Verdict
from .collect import Triage, TriageShare, merge_shares, triage
from .model import ConnectionReport
from .rules import verdicts

__all__ = [
    "CATALOG",
    "SEVERITY_RANK",
    "ConnectionReport",
    "Triage",
    "TriageShare",
    "Verdict",
    "merge_shares",
    "triage",
    "verdicts",
]
