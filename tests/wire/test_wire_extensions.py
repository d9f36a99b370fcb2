"""Extension body codecs: exact round trips, RFC minimum lengths, and DecodeError only."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from capdebug._buffer import Buffer
from capdebug.errors import DecodeError, NeedData
from capdebug.wire import extensions as x
from capdebug.wire import handshake as hs
from capdebug.wire.constants import CertificateStatusType

from .strategies import blob, key_share_entries, psk_offers, status_requests, tuples, u8, u16, u32

# (pull, push, strategy of decoded values)
CODECS: list[tuple[Callable[[bytes], Any], Callable[[Any], bytes], st.SearchStrategy[Any]]] = [
    (
        x.pull_server_name_list,
        x.push_server_name_list,
        tuples(st.text(st.characters(max_codepoint=255), min_size=1, max_size=20), max_size=3),
    ),
    (x.pull_supported_versions, x.push_supported_versions, tuples(u16, min_size=1, max_size=10)),
    (x.pull_selected_version, x.push_selected_version, u16),
    (x.pull_supported_groups, x.push_supported_groups, tuples(u16, min_size=1)),
    (x.pull_signature_schemes, x.push_signature_schemes, tuples(u16, min_size=1)),
    (x.pull_compress_certificate, x.push_compress_certificate, tuples(u16, min_size=1)),
    (x.pull_ec_point_formats, x.push_ec_point_formats, tuples(u8, min_size=1)),
    (x.pull_psk_key_exchange_modes, x.push_psk_key_exchange_modes, tuples(u8, min_size=1)),
    (x.pull_key_share_client, x.push_key_share_client, tuples(key_share_entries)),
    (x.pull_key_share_server, x.push_key_share_server, key_share_entries),
    (x.pull_key_share_hrr, x.push_key_share_hrr, u16),
    (x.pull_alpn_protocols, x.push_alpn_protocols, tuples(blob(1, 20), min_size=1)),
    (x.pull_offered_psks, x.push_offered_psks, psk_offers),
    (x.pull_selected_identity, x.push_selected_identity, u16),
    (x.pull_early_data, x.push_early_data, st.one_of(st.none(), u32)),
    (x.pull_cookie, x.push_cookie, blob(1, 60)),
    (x.pull_renegotiation_info, x.push_renegotiation_info, blob(0, 36)),
    (x.pull_record_size_limit, x.push_record_size_limit, u16),
    (x.pull_max_fragment_length, x.push_max_fragment_length, u8),
    (x.pull_certificate_authorities, x.push_certificate_authorities, tuples(blob(1, 20), min_size=1)),
    (x.pull_status_request, x.push_status_request, st.one_of(st.none(), status_requests)),
    (
        x.pull_certificate_status,
        x.push_certificate_status,
        st.builds(x.CertificateStatus, u8, blob(1, 40)),
    ),
]


@settings(max_examples=60, deadline=None)
@pytest.mark.parametrize(("pull", "push", "values"), CODECS, ids=[c[0].__name__ for c in CODECS])
@given(data=st.data())
def test_round_trip(
    pull: Callable[[bytes], Any], push: Callable[[Any], bytes], values: Any, data: Any
) -> None:
    value = data.draw(values)
    encoded = push(value)
    assert pull(encoded) == value
    assert push(pull(encoded)) == encoded


@settings(max_examples=60, deadline=None)
@pytest.mark.parametrize(("pull", "push", "values"), CODECS, ids=[c[0].__name__ for c in CODECS])
@given(data=st.binary(max_size=80))
def test_random_bytes_decode_error_or_exact(
    pull: Callable[[bytes], Any], push: Callable[[Any], bytes], values: Any, data: bytes
) -> None:
    try:
        value = pull(data)
    except NeedData:  # extension data is complete: running short is malformed, not truncated
        pytest.fail("NeedData escaped from an extension codec")
    except DecodeError:
        return
    assert push(value) == data


@settings(max_examples=60, deadline=None)
@pytest.mark.parametrize(("pull", "push", "values"), CODECS, ids=[c[0].__name__ for c in CODECS])
@given(data=st.data())
def test_truncation_and_trailing_bytes_are_decode_errors(
    pull: Callable[[bytes], Any], push: Callable[[Any], bytes], values: Any, data: Any
) -> None:
    encoded = push(data.draw(values))
    if encoded:
        # Dropping the last byte never yields a valid body of the same value.
        try:
            shorter = pull(encoded[:-1])
        except NeedData:
            pytest.fail("NeedData escaped")
        except DecodeError:
            pass
        else:
            assert push(shorter) == encoded[:-1]
    if pull is x.pull_padding:
        return
    with pytest.raises(DecodeError):
        pull(encoded + b"\x00")


def test_minimum_lengths() -> None:
    with pytest.raises(DecodeError):
        x.pull_server_name_list(b"\x00\x00")  # ServerNameList<1..2^16-1>
    with pytest.raises(DecodeError):
        x.pull_server_name_list(b"\x00\x03\x00\x00\x00")  # HostName<1..2^16-1>
    with pytest.raises(DecodeError):
        x.pull_server_name_list(b"\x00\x04\x01\x00\x01a")  # unknown NameType
    with pytest.raises(DecodeError):
        x.pull_supported_versions(b"\x00")
    with pytest.raises(DecodeError):
        x.pull_supported_versions(b"\x03\x03\x04\x03")  # odd length
    with pytest.raises(DecodeError):
        x.pull_alpn_protocols(b"\x00\x01\x00")
    with pytest.raises(DecodeError):
        x.pull_key_share_client(b"\x00\x04\x00\x1d\x00\x00")  # empty key_exchange
    with pytest.raises(DecodeError):
        x.pull_cookie(b"\x00\x00")
    with pytest.raises(DecodeError):
        x.pull_empty(b"\x00")
    with pytest.raises(DecodeError):
        x.pull_status_request(b"\x02\x00\x00\x00\x00")  # only ocsp has a defined body


def test_server_ack_forms() -> None:
    assert x.pull_server_name_list(b"") == ()
    assert x.push_server_name_list(()) == b""
    assert x.pull_early_data(b"") is None
    assert x.pull_status_request(b"") is None
    x.pull_empty(b"")
    assert x.push_empty() == b""
    assert x.pull_padding(bytes(17)) == 17 and x.push_padding(3) == bytes(3)


def test_known_encodings() -> None:
    assert x.push_server_name_list(("example.com",)) == b"\x00\x0e\x00\x00\x0bexample.com"
    assert x.push_alpn_protocols((b"h2", b"http/1.1")) == b"\x00\x0c\x02h2\x08http/1.1"
    assert x.push_supported_versions((0x0304, 0x0303)) == b"\x04\x03\x04\x03\x03"
    assert x.push_status_request(x.StatusRequest((), b"")) == b"\x01\x00\x00\x00\x00"
    assert x.StatusRequest((), b"").status_type == CertificateStatusType.ocsp


def test_binders_size_matches_encoding() -> None:
    offer = x.OfferedPsks((x.PskIdentity(b"id", 5),), (bytes(32),))
    encoded = x.push_offered_psks(offer)
    assert x.binders_size(offer) == 2 + 1 + 32
    assert encoded[-x.binders_size(offer) :] == b"\x00\x21\x20" + bytes(32)


def test_ext_accessor() -> None:
    exts = (x.Extension(1, b"a"), x.Extension(2, b"b"), x.Extension(1, b"c"))
    assert x.ext(exts, 1) == b"a"  # first of duplicates
    assert x.ext(exts, 3) is None


def test_duplicate_extensions_are_a_typed_decode_error() -> None:
    # RFC 8446 4.2 / RFC 5246 7.4.1.4: detected once, where the list is decoded.
    data = bytes.fromhex("000c0001 0001 610002 00000001 0000")
    with pytest.raises(x.DuplicateExtension) as info:
        x.pull_extensions(Buffer(data))
    assert info.value.ext_type == 1 and isinstance(info.value, DecodeError)
    assert x.pull_extensions(Buffer(bytes.fromhex("00090001 0001 610002 0000"))) == (
        x.Extension(1, b"a"),
        x.Extension(2, b""),
    )


def test_a_message_with_duplicate_extensions_does_not_parse() -> None:
    hello = hs.ClientHello(
        0x0303, bytes(32), b"", (0x1301,), b"\x00", (x.Extension(43, b"\x02\x03\x04"), x.Extension(43, b""))
    )
    with pytest.raises(DecodeError, match="duplicate extension supported_versions"):
        hs.pull_handshake(Buffer(hs.encode_handshake(hello)))
