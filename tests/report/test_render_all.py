"""Every fixture's events through the three renderings (JSON, text timeline, HTML ladder), each
checked against the typed facts the events carry: what a rendering shows must be what the
parsed message says (tests/golden pins the JSON bytes; this pins where they come from)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from capdebug.analysis.decode import DecodeOptions
from capdebug.analysis.events import AlertEvent, ConnectionEvent, DecodeEvent, HandshakeEvent
from capdebug.analysis.html import ReportMeta, build_report, step_label
from capdebug.analysis.messages import certificates, negotiated_version, server_name
from capdebug.analysis.report import Timeline
from capdebug.analysis.sessions import iter_events, load_keys
from capdebug.crypto.x509 import CertSummary
from capdebug.pcap.open import open_capture
from capdebug.wire.constants import CipherSuite, name_of, version_name
from capdebug.wire.handshake import Certificate, ClientHello, ServerHello

from ._support import FIXTURES, fixture_events, report_data

ROOT = FIXTURES.parent.parent


def _captures() -> list[tuple[str, Path, Path | None]]:
    out: list[tuple[str, Path, Path | None]] = []
    for folder, prefix in ((FIXTURES, ""), (FIXTURES / "triage", "triage-")):
        for pcap in sorted(folder.glob("*.pcap*")):
            keys = pcap.with_suffix(".keys")
            out.append((prefix + pcap.stem, pcap, keys if keys.exists() else None))
    out.append(("sample", ROOT / "samples" / "tls13-premature-close.pcapng", None))
    return out


CASES = [
    (f"{name}.{'keys' if with_keys else 'nokeys'}", pcap, keys if with_keys else None)
    for name, pcap, keys in _captures()
    for with_keys in ((True, False) if keys is not None else (False,))
]


def _events(pcap: Path, keys: Path | None) -> list[DecodeEvent]:
    loaded = load_keys(pcap, [keys] if keys else [], use_env=False)
    with open_capture(pcap) as reader:
        return list(
            iter_events(
                reader, loaded.keylog, DecodeOptions(decrypt_app_data=False), late_secrets=loaded.late_randoms
            )
        )


def _leaf_subject(msg: object) -> str | None:
    if not isinstance(msg, Certificate):
        return None
    chain = certificates(msg)
    return chain[0].subject if chain and isinstance(chain[0], CertSummary) else None


@pytest.mark.parametrize(("case", "pcap", "keys"), CASES, ids=[c[0] for c in CASES])
def test_every_rendering_shows_the_typed_facts(case: str, pcap: Path, keys: Path | None) -> None:
    events = _events(pcap, keys)
    handshakes = [ev for ev in events if isinstance(ev, HandshakeEvent)]
    assert any(isinstance(ev, ConnectionEvent) for ev in events)

    # JSON: each object survives a round trip, and its fields are the message's.
    for ev in handshakes:
        obj = json.loads(json.dumps(ev.to_json()))
        msg = ev.message
        assert (obj["type"], obj["name"], obj["encrypted"]) == (ev.type, ev.name, ev.encrypted)
        if ev.error is not None:
            assert msg is None and obj["error"].startswith("malformed ")
        elif isinstance(msg, ClientHello):
            assert obj["random"] == msg.random.hex()
            assert obj.get("sni") == server_name(msg)
            assert obj["cipher_suites"] == [name_of(CipherSuite, s) for s in msg.cipher_suites]
        elif isinstance(msg, ServerHello):
            assert obj["version"] == version_name(negotiated_version(msg))
            assert obj["cipher_suite"] == name_of(CipherSuite, msg.cipher_suite)
        elif isinstance(msg, Certificate):
            assert obj["count"] == len(msg.certificate_list) == len(obj["certificates"])
            if _leaf_subject(msg) is not None:
                assert obj["certificates"][0]["subject"] == _leaf_subject(msg)

    # Text: one line per event (no collapsing), naming the message and its SNI / leaf.
    timeline = Timeline(collapse=False)
    for ev in events:
        lines = timeline.add(ev)
        assert len(lines) == 1
        if isinstance(ev, HandshakeEvent):
            text = lines[0][0]
            assert ev.name in text
            sni = server_name(ev.message) if isinstance(ev.message, ClientHello) else None
            if sni:
                assert f"sni={sni}" in text
            subject = _leaf_subject(ev.message)
            if subject:
                assert f"[0] {subject} (issuer " in text
    assert timeline.close() == []

    # HTML: the ladder has the arrows the events imply, and their details come from the facts.
    data = report_data(build_report(events, ReportMeta(pcap.name, "test")))
    opened = [ev.conn for ev in events if isinstance(ev, ConnectionEvent)]
    assert [c["conn"] for c in data["conns"]] == opened
    for conn in data["conns"]:
        if not any(s[2] == "elided" for s in conn["ladder"]):
            hs_steps = [(s[3], s[4]) for s in conn["ladder"] if s[2] == "hs"]
            assert hs_steps == [(ev.name, ev.frame) for ev in handshakes if ev.conn == conn["conn"]]
    for ev in handshakes:
        kind, label, detail = step_label(ev)
        assert (kind, label) == ("hs", ev.name)
        if isinstance(ev.message, ClientHello) and server_name(ev.message):
            assert f"SNI {server_name(ev.message)}" in detail
        subject = _leaf_subject(ev.message)
        if subject:
            assert detail.startswith(subject)


@pytest.mark.parametrize(
    ("name", "size"),
    [
        ("tls12-ecdhe-aes128gcm", 8 + 2 + 16),  # explicit nonce, alert, GCM tag
        ("tls12-chacha20", 2 + 16),  # alert, Poly1305 tag (RFC 7905: no explicit nonce)
        ("tls12-aes128-cbc-sha", 16 + 16 + 20),  # IV, one padded block, HMAC-SHA1 (encrypt-then-MAC)
    ],
)
def test_undecrypted_tls12_alert_names_its_record_size(name: str, size: int) -> None:
    alerts = [ev for ev in fixture_events(name, with_keys=False) if isinstance(ev, AlertEvent)]
    assert len(alerts) == 2 and {ev.from_ for ev in alerts} == {"client", "server"}
    for ev in alerts:
        assert ev.description is None and ev.record_length == size
        assert step_label(ev) == ("alert", "alert (encrypted)", f"no key to read it, record of {size} bytes")
    # With keys the same records decrypt to close_notify.
    decrypted = [ev for ev in fixture_events(name) if isinstance(ev, AlertEvent)]
    assert [ev.name for ev in decrypted] == ["close_notify", "close_notify"]
