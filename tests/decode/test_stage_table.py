"""The decoder's stage table (analysis/decode/stages.py) and the key lookups' SessionFacts.

The table is checked against the RFC's key schedule (which message moves which direction to
which keys), and SessionFacts against the real hellos of the fixtures: what it notes is what
the key lookups then read (keys.py touches no decoder state).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import capdebug
from capdebug._buffer import Buffer
from capdebug.analysis.decode.stages import CCS_STEPS, KEY_STEPS, KeyStep
from capdebug.analysis.keys import Role, SessionFacts
from capdebug.wire.constants import HandshakeType, ProtocolVersion
from capdebug.wire.handshake import ClientHello, ServerHello, frame_handshake, pull_handshake
from capdebug.wire.record import scan_records
from tests.decode import craft as c

V12, V13 = ProtocolVersion.TLS1_2, ProtocolVersion.TLS1_3
H = HandshakeType


def test_tls13_schedule_rfc8446_7_1() -> None:
    # Handshake keys for both directions at the ServerHello; each sender's Finished moves it
    # to application keys; its KeyUpdate to the next generation (RFC 8446 7.1, 7.2).
    assert KEY_STEPS[(V13, Role.SERVER, H.server_hello)] is KeyStep.HANDSHAKE_KEYS
    for role in Role:
        assert KEY_STEPS[(V13, role, H.finished)] is KeyStep.APPLICATION_KEYS
        assert KEY_STEPS[(V13, role, H.key_update)] is KeyStep.NEXT_GENERATION
    # 0-RTT: the ClientHello may start early keys, EndOfEarlyData ends them (RFC 8446 4.5).
    assert KEY_STEPS[(None, Role.CLIENT, H.client_hello)] is KeyStep.EARLY_IF_OFFERED
    assert KEY_STEPS[(V13, Role.CLIENT, H.end_of_early_data)] is KeyStep.HANDSHAKE_AFTER_EARLY


def test_tls12_changes_keys_only_at_change_cipher_spec() -> None:
    # RFC 5246 7.1: the key block takes effect at each sender's ChangeCipherSpec, not at Finished.
    assert CCS_STEPS == {(V12, Role.CLIENT): KeyStep.KEY_BLOCK, (V12, Role.SERVER): KeyStep.KEY_BLOCK}
    for role in Role:
        assert (V12, role, H.finished) not in KEY_STEPS
        assert (V12, role, H.key_update) not in KEY_STEPS
    # A TLS 1.3 ChangeCipherSpec is the compatibility no-op (RFC 8446 D.4).
    assert all(version is V12 for version, _ in CCS_STEPS)


def test_messages_from_the_wrong_side_change_nothing() -> None:
    # A ClientHello from the server or a ServerHello from the client (role confusion) and a
    # server EndOfEarlyData move no keys.
    assert not any((v, Role.SERVER, H.client_hello) in KEY_STEPS for v in (None, V12, V13))
    assert not any((v, Role.CLIENT, H.server_hello) in KEY_STEPS for v in (None, V12, V13))
    assert (V13, Role.SERVER, H.end_of_early_data) not in KEY_STEPS


def _hellos(name: str) -> tuple[ClientHello, ServerHello]:
    segs = c.read_segments(c.fixture(name)[0])
    client = c.client_of(segs)
    found: list[object] = []
    for from_client in (True, False):
        data = c.stream(segs, client, from_client)
        records, _, _ = scan_records(data)
        ctype, at, length = records[0]
        assert ctype == 22
        msgs, _ = frame_handshake(data[at + 5 : at + 5 + length])
        _, mat, mlen = msgs[0]
        body = data[at + 5 + mat : at + 5 + mat + 4 + mlen]
        found.append(pull_handshake(Buffer(body)))
    ch, sh = found
    assert isinstance(ch, ClientHello) and isinstance(sh, ServerHello)
    return ch, sh


@pytest.mark.parametrize(
    ("name", "version", "early"),
    [("tls13-aes128gcm", V13, False), ("tls13-chacha20", V13, False), ("tls12-ecdhe-aes128gcm", V12, False)],
)
def test_session_facts_from_real_hellos(name: str, version: ProtocolVersion, early: bool) -> None:
    ch, sh = _hellos(name)
    facts = SessionFacts()
    facts.note_client_hello(ch)
    facts.note_server_hello(sh)
    assert facts.client_random == bytes(ch.random) and len(facts.client_random) == 32
    assert facts.server_random == bytes(sh.random)
    assert facts.version is version
    assert facts.suite == int(sh.cipher_suite)
    assert facts.sh_seen and not facts.hrr
    assert facts.early_offered is early
    # The key lookups then find the key stage from the table by the noted version.
    assert (facts.version, Role.SERVER, H.server_hello) in KEY_STEPS


def test_keys_module_does_not_reach_into_the_decoder() -> None:
    source = Path(capdebug.__file__).parent / "analysis" / "keys.py"
    tree = ast.parse(source.read_text())
    imported = [(node.module or "") for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)]
    assert imported and not any("decode" in m for m in imported), imported
    assert "_Session" not in source.read_text()
