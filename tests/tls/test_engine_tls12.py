"""TLS 1.2 (RFC 5246) in the engine, engine against engine in memory: every suite, the
extended master secret, encrypt_then_mac, the key log, client authentication and the refusal
of renegotiation. Interop with real peers is in test_engine_interop12.py."""

from __future__ import annotations

import pytest

from capdebug.crypto.keylog import KeyLog
from capdebug.tls.config import ClientAuth, TLSConfig
from capdebug.tls.connection import Connection
from capdebug.tls.events import ApplicationData, HandshakeComplete, RenegotiationRefused
from capdebug.wire.constants import CipherSuite, ProtocolVersion

from ._pki import NOW, Pki, client_config, drain, pump, server_config

CS = CipherSuite
TLS12 = ProtocolVersion.TLS1_2
ECDSA_SUITES = [
    CS.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    CS.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    CS.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    CS.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA,
    CS.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA,
]
RSA_SUITES = [
    CS.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    CS.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
    CS.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    CS.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA,
    CS.TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA,
    CS.TLS_RSA_WITH_AES_128_GCM_SHA256,
]


def handshake(
    client_cfg: TLSConfig, server_cfg: TLSConfig
) -> tuple[Connection, Connection, list[object], list[object]]:
    c = Connection(client_cfg, is_client=True, now=NOW)
    s = Connection(server_cfg, is_client=False, now=NOW)
    c.start_handshake()
    pump(c, s)
    return c, s, list(drain(c)), list(drain(s))


def _complete(events: list[object]) -> HandshakeComplete:
    found = [e for e in events if isinstance(e, HandshakeComplete)]
    assert len(found) == 1, events
    return found[0]


GRID = [(s, False) for s in ECDSA_SUITES + RSA_SUITES] + [
    (s, True) for s in ECDSA_SUITES + RSA_SUITES if s.name.endswith("_CBC_SHA")
]


@pytest.mark.parametrize(
    ("suite", "etm"), GRID, ids=lambda v: v.name if isinstance(v, CipherSuite) else f"etm={v}"
)
def test_each_suite_engine_to_engine(pki: Pki, suite: CipherSuite, etm: bool) -> None:
    leaf = "rsa" if "_RSA_" in suite.name else "ecdsa"
    client_lines: list[str] = []
    server_lines: list[str] = []
    c, s, cev, sev = handshake(
        client_config(
            pki, cipher_suites=(suite,), encrypt_then_mac=etm, key_log_callback=client_lines.append
        ),
        server_config(
            pki, leaf, cipher_suites=(suite,), encrypt_then_mac=etm, key_log_callback=server_lines.append
        ),
    )
    ch, sh = _complete(cev), _complete(sev)
    for hs in (ch, sh):
        assert hs.version is TLS12 and hs.cipher_suite is suite
        assert hs.extended_master_secret
        assert hs.encrypt_then_mac is (etm and suite.name.endswith("_CBC_SHA"))
    assert (ch.group is None) is (suite is CS.TLS_RSA_WITH_AES_128_GCM_SHA256)
    # One CLIENT_RANDOM line each, the same master secret on both sides.
    assert client_lines == server_lines and len(client_lines) == 1
    (entry,) = KeyLog.parse(client_lines[0]).entries()
    assert (
        entry.label == "CLIENT_RANDOM" and entry.client_random == c.client_random and len(entry.secret) == 48
    )
    c.send_application_data(b"ping" * 5000)
    pump(c, s)
    got = b"".join(e.data for e in drain(s) if isinstance(e, ApplicationData))
    assert got == b"ping" * 5000
    s.send_application_data(b"pong")
    s.close()
    pump(c, s)
    assert [type(e).__name__ for e in drain(c)] == ["ApplicationData", "CloseNotifyReceived"]


def test_defaults_prefer_tls13(pki: Pki) -> None:
    _, _, cev, _ = handshake(client_config(pki), server_config(pki))
    assert _complete(cev).version is ProtocolVersion.TLS1_3


