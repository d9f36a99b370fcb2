"""The application layer as far as it explains a close: HTTP/1.x request and status lines and
their Connection header, HTTP/2 connection preface, SETTINGS, GOAWAY and RST_STREAM. Read only
from decrypted records, one record at a time (triage opens only some records: see
``analysis/decode/bulk.py``), so a record is parsed on its own and nothing spans records."""

from __future__ import annotations

from .http import AppFact, http1_facts, http2_facts

__all__ = ["AppFact", "http1_facts", "http2_facts"]
