"""The verdict rules: facts, capture completeness, decryption, handshake outcome, closing and
timing, applied to one connection's :class:`~.model.Conn` once it is read."""

from __future__ import annotations

from ...wire.constants import CipherSuite, NamedGroup, name_of, version_name
from ...wire.handshake import ClientHello, ServerHello
from ..events import AlertEvent, Reason
from ..messages import hrr_group, offered_groups, offered_versions
from .app_rules import app_verdicts
from .catalog import ALERT_CAUSES, CLIENT_CERT_CAUSES, Verdict
from .certificates import certificate_verdicts
from .closing import idle_verdicts, stale_reuse
from .model import NAMES, TLS12, TLS13, Conn, Side
from .prelude import prelude_verdicts
from .rejection import (
    answers_second_flight,
    closed_after_client_flight,
    later_alerts,
    peer_chain,
    rejected_without_keys,
)
from .resumption import issuer_clause
from .tcp import tcp_verdicts

__all__ = ["verdicts"]


def _after_peer_eof(peer: Side, alert: AlertEvent) -> bool:
    """Was the alert sent after the peer closed TCP without close_notify? (OpenSSL answers
    such an EOF with decode_error: a reaction, not the cause.)"""
    return peer.fin is not None and peer.fin[0] < alert.frame and peer.close_notify is None


def _ms(ns: int) -> str:
    ms = ns / 1e6
    return f"{ms:.1f} ms" if ms < 10_000 else f"{ms / 1000:.1f} s"


def _handshake_done(c: Conn) -> bool | None:
    """True when the handshake finished; None when that cannot be seen (TLS 1.3, no keys)."""
    client, server = c.sides
    if c.client_hello is None and c.server_hello is None:
        return None  # picked up mid-connection: the handshake is not in the capture
    if c.version == TLS12:
        return (client.finished is not None and server.finished is not None) or (
            # Encrypted Finished messages without keys: both sides sent CCS + a protected record.
            client.protected_records > 0 and server.protected_records > 0
        )
    if client.finished is not None:
        return True
    if (
        c.server_hello is not None
        and (client.protected_records or client.app_records)
        and (server.protected_records or server.app_records)
    ):
        # TLS 1.3 without handshake keys: both sides sent protected records after the hellos
        # (unopened, or opened with traffic secrets recovered without the handshake).
        return None
    return False


def _likely_close_notify(c: Conn, side: Side) -> bool:
    """Without keys: the side's last record was probably an alert (see :class:`Side`)."""
    return side.likely_close is not None and side.close_notify is None


def verdicts(c: Conn, *, slow_handshake_s: float = 1.0) -> list[Verdict]:
    """Every verdict of one connection: the TLS rules, then TCP's (triage/tcp.py); a RST that
    TCP shows was injected by the path is not blamed on the side it claims to come from."""
    out = _tls_verdicts(c, slow_handshake_s=slow_handshake_s)
    tcp = tcp_verdicts(c)
    if tcp:
        forged = {v.frame for v in tcp if v.code == "injected_rst"}
        ended = {"connection_refused", "syn_unanswered"} & {v.code for v in tcp}
        out = [
            v
            for v in out
            if not (v.code in ("reset", "benign_reset") and v.frame in forged)
            and not (ended and v.code == "tcp_only")
        ]
        out += tcp
    if c.roles_from == "guess":
        # No SYN, ClientHello or ServerHello: who is the client was guessed (decode/sniff.py),
        # so a verdict naming a side may name the wrong one.
        out = [v.unsure("low", _GUESSED_ROLES) if v.by in NAMES else v for v in out]
    return out


_GUESSED_ROLES = (
    "the capture shows no SYN or hello, so which side is the client was guessed from the ports: "
    "'client' and 'server' may be the other way round"
)


