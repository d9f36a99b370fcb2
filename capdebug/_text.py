"""Peer-controlled text made safe to show: SNI, certificate names, ALPN, alert details.

Those strings come off the wire. Written raw to a terminal, an ESC byte drives the terminal
(colours, cursor moves, OSC 8 links, window titles); a bidirectional override reorders what the
reader sees. :func:`escape_terminal` turns every such character into a visible ``\\xNN`` /
``\\uNNNN`` escape. Renderers call it where text leaves for a terminal; rich markup and HTML
escaping are done on top of it at their own edges (``cli/_common.escape_rich``, ``html.escape``).
"""

from __future__ import annotations

import re

__all__ = ["escape_terminal"]

# C0 controls, DEL, C1 controls, and the Unicode format characters that reorder or hide text
# (bidi embeddings, overrides and isolates; zero-width marks; line/paragraph separators).
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2066-\u2069\ufeff]")


def _visible(m: re.Match[str]) -> str:
    c = ord(m.group())
    return f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}"


def escape_terminal(text: str) -> str:
    """``text`` with every control or reordering character shown as an escape (no-op, and
    cheap, for ordinary text)."""
    return _UNSAFE.sub(_visible, text)
