"""The TLS 1.3 handshake state machine: states and the one table of transitions.

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

The record layer has its own, much simpler rules (which content types are allowed with which
keys) in ``connection.py``; closure (close_notify each way) is two flags, not states, because
TLS 1.3 half-close makes the two directions independent (RFC 8446 6.1).
"""

from __future__ import annotations

import enum

from ..errors import ErrorKind, TLSError
from ..wire.constants import AlertDescription, HandshakeType

__all__ = ["BRANCHES", "SEND_TRANSITIONS", "TRANSITIONS", "Branch", "State", "next_state"]


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
    SERVER_EXPECT_CERTIFICATE = "server WAIT_CERT"
    SERVER_EXPECT_CERTIFICATE_VERIFY = "server WAIT_CV"
    SERVER_EXPECT_FINISHED = "server WAIT_FINISHED"
    SERVER_CONNECTED = "server CONNECTED"

    @property
    def connected(self) -> bool:
        return self in (State.CLIENT_CONNECTED, State.SERVER_CONNECTED)


class Branch(enum.Enum):
    """Content-dependent forks (see the module docstring)."""

    HELLO_RETRY_REQUEST = "hello_retry_request"
    CLIENT_AUTH_REQUESTED = "client client_auth_requested"
    EMPTY_CERTIFICATE = "empty_certificate"


S = State
H = HandshakeType

#: Received message -> next state. Missing key: unexpected_message.
TRANSITIONS: dict[tuple[State, HandshakeType], State] = {
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
    # Server, RFC 8446 A.2 (no PSK, no 0-RTT: WAIT_EOED is never entered)
    (S.SERVER_EXPECT_CLIENT_HELLO, H.client_hello): S.SERVER_EXPECT_FINISHED,
    (S.SERVER_EXPECT_SECOND_CLIENT_HELLO, H.client_hello): S.SERVER_EXPECT_FINISHED,
    (S.SERVER_EXPECT_CERTIFICATE, H.certificate): S.SERVER_EXPECT_CERTIFICATE_VERIFY,
    (S.SERVER_EXPECT_CERTIFICATE_VERIFY, H.certificate_verify): S.SERVER_EXPECT_FINISHED,
    (S.SERVER_EXPECT_FINISHED, H.finished): S.SERVER_CONNECTED,
    (S.SERVER_CONNECTED, H.key_update): S.SERVER_CONNECTED,
}

#: Content-dependent forks: (state, message, branch) -> next state instead of TRANSITIONS'.
BRANCHES: dict[tuple[State, HandshakeType, Branch], State] = {
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
}

#: Sent message -> next state, where sending is what moves the machine.
SEND_TRANSITIONS: dict[tuple[State, HandshakeType], State] = {
    (S.CLIENT_START, H.client_hello): S.CLIENT_EXPECT_SERVER_HELLO,
}

del S, H


def next_state(state: State, msg_type: HandshakeType | int, branch: Branch | None = None) -> State:
    """The state after receiving ``msg_type`` in ``state`` (taking ``branch`` when given).

    Raises ``ERR_UNEXPECTED_MESSAGE`` (alert unexpected_message) when the table has no entry.
    """
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
    what = mt.name if mt is not None else f"handshake type {msg_type}"
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
