"""TLS 1.3 0-RTT (RFC 8446 2.3, 4.2.10), engine against engine: accepted, rejected by
configuration (and skipped), refused on a replayed ticket, and dropped by a HelloRetryRequest;
the client logs CLIENT_EARLY_TRAFFIC_SECRET and the server derives the same."""

from __future__ import annotations

from capdebug.tls.config import TLSConfig
from capdebug.tls.connection import Connection
from capdebug.tls.events import (
    ApplicationData,
    EarlyDataReceived,
    HandshakeComplete,
    NewSessionTicketReceived,
)
from capdebug.tls.session import Session
from capdebug.wire.constants import NamedGroup

from ._pki import NOW, Pki, client_config, drain, pump, server_config


def session_for(pki: Pki, scfg: TLSConfig) -> Session:
    c = Connection(client_config(pki), is_client=True, now=NOW)
    s = Connection(scfg, is_client=False, now=NOW)
    c.start_handshake()
    pump(c, s)
    found = [e.session for e in drain(c) if isinstance(e, NewSessionTicketReceived) and e.session]
    assert found
    return found[0]


def zero_rtt(
    pki: Pki, scfg: TLSConfig, session: Session, data: bytes
) -> tuple[list[object], list[object], list[str], list[str]]:
    clines: list[str] = []
    slines: list[str] = []
    c = Connection(
        client_config(pki, key_log_callback=clines.append),
        is_client=True,
        now=NOW,
        session=session,
        early_data=data,
    )
    s = Connection(
        TLSConfig(
            **{**{f: getattr(scfg, f) for f in scfg.__dataclass_fields__}, "key_log_callback": slines.append}
        ),
        is_client=False,
        now=NOW,
    )
    c.start_handshake()
    pump(c, s)
    c.send_application_data(b"after")
    pump(c, s)
    return list(drain(c)), list(drain(s)), clines, slines


def test_early_data_accepted(pki: Pki) -> None:
    scfg = server_config(pki, max_early_data=1024)
    session = session_for(pki, scfg)
    assert session.max_early_data == 1024
    cev, sev, clines, slines = zero_rtt(pki, scfg, session, b"GET / 0-RTT")
    hs = next(e for e in cev if isinstance(e, HandshakeComplete))
    assert hs.resumed and hs.early_data is True
    assert [type(e).__name__ for e in sev if not isinstance(e, HandshakeComplete)][:1] == [
        "EarlyDataReceived"
    ]
    assert [e.data for e in sev if isinstance(e, EarlyDataReceived)] == [b"GET / 0-RTT"]
    assert [e.data for e in sev if isinstance(e, ApplicationData)] == [b"after"]
    early = [line for line in clines if line.startswith("CLIENT_EARLY_TRAFFIC_SECRET")]
    assert len(early) == 1 and early == [
        line for line in slines if line.startswith("CLIENT_EARLY_TRAFFIC_SECRET")
    ]


def test_early_data_rejected_by_config_is_skipped(pki: Pki) -> None:
    scfg = server_config(pki, max_early_data=1024)
    session = session_for(pki, scfg)
    stingy = TLSConfig(**{**{f: getattr(scfg, f) for f in scfg.__dataclass_fields__}, "max_early_data": 0})
    cev, sev, _, _ = zero_rtt(pki, stingy, session, b"x" * 3000)
    hs = next(e for e in cev if isinstance(e, HandshakeComplete))
    assert hs.resumed and hs.early_data is False
    assert not [e for e in sev if isinstance(e, EarlyDataReceived)]
    assert [e.data for e in sev if isinstance(e, ApplicationData)] == [b"after"]


def test_replayed_ticket_gets_no_early_data(pki: Pki) -> None:
    scfg = server_config(pki, max_early_data=1024)
    session = session_for(pki, scfg)
    zero_rtt(pki, scfg, session, b"first")
    cev, sev, _, _ = zero_rtt(pki, scfg, session, b"replayed")
    hs = next(e for e in cev if isinstance(e, HandshakeComplete))
    assert not hs.resumed and hs.early_data is False
    assert not [e for e in sev if isinstance(e, EarlyDataReceived)]
    assert [e.data for e in sev if isinstance(e, ApplicationData)] == [b"after"]


def test_hello_retry_request_drops_early_data(pki: Pki) -> None:
    scfg = server_config(pki, max_early_data=1024)
    session = session_for(pki, scfg)
    hrr = TLSConfig(
        **{**{f: getattr(scfg, f) for f in scfg.__dataclass_fields__}, "groups": (NamedGroup.secp384r1,)}
    )
    cev, sev, _, _ = zero_rtt(pki, hrr, session, b"lost")
    hs = next(e for e in cev if isinstance(e, HandshakeComplete))
    assert hs.hello_retry and hs.early_data is False
    assert not [e for e in sev if isinstance(e, EarlyDataReceived)]
    assert [e.data for e in sev if isinstance(e, ApplicationData)] == [b"after"]
