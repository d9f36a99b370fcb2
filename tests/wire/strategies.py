"""Hypothesis strategies that build wire structures within their RFC length limits."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from capdebug.wire import handshake as hs
from capdebug.wire.constants import HandshakeType
from capdebug.wire.extensions import (
    CertificateStatus,
    Extension,
    KeyShareEntry,
    OfferedPsks,
    PskIdentity,
    StatusRequest,
)

u8 = st.integers(0, 0xFF)
u16 = st.integers(0, 0xFFFF)
u24 = st.integers(0, 0xFFFFFF)
u32 = st.integers(0, 0xFFFFFFFF)


def blob(min_size: int = 0, max_size: int = 40) -> st.SearchStrategy[bytes]:
    return st.binary(min_size=min_size, max_size=max_size)


def tuples(
    elements: st.SearchStrategy[Any], min_size: int = 0, max_size: int = 5
) -> st.SearchStrategy[tuple[Any, ...]]:
    return st.lists(elements, min_size=min_size, max_size=max_size).map(tuple)


# Each type at most once: a decoded list never holds duplicates (RFC 8446 4.2).
extensions = st.lists(st.builds(Extension, u16, blob()), max_size=5, unique_by=lambda e: e.type).map(tuple)


@st.composite
def client_hellos(draw: st.DrawFn) -> hs.ClientHello:
    exts = draw(extensions)
    return hs.ClientHello(
        legacy_version=draw(u16),
        random=draw(blob(32, 32)),
        legacy_session_id=draw(blob(0, 32)),
        cipher_suites=draw(tuples(u16, max_size=10)),
        legacy_compression_methods=draw(blob(0, 4)),
        extensions=exts,
        extensions_present=bool(exts) or draw(st.booleans()),
    )


@st.composite
def server_hellos(draw: st.DrawFn) -> hs.ServerHello:
    exts = draw(extensions)
    random = draw(st.one_of(blob(32, 32), st.just(hs.HRR_RANDOM)))
    return hs.ServerHello(
        draw(u16), random, draw(blob(0, 32)), draw(u16), draw(u8), exts, bool(exts) or draw(st.booleans())
    )


@st.composite
def certificates(draw: st.DrawFn) -> hs.Certificate:
    tls13 = draw(st.booleans())
    if tls13:
        entry = st.builds(hs.CertificateEntry, blob(1, 60), extensions)
        return hs.Certificate(draw(blob(0, 8)), draw(tuples(entry)), True)
    entry = st.builds(hs.CertificateEntry, blob(1, 60))
    return hs.Certificate(b"", draw(tuples(entry)), False)


def _unambiguous_legacy_signature(sig: bytes) -> bool:
    # A TLS 1.0/1.1 signature whose first two bytes equal its length - 2 reads as the TLS 1.2
    # form; real signatures never look like that, but generated ones can.
    return not (len(sig) >= 2 and int.from_bytes(sig[:2], "big") == len(sig) - 2)


certificate_verifies = st.one_of(
    st.builds(hs.CertificateVerify, u16, blob()),
    st.builds(hs.CertificateVerify, st.none(), blob().filter(_unambiguous_legacy_signature)),
)

_KNOWN = {int(t) for t in HandshakeType}

#: (message, tls13 flag to decode it with)
messages: st.SearchStrategy[tuple[hs.HandshakeMessage, bool | None]] = st.one_of(
    st.tuples(client_hellos(), st.none()),
    st.tuples(server_hellos(), st.none()),
    st.tuples(st.builds(hs.EncryptedExtensions, extensions), st.none()),
    certificates().map(lambda c: (c, c.tls13)),
    st.tuples(st.builds(hs.CertificateRequest, blob(0, 8), extensions), st.just(True)),
    st.tuples(
        st.builds(
            hs.CertificateRequest12,
            tuples(u8, min_size=1),
            st.one_of(st.none(), tuples(u16, min_size=1)),
            tuples(blob(0, 20)),
        ),
        st.just(False),
    ),
    st.tuples(certificate_verifies, st.none()),
    st.tuples(st.builds(hs.Finished, blob()), st.none()),
    st.tuples(st.builds(hs.NewSessionTicket, u32, u32, blob(0, 16), blob(1, 40), extensions), st.just(True)),
    st.tuples(st.builds(hs.NewSessionTicket12, u32, blob()), st.just(False)),
    st.tuples(st.builds(hs.KeyUpdate, u8), st.none()),
    st.tuples(st.sampled_from([hs.EndOfEarlyData(), hs.HelloRequest(), hs.ServerHelloDone()]), st.none()),
    st.tuples(st.builds(hs.ServerKeyExchange, blob()), st.none()),
    st.tuples(st.builds(hs.ClientKeyExchange, blob()), st.none()),
    st.tuples(st.builds(hs.CompressedCertificate, u16, u24, blob(1, 40)), st.none()),
    st.tuples(st.builds(CertificateStatus, u8, blob(1, 40)), st.none()),
    st.tuples(
        st.builds(hs.UnknownHandshake, u8.filter(lambda t: t not in _KNOWN), blob()),
        st.none(),
    ),
)

key_share_entries = st.builds(KeyShareEntry, u16, blob(1, 40))
psk_offers = st.integers(1, 3).flatmap(
    lambda n: st.builds(
        OfferedPsks,
        tuples(st.builds(PskIdentity, blob(1, 30), u32), min_size=n, max_size=n),
        tuples(blob(32, 48), min_size=n, max_size=n),
    )
)
status_requests = st.builds(StatusRequest, tuples(blob(1, 10)), blob(0, 10))
