"""The transition table and the trace switches, on their own."""

from __future__ import annotations

import pytest

from capdebug.errors import ErrorKind, TLSError, UsageError
from capdebug.tls.state import BRANCHES, SEND_TRANSITIONS, TRANSITIONS, Branch, State, next_state
from capdebug.tls.trace import TraceCategory, Tracer, parse_categories
from capdebug.wire.constants import AlertDescription, HandshakeType


def _reachable(start: State) -> set[State]:
    edges: dict[State, set[State]] = {}
    for (src, _), dst in TRANSITIONS.items():
        edges.setdefault(src, set()).add(dst)
    for (src, _, _), dst in BRANCHES.items():
        edges.setdefault(src, set()).add(dst)
    for (src, _), dst in SEND_TRANSITIONS.items():
        edges.setdefault(src, set()).add(dst)
    seen, todo = {start}, [start]
    while todo:
        for nxt in edges.get(todo.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def test_every_state_is_reachable_from_its_roles_start() -> None:
    client = {s for s in State if s.name.startswith("CLIENT")}
    server = {s for s in State if s.name.startswith("SERVER")}
    assert _reachable(State.CLIENT_START) == client
    assert _reachable(State.SERVER_EXPECT_CLIENT_HELLO) == server


def test_branches_only_fork_allowed_messages() -> None:
    for state, msg, _branch in BRANCHES:
        assert (state, msg) in TRANSITIONS


def test_missing_key_is_unexpected_message() -> None:
    with pytest.raises(TLSError) as exc:
        next_state(State.CLIENT_EXPECT_ENCRYPTED_EXTENSIONS, HandshakeType.finished)
    assert exc.value.name == "ERR_UNEXPECTED_MESSAGE"
    assert exc.value.alert == AlertDescription.unexpected_message
    assert exc.value.kind is ErrorKind.PROTOCOL


def test_a_second_hello_retry_request_is_unexpected() -> None:
    first = next_state(
        State.CLIENT_EXPECT_SERVER_HELLO, HandshakeType.server_hello, Branch.HELLO_RETRY_REQUEST
    )
    assert first is State.CLIENT_EXPECT_SERVER_HELLO_AFTER_HRR
    with pytest.raises(TLSError):
        next_state(first, HandshakeType.server_hello, Branch.HELLO_RETRY_REQUEST)


def test_unknown_handshake_type_is_unexpected() -> None:
    with pytest.raises(TLSError) as exc:
        next_state(State.SERVER_CONNECTED, 99)
    assert "handshake type 99" in str(exc.value)


def test_post_handshake_certificate_request_is_refused() -> None:
    # We never offer post_handshake_auth (RFC 8446 4.6.2).
    with pytest.raises(TLSError):
        next_state(State.CLIENT_CONNECTED, HandshakeType.certificate_request)


def test_parse_categories() -> None:
    assert parse_categories("handshake, record") == TraceCategory.HANDSHAKE | TraceCategory.RECORD
    assert parse_categories("all") == TraceCategory.ALL
    assert parse_categories("") == TraceCategory.NONE
    with pytest.raises(UsageError):
        parse_categories("handshake,recrod")


def test_tracer_from_environment_and_off() -> None:
    got: list[str] = []
    off = Tracer.create(None, None, environ={})
    assert off.mask == 0
    on = Tracer.create(None, lambda c, line: got.append(line), environ={"CAPDEBUG_TRACE": "alert"})
    assert on.mask == TraceCategory.ALERT
    on.emit(TraceCategory.RECORD, "not traced")
    on.emit(TraceCategory.ALERT, "traced")
    on.warn("always")
    assert got == ["traced", "WARNING: always"]
