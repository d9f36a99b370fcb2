"""TLS 1.3 resumption with a PSK from a ticket (RFC 8446 2.2, 4.2.9, 4.2.11, 4.6.1).

Client: :func:`offer` appends pre_shared_key (always the last extension) to a ClientHello and
computes its binder over the ClientHello truncated before the binders (4.2.11.2).

Server: :func:`accept` opens the ticket, checks its suite, lifetime and single use, verifies the
binder (a wrong binder is ``decrypt_error``), and says which identity it selected;
:func:`new_ticket` seals the state of a NewSessionTicket. Only psk_dhe_ke is spoken: a client
offering psk_ke alone gets a full handshake.
"""

from __future__ import annotations

import hmac
import os
from typing import TYPE_CHECKING

from ..crypto.schedule13 import KeySchedule, Transcript, finished_verify_data, resumption_psk
from ..crypto.suites import SUITES
from ..crypto.tickets import open_ticket, seal_ticket
from ..errors import DecodeError, DecryptError
from ..wire import extensions as wx
from ..wire.constants import ExtensionType, ProtocolVersion, PskKeyExchangeMode
from ..wire.handshake import ClientHello, NewSessionTicket, encode_handshake
from ._common import AD, T, err
from .session import Session, TicketState

if TYPE_CHECKING:
    from .connection import Connection

__all__ = ["accept", "new_ticket", "offer"]


def _now_ms(conn: Connection) -> int | None:
    return conn._now_ms()


def _binder(hash_name: str, psk: bytes, prefix: Transcript | None, truncated: bytes) -> bytes:
    """HMAC over Transcript-Hash(prefix + Truncate(ClientHello)) with the "res binder" key."""
    transcript = prefix.copy() if prefix is not None else Transcript(hash_name)
    transcript.update(truncated)
    binder_key = KeySchedule(hash_name, psk).binder_key(external=False)
    return finished_verify_data(hash_name, binder_key, transcript.digest())


def offer(conn: Connection, hello: ClientHello) -> ClientHello:
    """``hello`` with the session's ticket and binder appended (RFC 8446 4.2.11)."""
    session = conn._session
    assert session is not None
    params = SUITES[session.cipher_suite]
    prefix = conn._transcript  # after a HelloRetryRequest: message_hash(CH1) + HRR
    if prefix is not None and prefix.hash_name != params.hash_name:
        conn._session = None  # RFC 8446 4.1.4: the HRR's suite cannot use this PSK
        return hello
    age = 0
    now = _now_ms(conn)
    if now is not None and session.issued_at_ms is not None:
        age = max(0, now - session.issued_at_ms)
    identity = wx.PskIdentity(session.ticket, (age + session.ticket_age_add) % (1 << 32))
    placeholder = wx.OfferedPsks((identity,), (bytes(params.hash_len),))

    def with_psk(offered: wx.OfferedPsks) -> ClientHello:
        exts = (*hello.extensions, wx.Extension(ExtensionType.pre_shared_key, wx.push_offered_psks(offered)))
        return ClientHello(
            hello.legacy_version,
            hello.random,
            hello.legacy_session_id,
            hello.cipher_suites,
            hello.legacy_compression_methods,
            exts,
        )

    encoded = encode_handshake(with_psk(placeholder))
    truncated = encoded[: len(encoded) - wx.binders_size(placeholder)]
    binder = _binder(params.hash_name, session.psk, prefix, truncated)
    if conn._trace.mask & T.HANDSHAKE:
        conn._trace.emit(T.HANDSHAKE, f"offering a ticket for resumption ({params.name}, age {age} ms)")
    return with_psk(wx.OfferedPsks((identity,), (binder,)))