def _tls_verdicts(c: Conn, *, slow_handshake_s: float) -> list[Verdict]:
    out: list[Verdict] = []
    client, server = c.sides
    sides = (client, server)

    out.extend(prelude_verdicts(c))
    if not c.tls_seen:
        if out:
            return out  # the prelude's verdicts say what happened instead of TLS
        rst = next(((i, s.rst) for i, s in enumerate(sides) if s.rst is not None), None)
        if rst is not None and client.syn is not None and server.syn is None and rst[0] == 1:
            out.append(
                Verdict(
                    "tcp_only",
                    "error",
                    "server",
                    rst[1][0],
                    f"connection refused: {c.server} answered the SYN with RST",
                )
            )
        else:
            out.append(Verdict("tcp_only", "info", None, c.first_frame, "no TLS data on this TCP connection"))
        return out

    # Facts first (info).
    if c.hrr is not None:
        hrr = c.hrr.message
        asked = hrr_group(hrr) if isinstance(hrr, ServerHello) else None
        group = None if asked is None else name_of(NamedGroup, asked)
        out.append(
            Verdict(
                "hello_retry_request",
                "info",
                "server",
                c.hrr.frame,
                f"the server asked for another key share{f' ({group})' if group else ''}",
            )
        )
    if c.resumed:
        frame = c.server_hello.frame if c.server_hello else None
        how = f"session resumed by {c.resumed_how}" if c.resumed_how else "session resumed"
        if c.resumed_from is not None:
            how += issuer_clause(c.resumed_from)
        out.append(Verdict("resumed", "info", None, frame, how))
    if c.early_data_offered:
        state = {True: "accepted", False: "rejected", None: "acceptance not visible without keys"}[
            c.early_data_accepted
        ]
        frame = c.client_hello.frame if c.client_hello else None
        out.append(
            Verdict(
                "early_data",
                "info",
                "client",
                frame,
                f"0-RTT early data offered ({c.early_records} records): {state}",
            )
        )
    for i, s in enumerate(sides):
        if s.key_updates:
            out.append(Verdict("key_update", "info", NAMES[i], None, f"{s.key_updates} KeyUpdate message(s)"))

    # Capture completeness.
    if c.roles_from != "syn" and c.client_hello is None:
        out.append(
            Verdict(
                "capture_incomplete",
                "warning",
                None,
                c.first_frame,
                "the capture started mid-connection: the handshake is missing",
            )
        )
    for i, s in enumerate(sides):
        if not s.gaps:
            continue
        if s.snaplen_gaps:
            detail = (
                f"the snaplen cut {s.snaplen_gaps} packet(s) sent by the {NAMES[i]} short "
                f"({s.snaplen_bytes} bytes not captured): capture with -s 0 to keep whole records"
            )
            if s.gap_bytes > s.snaplen_bytes:
                detail += f"; {s.gap_bytes - s.snaplen_bytes} more bytes are missing from the capture"
        elif s.out_of_order_gaps:
            detail = (
                f"{s.gap_bytes} bytes sent by the {NAMES[i]} could not be placed ({s.gaps} gap(s)): "
                f"{s.out_of_order_gaps} hole(s) were given up after more data than the reassembly "
                "limit arrived behind them (the missing bytes may come later in the capture); "
                "capdebug decrypt --max-out-of-order raises the limit"
            )
        elif s.network_gaps:
            detail = (
                f"{s.gap_bytes} bytes sent by the {NAMES[i]} are missing ({s.gaps} gap(s)): the "
                f"{NAMES[1 - i]} never acknowledged {s.network_gaps} of the gap(s) while the "
                f"{NAMES[i]} retransmitted: lost by the network, not by the capture"
            )
        elif s.capture_gaps == s.gaps:
            detail = (
                f"{s.gap_bytes} bytes sent by the {NAMES[i]} are missing from the capture "
                f"({s.gaps} gap(s)): the {NAMES[1 - i]} acknowledged them, so it received them: "
                "packets lost by the capture, not by the network"
            )
        else:
            detail = (
                f"{s.gap_bytes} bytes sent by the {NAMES[i]} are missing from the capture "
                f"({s.gaps} gap(s)): packets lost by the capture, not necessarily by the network"
            )
        out.append(Verdict("capture_incomplete", "warning", NAMES[i], None, detail))

    # Decryption.
    for i, s in enumerate(sides):
        for u in s.undecryptable:
            if u.reason == Reason.LATE_SECRETS:
                continue
            out.append(Verdict("undecryptable", "warning", NAMES[i], u.frame, f"[{u.reason}] {u.message}"))
            break

    # Certificates.
    out.extend(certificate_verdicts(c))

    # Handshake outcome.
    done = _handshake_done(c)
    fatal = [(i, s.fatal_alert) for i, s in enumerate(sides) if s.fatal_alert is not None]
    fatal.sort(key=lambda x: x[1].frame)
    hs_alert = None
    reaction = None
    rejected = rejected_without_keys(c) if done is not False else None
    if rejected is None:
        rejected = closed_after_client_flight(c)
    if rejected is not None:
        out.append(rejected)
    if fatal and (
        done is False
        or (c.sides[0].finished and fatal[0][1].frame <= c.sides[0].finished[0])
        or answers_second_flight(c, *fatal[0])
    ):
        i, a = fatal[0]
        hs_alert = a
        peer = sides[1 - i]
        if _after_peer_eof(peer, a):
            # The peer closed TCP first; OpenSSL answers that EOF with decode_error.
            reaction = a
            out.append(
                Verdict(
                    "alert",
                    "warning",
                    NAMES[i],
                    a.frame,
                    _alert_detail(c, i, a, handshake=True)
                    + f"; sent after the {NAMES[1 - i]} closed TCP during the handshake, in reaction to it",
                )
            )
        else:
            out.append(
                Verdict("handshake_alert", "error", NAMES[i], a.frame, _alert_detail(c, i, a, handshake=True))
            )
    refusals = {
        i: a for i, s in enumerate(sides) for a in s.alerts if a.level == 1 and a.name == "no_renegotiation"
    }
    for i, a in fatal:
        if a is hs_alert:
            continue
        peer = sides[1 - i]
        refusal = refusals.get(1 - i)
        if refusal is not None and refusal.frame <= a.frame:
            # The fatal alert answers the refusal: not a cipher-suite or record problem.
            out.append(
                Verdict(
                    "renegotiation_refused",
                    "error",
                    NAMES[i],
                    a.frame,
                    f"the {NAMES[1 - i]} refused the {NAMES[i]}'s renegotiation (warning no_renegotiation "
                    f"at frame {refusal.frame}), and the {NAMES[i]} gave up with fatal alert "
                    f"{a.name} ({a.description})",
                )
            )
            continue
        detail = _alert_detail(c, i, a, handshake=False)
        severity = "error"
        if _after_peer_eof(peer, a):
            # OpenSSL answers an unexpected EOF with decode_error: a consequence, not the cause.
            severity = "warning"
            detail += (
                f"; sent after the {NAMES[1 - i]} closed TCP without close_notify, in reaction "
                "to that premature close"
            )
        out.append(Verdict("alert", severity, NAMES[i], a.frame, detail))
    for i, s in enumerate(sides):
        for a in s.alerts:
            if a.description not in (None, 0) and a.level == 1:
                detail = (
                    f"warning alert {a.name} ({a.description}) from the {NAMES[i]}: it does not end "
                    "the connection by itself"
                )
                if a.name == "no_renegotiation":
                    detail += f"; the {NAMES[i]} refuses to renegotiate"
                out.append(Verdict("warning_alert", "warning", NAMES[i], a.frame, detail))
            elif a.description is None and a.frame != s.likely_close and rejected is None:
                out.append(
                    Verdict(
                        "alert",
                        "warning",
                        NAMES[i],
                        a.frame,
                        "an encrypted alert (no keys to read it): close_notify or a fatal alert",
                    )
                )

    ended = any(s.fin or s.rst for s in sides)
    if (
        done is False
        and rejected is None
        and (hs_alert is None or hs_alert is reaction)
        and not any(s.rst and (s.fin is None or s.rst[0] < s.fin[0]) for s in sides)
    ):
        last = ", ".join(f"{NAMES[i]}: {s.last_handshake or 'nothing'}" for i, s in enumerate(sides))
        how = "the connection closed" if ended else "the capture ended"
        turn = None if c.last_handshake_from is None else NAMES[1 - c.last_handshake_from]
        whose = f"; it was the {turn}'s turn: it never answered" if turn else ""
        out.append(
            Verdict(
                "handshake_incomplete",
                "error",
                turn,
                c.last_frame,
                f"{how} during the handshake; last message from {last}{whose}",
            )
        )

    # Closing.
    out.extend(_close_verdicts(c, done, rejected))
    out.extend(idle_verdicts(c, done))
    out.extend(app_verdicts(c))

    # Timing.
    if c.client_hello is not None and done is not False:
        end = client.finished or server.finished
        if end is not None and c.client_hello.ts_ns is not None:
            took = end[1] - c.client_hello.ts_ns
            rtt = server.syn[1] - client.syn[1] if client.syn and server.syn else None
            if took > slow_handshake_s * 1e9:
                extra = f" (network round trip {_ms(rtt)})" if rtt is not None else ""
                out.append(
                    Verdict("slow_handshake", "info", None, end[0], f"the handshake took {_ms(took)}{extra}")
                )
    return out


