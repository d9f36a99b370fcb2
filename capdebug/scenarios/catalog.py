"""The scenarios: every common TLS failure, reproducible on demand with the engine's own peers.

A :class:`Scenario` says how each side is configured (faults from ``tls/faults.py``, TLSConfig
options), what each side does once the handshake is over (its *role*), and the triage verdicts
(code, by) the capture must produce, per connection. ``runner.py`` plays it on loopback under a
real tcpdump; the tests run every one end to end and check the verdicts exactly.

The conversation is the same unless a scenario says otherwise: the client sends ``ping``, the
server answers ``pong``, and both close as the scenario dictates.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from ..errors import ErrorKind, TLSError
from ..tls.events import EarlyDataReceived
from ..tls.io import TLSSocket
from ..wire.constants import ProtocolVersion

__all__ = ["SCENARIOS", "Expected", "Role", "Scenario"]

Role = Callable[[TLSSocket], None]
Expected = tuple[tuple[tuple[str, str | None], ...], ...]
"""Per connection (in order), the sorted (code, by) pairs triage must give, and nothing else."""

_PING, _PONG, _READY = b"ping", b"pong", b"ready"
_STALL_BYTES = 32 * 1024


def _read(tls: TLSSocket, n: int) -> bytes:
    out = bytearray()
    while len(out) < n:
        chunk = tls.recv(n - len(out))
        if not chunk:
            raise TLSError("ERR_SCENARIO", ErrorKind.CLOSED, f"end of data after {len(out)} of {n} bytes")
        out += chunk
    return bytes(out)


def _expect_end(tls: TLSSocket) -> None:
    """Read until the peer's close_notify (an error surfaces as TLSError)."""
    while tls.recv():
        pass


# -- roles: what a side does after the handshake ------------------------------------------------


def client_ping(tls: TLSSocket) -> None:
    tls.sendall(_PING)
    _read(tls, len(_PONG))


def server_pong(tls: TLSSocket) -> None:
    _read(tls, len(_PING))
    tls.sendall(_PONG)


def client_clean(tls: TLSSocket) -> None:
    client_ping(tls)
    tls.shutdown()  # close_notify, then wait for the server's


def server_clean(tls: TLSSocket) -> None:
    server_pong(tls)
    _expect_end(tls)
    tls.shutdown()


def client_then_read(tls: TLSSocket) -> None:
    """Exchange, then read on: the peer's way of ending shows up here (EOF, RST, alert)."""
    client_ping(tls)
    _expect_end(tls)


def server_then_read(tls: TLSSocket) -> None:
    server_pong(tls)
    _expect_end(tls)


def client_then_close(tls: TLSSocket) -> None:
    """Exchange, then close the way the client's faults say (shutdown_send: close_notify or,
    with ``premature-close``, none; then FIN)."""
    client_ping(tls)
    tls.shutdown_send()


def server_then_close(tls: TLSSocket) -> None:
    server_pong(tls)
    tls.shutdown_send()


def server_then_drop(tls: TLSSocket) -> None:
    """Exchange, then nothing: the runner closes the socket (with the ``reset`` fault: RST)."""
    server_pong(tls)


def client_read_then_drop(tls: TLSSocket) -> None:
    """Exchange, read to the server's close_notify, then close TCP without answering."""
    client_ping(tls)
    _expect_end(tls)


def client_half_close(tls: TLSSocket) -> None:
    tls.sendall(_PING)
    tls.shutdown_send()  # close_notify + FIN; TLS 1.3 lets the server go on (RFC 8446 6.1)
    _expect_end(tls)


def server_after_half_close(tls: TLSSocket) -> None:
    _read(tls, len(_PING))
    _expect_end(tls)
    for i in range(3):
        tls.sendall(b"more %d" % i)
    tls.shutdown_send()


def server_data_after_close(tls: TLSSocket) -> None:
    server_pong(tls)
    tls.conn.close()  # close_notify ...
    tls.flush()
    tls.sendall(b"late data")  # ... then data (the data-after-close-notify fault allows it)
    tls.sock.shutdown(socket.SHUT_WR)
    _expect_end(tls)  # the client's close_notify: read it, so that closing sends no RST


def client_read_only(tls: TLSSocket) -> None:
    """Send nothing; read until the server ends (an alert surfaces as TLSError)."""
    _expect_end(tls)


