"""The TLS 1.3 and TLS 1.2 handshake state machine: states and the one table of transitions.

Theory of operation
-------------------

Everything that decides which handshake message may come next lives in this module, and
nowhere else (the h11 ``_state.py`` discipline). The states are those of RFC 8446 Appendix A
(``WAIT_SH``, ``WAIT_EE``, ...), spelt out so that a trace line reads on its own:
``CLIENT_EXPECT_SERVER_HELLO -> CLIENT_EXPECT_ENCRYPTED_EXTENSIONS``.

A received handshake message is looked up as ``(state, msg_type)`` in :data:`TRANSITIONS`.
A missing key is an ``unexpected_message`` alert (RFC 8446 section 6.2): the engine never
reasons about "can this message come now?" in its handlers; the handlers only process a
message the table has already allowed.

Three messages lead to different states depending on their *content*, not their type, and
those forks are listed in :data:`BRANCHES`, keyed by the same pair plus a :class:`Branch`:

* a ServerHello whose random is the HelloRetryRequest value is an HRR (RFC 8446 4.1.3), and
  a second HRR in one handshake is an ``unexpected_message`` (4.1.4) -- the state after the
  first HRR simply has no HRR branch;
* a server that will ask for a client certificate expects the client's Certificate before its
  Finished (4.3.2);
* an empty client Certificate has no CertificateVerify after it (4.4.2, 4.4.3).

Messages we *send* move the state too, but only at two places where the peer's next message
depends on it (the client's first ClientHello; nothing else), so :data:`SEND_TRANSITIONS` is
small. The server's whole first flight is sent while processing the ClientHello.

TLS 1.2 (RFC 5246 7.3) shares the start states: the ServerHello (client) or ClientHello
(server) that negotiates TLS 1.2 takes the :data:`Branch.TLS12` fork into the ``*12_*`` states,
named after the message each one waits for. The TLS 1.2 ChangeCipherSpec is not a handshake
message but is part of the flow (RFC 5246 7.1), so it has a key in the table too:
:data:`CHANGE_CIPHER_SPEC`. A renegotiation attempt (HelloRequest to a client, ClientHello to a
server, after the handshake) is in the table as a loop on the connected state: the handler
refuses it with a warning no_renegotiation (RFC 5746 4.2, 4.4; RFC 5246 7.2.2).

Resumption takes forks too: a TLS 1.3 PSK handshake goes from WAIT_EE straight to
WAIT_FINISHED (:data:`Branch.PSK`, no certificates); an accepted 0-RTT puts the server in
WAIT_EOED (:data:`Branch.EARLY_DATA`); a TLS 1.2 abbreviated handshake (session ID or RFC 5077
ticket) skips to the ChangeCipherSpec on both sides (:data:`Branch.TLS12_RESUMED`).

The record layer has its own, much simpler rules (which content types are allowed with which
keys) in ``connection.py``; closure (close_notify each way) is two flags, not states, because
TLS 1.3 half-close makes the two directions independent (RFC 8446 6.1).
"""

from __future__ import annotations

import enum

from ..errors import ErrorKind, TLSError
from ..wire.constants import AlertDescription, HandshakeType

__all__ = [
    "BRANCHES",
    "CHANGE_CIPHER_SPEC",
    "SEND_TRANSITIONS",
    "TRANSITIONS",
    "Branch",
    "ChangeCipherSpec",
    "State",
    "next_state",
]