def _close_verdicts(c: Conn, done: bool | None, rejected: Verdict | None) -> list[Verdict]:
    out: list[Verdict] = []
    sides = c.sides
    names = NAMES
    for i, s in enumerate(sides):
        if s.app_after_own_close is not None:
            out.append(
                Verdict(
                    "data_after_close_notify",
                    "error",
                    names[i],
                    s.app_after_own_close[0],
                    f"the {names[i]} sent application data after its own close_notify",
                )
            )
    c0, c1 = sides[0].close_notify, sides[1].close_notify
    if c0 is not None and c1 is not None:
        first, first_at = (0, c0) if c0[0] <= c1[0] else (1, c1)
        other = sides[1 - first]
        if other.app_after_peer_close:
            out.append(
                Verdict(
                    "half_close",
                    "info",
                    names[first],
                    first_at[0],
                    f"the {names[first]} sent close_notify while the {names[1 - first]} kept sending "
                    f"({other.app_after_peer_close} records) before its own",
                )
            )
        elif not any(s.app_after_own_close for s in sides):
            out.append(
                Verdict("clean_close", "info", None, max(c0[0], c1[0]), "close_notify from both sides")
            )

    tcp_only = any(v.code == "tcp_only" for v in out)
    for i, s in enumerate(sides):
        if rejected is not None and s.fin is not None:
            continue  # the close followed the rejection (likely_handshake_rejected)
        if s.fin is not None and (s.rst is None or s.fin[0] < s.rst[0]):
            verdict = _fin_verdict(c, i, done)
            if verdict is not None:
                out.append(verdict)
        if s.rst is not None and not tcp_only:
            out.append(_rst_verdict(c, i, done, rejected))
    return out