def accept(conn: Connection, msg: ClientHello, raw: bytes, suite_code: int) -> int | None:
    """The selected identity index, or None for a full handshake. Sets ``conn._psk``."""
    data = wx.ext(msg, ExtensionType.pre_shared_key)
    if data is None:
        return None
    if msg.extensions[-1].type != ExtensionType.pre_shared_key:
        # RFC 8446 4.2.11: "The pre_shared_key extension MUST be the last extension".
        raise err("ERR_ILLEGAL_PARAMETER", "pre_shared_key is not the last extension", AD.illegal_parameter)
    modes_data = wx.ext(msg, ExtensionType.psk_key_exchange_modes)
    try:
        offered = wx.pull_offered_psks(data)
        modes = wx.pull_psk_key_exchange_modes(modes_data) if modes_data is not None else None
    except DecodeError as exc:
        raise err("ERR_DECODE", f"pre_shared_key: {exc}", AD.decode_error) from exc
    if modes is None:
        # RFC 8446 4.2.9: a client offering pre_shared_key MUST offer psk_key_exchange_modes.
        raise err(
            "ERR_MISSING_EXTENSION", "pre_shared_key without psk_key_exchange_modes", AD.missing_extension
        )
    if len(offered.identities) != len(offered.binders):
        raise err(
            "ERR_ILLEGAL_PARAMETER", "pre_shared_key: identities and binders differ", AD.illegal_parameter
        )
    if PskKeyExchangeMode.psk_dhe_ke not in modes:
        return None
    params = SUITES[suite_code]
    cfg = conn.config
    now = _now_ms(conn)
    for index, identity in enumerate(offered.identities):
        try:
            state = TicketState.decode(open_ticket(cfg.ticket_key, identity.identity))
        except (DecryptError, DecodeError):
            continue  # not one of our tickets: RFC 8446 4.2.11 says ignore it
        if SUITES[state.cipher_suite].hash_name != params.hash_name:
            continue
        if now is not None and state.issued_at_ms and now - state.issued_at_ms > state.lifetime * 1000:
            continue
        truncated = raw[: len(raw) - wx.binders_size(offered)]
        binder = _binder(params.hash_name, state.psk, conn._transcript, truncated)
        if not hmac.compare_digest(binder, offered.binders[index]):
            raise err("ERR_BAD_BINDER", "the PSK binder does not verify (RFC 8446 4.2.11)", AD.decrypt_error)
        if not cfg.ticket_store.use(state.ticket_id):
            if conn._trace.mask & T.HANDSHAKE:
                conn._trace.emit(T.HANDSHAKE, "ticket already used: refused (single use), full handshake")
            conn._replayed_ticket = True
            continue
        conn._psk = state.psk
        conn._ticket_state = state
        if conn._trace.mask & T.HANDSHAKE:
            conn._trace.emit(T.HANDSHAKE, f"resuming with ticket {index}")
        return index
    return None


def new_ticket(conn: Connection) -> NewSessionTicket:
    """A NewSessionTicket whose ticket seals its own PSK (RFC 8446 4.6.1)."""
    assert conn.suite is not None and conn.cipher_suite is not None
    nonce = conn._tickets_sent.to_bytes(8, "big")
    conn._tickets_sent += 1
    psk = resumption_psk(conn.suite.hash_name, conn._resumption_secret, nonce)
    age_add = int.from_bytes(os.urandom(4), "big")
    cfg = conn.config
    state = TicketState(
        os.urandom(16),
        conn.cipher_suite,
        psk,
        age_add,
        _now_ms(conn) or 0,
        cfg.ticket_lifetime,
        cfg.max_early_data,
        conn.alpn or "",
        conn.server_name or "",
    )
    exts: tuple[wx.Extension, ...] = ()
    if cfg.max_early_data:
        exts = (wx.Extension(ExtensionType.early_data, wx.push_early_data(cfg.max_early_data)),)
    return NewSessionTicket(
        cfg.ticket_lifetime, age_add, nonce, seal_ticket(cfg.ticket_key, state.encode()), exts
    )


def session_from_ticket(conn: Connection, msg: NewSessionTicket, psk: bytes) -> Session:
    assert conn.cipher_suite is not None
    max_early = 0
    early = wx.ext(msg.extensions, ExtensionType.early_data)
    if early is not None:
        try:
            max_early = wx.pull_early_data(early) or 0
        except DecodeError as exc:
            raise err("ERR_DECODE", f"NewSessionTicket early_data: {exc}", AD.decode_error) from exc
    return Session(
        ProtocolVersion.TLS1_3,
        conn.cipher_suite,
        msg.ticket,
        psk,
        msg.ticket_age_add,
        msg.ticket_lifetime,
        _now_ms(conn),
        max_early,
        conn.server_name,
        conn.alpn,
    )
