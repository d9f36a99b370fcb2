"""Why a connection closed: how long it was idle before the first close and who went quiet,
or that it was still open when the capture ended."""

from __future__ import annotations

from .catalog import Verdict
from .model import NAMES, Conn

__all__ = ["IDLE_CLOSE_S", "idle_verdicts"]

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
        )
    ]