def _fin_verdict(c: Conn, i: int, done: bool | None) -> Verdict | None:
    """A side sent FIN: did it end the TLS session properly first?"""
    s, peer = c.sides[i], c.sides[1 - i]
    me, other = NAMES[i], NAMES[1 - i]
    assert s.fin is not None
    fin = s.fin[0]
    if s.close_notify is not None or (s.fatal_alert is not None and s.fatal_alert.frame <= fin):
        return None
    if _likely_close_notify(c, s):
        what = "encrypted, 19 bytes" if c.version == TLS13 else "an encrypted alert"
        return Verdict(
            "likely_close_notify",
            "info",
            me,
            s.likely_close,
            f"likely close_notify from the {me} ({what}) before its FIN; keys would confirm it",
            "medium",
        )
    if peer.close_notify is not None and peer.close_notify[0] <= fin:
        return Verdict(
            "close_notify_unanswered",
            "info",
            me,
            fin,
            f"the {other} sent close_notify; the {me} closed TCP without its own",
        )
    if _likely_close_notify(c, peer) and peer.likely_close is not None and peer.likely_close <= fin:
        return Verdict(
            "close_notify_unanswered",
            "info",
            me,
            fin,
            f"the {other} sent what is likely close_notify (no keys to confirm); the {me} closed TCP "
            "without its own",
            "medium",
        )
    if peer.fatal_alert is not None and peer.fatal_alert.frame <= fin:
        return None  # the peer ended the session with its alert first
    if peer.fin is not None and peer.fin[0] < fin and not _likely_close_notify(c, peer):
        return None  # closing after the peer's bare FIN: the peer's premature_close is the story
    if done is False:
        return None  # reported as handshake_incomplete
    verdict = Verdict(
        "premature_close",
        "error",
        me,
        fin,
        f"the {me} closed TCP (FIN) without close_notify while the session was open: the {other}'s "
        "TLS stack sees a truncated connection (OpenSSL: 'unexpected eof while reading' / "
        "SSL_ERROR_SYSCALL; s2n: premature close)",
    )
    if s.last_unread and c.version == TLS13:
        # Without its key, a padded close_notify (RFC 8446 5.4) is not 19 bytes long.
        return verdict.unsure(
            "medium",
            f"the {me}'s last record before the FIN could not be read: keys would rule out a "
            "padded close_notify",
        )
    return verdict


