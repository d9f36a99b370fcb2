"""Why a connection closed: how long it was idle before the first close and who went quiet,
that it was still open when the capture ended, or that a side reused a connection its peer had
already closed (the peer's kernel answers the late data with RST)."""

from __future__ import annotations

from .catalog import Verdict
from .model import NAMES, Conn

__all__ = ["IDLE_CLOSE_S", "idle_verdicts", "stale_reuse"]

IDLE_CLOSE_S = 0.5
"""A first close this long after the last data is reported as an idle close (server keep-alive
timeouts are often 1 s or more; a close answering a request comes within milliseconds)."""


def _fmt(ns: int) -> str:
    s = ns / 1e9
    return f"{s:.1f} s"  # idle closes are reported from 0.5 s on: tenths are enough


def idle_verdicts(c: Conn, done: bool | None) -> list[Verdict]:
    sides = c.sides
    closes = []
    for i, s in enumerate(sides):
        likely = s.last_app if s.likely_close is not None and s.close_notify is None else None
        if likely is not None and likely[0] != s.likely_close:
            likely = None
        if s.likely_close is not None and s.close_notify is None and likely is None:
            # TLS 1.2: the encrypted alert is an AlertEvent (its content type is visible).
            alert = next((a for a in s.alerts if a.frame == s.likely_close), None)
            likely = None if alert is None else (alert.frame, alert.ts_ns)
        for what, at in (
            ("close_notify", s.close_notify),
            ("likely close_notify (encrypted, no keys)", likely),
            ("FIN", s.fin),
            ("RST", s.rst),
        ):
            if at is not None:
                closes.append((at[0], at[1], i, what))
    for frame, i, fact, ts in c.app:
        if fact.closes:  # GOAWAY, Connection: close: the application's own close comes first
            closes.append((frame, ts, i, fact.text))
    if not closes:
        if done is False or c.last_frame == 0:
            return []  # handshake_incomplete says it
        last = [s.last_data for s in sides if s.last_data is not None]
        quiet = ""
        if last:
            frame, _ts = max(last)
            quiet = f"; the last data was at frame {frame}"
        return [
            Verdict(
                "open_at_capture_end",
                "info",
                None,
                c.last_frame,
                f"the connection was still open when the capture ended (no close_notify, FIN or RST){quiet}",
            )
        ]
    frame, ts, closer, what = min(closes)
    data = [
        (s.last_data, i) for i, s in enumerate(sides) if s.last_data is not None and s.last_data[0] < frame
    ]
    if not data:
        return []
    (last_frame, last_ts), last_by = max(data)
    idle = ts - last_ts
    if idle < IDLE_CLOSE_S * 1e9:
        return []
    me = NAMES[closer]
    if last_by == closer:
        quiet = f"the {NAMES[1 - closer]} sent nothing after the {me}'s last data (frame {last_frame})"
    else:
        quiet = f"the {NAMES[last_by]}'s last data (frame {last_frame}) went unanswered by more data"
    return [
        Verdict(
            "idle_close",
            "info",
            me,
            frame,
            f"the {me} closed {_fmt(idle)} after the last data, with {what}: an idle timeout on the "
            f"{me}'s side; {quiet}",
            "medium",
        )
    ]


def stale_reuse(c: Conn, i: int) -> Verdict | None:
    """Side ``i`` reset the connection after it had closed (close_notify or FIN) and the peer
    then sent data it never answered: the peer reused a connection already closed (a stale
    keep-alive connection), and its request was lost. None when the RST is not that."""
    s, peer = c.sides[i], c.sides[1 - i]
    sent = peer.app_after_peer_end
    if s.rst is None or sent is None or sent[0] > s.rst[0] or s.fatal_alert is not None:
        return None  # (after a fatal alert, the alert is the story: handshake_alert or alert)
    if s.last_app is not None and s.last_app[0] > sent[0]:
        return None  # the closer answered: the data was read after all
    me, other = NAMES[i], NAMES[1 - i]
    likely = None
    if s.close_notify is None and s.likely_close is not None:
        # Without keys: the closer's last record was an unreadable alert (see Side.likely_close).
        likely = next(((a.frame, a.ts_ns) for a in s.alerts if a.frame == s.likely_close), s.last_app)
    closes = [
        (at, how)
        for at, how in (
            (s.close_notify, "close_notify"),
            (likely, "likely close_notify, encrypted"),
            (s.fin, "FIN"),
        )
        if at is not None
    ]
    end, how = min(closes, key=lambda x: x[0][0])
    request = c.last_request
    what = (
        f"a request ({request[1].text})"
        if request and i == 1 and request[0] == sent[0]
        else "application data"
    )
    return Verdict(
        "stale_connection_reuse",
        "error",
        other,
        sent[0],
        f"the {other} sent {what} {_fmt_ms(sent[1] - end[1])} after the {me} had closed the connection "
        f"({how}, frame {end[0]}); the {me} answered with RST (frame {s.rst[0]}): the request was lost "
        f"(a stale keep-alive connection reused; the {other} must retry it on a new connection)",
        "medium" if likely is not None and end == likely else "high",
    )


def _fmt_ms(ns: int) -> str:
    ms = ns / 1e6
    return f"{ms:.1f} ms" if ms < 10_000 else f"{ms / 1000:.1f} s"
