"""The sans-IO engine, client against server in memory: no sockets, every byte handed over by
the test. Each test would fail if the behaviour it names broke."""

from __future__ import annotations

import dataclasses

import pytest

from capdebug.crypto.keylog import KeyLog
from capdebug.errors import ErrorKind, TLSError, UsageError
from capdebug.tls.config import ClientAuth, TLSConfig
from capdebug.tls.connection import Connection
from capdebug.tls.events import (
    AlertReceived,
    ApplicationData,
    CloseNotifyReceived,
    HandshakeComplete,
    HelloRetryRequestReceived,
    HelloRetryRequestSent,
    KeyUpdateReceived,
    NewSessionTicketReceived,
)
from capdebug.tls.faults import Faults
from capdebug.tls.state import State
from capdebug.tls.trace import TraceCategory
from capdebug.wire.constants import AlertDescription, CipherSuite, NamedGroup, SignatureScheme

from ._pki import NOW, Pki, client_config, drain, pump, server_config


def handshake(
    pki: Pki, ccfg: TLSConfig | None = None, scfg: TLSConfig | None = None, faults: Faults | None = None
) -> tuple[Connection, Connection]:
    client = Connection(ccfg or client_config(pki), is_client=True, now=NOW, faults=faults)
    server = Connection(scfg or server_config(pki), is_client=False, now=NOW)
    client.start_handshake()
    pump(client, server)
    return client, server


def complete(events: list[object]) -> HandshakeComplete:
    found = [e for e in events if isinstance(e, HandshakeComplete)]
    assert len(found) == 1, events
    return found[0]


@pytest.mark.parametrize(
    "suite",
    [
        CipherSuite.TLS_AES_128_GCM_SHA256,
        CipherSuite.TLS_AES_256_GCM_SHA384,
        CipherSuite.TLS_CHACHA20_POLY1305_SHA256,
    ],
)
def test_each_suite_handshakes_and_carries_data(pki: Pki, suite: CipherSuite) -> None:
    client, server = handshake(pki, client_config(pki, cipher_suites=(suite,)))
    assert complete(drain(client)).cipher_suite is suite
    assert complete(drain(server)).cipher_suite is suite
    client.send_application_data(b"ping" * 10000)  # several records
    pump(client, server)
    data = b"".join(e.data for e in drain(server) if isinstance(e, ApplicationData))
    assert data == b"ping" * 10000


@pytest.mark.parametrize(
    ("leaf", "scheme"),
    [
        ("ecdsa", SignatureScheme.ecdsa_secp256r1_sha256),
        ("ecdsa384", SignatureScheme.ecdsa_secp384r1_sha384),
        ("rsa", SignatureScheme.rsa_pss_rsae_sha256),
        ("ed25519", SignatureScheme.ed25519),
    ],
)
def test_signature_schemes(pki: Pki, leaf: str, scheme: SignatureScheme) -> None:
    client, _server = handshake(pki, scfg=server_config(pki, leaf))
    assert complete(drain(client)).signature_scheme is scheme


@pytest.mark.parametrize("group", [NamedGroup.x25519, NamedGroup.secp256r1, NamedGroup.secp384r1])
def test_hello_retry_request_for_each_group(pki: Pki, group: NamedGroup) -> None:
    others = tuple(g for g in (NamedGroup.x25519, NamedGroup.secp256r1, NamedGroup.secp384r1) if g != group)
    ccfg = client_config(pki, groups=(*others, group), key_share_groups=(others[0],))
    scfg = server_config(pki, groups=(group,))
    client, server = handshake(pki, ccfg, scfg)
    cev, sev = drain(client), drain(server)
    assert HelloRetryRequestReceived(group) in cev
    assert HelloRetryRequestSent(group) in sev
    hs = complete(cev)
    assert hs.hello_retry and hs.group is group
    client.send_application_data(b"after hrr")
    pump(client, server)
    assert [e for e in drain(server) if isinstance(e, ApplicationData)] == [ApplicationData(b"after hrr")]


