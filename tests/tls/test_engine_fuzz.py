"""Whatever bytes arrive, the engine either goes on or fails with a TLSError (and an alert for
the peer): no other exception escapes (the h11 fuzz-harness invariant)."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from capdebug.errors import TLSError
from capdebug.tls.connection import Connection

from ._pki import NOW, Pki, client_config, server_config

SETTINGS = settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def _drain_or_tls_error(conn: Connection) -> None:
    try:
        while conn.next_event() is not None:
            pass
    except TLSError:
        assert conn.error is not None
        conn.data_to_send()  # the alert, if any, is ready; must not raise either


@pytest.fixture(scope="module")
def flights(pki: Pki) -> tuple[bytes, bytes]:
    client = Connection(client_config(pki), is_client=True, now=NOW)
    server = Connection(server_config(pki), is_client=False, now=NOW)
    client.start_handshake()
    hello = client.data_to_send()
    server.receive_data(hello)
    return hello, server.data_to_send()


@SETTINGS
@given(data=st.binary(max_size=600))
def test_server_survives_random_bytes(pki: Pki, data: bytes) -> None:
    server = Connection(server_config(pki), is_client=False, now=NOW)
    server.receive_data(data)
    _drain_or_tls_error(server)


@SETTINGS
@given(st.data())
def test_server_survives_a_mutated_client_hello(
    pki: Pki, flights: tuple[bytes, bytes], data: st.DataObject
) -> None:
    hello = bytearray(flights[0])
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(hello) - 1))
        hello[i] = data.draw(st.integers(0, 255))
    server = Connection(server_config(pki), is_client=False, now=NOW)
    server.receive_data(bytes(hello))
    _drain_or_tls_error(server)


@SETTINGS
@given(st.data())
def test_client_survives_a_mutated_server_flight(pki: Pki, data: st.DataObject) -> None:
    client = Connection(client_config(pki), is_client=True, now=NOW)
    server = Connection(server_config(pki), is_client=False, now=NOW)
    client.start_handshake()
    server.receive_data(client.data_to_send())
    flight = bytearray(server.data_to_send())
    # Positions are drawn independently of the flight's length, which varies with the
    # signature (ECDSA DER): hypothesis needs the same draws for the same example.
    i = data.draw(st.integers(0, 1 << 20)) % len(flight)
    flight[i] ^= data.draw(st.integers(1, 255))
    cut = data.draw(st.integers(0, 1 << 20)) % (len(flight) + 1)
    client.receive_data(bytes(flight[:cut]))
    client.receive_data(bytes(flight[cut:]))
    # Some bytes are rightly ignored (legacy_record_version, RFC 8446 5.1), so the handshake
    # may even complete; the invariant is only that nothing but TLSError escapes.
    _drain_or_tls_error(client)


@pytest.fixture(scope="module")
def flights12(pki: Pki) -> tuple[bytes, bytes, bytes]:
    from capdebug.wire.constants import ProtocolVersion

    client = Connection(client_config(pki, max_version=ProtocolVersion.TLS1_2), is_client=True, now=NOW)
    server = Connection(server_config(pki), is_client=False, now=NOW)
    client.start_handshake()
    hello = client.data_to_send()
    server.receive_data(hello)
    server_flight = server.data_to_send()
    client.receive_data(server_flight)
    return hello, server_flight, client.data_to_send()


@SETTINGS
@given(st.data())
def test_tls12_client_survives_a_mutated_server_flight(
    pki: Pki, flights12: tuple[bytes, bytes, bytes], data: st.DataObject
) -> None:
    from capdebug.wire.constants import ProtocolVersion

    flight = bytearray(flights12[1])
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(flight) - 1))
        flight[i] = data.draw(st.integers(0, 255))
    client = Connection(client_config(pki, max_version=ProtocolVersion.TLS1_2), is_client=True, now=NOW)
    client.start_handshake()
    client.data_to_send()
    client.receive_data(bytes(flight))
    _drain_or_tls_error(client)


@SETTINGS
@given(st.data())
def test_tls12_server_survives_a_mutated_client_flight(
    pki: Pki, flights12: tuple[bytes, bytes, bytes], data: st.DataObject
) -> None:
    hello, _, last = flights12
    flight = bytearray(last)
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(flight) - 1))
        flight[i] = data.draw(st.integers(0, 255))
    server = Connection(server_config(pki), is_client=False, now=NOW)
    server.receive_data(hello)
    server.data_to_send()
    server.receive_data(bytes(flight))
    _drain_or_tls_error(server)


@pytest.mark.parametrize("verify", [True, False])
def test_tls12_client_names_a_certificate_with_a_bad_version(pki: Pki, verify: bool) -> None:
    """Found by the fuzzer above: an X.509 version byte of 1 made cryptography raise
    InvalidVersion (not a ValueError) out of the TLS 1.2 key-type check."""
    from capdebug.wire.constants import ProtocolVersion

    cfg = client_config(pki, max_version=ProtocolVersion.TLS1_2, verify=verify)
    client = Connection(cfg, is_client=True, now=NOW)
    server = Connection(server_config(pki), is_client=False, now=NOW)
    client.start_handshake()
    server.receive_data(client.data_to_send())
    flight = bytearray(server.data_to_send())
    leaf = pki.chain("ecdsa")[0]
    at = bytes(flight).index(leaf)
    # tbsCertificate's [0] EXPLICIT version INTEGER: 02 01 02 (v3) -> 02 01 01.
    version_at = bytes(flight).index(b"\xa0\x03\x02\x01\x02", at) + 4
    flight[version_at] = 0x01
    client.receive_data(bytes(flight))
    with pytest.raises(TLSError) as exc:
        while client.next_event() is not None:
            pass
    assert exc.value.name in ("ERR_CERT_INVALID", "ERR_CERT_UNKNOWN_CA", "ERR_BAD_SIGNATURE")