class State(enum.Enum):
    """Handshake states, RFC 8446 Appendix A.1 (client) and A.2 (server); the values are the
    RFC's own short names, prefixed by the role."""

    # Client (A.1)
    CLIENT_START = "client START"
    CLIENT_EXPECT_SERVER_HELLO = "client WAIT_SH"
    CLIENT_EXPECT_SERVER_HELLO_AFTER_HRR = "client WAIT_SH after HRR"
    CLIENT_EXPECT_ENCRYPTED_EXTENSIONS = "client WAIT_EE"
    CLIENT_EXPECT_CERTIFICATE_OR_CERTIFICATE_REQUEST = "client WAIT_CERT_CR"
    CLIENT_EXPECT_CERTIFICATE = "client WAIT_CERT"
    CLIENT_EXPECT_CERTIFICATE_VERIFY = "client WAIT_CV"
    CLIENT_EXPECT_FINISHED = "client WAIT_FINISHED"
    CLIENT_CONNECTED = "client CONNECTED"
    # Server (A.2); RECVD_CH and NEGOTIATED are passed through while handling the ClientHello.
    SERVER_EXPECT_CLIENT_HELLO = "server START"
    SERVER_EXPECT_SECOND_CLIENT_HELLO = "server START after HRR"
    SERVER_EXPECT_END_OF_EARLY_DATA = "server WAIT_EOED"
    SERVER_EXPECT_CERTIFICATE = "server WAIT_CERT"
    SERVER_EXPECT_CERTIFICATE_VERIFY = "server WAIT_CV"
    SERVER_EXPECT_FINISHED = "server WAIT_FINISHED"
    SERVER_CONNECTED = "server CONNECTED"
    # TLS 1.2 client (RFC 5246 7.3, full handshake)
    CLIENT12_EXPECT_CERTIFICATE = "client 1.2 WAIT_CERT"
    CLIENT12_EXPECT_SERVER_KEY_EXCHANGE = "client 1.2 WAIT_SKE"
    CLIENT12_EXPECT_CERTIFICATE_REQUEST_OR_DONE = "client 1.2 WAIT_CR_OR_SHD"
    CLIENT12_EXPECT_SERVER_HELLO_DONE = "client 1.2 WAIT_SHD"
    CLIENT12_EXPECT_NEW_SESSION_TICKET = "client 1.2 WAIT_NST"
    CLIENT12_EXPECT_CHANGE_CIPHER_SPEC = "client 1.2 WAIT_CCS"
    CLIENT12_EXPECT_FINISHED = "client 1.2 WAIT_FINISHED"
    CLIENT12_CONNECTED = "client 1.2 CONNECTED"
    # TLS 1.2 server
    SERVER12_EXPECT_CERTIFICATE = "server 1.2 WAIT_CERT"
    SERVER12_EXPECT_CLIENT_KEY_EXCHANGE = "server 1.2 WAIT_CKE"
    SERVER12_EXPECT_CERTIFICATE_VERIFY = "server 1.2 WAIT_CV"
    SERVER12_EXPECT_CHANGE_CIPHER_SPEC = "server 1.2 WAIT_CCS"
    SERVER12_EXPECT_FINISHED = "server 1.2 WAIT_FINISHED"
    SERVER12_CONNECTED = "server 1.2 CONNECTED"

    @property
    def connected(self) -> bool:
        return self in _CONNECTED


class Branch(enum.Enum):
    """Content-dependent forks (see the module docstring)."""

    HELLO_RETRY_REQUEST = "hello_retry_request"
    CLIENT_AUTH_REQUESTED = "client client_auth_requested"
    EMPTY_CERTIFICATE = "empty_certificate"
    TLS12 = "tls12"
    """The hello negotiated TLS 1.2."""
    TLS12_CLIENT_AUTH = "tls12 client_auth_requested"
    """TLS 1.2 ClientHello answered with a CertificateRequest (RFC 5246 7.4.4)."""
    TLS12_RESUMED = "tls12 resumed"
    """TLS 1.2 abbreviated handshake: the server's CCS and Finished come first (RFC 5246 7.3)."""
    TLS12_RESUMED_TICKET = "tls12 resumed, new ticket"
    """Abbreviated handshake where the server also sends a new ticket (RFC 5077 3.1)."""
    RSA_KEY_EXCHANGE = "rsa_key_exchange"
    """TLS 1.2 static RSA: no ServerKeyExchange after the Certificate (RFC 5246 7.4.3)."""
    TICKET_EXPECTED = "ticket_expected"
    """TLS 1.2: the server will send a NewSessionTicket before its CCS (RFC 5077 3.3)."""
    EARLY_DATA = "early_data"
    """TLS 1.3: the server accepted 0-RTT; EndOfEarlyData comes before the Finished (A.2)."""
    PSK = "psk"
    """TLS 1.3 resumption: the server authenticates with the PSK, no Certificate (RFC 8446 A.1)."""
    CERTIFICATE_TO_VERIFY = "certificate_to_verify"
    """TLS 1.2: the client sent a non-empty Certificate, so a CertificateVerify follows
    its ClientKeyExchange (RFC 5246 7.4.8)."""