def _rst_verdict(c: Conn, i: int, done: bool | None, rejected: Verdict | None) -> Verdict:
    """A side sent RST: was the TLS session already over?"""
    s, peer = c.sides[i], c.sides[1 - i]
    me, other = NAMES[i], NAMES[1 - i]
    assert s.rst is not None
    rst = s.rst[0]
    over = (
        rejected is not None
        or s.close_notify is not None
        or s.fatal_alert is not None
        or peer.close_notify is not None
        or peer.fatal_alert is not None
        or (s.fin is not None and s.fin[0] < rst)
        or _likely_close_notify(c, peer)
        or _likely_close_notify(c, s)
    )
    if over and (stale := stale_reuse(c, i)) is not None:
        return stale
    if over:
        return Verdict(
            "benign_reset",
            "info",
            me,
            rst,
            f"the {me} reset the connection after the TLS session was over "
            "(its kernel answering data that arrived after it closed the socket)",
        )
    phase = "during the handshake" if done is False else "after the handshake"
    pending = ""
    if peer.last_app is not None and (s.last_app is None or peer.last_app[0] > s.last_app[0]):
        pending = f"; the {other}'s last data (frame {peer.last_app[0]}) may have been unread"
    elif s.last_app is not None or peer.last_app is not None:
        pending = "; data was in flight"
    since = ""
    last_hs = s.finished or peer.finished
    if last_hs is not None:
        since = f", {_ms(s.rst[1] - last_hs[1])} after the Finished"
    return Verdict(
        "reset",
        "error",
        me,
        rst,
        f"the {me} reset the connection {phase}{since} without close_notify or alert{pending}",
    )


def _alert_detail(c: Conn, i: int, a: AlertEvent, *, handshake: bool) -> str:
    who = NAMES[i]
    if a.description is None:
        return f"the {who} sent an encrypted alert (no keys to read it)"
    cause = ALERT_CAUSES.get(a.name)
    detail = f"the {who} sent fatal alert {a.name} ({a.description})"
    second_flight = handshake and answers_second_flight(c, i, a)
    if second_flight:
        detail += (
            " answering the client's second flight (Certificate, CertificateVerify, Finished) before "
            "the server completed the handshake"
        )
    elif handshake:
        last = c.sides[1 - i].last_handshake
        if last == "encrypted_handshake":
            last = "encrypted handshake messages"
        if last:
            detail += f" after the {NAMES[1 - i]}'s {last}"
    if (
        i == 1
        and (c.client_certificate is not None or c.certificate_request is not None)
        and (a.name in CLIENT_CERT_CAUSES)
    ):
        cause = None  # said by peer_chain, about the client's certificate
    if cause:
        detail += f": usually {cause}"
    ch = c.client_hello.message if c.client_hello else None
    hello = ch if isinstance(ch, ClientHello) else None
    if a.name == "handshake_failure" and c.client_hello is not None:
        offered = [name_of(CipherSuite, s) for s in hello.cipher_suites] if hello else []
        groups = [name_of(NamedGroup, g) for g in (offered_groups(hello) if hello else None) or ()]
        detail += f". Client offered {len(offered)} suites ({', '.join(offered[:4])}"
        detail += f"{', ...' if len(offered) > 4 else ''}) and groups {', '.join(groups[:5])}"
        if c.server_hello is not None:
            sh = c.server_hello.message
            chosen = name_of(CipherSuite, sh.cipher_suite) if isinstance(sh, ServerHello) else None
            detail += f"; server chose {chosen}"
    elif a.name == "protocol_version" and c.client_hello is not None:
        versions: list[int | None] = list((offered_versions(hello) if hello else None) or ()) or [
            hello.legacy_version if hello else None
        ]
        detail += f". Client offered {', '.join('None' if v is None else version_name(v) for v in versions)}"
    elif a.name in CLIENT_CERT_CAUSES and (
        i == 0 or c.client_certificate is not None or c.certificate_request is not None
    ):
        detail += peer_chain(c, i, a)
    return detail + later_alerts(c.sides[i], a)