def test_no_hrr_when_the_first_share_fits(pki: Pki) -> None:
    client, _server = handshake(pki)
    assert not complete(drain(client)).hello_retry


def test_sni_and_alpn(pki: Pki) -> None:
    ccfg = client_config(pki, alpn_protocols=("h2", "http/1.1"))
    scfg = server_config(pki, alpn_protocols=("http/1.1", "h2"))
    client, server = handshake(pki, ccfg, scfg)
    c, s = complete(drain(client)), complete(drain(server))
    assert c.alpn == s.alpn == "http/1.1"  # the server's preference wins
    assert s.server_name == "localhost"


def test_no_common_alpn_is_no_application_protocol(pki: Pki) -> None:
    client, server = handshake(
        pki, client_config(pki, alpn_protocols=("h2",)), server_config(pki, alpn_protocols=("x",))
    )
    with pytest.raises(TLSError) as srv:
        drain(server)
    assert srv.value.name == "ERR_NO_APPLICATION_PROTOCOL"
    with pytest.raises(TLSError) as cli:
        drain(client)
    assert cli.value.name == "ERR_PEER_ALERT"
    assert cli.value.alert == AlertDescription.no_application_protocol


@pytest.mark.parametrize("leaf", ["client", "client-rsa"])
def test_mutual_tls(pki: Pki, leaf: str) -> None:
    ccfg = client_config(pki, credential=pki.credential(leaf))
    scfg = server_config(pki, client_auth=ClientAuth.REQUIRED)
    client, server = handshake(pki, ccfg, scfg)
    complete(drain(client))
    assert complete(drain(server)).peer_certificates == pki.chain(leaf)


def test_mutual_tls_required_but_no_certificate(pki: Pki) -> None:
    client, server = handshake(pki, scfg=server_config(pki, client_auth=ClientAuth.REQUIRED))
    with pytest.raises(TLSError) as srv:
        drain(server)
    assert srv.value.name == "ERR_CERT_REQUIRED"
    with pytest.raises(TLSError) as cli:
        drain(client)
    assert cli.value.alert == AlertDescription.certificate_required


def test_mutual_tls_optional_accepts_no_certificate(pki: Pki) -> None:
    _client, server = handshake(pki, scfg=server_config(pki, client_auth=ClientAuth.OPTIONAL))
    assert complete(drain(server)).peer_certificates == ()


def test_mutual_tls_untrusted_client_certificate(pki: Pki, tmp_path: object) -> None:
    from capdebug.crypto.testpki import make_ca

    other_ca = make_ca(NOW, "another CA")
    scfg = dataclasses.replace(
        server_config(pki, client_auth=ClientAuth.REQUIRED), trust_roots=(other_ca.cert_der,)
    )
    client, server = handshake(pki, client_config(pki, credential=pki.credential("client")), scfg)
    with pytest.raises(TLSError) as srv:
        drain(server)
    assert srv.value.name == "ERR_CERT_UNKNOWN_CA"
    with pytest.raises(TLSError) as cli:
        drain(client)
    assert cli.value.alert == AlertDescription.unknown_ca


@pytest.mark.parametrize(
    ("leaf", "name", "alert"),
    [
        ("wrong-host", "ERR_CERT_HOSTNAME", AlertDescription.bad_certificate),
        ("expired", "ERR_CERT_EXPIRED", AlertDescription.certificate_expired),
        ("not-yet-valid", "ERR_CERT_NOT_YET_VALID", AlertDescription.certificate_expired),
        ("self-signed", "ERR_CERT_UNKNOWN_CA", AlertDescription.unknown_ca),
    ],
)
def test_certificate_failures_have_distinct_names_and_alerts(
    pki: Pki, leaf: str, name: str, alert: AlertDescription
) -> None:
    client, server = handshake(pki, scfg=server_config(pki, leaf))
    with pytest.raises(TLSError) as cli:
        drain(client)
    assert (cli.value.name, cli.value.alert, cli.value.kind) == (name, alert, ErrorKind.PROTOCOL)
    events = []
    with pytest.raises(TLSError) as srv:
        while (e := server.next_event()) is not None:
            events.append(e)
    assert srv.value.name == "ERR_PEER_ALERT" and srv.value.alert == alert
    assert AlertReceived(2, alert) in events