def test_tls12_only_server_gets_tls12_from_default_client(pki: Pki) -> None:
    _, _, cev, _sev = handshake(client_config(pki), server_config(pki, max_version=TLS12))
    assert _complete(cev).version is TLS12
    assert _complete(cev).cipher_suite is CS.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256


def test_client_auth_tls12(pki: Pki) -> None:
    _c, _s, cev, sev = handshake(
        client_config(pki, credential=pki.credential("client"), max_version=TLS12),
        server_config(pki, client_auth=ClientAuth.REQUIRED),
    )
    _complete(cev)
    assert _complete(sev).peer_certificates == pki.chain("client")


def test_renegotiation_refused_by_server(pki: Pki) -> None:
    c, s, _, _ = handshake(client_config(pki, max_version=TLS12), server_config(pki))
    # A second ClientHello on the established connection, sent by hand under the client's keys.
    from capdebug.tls import client as client_mod
    from capdebug.tls import records

    hello = client_mod.build_client_hello(c)
    from capdebug.wire.handshake import encode_handshake

    records.write_record(c, 22, encode_handshake(hello))
    pump(c, s)
    assert any(isinstance(e, RenegotiationRefused) and e.by_client for e in drain(s))
    cev = drain(c)
    assert any(getattr(e, "description", None) == 100 and getattr(e, "level", None) == 1 for e in cev)
    # The connection goes on.
    s.send_application_data(b"still here")
    pump(c, s)
    assert [e.data for e in drain(c) if isinstance(e, ApplicationData)] == [b"still here"]


def test_server_tolerates_a_higher_legacy_version_without_supported_versions(pki: Pki) -> None:
    """RFC 5246 E.1: a server gets a client_version above its own and answers with its highest."""
    import dataclasses

    from capdebug._buffer import Buffer
    from capdebug.wire.constants import ExtensionType
    from capdebug.wire.handshake import ClientHello, ServerHello, encode_handshake, pull_handshake

    c = Connection(client_config(pki), is_client=True, now=NOW)
    c.start_handshake()
    out = c.data_to_send()
    hello = pull_handshake(Buffer(out[5:]))
    assert isinstance(hello, ClientHello)
    hello = dataclasses.replace(
        hello,
        legacy_version=0x0400,
        extensions=tuple(e for e in hello.extensions if e.type != ExtensionType.supported_versions),
    )
    body = encode_handshake(hello)
    s = Connection(server_config(pki), is_client=False, now=NOW)
    s.receive_data(out[:3] + len(body).to_bytes(2, "big") + body)
    reply = s.data_to_send()
    sh = pull_handshake(Buffer(reply[5:]))
    assert isinstance(sh, ServerHello) and sh.legacy_version == TLS12
    assert sh.random[-8:] == b"DOWNGRD\x01"  # it could have done TLS 1.3 (RFC 8446 4.1.3)
    assert s.error is None


def test_tls12_alert_warning_is_not_fatal_but_fatal_is(pki: Pki) -> None:
    from capdebug.errors import TLSError
    from capdebug.tls import records
    from capdebug.tls.events import AlertReceived
    from capdebug.wire.constants import AlertDescription

    c, s, _, _ = handshake(client_config(pki, max_version=TLS12), server_config(pki))
    # A warning-level alert other than close_notify (user_canceled is one in every version).
    records.write_record(c, 21, bytes((1, AlertDescription.unsupported_certificate)))
    pump(c, s)
    assert drain(s) == [AlertReceived(1, AlertDescription.unsupported_certificate)]
    s.send_application_data(b"alive")
    pump(c, s)
    assert [e.data for e in drain(c) if isinstance(e, ApplicationData)] == [b"alive"]
    records.write_record(c, 21, bytes((2, AlertDescription.internal_error)))
    pump(c, s)
    with pytest.raises(TLSError) as exc:
        drain(s)
    assert exc.value.name == "ERR_PEER_ALERT" and exc.value.alert == AlertDescription.internal_error