def client_answer_close(tls: TLSSocket) -> None:
    client_ping(tls)
    _expect_end(tls)
    tls.shutdown()


def client_bulk(tls: TLSSocket) -> None:
    _read(tls, len(_READY))  # the server is in its role (acknowledging at once, see below)
    tls.sendall(b"x" * _STALL_BYTES)
    tls.shutdown()


def server_bulk(tls: TLSSocket) -> None:
    # Acknowledge at once rather than delayed (after the handshake Linux delays ACKs of a peer
    # that talks back): a delayed ACK of the last segment before the window closes lets the
    # client's tail loss probe fire, a retransmission the story does not need.
    # The client waits for "ready", so every segment of the bulk meets this setting.
    tls.sendall(_READY)
    if hasattr(socket, "TCP_QUICKACK"):
        tls.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
    _read(tls, _STALL_BYTES)
    _expect_end(tls)
    tls.shutdown()


def client_early(tls: TLSSocket) -> None:
    """The ping went as 0-RTT early data on a resumed connection: when the server took it, only
    read the pong; when it was rejected (or not sent: the first connection), send it now."""
    hs = tls.handshake
    if hs is None or not hs.early_data:
        tls.sendall(_PING)
    _read(tls, len(_PONG))
    tls.shutdown()


def server_early(tls: TLSSocket) -> None:
    """Answer the ping whether it came as 0-RTT early data or after the handshake."""
    early = b"".join(e.data for e in tls.events if isinstance(e, EarlyDataReceived))
    if early != _PING:
        _read(tls, len(_PING))
    tls.sendall(_PONG)
    _expect_end(tls)
    tls.shutdown()


def _nothing(tls: TLSSocket) -> None:
    """For scenarios whose handshake fails: no role runs."""


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    summary: str
    """One line: what goes wrong."""
    wire: str
    """What happens on the wire, for samples/README.md."""
    expected: Expected
    server_faults: str = ""
    """``--fault`` syntax (tls/faults.py), armed afresh for each connection."""
    client_faults: str = ""
    server_options: Mapping[str, object] = field(default_factory=lambda: MappingProxyType({}))
    """Extra TLSConfig arguments for the server."""
    client_options: Mapping[str, object] = field(default_factory=lambda: MappingProxyType({}))
    server_role: Role = server_clean
    client_role: Role = client_clean
    client_certificate: bool = False
    """The client has a certificate from the CA the server trusts."""
    hold_server: bool = False
    """The server closes its socket only after the capture stopped (its FIN is not the story)."""
    hold_client: bool = False
    connections: int = 1
    keylog_connections: int | None = None
    """Embed the secrets of only the first N connections (None: all)."""
    capture_after_handshake: bool = False
    server_rcvbuf: int = 0
    client_sndbuf: int = 0
    resume: bool = False
    """Each connection after the first resumes the session of the previous one's last ticket."""
    early_data: bytes | None = None
    """Sent as 0-RTT early data by a resuming client (its role resends it if rejected)."""
    later_server_options: Mapping[str, object] = field(default_factory=lambda: MappingProxyType({}))
    """TLSConfig changes for the server's connections after the first (same ticket key)."""
    version: str = "TLS 1.3"
    """The version(s) the scenario negotiates or tries to, for the listing."""

    @property
    def codes(self) -> str:
        """The expected verdicts as one line: ``premature_close(server); ...``."""
        parts = []
        for i, conn in enumerate(self.expected):
            text = ", ".join(f"{code}({by or '-'})" for code, by in conn) or "no verdict"
            parts.append(text if len(self.expected) == 1 else f"conn {i + 1}: {text}")
        return "; ".join(parts)


_TLS12_ONLY = MappingProxyType({"max_version": ProtocolVersion.TLS1_2})
_TLS13_ONLY = MappingProxyType({"min_version": ProtocolVersion.TLS1_3})
_TICKETS_0RTT = MappingProxyType({"session_tickets": 1, "max_early_data": 1024})