def test_verification_off_is_loud_and_accepts_anything(pki: Pki) -> None:
    lines: list[str] = []
    ccfg = client_config(pki, verify=False, trace_callback=lambda c, line: lines.append(line))
    client, _server = handshake(pki, ccfg, server_config(pki, "self-signed"))
    complete(drain(client))
    assert any("verification is DISABLED" in line for line in lines)


def test_verification_needs_a_server_name(pki: Pki) -> None:
    with pytest.raises(UsageError):
        Connection(client_config(pki, server_name=None), is_client=True)


def test_key_log_lines_match_the_negotiated_keys(pki: Pki) -> None:
    c_lines: list[str] = []
    s_lines: list[str] = []
    client, _server = handshake(
        pki,
        client_config(pki, key_log_callback=c_lines.append),
        server_config(pki, key_log_callback=s_lines.append),
    )
    drain(client)
    labels = [line.split()[0] for line in c_lines]
    assert labels == [
        "CLIENT_HANDSHAKE_TRAFFIC_SECRET",
        "SERVER_HANDSHAKE_TRAFFIC_SECRET",
        "CLIENT_TRAFFIC_SECRET_0",
        "SERVER_TRAFFIC_SECRET_0",
        "EXPORTER_SECRET",
    ]
    assert sorted(c_lines) == sorted(s_lines)
    log = KeyLog.parse("\n".join(c_lines))
    assert log.client_randoms() == {client.client_random}


def test_key_log_survives_a_failure_after_server_hello(pki: Pki) -> None:
    lines: list[str] = []
    client, _server = handshake(
        pki, client_config(pki, key_log_callback=lines.append), server_config(pki, "expired")
    )
    with pytest.raises(TLSError):
        drain(client)
    assert [line.split()[0] for line in lines] == [
        "CLIENT_HANDSHAKE_TRAFFIC_SECRET",
        "SERVER_HANDSHAKE_TRAFFIC_SECRET",
    ]


def test_key_update_both_directions(pki: Pki) -> None:
    lines: list[str] = []
    client, server = handshake(
        pki, client_config(pki, key_log_callback=lines.append, key_log_update_lines=True)
    )
    drain(client), drain(server)
    client.key_update(request=True)
    client.send_application_data(b"one")
    pump(client, server)
    assert drain(server) == [KeyUpdateReceived(True), ApplicationData(b"one")]
    assert drain(client) == [KeyUpdateReceived(False)]  # the server's answer
    server.key_update(request=False)
    server.send_application_data(b"two")
    pump(client, server)
    assert drain(client) == [KeyUpdateReceived(False), ApplicationData(b"two")]
    assert drain(server) == []  # not requested: no answer
    assert any(line.startswith("CLIENT_TRAFFIC_SECRET_1 ") for line in lines)
    assert any(line.startswith("SERVER_TRAFFIC_SECRET_2 ") for line in lines)


def test_new_session_ticket(pki: Pki) -> None:
    client, _server = handshake(pki, scfg=server_config(pki, session_tickets=2))
    tickets = [e for e in drain(client) if isinstance(e, NewSessionTicketReceived)]
    assert len(tickets) == 2
    assert tickets[0].ticket_nonce != tickets[1].ticket_nonce
    assert tickets[0].resumption_secret != tickets[1].resumption_secret
    assert len(tickets[0].resumption_secret) == 32


