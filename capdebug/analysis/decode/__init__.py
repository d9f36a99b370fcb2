"""The TLS stream decoder: captured packets in, per-connection TLS events out.

Theory of operation
-------------------
Packets flow through three stages, all pure and streaming:

1. ``net``: each frame is decoded to a TCP segment and fed to the :class:`TcpTracker`, which
   reassembles each direction of each connection and emits in-order stream data, gaps, and
   SYN/FIN/RST flags, each tagged with the frame that completed it.
2. Here, each direction of a connection is a receive buffer framed into TLS records
   (RFC 8446 5.1) by the one wire framer, ``wire.record.scan_records`` (``framing.py``); after
   a gap or a corrupt record the next boundary is searched for (``resync.py``). A record is
   dispatched by its content type (``content.py``); protected records are opened with the
   direction's current keys (``trial.py``), or counted unread when nothing can be learnt from
   them (``bulk.py``).
3. Handshake records feed a per-direction handshake buffer, framed into messages (messages can
   span records, and records can carry several messages). Messages drive the key changes,
   looked up in one table keyed by (version, sender, handshake type) (``stages.py``):

   ========  ===============================================================================
   TLS 1.3   server: ServerHello -> handshake keys -> its Finished -> application keys;
             client: (early keys) -> handshake keys -> its Finished -> application keys;
             KeyUpdate in a direction -> that direction's next generation (RFC 8446 7.2).
   TLS 1.2   ChangeCipherSpec in a direction -> that direction's key-block keys, seq 0.
   ========  ===============================================================================

Keys come from the key log by client_random (``analysis/keys.py``, which reads the hellos'
facts from a :class:`~capdebug.analysis.keys.SessionFacts`). Where the expected key is absent,
each direction keeps a short list of *next* candidate keys and tries them when the current key
fails (a rejected 0-RTT, a key log holding only application secrets); a success is proven by
the AEAD tag or MAC. After a stream gap the sequence number is unknown, so the next record is
tried over a small window of sequence numbers. A connection picked up mid-stream (no
ClientHello) is recovered the same way: every TLS 1.3 application secret in the key log is
tried on its first records.

Nothing unauthenticated is ever returned as plaintext; every failure becomes an
:class:`UndecryptableEvent` with a stable reason code, reported once per direction and reason.

Consumers choose their cost: ``decrypt_app_data=False`` (triage) decrypts only the records that
can change what happens next (handshake, alerts, and TLS 1.3 records small enough to be an alert
or KeyUpdate); bulk application data is counted, not decrypted.

Output order is capture order (``order.py``). A connection is shown once its first payload
looks like TLS (``sniff.py``); until then its events (and everything after them) are held, so
that non-TLS connections are dropped without reordering anything. A connection still without
payload ``UNDECIDED_FRAMES`` frames after its first is shown without waiting longer: a rule on
its own frames only, so it decides alike whatever else the capture holds (or a share of it) and
whichever frames the frame filter took. Connection numbers count every TCP connection in order
of first appearance (as Wireshark's ``tcp.stream`` + 1), so numbers skip where a connection was
not TLS.

Modules, each one idea, each a layer calling only those before it: ``session`` (state per
connection and direction, options), ``order``, ``trial``, ``stages``, ``content`` (the one place
events are built from records), ``bulk``, ``resync``, ``sniff``, ``framing``, ``decoder``.
"""

from __future__ import annotations

from .decoder import Decoder
from .order import UNDECIDED_FRAMES
from .session import DecodeOptions

__all__ = ["DecodeOptions", "Decoder"]

_UNDECIDED_FRAMES = UNDECIDED_FRAMES
"""The name importers used before the package (tests/triage)."""
