"""The engine reads no clock: its driver passes the time certificates are verified at, as a
datetime or as a clock of its own; without either, verifying fails loudly (ERR_NO_TIME)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import pytest

from capdebug.errors import ErrorKind, TLSError
from capdebug.tls.connection import Connection
from capdebug.tls.events import HandshakeComplete

from ._pki import NOW, Pki, client_config, drain, pump, server_config


def _handshake(pki: Pki, now: dt.datetime | Callable[[], dt.datetime] | None) -> Connection:
    client = Connection(client_config(pki), is_client=True, now=now)
    # No tickets: a client also reads the clock to date a ticket it receives (its age, RFC 8446
    # 4.6.1), and these tests count the readings for the certificate check alone.
    server = Connection(server_config(pki, session_tickets=0), is_client=False, now=NOW)
    client.start_handshake()
    pump(client, server)
    return client


def test_a_clock_is_read_when_the_chain_is_verified(pki: Pki) -> None:
    calls: list[dt.datetime] = []

    def clock() -> dt.datetime:
        calls.append(NOW)
        return NOW

    client = _handshake(pki, clock)
    assert any(isinstance(e, HandshakeComplete) for e in drain(client))
    assert calls == [NOW]


def test_the_clock_decides_validity(pki: Pki) -> None:
    client = _handshake(pki, lambda: NOW + dt.timedelta(days=365 * 50))
    with pytest.raises(TLSError) as err:
        drain(client)
    assert err.value.name == "ERR_CERT_EXPIRED"


def test_no_time_is_an_error_not_the_wall_clock(pki: Pki) -> None:
    client = _handshake(pki, None)
    with pytest.raises(TLSError) as err:
        drain(client)
    assert (err.value.name, err.value.kind) == ("ERR_NO_TIME", ErrorKind.USAGE)