def test_close_notify_each_way_and_half_close(pki: Pki) -> None:
    client, server = handshake(pki)
    drain(client), drain(server)
    client.shutdown_send()
    pump(client, server)
    assert drain(server) == [CloseNotifyReceived()]
    with pytest.raises(TLSError) as exc:
        client.send_application_data(b"late")
    assert exc.value.name == "ERR_SEND_CLOSED"
    # Half-closed: the server can still send, and the client still reads.
    server.send_application_data(b"still here")
    pump(client, server)
    assert drain(client) == [ApplicationData(b"still here")]
    server.close()
    pump(client, server)
    assert drain(client) == [CloseNotifyReceived()]
    assert client.closed and server.closed
    client.receive_eof()  # a clean close followed by EOF is not an error
    assert drain(client) == []


@pytest.mark.parametrize("during_handshake", [False, True])
def test_eof_without_close_notify_is_premature(pki: Pki, during_handshake: bool) -> None:
    client = Connection(client_config(pki), is_client=True, now=NOW)
    server = Connection(server_config(pki), is_client=False, now=NOW)
    client.start_handshake()
    if not during_handshake:
        pump(client, server)
        drain(client)
    client.receive_eof()
    with pytest.raises(TLSError) as exc:
        drain(client)
    assert exc.value.name == "ERR_PREMATURE_CLOSE"
    assert exc.value.kind is ErrorKind.CLOSED


def test_tampered_record_is_bad_record_mac_and_the_peer_is_told(pki: Pki) -> None:
    client, server = handshake(pki)
    drain(client), drain(server)
    faults = Faults()
    faults.tamper_next_record()
    client.faults = faults
    client.send_application_data(b"secret")
    pump(client, server)
    with pytest.raises(TLSError) as srv:
        drain(server)
    assert srv.value.name == "ERR_BAD_RECORD_MAC" and srv.value.alert == AlertDescription.bad_record_mac
    with pytest.raises(TLSError) as cli:
        drain(client)
    assert cli.value.name == "ERR_PEER_ALERT" and cli.value.alert == AlertDescription.bad_record_mac
    assert faults.fired == ["tamper_record"]
    # After a fatal alert nothing more is accepted.
    with pytest.raises(TLSError) as again:
        client.send_application_data(b"more")
    assert again.value.kind is ErrorKind.CLOSED


def test_tampered_handshake_record(pki: Pki) -> None:
    faults = Faults()
    faults.tamper_next_record()
    _client, server = handshake(pki, faults=faults)  # the client's Finished record is corrupted
    with pytest.raises(TLSError) as srv:
        drain(server)
    assert srv.value.name == "ERR_BAD_RECORD_MAC"


def test_injected_alert_at_a_state(pki: Pki) -> None:
    faults = Faults()
    faults.alert_at(State.CLIENT_EXPECT_CERTIFICATE_VERIFY, AlertDescription.handshake_failure)
    client, server = handshake(pki, faults=faults)
    with pytest.raises(TLSError) as cli:
        drain(client)
    assert cli.value.name == "ERR_INJECTED_ALERT"
    with pytest.raises(TLSError) as srv:
        drain(server)
    assert srv.value.alert == AlertDescription.handshake_failure


def test_dropped_close_notify_looks_like_truncation(pki: Pki) -> None:
    faults = Faults(drop_close_notify=True)
    client, server = handshake(pki, faults=faults)
    drain(client), drain(server)
    client.close()
    pump(client, server)
    server.receive_eof()
    with pytest.raises(TLSError) as exc:
        drain(server)
    assert exc.value.name == "ERR_PREMATURE_CLOSE"


def test_unexpected_message_from_the_table(pki: Pki) -> None:
    client = Connection(client_config(pki), is_client=True, now=NOW)
    server = Connection(server_config(pki), is_client=False, now=NOW)
    client.start_handshake()
    hello = client.data_to_send()
    server.receive_data(hello)
    flight = server.data_to_send()
    # A second ClientHello where the server expects the client's Finished: a handshake
    # message in clear after keys are installed is already wrong at the record layer...
    server.receive_data(hello)
    with pytest.raises(TLSError) as exc:
        drain(server)
    assert exc.value.name == "ERR_UNEXPECTED_MESSAGE"
    assert exc.value.alert == AlertDescription.unexpected_message
    # ...and a ClientHello sent to a client trips the transition table itself.
    other = Connection(client_config(pki), is_client=True, now=NOW)
    other.start_handshake()
    other.receive_data(hello)
    with pytest.raises(TLSError) as exc2:
        drain(other)
    assert exc2.value.name == "ERR_UNEXPECTED_MESSAGE"
    assert "client_hello" in str(exc2.value) and "CLIENT_EXPECT_SERVER_HELLO" in str(exc2.value)
    assert flight


