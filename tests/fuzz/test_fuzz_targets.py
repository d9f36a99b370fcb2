"""Bounded hypothesis runs of every fuzz target (``scripts/fuzz_targets.py``): the invariant is
that only the error each contract names escapes (none for the key-log parser, CaptureFormatError
for captures, TLSError for the engine). Seeds are real captures and real handshakes, mutated."""

from __future__ import annotations

import fuzz_targets as ft
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

QUICK = settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
SLOW = settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))

SEEDS = ft.seed_captures()


@st.composite
def mutated(draw: st.DrawFn, seeds: list[bytes]) -> bytes:
    data = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(1, 8))):
        i = draw(st.integers(0, 1 << 24)) % max(1, len(data))
        op = draw(st.integers(0, 2))
        if op == 0 and data:
            data[i] = draw(st.integers(0, 255))
        elif op == 1:
            data[i:i] = draw(st.binary(min_size=1, max_size=8))
        else:
            del data[i : i + draw(st.integers(1, 64))]
    return bytes(data)


@QUICK
@given(st.binary(max_size=2000) | mutated(SEEDS))
def test_capture_readers(data: bytes) -> None:
    ft.target_capture(data)


@QUICK
@given(st.binary(max_size=2000) | st.text(max_size=2000).map(str.encode))
def test_keylog_parser(data: bytes) -> None:
    ft.target_keylog(data)


@SLOW
@given(mutated(SEEDS))
def test_decode_triage_and_report(data: bytes) -> None:
    ft.target_decode(data)


RECORDS = st.lists(
    st.tuples(st.sampled_from([20, 21, 22, 23, 24, 0, 255]), st.binary(max_size=300)), max_size=6
).map(lambda rs: b"".join(bytes([t]) + len(c).to_bytes(2, "big") + c for t, c in rs))
HANDSHAKE = st.lists(st.tuples(st.integers(0, 255), st.binary(max_size=200)), min_size=1, max_size=4).map(
    lambda ms: b"".join(bytes([t]) + len(b).to_bytes(3, "big") + b for t, b in ms)
)
SEALED = RECORDS | HANDSHAKE.map(lambda h: b"\x16" + len(h).to_bytes(2, "big") + h)


@QUICK
@given(st.binary(max_size=1000))
def test_engine_server_raw(data: bytes) -> None:
    ft.target_server(data)


@QUICK
@given(st.binary(max_size=1000))
def test_engine_client_raw(data: bytes) -> None:
    ft.target_client(data)


@pytest.mark.parametrize("name", ["server-hs", "client-hs", "server-app", "client-app"])
def test_engine_with_real_keys(name: str) -> None:
    target = ft.TARGETS[name]

    @SLOW
    @given(SEALED)
    def run(data: bytes) -> None:
        target(data)

    run()


def test_the_keyed_targets_reach_the_parsers_behind_the_keys() -> None:
    """The sealing is right: a KeyUpdate under the application keys is taken (the read key
    moves to generation 1); under the handshake keys the same message is an unexpected one,
    refused by the state table after decryption, not a bad record MAC."""
    key_update = b"\x16\x00\x05\x18\x00\x00\x01\x01"
    for name in ("server-app", "client-app"):
        conn = ft.TARGETS[name](key_update)
        assert conn.error is None, name  # type: ignore[attr-defined]
        assert conn._rx.generation == 1, name  # type: ignore[attr-defined]
    for name in ("server-hs", "client-hs"):
        conn = ft.TARGETS[name](key_update)
        assert conn.error is not None and conn.error.name == "ERR_UNEXPECTED_MESSAGE", name  # type: ignore[attr-defined]
