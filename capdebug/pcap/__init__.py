"""Capture file formats: pcap and pcapng, read and write. No TLS knowledge lives here.

``open_capture(path_or_stream)`` detects the format by magic (gzip aware) and returns a
:class:`CaptureReader` that streams :class:`Packet` and :class:`SecretsBlock` items.
"""

from ._reader import FrameFilter
from .classic import PcapReader, PcapWriter, write_pcap
from .model import SECRETS_TYPE_TLS_KEYLOG, Interface, LinkType, Packet, SecretsBlock
from .open import CaptureReader, open_capture
from .pcapng import PcapngReader, PcapngWriter

__all__ = [
    "SECRETS_TYPE_TLS_KEYLOG",
    "CaptureReader",
    "FrameFilter",
    "Interface",
    "LinkType",
    "Packet",
    "PcapReader",
    "PcapWriter",
    "PcapngReader",
    "PcapngWriter",
    "SecretsBlock",
    "open_capture",
    "write_pcap",
]