class ChangeCipherSpec(enum.Enum):
    """The key of the TLS 1.2 ChangeCipherSpec record in the transition table."""

    CHANGE_CIPHER_SPEC = "change_cipher_spec"


CHANGE_CIPHER_SPEC = ChangeCipherSpec.CHANGE_CIPHER_SPEC
Received = HandshakeType | ChangeCipherSpec


S = State
H = HandshakeType
CCS = CHANGE_CIPHER_SPEC

_CONNECTED = frozenset((S.CLIENT_CONNECTED, S.SERVER_CONNECTED, S.CLIENT12_CONNECTED, S.SERVER12_CONNECTED))

#: Received message -> next state. Missing key: unexpected_message.
TRANSITIONS: dict[tuple[State, Received], State] = {
    # Client, RFC 8446 A.1
    (S.CLIENT_EXPECT_SERVER_HELLO, H.server_hello): S.CLIENT_EXPECT_ENCRYPTED_EXTENSIONS,
    (S.CLIENT_EXPECT_SERVER_HELLO_AFTER_HRR, H.server_hello): S.CLIENT_EXPECT_ENCRYPTED_EXTENSIONS,
    (S.CLIENT_EXPECT_ENCRYPTED_EXTENSIONS, H.encrypted_extensions): (
        S.CLIENT_EXPECT_CERTIFICATE_OR_CERTIFICATE_REQUEST
    ),
    (S.CLIENT_EXPECT_CERTIFICATE_OR_CERTIFICATE_REQUEST, H.certificate_request): S.CLIENT_EXPECT_CERTIFICATE,
    (S.CLIENT_EXPECT_CERTIFICATE_OR_CERTIFICATE_REQUEST, H.certificate): S.CLIENT_EXPECT_CERTIFICATE_VERIFY,
    (S.CLIENT_EXPECT_CERTIFICATE, H.certificate): S.CLIENT_EXPECT_CERTIFICATE_VERIFY,
    (S.CLIENT_EXPECT_CERTIFICATE_VERIFY, H.certificate_verify): S.CLIENT_EXPECT_FINISHED,
    (S.CLIENT_EXPECT_FINISHED, H.finished): S.CLIENT_CONNECTED,
    # Post-handshake (RFC 8446 4.6). Post-handshake CertificateRequest is absent on purpose:
    # we never send "post_handshake_auth", so receiving one is unexpected_message (4.6.2).
    (S.CLIENT_CONNECTED, H.new_session_ticket): S.CLIENT_CONNECTED,
    (S.CLIENT_CONNECTED, H.key_update): S.CLIENT_CONNECTED,
    # Server, RFC 8446 A.2 (WAIT_EOED only when 0-RTT was accepted: Branch.EARLY_DATA)
    (S.SERVER_EXPECT_CLIENT_HELLO, H.client_hello): S.SERVER_EXPECT_FINISHED,
    (S.SERVER_EXPECT_SECOND_CLIENT_HELLO, H.client_hello): S.SERVER_EXPECT_FINISHED,
    (S.SERVER_EXPECT_END_OF_EARLY_DATA, H.end_of_early_data): S.SERVER_EXPECT_FINISHED,
    (S.SERVER_EXPECT_CERTIFICATE, H.certificate): S.SERVER_EXPECT_CERTIFICATE_VERIFY,
    (S.SERVER_EXPECT_CERTIFICATE_VERIFY, H.certificate_verify): S.SERVER_EXPECT_FINISHED,
    (S.SERVER_EXPECT_FINISHED, H.finished): S.SERVER_CONNECTED,
    (S.SERVER_CONNECTED, H.key_update): S.SERVER_CONNECTED,
    # TLS 1.2 client, RFC 5246 7.3 (reached by the ServerHello's TLS12 branch)
    (S.CLIENT12_EXPECT_CERTIFICATE, H.certificate): S.CLIENT12_EXPECT_SERVER_KEY_EXCHANGE,
    (S.CLIENT12_EXPECT_SERVER_KEY_EXCHANGE, H.server_key_exchange): (
        S.CLIENT12_EXPECT_CERTIFICATE_REQUEST_OR_DONE
    ),
    (
        S.CLIENT12_EXPECT_CERTIFICATE_REQUEST_OR_DONE,
        H.certificate_request,
    ): S.CLIENT12_EXPECT_SERVER_HELLO_DONE,
    (
        S.CLIENT12_EXPECT_CERTIFICATE_REQUEST_OR_DONE,
        H.server_hello_done,
    ): S.CLIENT12_EXPECT_CHANGE_CIPHER_SPEC,
    (S.CLIENT12_EXPECT_SERVER_HELLO_DONE, H.server_hello_done): S.CLIENT12_EXPECT_CHANGE_CIPHER_SPEC,
    (S.CLIENT12_EXPECT_NEW_SESSION_TICKET, H.new_session_ticket): S.CLIENT12_EXPECT_CHANGE_CIPHER_SPEC,
    (S.CLIENT12_EXPECT_CHANGE_CIPHER_SPEC, CCS): S.CLIENT12_EXPECT_FINISHED,
    (S.CLIENT12_EXPECT_FINISHED, H.finished): S.CLIENT12_CONNECTED,
    # A HelloRequest is refused with no_renegotiation (RFC 5246 7.4.1.1, RFC 5746 4.2).
    (S.CLIENT12_CONNECTED, H.hello_request): S.CLIENT12_CONNECTED,
    # TLS 1.2 server (reached by the ClientHello's TLS12 branches)
    (S.SERVER12_EXPECT_CERTIFICATE, H.certificate): S.SERVER12_EXPECT_CLIENT_KEY_EXCHANGE,
    (S.SERVER12_EXPECT_CLIENT_KEY_EXCHANGE, H.client_key_exchange): S.SERVER12_EXPECT_CHANGE_CIPHER_SPEC,
    (S.SERVER12_EXPECT_CERTIFICATE_VERIFY, H.certificate_verify): S.SERVER12_EXPECT_CHANGE_CIPHER_SPEC,
    (S.SERVER12_EXPECT_CHANGE_CIPHER_SPEC, CCS): S.SERVER12_EXPECT_FINISHED,
    (S.SERVER12_EXPECT_FINISHED, H.finished): S.SERVER12_CONNECTED,
    # A ClientHello after the handshake is refused with no_renegotiation (RFC 5746 4.4).
    (S.SERVER12_CONNECTED, H.client_hello): S.SERVER12_CONNECTED,
}

