"""The application layer as far as it explains a close: HTTP/1.x request and status lines and
their Connection header (one record at a time), HTTP/2 connection preface, SETTINGS, GOAWAY,
RST_STREAM and the header blocks' ``:status``, ``:method`` and ``:path`` (frames followed across
records, HPACK decoded in order: :mod:`.h2`). Read only from decrypted records."""

from __future__ import annotations

from .h2 import H2Direction, H2Watch
from .http import AppFact, http1_facts, http2_facts

__all__ = ["AppFact", "H2Direction", "H2Watch", "http1_facts", "http2_facts"]