def test_garbage_is_a_decode_error(pki: Pki) -> None:
    server = Connection(server_config(pki), is_client=False, now=NOW)
    server.receive_data(b"GET / HTTP/1.1\r\n\r\n")
    with pytest.raises(TLSError) as exc:
        drain(server)
    assert exc.value.name == "ERR_DECODE"
    assert server.data_to_send() == b"\x15\x03\x03\x00\x02\x02\x32"  # fatal decode_error, in clear


def test_one_byte_at_a_time(pki: Pki) -> None:
    client = Connection(client_config(pki), is_client=True, now=NOW)
    server = Connection(server_config(pki), is_client=False, now=NOW)
    client.start_handshake()
    for _ in range(10):
        moved = False
        for src, dst in ((client, server), (server, client)):
            data = src.data_to_send()
            for i in range(len(data)):
                dst.receive_data(data[i : i + 1])
            moved = moved or bool(data)
        if not moved:
            break
    complete(drain(client))
    complete(drain(server))


def test_record_padding(pki: Pki) -> None:
    client, server = handshake(pki, client_config(pki, record_padding=256))
    drain(client), drain(server)
    client.send_application_data(b"x")
    wire = client.data_to_send()
    assert len(wire) == 5 + 256 + 16  # header, padded inner plaintext, AEAD tag
    server.receive_data(wire)
    assert drain(server) == [ApplicationData(b"x")]


def test_middlebox_compat_ccs(pki: Pki) -> None:
    client = Connection(client_config(pki), is_client=True, now=NOW)
    server = Connection(server_config(pki), is_client=False, now=NOW)
    client.start_handshake()
    server.receive_data(client.data_to_send())
    flight = server.data_to_send()
    assert b"\x14\x03\x03\x00\x01\x01" in flight
    off = Connection(client_config(pki, middlebox_compat=False), is_client=True, now=NOW)
    off.start_handshake()
    server2 = Connection(server_config(pki), is_client=False, now=NOW)
    server2.receive_data(off.data_to_send())
    assert b"\x14\x03\x03\x00\x01\x01" not in server2.data_to_send()


def test_trace_categories_and_no_secrets(pki: Pki) -> None:
    lines: list[tuple[TraceCategory, str]] = []
    secrets: list[str] = []
    ccfg = client_config(
        pki,
        trace=TraceCategory.HANDSHAKE | TraceCategory.KEYS,
        trace_callback=lambda c, line: lines.append((c, line)),
        key_log_callback=secrets.append,
    )
    client, _server = handshake(pki, ccfg)
    drain(client)
    cats = {c for c, _ in lines}
    assert cats == {TraceCategory.HANDSHAKE, TraceCategory.KEYS}
    text = "\n".join(line for _, line in lines)
    assert "CLIENT_EXPECT_SERVER_HELLO -> CLIENT_EXPECT_ENCRYPTED_EXTENSIONS" in text
    for secret_line in secrets:
        assert secret_line.split()[2] not in text


def test_trace_off_formats_nothing(pki: Pki, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CAPDEBUG_TRACE", raising=False)
    client = Connection(client_config(pki), is_client=True, now=NOW)
    assert client._trace.mask == 0
    monkeypatch.setenv("CAPDEBUG_TRACE", "record,alert")
    traced = Connection(client_config(pki, trace_callback=lambda c, line: None), is_client=True, now=NOW)
    assert traced._trace.mask == TraceCategory.RECORD | TraceCategory.ALERT