# RFC 5246 7.4.1.1: a HelloRequest during a handshake is ignored by the client.
for _state in State:
    if _state.name.startswith("CLIENT12_EXPECT_"):
        TRANSITIONS[(_state, H.hello_request)] = _state
del _state

#: Content-dependent forks: (state, message, branch) -> next state instead of TRANSITIONS'.
BRANCHES: dict[tuple[State, Received, Branch], State] = {
    (S.CLIENT_EXPECT_SERVER_HELLO, H.server_hello, Branch.HELLO_RETRY_REQUEST): (
        S.CLIENT_EXPECT_SERVER_HELLO_AFTER_HRR
    ),
    (S.SERVER_EXPECT_CLIENT_HELLO, H.client_hello, Branch.HELLO_RETRY_REQUEST): (
        S.SERVER_EXPECT_SECOND_CLIENT_HELLO
    ),
    (S.SERVER_EXPECT_CLIENT_HELLO, H.client_hello, Branch.CLIENT_AUTH_REQUESTED): S.SERVER_EXPECT_CERTIFICATE,
    (S.SERVER_EXPECT_SECOND_CLIENT_HELLO, H.client_hello, Branch.CLIENT_AUTH_REQUESTED): (
        S.SERVER_EXPECT_CERTIFICATE
    ),
    (S.SERVER_EXPECT_CERTIFICATE, H.certificate, Branch.EMPTY_CERTIFICATE): S.SERVER_EXPECT_FINISHED,
    (S.CLIENT_EXPECT_ENCRYPTED_EXTENSIONS, H.encrypted_extensions, Branch.PSK): S.CLIENT_EXPECT_FINISHED,
    (S.SERVER_EXPECT_CLIENT_HELLO, H.client_hello, Branch.EARLY_DATA): S.SERVER_EXPECT_END_OF_EARLY_DATA,
    # TLS 1.2 forks
    (S.CLIENT_EXPECT_SERVER_HELLO, H.server_hello, Branch.TLS12): S.CLIENT12_EXPECT_CERTIFICATE,
    (
        S.CLIENT_EXPECT_SERVER_HELLO,
        H.server_hello,
        Branch.TLS12_RESUMED,
    ): S.CLIENT12_EXPECT_CHANGE_CIPHER_SPEC,
    (S.CLIENT_EXPECT_SERVER_HELLO, H.server_hello, Branch.TLS12_RESUMED_TICKET): (
        S.CLIENT12_EXPECT_NEW_SESSION_TICKET
    ),
    (
        S.SERVER_EXPECT_CLIENT_HELLO,
        H.client_hello,
        Branch.TLS12_RESUMED,
    ): S.SERVER12_EXPECT_CHANGE_CIPHER_SPEC,
    (S.CLIENT12_EXPECT_CERTIFICATE, H.certificate, Branch.RSA_KEY_EXCHANGE): (
        S.CLIENT12_EXPECT_CERTIFICATE_REQUEST_OR_DONE
    ),
    (S.CLIENT12_EXPECT_CERTIFICATE_REQUEST_OR_DONE, H.server_hello_done, Branch.TICKET_EXPECTED): (
        S.CLIENT12_EXPECT_NEW_SESSION_TICKET
    ),
    (S.CLIENT12_EXPECT_SERVER_HELLO_DONE, H.server_hello_done, Branch.TICKET_EXPECTED): (
        S.CLIENT12_EXPECT_NEW_SESSION_TICKET
    ),
    (S.SERVER_EXPECT_CLIENT_HELLO, H.client_hello, Branch.TLS12): S.SERVER12_EXPECT_CLIENT_KEY_EXCHANGE,
    (S.SERVER_EXPECT_CLIENT_HELLO, H.client_hello, Branch.TLS12_CLIENT_AUTH): S.SERVER12_EXPECT_CERTIFICATE,
    (S.SERVER12_EXPECT_CLIENT_KEY_EXCHANGE, H.client_key_exchange, Branch.CERTIFICATE_TO_VERIFY): (
        S.SERVER12_EXPECT_CERTIFICATE_VERIFY
    ),
}


