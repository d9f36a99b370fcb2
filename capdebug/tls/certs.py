"""Test PKI for the engine and ``capdebug certs make``: the façade over ``crypto/testpki.py``.

The generation itself needs ``cryptography`` and so lives in ``crypto/`` (the only importer of
it); this module gives the engine's users one place to ask for "a CA and a server certificate
for localhost", already in the shapes :class:`~capdebug.tls.config.TLSConfig` takes.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass, field
from pathlib import Path

from ..crypto.testpki import PKI_LAYOUT, Issued, KeyType, LeafOptions, make_ca, make_leaf, make_test_pki

__all__ = [
    "PKI_LAYOUT",
    "KeyType",
    "LeafOptions",
    "TestIdentity",
    "make_identity",
    "make_pki_dir",
]


@dataclass(frozen=True, slots=True)
class TestIdentity:
    """A CA and one leaf issued by it, in memory."""

    ca_der: bytes
    chain_der: tuple[bytes, ...]
    """Leaf first, then the CA (omitted for a self-signed leaf)."""
    key_pem: bytes = field(repr=False)

    @property
    def ca_pem(self) -> bytes:
        return Issued(self.ca_der, b"", "").cert_pem


def make_identity(
    now: dt.datetime,
    options: LeafOptions | None = None,
    ca: Issued | None = None,
) -> tuple[TestIdentity, Issued]:
    """A fresh CA (or ``ca``) and a leaf made with ``options``; returns the identity and the CA
    so that several leaves can share one CA. ``now`` is the start of their validity (the
    caller reads the clock: this layer does not)."""
    options = options or LeafOptions()
    ca = ca or make_ca(now)
    leaf = make_leaf(ca, now, options)
    chain = (leaf.cert_der,) if options.self_signed else (leaf.cert_der, ca.cert_der)
    return TestIdentity(ca.cert_der, chain, leaf.key_pem), ca


def make_pki_dir(
    directory: str | os.PathLike[str], now: dt.datetime, only: tuple[str, ...] | None = None
) -> dict[str, Path]:
    """Write the whole test PKI (see :data:`PKI_LAYOUT`) into ``directory``, valid from ``now``."""
    return make_test_pki(directory, now, only)