def _session12(events: list[object]) -> object:
    from capdebug.tls.events import NewSessionTicketReceived

    found = [e.session for e in events if isinstance(e, NewSessionTicketReceived) and e.session is not None]
    assert len(found) == 1
    return found[0]


@pytest.mark.parametrize("tickets", [1, 0], ids=["ticket", "session-id"])
def test_tls12_resumption_by_ticket_or_session_id(pki: Pki, tickets: int) -> None:
    from capdebug.tls.session import Session

    scfg = server_config(pki, max_version=TLS12, session_tickets=tickets)
    _c, _s, cev, _ = handshake(client_config(pki), scfg)
    session = _session12(cev)
    assert isinstance(session, Session) and session.version is TLS12
    assert bool(session.ticket) is bool(tickets) and len(session.session_id) == 32
    again = Session.from_bytes(session.to_bytes())
    lines: list[str] = []
    c2 = Connection(client_config(pki, key_log_callback=lines.append), is_client=True, now=NOW, session=again)
    s2 = Connection(scfg, is_client=False, now=NOW)
    c2.start_handshake()
    pump(c2, s2)
    hs = _complete(drain(c2))
    assert hs.resumed and hs.version is TLS12 and hs.cipher_suite is session.cipher_suite
    assert _complete(drain(s2)).resumed and c2.resumed
    # Same master secret, new randoms: a new CLIENT_RANDOM line with the old secret.
    assert lines and lines[0].split()[2] == session.master_secret.hex()
    c2.send_application_data(b"resumed 1.2")
    pump(c2, s2)
    assert [e.data for e in drain(s2) if isinstance(e, ApplicationData)] == [b"resumed 1.2"]


def test_tls12_unknown_session_is_a_full_handshake(pki: Pki) -> None:
    scfg = server_config(pki, max_version=TLS12)
    _, _, cev, _ = handshake(client_config(pki), scfg)
    session = _session12(cev)
    other = server_config(pki, max_version=TLS12)  # another ticket key and cache
    c = Connection(client_config(pki), is_client=True, now=NOW, session=session)  # type: ignore[arg-type]
    s = Connection(other, is_client=False, now=NOW)
    c.start_handshake()
    pump(c, s)
    assert not _complete(drain(c)).resumed


def test_fault_injection_works_in_tls12_states(pki: Pki) -> None:
    from capdebug.errors import TLSError
    from capdebug.tls.faults import Faults
    from capdebug.tls.state import State
    from capdebug.wire.constants import AlertDescription

    faults = Faults()
    faults.alert_at(State.SERVER12_EXPECT_CLIENT_KEY_EXCHANGE, AlertDescription.handshake_failure)
    c = Connection(client_config(pki, max_version=TLS12), is_client=True, now=NOW)
    s = Connection(server_config(pki), is_client=False, now=NOW, faults=faults)
    c.start_handshake()
    pump(c, s)
    assert faults.fired == ["alert_at:SERVER12_EXPECT_CLIENT_KEY_EXCHANGE"]
    with pytest.raises(TLSError) as exc:
        drain(c)
    assert exc.value.name == "ERR_PEER_ALERT" and exc.value.alert == AlertDescription.handshake_failure

    tamper = Faults()
    c = Connection(client_config(pki, max_version=TLS12), is_client=True, now=NOW, faults=tamper)
    s = Connection(server_config(pki), is_client=False, now=NOW)
    c.start_handshake()
    pump(c, s)
    drain(c), drain(s)
    tamper.tamper_next_record()
    c.send_application_data(b"flipped")
    pump(c, s)
    with pytest.raises(TLSError) as exc:
        drain(s)
    assert exc.value.name == "ERR_BAD_RECORD_MAC" and tamper.fired == ["tamper_record"]