#: Sent message -> next state, where sending is what moves the machine.
SEND_TRANSITIONS: dict[tuple[State, Received], State] = {
    (S.CLIENT_START, H.client_hello): S.CLIENT_EXPECT_SERVER_HELLO,
}

del S, H, CCS


def next_state(state: State, msg_type: Received | int, branch: Branch | None = None) -> State:
    """The state after receiving ``msg_type`` in ``state`` (taking ``branch`` when given).

    Raises ``ERR_UNEXPECTED_MESSAGE`` (alert unexpected_message) when the table has no entry.
    """
    mt: Received | None
    if isinstance(msg_type, ChangeCipherSpec):
        mt = msg_type
    else:
        try:
            mt = HandshakeType(msg_type)
        except ValueError:
            mt = None
    if mt is not None:
        if branch is not None:
            found = BRANCHES.get((state, mt, branch))
        else:
            found = TRANSITIONS.get((state, mt))
        if found is not None:
            return found
    what = (
        mt.name.lower()
        if isinstance(mt, ChangeCipherSpec)
        else mt.name
        if mt is not None
        else (f"handshake type {msg_type}")
    )
    extra = f" ({branch.value})" if branch is not None else ""
    raise TLSError(
        "ERR_UNEXPECTED_MESSAGE",
        ErrorKind.PROTOCOL,
        f"{what}{extra} is not allowed in state {state.name}",
        alert=AlertDescription.unexpected_message,
    )


def next_state_on_send(state: State, msg_type: HandshakeType) -> State:
    found = SEND_TRANSITIONS.get((state, msg_type))
    if found is None:
        raise TLSError(
            "ERR_INTERNAL",
            ErrorKind.INTERNAL,
            f"sending {msg_type.name} in state {state.name} is not in the transition table",
        )
    return found
