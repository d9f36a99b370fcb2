"""Capture file model shared by the pcap and pcapng codecs.

Timestamps are integer nanoseconds since the epoch; resolution and offset are per interface
(pcapng ``if_tsresol``/``if_tsoffset``), applied by the reader so that consumers never see
raw timestamp units.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["SECRETS_TYPE_TLS_KEYLOG", "Interface", "LinkType", "Packet", "SecretsBlock"]

#: pcapng Decryption Secrets Block secrets type for an NSS key log ("TLSK").
SECRETS_TYPE_TLS_KEYLOG = 0x544C534B


class LinkType:
    """LINKTYPE_ values (tcpdump.org link-layer header types) that capdebug decodes."""

    NULL = 0  # BSD loopback: 4-byte address family in host byte order
    ETHERNET = 1
    RAW = 101  # raw IPv4 or IPv6, version from the first nibble
    LOOP = 108  # OpenBSD loopback: address family in network byte order
    LINUX_SLL = 113
    IPV4 = 228
    IPV6 = 229
    LINUX_SLL2 = 276


@dataclass(frozen=True, slots=True)
class Interface:
    """One capture interface (the only one of a pcap file, or a pcapng IDB)."""

    linktype: int
    """LINKTYPE_ value."""
    snaplen: int = 262144
    """Maximum bytes captured per packet (0 means unlimited in pcapng)."""
    tsresol_ns: int = 1000
    """Nanoseconds per raw timestamp unit as read (informational; ``Packet.ts_ns`` is already scaled)."""
    name: str | None = None
    """``if_name``, e.g. ``eth0`` or ``any``."""
    description: str | None = None
    """``if_description``; capdebug uses it for the host an interface was captured on."""
    tsoffset_s: int = 0
    """``if_tsoffset`` in seconds (already added to ``Packet.ts_ns``)."""
    options: tuple[tuple[int, bytes], ...] = ()
    """Other IDB options, raw (code, value), kept so that conversion loses nothing."""


# Not frozen: one is made per packet, and frozen construction costs three times as much.
@dataclass(slots=True)
class Packet:
    """One captured packet."""

    ts_ns: int
    """Timestamp, integer nanoseconds since 1970-01-01 UTC."""
    interface: int
    """Index into the reader's ``interfaces`` list (global across pcapng sections)."""
    data: bytes = field(repr=False)
    """Captured bytes, starting at the link-layer header."""
    orig_len: int
    """Length of the packet on the wire (``> len(data)`` when the snaplen truncated it)."""
    flags: int | None = None
    """pcapng ``epb_flags`` (direction, reception type), when present."""


@dataclass(frozen=True, slots=True)
class SecretsBlock:
    """A pcapng Decryption Secrets Block (block type 0x0000000A)."""

    secrets_type: int
    """``SECRETS_TYPE_TLS_KEYLOG`` for an NSS key log."""
    data: bytes = field(repr=False)
    """The secrets, e.g. key-log lines."""
    offset: int = 0
    """Byte offset of the block in the file it was read from (0 when written)."""
    packets_before: int = 0
    """How many packets of the file came before this block (a DSB after the packets it
    unlocks is reported by the decoder)."""