_ALL: tuple[Scenario, ...] = (
    Scenario(
        "tls13-clean-close",
        "one request and answer, then close_notify from both sides",
        "ping/pong; the client sends close_notify, the server answers with its own; both FIN",
        ((("clean_close", None),),),
    ),
    Scenario(
        "tls13-premature-close-server",
        "the server closes TCP without close_notify",
        "ping/pong; the server sends FIN with no close_notify; the client sees a truncation",
        ((("premature_close", "server"),),),
        server_faults="premature-close",
        server_role=server_then_close,
        client_role=client_then_read,
        hold_client=True,
    ),
    Scenario(
        "tls13-premature-close-client",
        "the client closes TCP without close_notify",
        "ping/pong; the client sends FIN with no close_notify; the server sees a truncation",
        ((("premature_close", "client"),),),
        client_faults="premature-close",
        server_role=server_then_read,
        client_role=client_then_close,
        hold_server=True,
    ),
    Scenario(
        "tls13-reset-after-handshake",
        "the server resets the connection after the exchange",
        "ping/pong; the server closes with SO_LINGER 0: RST instead of close_notify and FIN",
        ((("reset", "server"),),),
        server_faults="reset",
        server_role=server_then_drop,
        client_role=client_then_read,
        hold_client=True,
    ),
    Scenario(
        "tls13-reset-during-handshake",
        "the server resets the connection on receiving the ClientHello",
        "ClientHello, then RST from the server: no ServerHello",
        ((("reset", "server"),),),
        server_faults="reset-during-handshake",
        server_role=_nothing,
        client_role=_nothing,
        hold_client=True,
    ),
    Scenario(
        "tls13-close-notify-unanswered",
        "the server sends close_notify; the client closes TCP without its own",
        "ping/pong; server close_notify + FIN; the client reads it and sends only FIN",
        ((("close_notify_unanswered", "client"),),),
        server_role=server_then_close,
        client_role=client_read_then_drop,
    ),
    Scenario(
        "tls13-half-close",
        "the client half-closes; the server keeps sending, then closes",
        "ping; client close_notify + FIN; the server sends three more records, then close_notify",
        ((("half_close", "client"),),),
        server_role=server_after_half_close,
        client_role=client_half_close,
    ),
    Scenario(
        "tls13-data-after-close-notify",
        "the server sends application data after its own close_notify",
        "ping/pong; server close_notify, then one more application_data record, then FIN",
        ((("data_after_close_notify", "server"),),),
        server_faults="data-after-close-notify",
        server_role=server_data_after_close,
        client_role=client_answer_close,
    ),
    Scenario(
        "tls13-no-shared-cipher",
        "client and server have no cipher suite in common",
        "ClientHello offering only ChaCha20; the server answers handshake_failure",
        ((("handshake_alert", "server"),),),
        server_faults="offer-suites=TLS_AES_128_GCM_SHA256",
        client_faults="offer-suites=TLS_CHACHA20_POLY1305_SHA256",
        server_role=_nothing,
        client_role=_nothing,
    ),
    Scenario(
        "tls13-unknown-ca",
        "the server's certificate comes from a CA the client does not trust",
        "full server flight; the client answers unknown_ca (encrypted)",
        ((("handshake_alert", "client"),),),
        server_faults="unknown-ca-cert",
        server_role=_nothing,
        client_role=_nothing,
    ),
    Scenario(
        "tls13-expired-certificate",
        "the server's certificate has expired",
        "full server flight; the client answers certificate_expired (encrypted)",
        ((("certificate_problem", "server"), ("handshake_alert", "client")),),
        server_faults="expired-cert",
        server_role=_nothing,
        client_role=_nothing,
    ),
    Scenario(
        "tls13-hostname-mismatch",
        "the server's certificate is for another name",
        "full server flight with a certificate for wrong.example; the client answers bad_certificate",
        ((("certificate_problem", "server"), ("handshake_alert", "client")),),
        server_faults="wrong-host-cert",
        server_role=_nothing,
        client_role=_nothing,
    ),
    Scenario(
        "tls13-client-cert-required",
        "the server requires a client certificate; the client has none",
        "CertificateRequest; the client sends an empty Certificate; the server sends certificate_required",
        ((("handshake_alert", "server"),),),
        server_faults="client-cert-required",
        server_role=_nothing,
        client_role=client_read_only,
    ),
    Scenario(
        "tls13-client-cert-rejected",
        "the server requires a client certificate and rejects the one it gets (unknown CA)",
        "CertificateRequest; the client sends a certificate from a CA the server does not know; "
        "the server answers unknown_ca",
        ((("handshake_alert", "server"),),),
        server_faults="client-cert-required",
        client_faults="unknown-ca-cert",
        server_role=_nothing,
        client_role=client_read_only,
    ),
    Scenario(
        "tls13-bad-record-mac",
        "a corrupted record: the client's first application data fails authentication",
        "handshake; the client's first application_data record has a flipped tag bit; bad_record_mac",
        ((("alert", "server"), ("undecryptable", "client")),),
        client_faults="bad-mac-data",
        server_role=server_then_read,
        client_role=client_then_read,
    ),
    Scenario(
        "tls13-hello-retry-request",
        "the server asks for another key share (HelloRetryRequest)",
        "ClientHello with an x25519 share; HRR for secp256r1; second ClientHello; then clean close",
        ((("clean_close", None), ("hello_retry_request", "server")),),
        server_faults="offer-groups=secp256r1",
    ),
    Scenario(
        "tls13-key-update",
        "the client updates its traffic keys three times after the handshake",
        "handshake; three KeyUpdate messages from the client; ping/pong; clean close",
        ((("clean_close", None), ("key_update", "client")),),
        client_faults="key-update-storm=3",
    ),
    Scenario(
        "tls13-keylog-missing-one",
        "two connections; the key log has the secrets of the first only",
        "two clean connections; the embedded secrets cover connection 1 only",
        (
            (("clean_close", None),),
            (
                ("likely_close_notify", "client"),
                ("likely_close_notify", "server"),
                ("undecryptable", "client"),
                ("undecryptable", "server"),
            ),
        ),
        connections=2,
        keylog_connections=1,
    ),
    Scenario(
        "tls13-capture-mid-connection",
        "the capture starts after the handshake",
        "no SYN, no hellos: ping/pong and the close only (the embedded traffic secrets still decrypt them)",
        (
            (
                ("capture_incomplete", None),
                ("clean_close", None),
            ),
        ),
        capture_after_handshake=True,
    ),
    Scenario(
        "tls13-slow-handshake",
        "the server waits 1.2 s before answering the ClientHello",
        "ClientHello; 1.2 s of silence; the server's flight; clean close",
        ((("clean_close", None), ("slow_handshake", None)),),
        server_faults="delay-first-byte=1.2",
    ),
    Scenario(
        "tls13-stalled-peer",
        "the server stops reading for 1 s; the client's sends fill its TCP window",
        "handshake; the server says ready and stops reading; 32 KiB from the client into a 4 KiB "
        "receive buffer: the server advertises a "
        "zero window, the client sends window probes until the server reads again 1 s later; "
        "clean close",
        ((("clean_close", None), ("zero_window", "server")),),
        server_faults="stall=1.0",
        server_role=server_bulk,
        client_role=client_bulk,
        server_rcvbuf=4096,
        client_sndbuf=4096,
    ),
    Scenario(
        "tls12-clean-close",
        "TLS 1.2: one request and answer, then close_notify from both sides",
        "TLS 1.2 ECDHE handshake (ChangeCipherSpec, encrypted Finished both ways); ping/pong; "
        "close_notify from both sides; both FIN",
        ((("clean_close", None),),),
        client_options=_TLS12_ONLY,
        version="TLS 1.2",
    ),
    Scenario(
        "tls12-premature-close-server",
        "TLS 1.2: the server closes TCP without close_notify",
        "TLS 1.2 handshake; ping/pong; the server sends FIN with no close_notify (a truncation "
        "attack looks the same: RFC 5246 7.2.1)",
        ((("premature_close", "server"),),),
        server_faults="premature-close",
        client_options=_TLS12_ONLY,
        server_role=server_then_close,
        client_role=client_then_read,
        hold_client=True,
        version="TLS 1.2",
    ),
    Scenario(
        "tls12-bad-record-mac",
        "TLS 1.2: the client's first application data fails authentication",
        "TLS 1.2 handshake; the client's first application_data record (AES-GCM, explicit nonce) "
        "has a flipped tag bit; the server answers bad_record_mac",
        ((("alert", "server"), ("undecryptable", "client")),),
        client_faults="bad-mac-data",
        client_options=_TLS12_ONLY,
        server_role=server_then_read,
        client_role=client_then_read,
        version="TLS 1.2",
    ),
    Scenario(
        "protocol-version-mismatch",
        "the client offers only TLS 1.2, the server accepts only TLS 1.3",
        "a TLS 1.2 ClientHello (no supported_versions); the server answers protocol_version in "
        "plaintext; no ServerHello",
        ((("handshake_alert", "server"),),),
        client_options=_TLS12_ONLY,
        server_options=_TLS13_ONLY,
        server_role=_nothing,
        client_role=_nothing,
        version="TLS 1.2 / TLS 1.3",
    ),
    Scenario(
        "tls12-no-shared-cipher",
        "TLS 1.2: client and server have no cipher suite in common",
        "a TLS 1.2 ClientHello offering only ECDHE AES-256-GCM suites; the server (ECDHE "
        "AES-128-GCM only) answers handshake_failure in plaintext",
        ((("handshake_alert", "server"),),),
        server_faults="offer-suites=TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256+TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
        client_faults="offer-suites=TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384+TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
        client_options=_TLS12_ONLY,
        server_role=_nothing,
        client_role=_nothing,
        version="TLS 1.2",
    ),
    Scenario(
        "tls12-client-cert-required",
        "TLS 1.2: the server requires a client certificate; the client has none",
        "CertificateRequest in the server's plaintext flight; the client sends an empty "
        "Certificate, its key exchange and Finished; the server answers handshake_failure in "
        "plaintext, before its own ChangeCipherSpec (in TLS 1.3 the rejection is encrypted and "
        "comes after the server's Finished)",
        ((("handshake_alert", "server"),),),
        server_faults="client-cert-required",
        client_options=_TLS12_ONLY,
        server_role=_nothing,
        client_role=client_read_only,
        version="TLS 1.2",
    ),
    Scenario(
        "tls12-resumption",
        "TLS 1.2: the second connection resumes the first one's session (abbreviated handshake)",
        "connection 1: full TLS 1.2 handshake, the server sends a NewSessionTicket; connection 2: "
        "ClientHello with that ticket, the server answers ServerHello, ChangeCipherSpec, Finished "
        "at once (no certificate, no key exchange); ping/pong and clean close on both",
        (
            (("clean_close", None),),
            (("clean_close", None), ("resumed", None)),
        ),
        server_options=MappingProxyType({"session_tickets": 1}),
        client_options=_TLS12_ONLY,
        connections=2,
        resume=True,
        version="TLS 1.2",
    ),
    Scenario(
        "tls12-inappropriate-fallback",
        "a client retrying with TLS 1.2 only (TLS_FALLBACK_SCSV) meets a server that speaks TLS 1.3",
        "a TLS 1.2 ClientHello carrying TLS_FALLBACK_SCSV; the server, which could have done TLS "
        "1.3, answers inappropriate_fallback (RFC 7507): a downgrade, or a client that gave up on "
        "TLS 1.3 after an unrelated failure",
        ((("handshake_alert", "server"),),),
        client_options=MappingProxyType({"max_version": ProtocolVersion.TLS1_2, "send_fallback_scsv": True}),
        server_role=_nothing,
        client_role=_nothing,
        version="TLS 1.2",
    ),
    Scenario(
        "tls13-early-data-accepted",
        "resumption with 0-RTT early data accepted",
        "connection 1: full handshake, the server sends a NewSessionTicket allowing 0-RTT; "
        "connection 2: resumes with that ticket and sends the ping as early data with its "
        "ClientHello; the server accepts it and answers; clean close",
        (
            (("clean_close", None),),
            (("clean_close", None), ("early_data", "client"), ("resumed", None)),
        ),
        server_options=_TICKETS_0RTT,
        server_role=server_early,
        client_role=client_early,
        connections=2,
        resume=True,
        early_data=_PING,
    ),
    Scenario(
        "tls13-early-data-rejected",
        "resumption with 0-RTT early data rejected",
        "connection 1: full handshake and a ticket allowing 0-RTT; connection 2: resumes and sends "
        "the ping as early data, but the server (0-RTT now off) resumes without it: the client "
        "sends the ping again after the handshake; clean close",
        (
            (("clean_close", None),),
            (("clean_close", None), ("early_data", "client"), ("resumed", None)),
        ),
        server_options=_TICKETS_0RTT,
        later_server_options=MappingProxyType({"max_early_data": 0}),
        server_role=server_early,
        client_role=client_early,
        connections=2,
        resume=True,
        early_data=_PING,
    ),
)

SCENARIOS: Mapping[str, Scenario] = MappingProxyType({s.name: s for s in _ALL})
