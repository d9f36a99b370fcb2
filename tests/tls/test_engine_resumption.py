"""TLS 1.3 resumption with tickets (RFC 8446 2.2, 4.2.11, 4.6.1), engine against engine in
memory: the ticket resumes once, the binder is checked, a session survives serialisation."""

from __future__ import annotations

import dataclasses

import pytest

from capdebug.errors import TLSError
from capdebug.tls.config import TLSConfig
from capdebug.tls.connection import Connection
from capdebug.tls.events import HandshakeComplete, NewSessionTicketReceived
from capdebug.tls.session import Session
from capdebug.wire.constants import AlertDescription

from ._pki import NOW, Pki, client_config, drain, pump, server_config


def run(
    ccfg: TLSConfig, scfg: TLSConfig, session: Session | None = None
) -> tuple[Connection, Connection, list[object]]:
    c = Connection(ccfg, is_client=True, now=NOW, session=session)
    s = Connection(scfg, is_client=False, now=NOW)
    c.start_handshake()
    pump(c, s)
    if c.error is not None or s.error is not None:
        return c, s, []
    events = list(drain(c))
    drain(s)
    return c, s, events


def first_session(pki: Pki, scfg: TLSConfig) -> Session:
    _, _, events = run(client_config(pki), scfg)
    tickets = [e for e in events if isinstance(e, NewSessionTicketReceived)]
    assert tickets and tickets[0].session is not None
    return tickets[0].session


def test_resumes_once_without_certificates(pki: Pki) -> None:
    scfg = server_config(pki)
    session = first_session(pki, scfg)
    lines: list[str] = []
    c, s, events = run(client_config(pki, key_log_callback=lines.append), scfg, session)
    hs = next(e for e in events if isinstance(e, HandshakeComplete))
    assert hs.resumed and hs.signature_scheme is None and c.resumed and s.resumed
    assert hs.cipher_suite is session.cipher_suite
    c.send_application_data(b"resumed")
    pump(c, s)
    assert [getattr(e, "data", None) for e in drain(s)] == [b"resumed"]
    # Single use: the same ticket again gives a full handshake (RFC 8446 8.1).
    _c2, s2, events2 = run(client_config(pki), scfg, session)
    hs2 = next(e for e in events2 if isinstance(e, HandshakeComplete))
    assert not hs2.resumed and hs2.signature_scheme is not None
    assert s2._replayed_ticket


def test_session_round_trips_through_bytes(pki: Pki) -> None:
    scfg = server_config(pki)
    session = first_session(pki, scfg)
    again = Session.from_bytes(session.to_bytes())
    assert again == session
    assert "psk" not in repr(session) or session.psk.hex() not in repr(session)
    _, _, events = run(client_config(pki), scfg, again)
    assert next(e for e in events if isinstance(e, HandshakeComplete)).resumed


def test_another_servers_ticket_is_a_full_handshake(pki: Pki) -> None:
    session = first_session(pki, server_config(pki))
    _, _, events = run(client_config(pki), server_config(pki), session)  # another ticket key
    assert not next(e for e in events if isinstance(e, HandshakeComplete)).resumed


def test_wrong_binder_is_decrypt_error(pki: Pki) -> None:
    scfg = server_config(pki)
    session = first_session(pki, scfg)
    forged = dataclasses.replace(session, psk=bytes(len(session.psk)))
    c, s, _ = run(client_config(pki), scfg, forged)
    assert s.error is not None and s.error.name == "ERR_BAD_BINDER"
    assert s.error.alert == AlertDescription.decrypt_error
    with pytest.raises(TLSError) as exc:
        drain(c)
    assert exc.value.alert == AlertDescription.decrypt_error


def test_resumption_after_hello_retry_request(pki: Pki) -> None:
    from capdebug.wire.constants import NamedGroup

    scfg = server_config(pki, groups=(NamedGroup.secp384r1,))
    session = first_session(pki, scfg)
    _, _, events = run(client_config(pki), scfg, session)
    hs = next(e for e in events if isinstance(e, HandshakeComplete))
    assert hs.resumed and hs.hello_retry
