"""The decoder opens records through the record layer the engine seals with
(`crypto/record.RecordDirection`), and a KeyUpdate's next generation is derived in one place."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest

import capdebug
from capdebug.analysis import keys as keymod
from capdebug.crypto.record import RecordDirection
from capdebug.crypto.suites import SUITES
from tests.decode import craft as c

PKG = Path(capdebug.__file__).parent


def test_the_decoders_keys_are_the_record_layer() -> None:
    params = next(p for p in SUITES.values() if p.version == "1.3")
    keys = keymod.Keys(
        keymod.Tls13Protection(params, b"\x01" * params.hash_len),
        keymod.Stage.APPLICATION,
        "SERVER_TRAFFIC_SECRET_0",
        tls13=True,
        secret=b"\x01" * params.hash_len,
    )
    assert isinstance(keys, RecordDirection)
    nxt = keys.next_generation()
    # The stage and label travel with the generation the record layer derived.
    assert isinstance(nxt, keymod.Keys)
    assert (nxt.stage, nxt.label, nxt.generation, nxt.seq) == (keys.stage, keys.label, 1, 0)
    assert nxt.traffic_secret != keys.traffic_secret
    # Sealed by a plain RecordDirection with the same next generation, opened by the decoder's.
    engine = RecordDirection.tls13(params, keys.traffic_secret, "application").key_update()
    record = engine.seal(23, b"hello")
    assert nxt.open_at(record[:5], record[5:], 0) == (23, b"hello")


def test_decoding_opens_every_record_through_record_direction(monkeypatch: pytest.MonkeyPatch) -> None:
    opened: list[int] = []
    real = RecordDirection.open_at

    def spy(self: RecordDirection, header: Any, fragment: Any, seq: int) -> Any:
        result = real(self, header, fragment, seq)
        opened.append(seq)
        return result

    monkeypatch.setattr(RecordDirection, "open_at", spy)
    pcap, keys = c.fixture("tls13-keyupdate")
    with capdebug.decode_capture(pcap, capdebug.load_keys(pcap, [keys])) as decoding:
        events = [e.to_json() for e in decoding]
    decrypted = [e for e in events if e["event"] == "app_data" and e["decrypted"]]
    encrypted_hs = [e for e in events if e["event"] == "handshake" and e["encrypted"]]
    assert decrypted and encrypted_hs
    assert len(opened) >= len(decrypted) + len(encrypted_hs)


def test_next_traffic_secret_is_derived_only_in_crypto() -> None:
    users = []
    for path in PKG.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Name | ast.Attribute):
                name = node.id if isinstance(node, ast.Name) else node.attr
                if name == "next_traffic_secret":
                    users.append(path.relative_to(PKG).parts[0])
    assert users and set(users) == {"crypto"}
