"""Verdicts over one matched pair of legs: what happened between the two capture points.

Each direction of a connection travels from the point nearer its sender (``up``) to the other
(``down``). With the two streams aligned (``Match.delta``), a statement about the hop between
them is a comparison of what ``up`` saw leave with what ``down`` saw arrive:

==========================  ==================================================================
injected_rst / injected_fin  a RST/FIN from the sender arrives at ``down``; ``up`` never saw
                             the sender send one.
injected_alert               an alert record at ``down`` whose bytes ``up`` never carried.
altered_in_flight            the same stream offsets carry different bytes at the two points.
close_notify_not_delivered   ``up`` saw the sender's close_notify; it never reached ``down``.
mtu_black_hole               only large segments vanish (each copy of them), small ones pass.
segments_lost                bytes seen leaving ``up`` never reach ``down``, or some copies of
                             them are lost and a retransmission gets through.
fin_not_delivered /          the sender's FIN/RST left ``up`` and never reached ``down``
rst_not_delivered            (every byte before it did).
proxy_closed_leg             (two legs of a TLS-terminating proxy) the proxy closed a leg first,
                             while neither endpoint had closed.
==========================  ==================================================================

A statement about "never arrived" needs the ``down`` capture to have been running when the
bytes were due; where it was not, the verdict is not made (or its confidence says so).
"""

from __future__ import annotations

import bisect
import statistics
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..events import AlertEvent, AppDataEvent, TcpEvent
from .match import Match, upstream_of
from .points import CapturePoint, Leg, Segment

__all__ = ["CODES", "Verdict", "judge"]

_RST, _FIN = 0x04, 0x01
_DUE_NS = 200_000_000
"""Time after which bytes leaving ``up`` are due at ``down`` (well above one-way delays of a
path where captures are correlated; a capture that ended sooner cannot say they were lost)."""

SEVERITY_ORDER = ("error", "warning", "info")
CODES = (
    "injected_rst",
    "injected_fin",
    "injected_alert",
    "injected_data",
    "altered_in_flight",
    "mtu_black_hole",
    "close_notify_not_delivered",
    "segments_lost",
    "fin_not_delivered",
    "rst_not_delivered",
    "proxy_closed_leg",
    "streams_not_aligned",
)
"""Every verdict code; within a severity, causes come before consequences (a forged RST
explains the data lost with it)."""


@dataclass(frozen=True, slots=True)
class Verdict:
    """One finding about the hop between two capture points."""

    code: str
    severity: str
    """"error" | "warning" | "info"."""
    between: tuple[str, str]
    """The two capture points, in the direction the affected bytes travel."""
    by: str | None
    """The endpoint whose direction is affected ("client" | "server"), or None."""
    confidence: str
    """"high" | "medium" | "low"."""
    detail: str
    frames: dict[str, int] = field(default_factory=dict)
    """Capture point name -> the frame to look at there."""

    def to_json(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "severity": self.severity,
            "between": list(self.between),
            "by": self.by,
            "confidence": self.confidence,
            "detail": self.detail,
            "frames": dict(self.frames),
        }


@dataclass(slots=True)
class _Hop:
    """One direction of a matched pair: sender, the two legs and their points, time mapping."""

    role: str
    up: Leg
    down: Leg
    up_point: CapturePoint
    down_point: CapturePoint
    shift: int
    """``down`` relative offset = ``up`` relative offset + shift."""
    clock_ns: int
    """``down`` clock = ``up`` clock + clock_ns."""

    @property
    def between(self) -> tuple[str, str]:
        return (self.up_point.name, self.down_point.name)

    def due(self, t_up: int) -> bool:
        """Was the ``down`` capture still running when a segment sent at ``t_up`` was due?"""
        return self.down_point.last_ns >= t_up + self.clock_ns + _DUE_NS


def judge(m: Match, points: Sequence[CapturePoint]) -> list[Verdict]:
    """Every verdict about the hop between the two legs of ``m``, errors first."""
    pa, pb = points[m.a.point], points[m.b.point]
    if m.kind == "sni_timing":
        out = _proxy_closed(m, pa, pb)
    else:
        out = []
        first, _ = upstream_of(m)
        offset = m.clock.offset_ns if m.clock is not None else 0
        for role in ("client", "server"):
            delta = m.delta[role]
            if delta is None:
                out += _not_aligned(m, role, pa, pb)
                continue
            a_up = (first == "a") == (role == "client")
            if a_up:
                hop = _Hop(role, m.a, m.b, pa, pb, delta, offset)
            else:
                hop = _Hop(role, m.b, m.a, pb, pa, -delta, -offset)
            out += _judge_direction(hop)
    out.sort(key=lambda v: (SEVERITY_ORDER.index(v.severity), CODES.index(v.code)))
    return out


def _not_aligned(m: Match, role: str, pa: CapturePoint, pb: CapturePoint) -> list[Verdict]:
    """Say so when a direction seen at both points could not be compared."""
    if not (any(s.payload for s in m.a.sent[role]) and any(s.payload for s in m.b.sent[role])):
        return []
    return [
        Verdict(
            "streams_not_aligned",
            "info",
            (pa.name, pb.name),
            role,
            "high",
            f"the {role}'s bytes could not be lined up between {pa.name} and {pb.name} (no SYN at "
            "both and no common segment start): nothing is said about this direction on this hop",
        )
    ]


def _judge_direction(h: _Hop) -> list[Verdict]:
    out: list[Verdict] = []
    up_segs, down_segs = h.up.sent[h.role], h.down.sent[h.role]
    out += _injected_flags(h, up_segs, down_segs)
    altered, injected = _compare_bytes(h, up_segs, down_segs)
    out += altered + injected
    notify = _close_notify(h)
    lost = _lost(h, up_segs, down_segs, skip_from=notify[1] if notify else None)
    if notify:
        out.append(notify[0])
    out += lost
    out += _flags_lost(h, up_segs, down_segs, skip_from=notify[1] if notify else None)
    return out


def _acked(h: _Hop) -> int:
    """How far (in ``down``'s offsets) the receiver's cumulative ACKs passing ``down`` went."""
    peer = "server" if h.role == "client" else "client"
    return max((s.rel_ack for s in h.down.sent[peer] if s.rel_ack is not None), default=-1)


def _flags_lost(
    h: _Hop, up_segs: list[Segment], down_segs: list[Segment], skip_from: int | None
) -> list[Verdict]:
    """A FIN or RST that left ``up`` and never reached ``down``, although the receiver
    acknowledged every byte before it (a FIN stuck behind lost data is part of that loss, not
    a finding of its own)."""
    acked = _acked(h) - h.shift
    out = []
    for bit, name in ((_FIN, "FIN"), (_RST, "RST")):
        sent = [s for s in up_segs if s.flags & bit]
        if not sent or any(s.flags & bit for s in down_segs):
            continue
        s = sent[0]
        at = s.rel + len(s.payload)
        if acked < at:
            continue
        due = h.due(s.ts_ns)
        # Sent again and again: never acknowledged. Without later packets at ``down`` it may
        # have been lost beyond ``down`` instead; said, with a low confidence.
        if not due and len(sent) < 2:
            continue
        if skip_from is not None and at >= skip_from:
            continue
        out.append(
            Verdict(
                f"{name.lower()}_not_delivered",
                "error",
                h.between,
                h.role,
                ("high" if len(sent) > 1 else "medium") if due else "low",
                f"the {h.role}'s {name} left {h.up_point.name} (frame {s.frame}"
                + (f", sent {len(sent)} times" if len(sent) > 1 else "")
                + f") and never reached {h.down_point.name}: dropped between "
                f"{h.up_point.name} and {h.down_point.name}"
                + ("" if due else f" (or beyond: the capture at {h.down_point.name} has no later packet)"),
                {h.up_point.name: s.frame},
            )
        )
    return out


def _injected_flags(h: _Hop, up_segs: list[Segment], down_segs: list[Segment]) -> list[Verdict]:
    out = []
    for bit, name in ((_RST, "RST"), (_FIN, "FIN")):
        seen = [s for s in down_segs if s.flags & bit]
        if not seen or any(s.flags & bit for s in up_segs):
            continue
        s = seen[0]
        others = [x.ttl for x in down_segs if not x.flags & bit and x.ttl is not None]
        usual = round(statistics.median(others)) if others else None
        odd_ttl = usual is not None and s.ttl is not None and s.ttl != usual
        covered = h.up_point.last_ns + h.clock_ns >= s.ts_ns
        confidence = "high" if covered and odd_ttl else "medium" if covered else "low"
        why = (
            f"; its TTL {s.ttl} differs from the {h.role}'s other segments there ({usual})" if odd_ttl else ""
        )
        if not covered:
            why += f"; the capture at {h.up_point.name} ended before it, so this is uncertain"
        out.append(
            Verdict(
                f"injected_{name.lower()}",
                "error",
                h.between,
                h.role,
                confidence,
                f"a {name} from the {h.role} arrives at {h.down_point.name} (frame {s.frame}) but the "
                f"{h.role} never sent one at {h.up_point.name}: injected between "
                f"{h.up_point.name} and {h.down_point.name}{why}",
                {h.down_point.name: s.frame},
            )
        )
    return out


class _Stream:
    """One direction's captured bytes at one point, by relative offset (first copy wins)."""

    def __init__(self, segs: list[Segment], shift: int = 0) -> None:
        first = sorted({s.rel + shift: s for s in reversed(segs) if s.payload}.items())
        self.starts = [k for k, _ in first]
        self.segs = [s for _, s in first]
        self.shift = shift
        self.max_end = max((k + len(s.payload) for k, s in first), default=0)

    def overlapping(self, start: int, end: int) -> list[tuple[int, Segment]]:
        i = bisect.bisect_left(self.starts, start)
        # Segments starting before ``start`` may reach into it: walk back a few.
        lo = i
        while lo > 0 and self.starts[lo - 1] + len(self.segs[lo - 1].payload) > start:
            lo -= 1
        out = []
        for k in range(lo, len(self.starts)):
            if self.starts[k] >= end:
                break
            out.append((self.starts[k], self.segs[k]))
        return out


def _compare_bytes(
    h: _Hop, up_segs: list[Segment], down_segs: list[Segment]
) -> tuple[list[Verdict], list[Verdict]]:
    """Bytes at ``down`` against ``up`` at the same offsets: differing (altered), or absent
    from ``up`` although ``up`` saw the stream go past them (injected)."""
    up = _Stream(up_segs, h.shift)
    altered: list[tuple[Segment, Segment, int]] = []
    injected: list[Segment] = []
    for s in down_segs:
        if not s.payload:
            continue
        start, end = s.rel, s.rel + len(s.payload)
        pieces = up.overlapping(start, end)
        for k, u in pieces:
            lo, hi = max(start, k), min(end, k + len(u.payload))
            if s.payload[lo - start : hi - start] != u.payload[lo - k : hi - k]:
                altered.append((u, s, lo))
                break
        # Bytes ``up`` lacks in the middle of what it saw are its own capture's loss (TCP would
        # not have delivered what follows); bytes beyond all the sender ever sent, while the
        # ``up`` capture was still running, were not sent by the sender.
        if not pieces and start >= up.max_end and h.up_point.last_ns >= s.ts_ns - h.clock_ns:
            injected.append(s)
    out_alt: list[Verdict] = []
    if altered:
        u, s, at = altered[0]
        out_alt.append(
            Verdict(
                "altered_in_flight",
                "error",
                h.between,
                h.role,
                "high",
                f"{len(altered)} segment(s) from the {h.role} carry different bytes at "
                f"{h.down_point.name} than at {h.up_point.name} (first at stream offset {at}): "
                f"records altered in flight between {h.up_point.name} and {h.down_point.name}",
                {h.up_point.name: u.frame, h.down_point.name: s.frame},
            )
        )
    out_inj: list[Verdict] = []
    if injected:
        frames = {s.frame for s in injected}
        alerts = [ev for ev in h.down.alerts(h.role) if ev.frame in frames]
        code = "injected_alert" if alerts else "injected_data"
        what = f"an alert ({alerts[0].name})" if alerts else f"{sum(len(s.payload) for s in injected)} bytes"
        out_inj.append(
            Verdict(
                code,
                "error",
                h.between,
                h.role,
                "medium",
                f"{what} from the {h.role} at {h.down_point.name} (frame {injected[0].frame}) never "
                f"passed {h.up_point.name}, where the {h.role} sent nothing at that point of the "
                f"stream though the capture ran on: injected between {h.up_point.name} and "
                f"{h.down_point.name}",
                {h.down_point.name: injected[0].frame},
            )
        )
    return out_alt, out_inj


def _close_notify(h: _Hop) -> tuple[Verdict, int] | None:
    """(verdict, relative offset of the record at ``up``) when ``up`` saw the sender's
    close_notify and ``down`` never did."""
    sent = [ev for ev in h.up.alerts(h.role) if ev.name == "close_notify"]
    if not sent or any(ev.name == "close_notify" for ev in h.down.alerts(h.role)):
        return None
    ev = sent[0]
    if not h.due(ev.ts_ns):
        return None
    seg = next((s for s in h.up.sent[h.role] if s.frame == ev.frame), None)
    start = seg.rel if seg is not None else 0
    return (
        Verdict(
            "close_notify_not_delivered",
            "error",
            h.between,
            h.role,
            "high" if seg is not None else "medium",
            f"the {h.role} sent close_notify (seen at {h.up_point.name}, frame {ev.frame}) but it "
            f"never reached {h.down_point.name}: lost or dropped between {h.up_point.name} and "
            f"{h.down_point.name}",
            {h.up_point.name: ev.frame},
        ),
        start,
    )


def _coverage(segs: list[Segment], shift: int) -> list[tuple[int, int]]:
    spans = sorted((s.rel + shift, s.rel + shift + len(s.payload)) for s in segs if s.payload)
    merged: list[tuple[int, int]] = []
    for lo, hi in spans:
        if merged and lo <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], hi))
        else:
            merged.append((lo, hi))
    return merged


def _covered(cov: list[tuple[int, int]], lo: int, hi: int) -> bool:
    i = bisect.bisect_right(cov, (lo, 1 << 62)) - 1
    return i >= 0 and cov[i][0] <= lo and cov[i][1] >= hi


def _lost(h: _Hop, up_segs: list[Segment], down_segs: list[Segment], skip_from: int | None) -> list[Verdict]:
    down_cov = _coverage(down_segs, -h.shift)
    vanished: list[Segment] = []
    delivered: list[Segment] = []
    for s in up_segs:
        if not s.payload or not h.due(s.ts_ns):
            continue
        if _covered(down_cov, s.rel, s.rel + len(s.payload)):
            delivered.append(s)
        else:
            vanished.append(s)
    # Bytes the receiver acknowledged as it passed ``down`` did arrive: ``down``'s capture
    # missed them (the network did not lose them).
    acked = _acked(h) - h.shift
    vanished = [s for s in vanished if s.rel + len(s.payload) > acked]
    if skip_from is not None:
        vanished = [s for s in vanished if s.rel < skip_from]
    out: list[Verdict] = []
    if vanished:
        copies = Counter(s.rel for s in vanished)
        smallest = min(s.ip_length for s in vanished)
        largest_ok = max((s.ip_length for s in delivered), default=0)
        if max(copies.values()) >= 2 and smallest > largest_ok:
            out.append(
                Verdict(
                    "mtu_black_hole",
                    "error",
                    h.between,
                    h.role,
                    "high" if len(vanished) >= 3 else "medium",
                    f"{len(vanished)} packet(s) from the {h.role} of {smallest} bytes or more (IP "
                    f"length) left {h.up_point.name} and never reached {h.down_point.name}, "
                    f"retransmissions included, while packets up to {largest_ok} bytes passed: "
                    f"an MTU black hole between {h.up_point.name} and {h.down_point.name}",
                    {h.up_point.name: vanished[0].frame},
                )
            )
            return out
        size = sum(len(s.payload) for s in {s.rel: s for s in vanished}.values())
        out.append(
            Verdict(
                "segments_lost",
                "error",
                h.between,
                h.role,
                "high",
                f"{len(vanished)} segment(s) from the {h.role} ({size} bytes of stream) left "
                f"{h.up_point.name} and never reached {h.down_point.name}",
                {h.up_point.name: vanished[0].frame},
            )
        )
        return out
    # Copies lost on the hop, repaired by a retransmission: fewer copies arrive than left.
    up_copies = Counter(s.rel for s in up_segs if s.payload and h.due(s.ts_ns))
    down_copies = Counter(s.rel - h.shift for s in down_segs if s.payload)
    lost = {k: n - down_copies[k] for k, n in up_copies.items() if n > 1 and 0 < down_copies[k] < n}
    if lost:
        first = next(s for s in up_segs if s.rel in lost and s.payload)
        out.append(
            Verdict(
                "segments_lost",
                "warning",
                h.between,
                h.role,
                "medium",
                f"{sum(lost.values())} copies of {len(lost)} segment(s) from the {h.role} left "
                f"{h.up_point.name} but did not reach {h.down_point.name}; a retransmission did",
                {h.up_point.name: first.frame},
            )
        )
    return out


def _closes(leg: Leg) -> list[tuple[int, str, str, int]]:
    """(time, who, what, frame) of each FIN, RST or close_notify on a leg."""
    out = []
    for ev in leg.events:
        if isinstance(ev, TcpEvent) and ev.flag in ("FIN", "RST"):
            out.append((ev.ts_ns, ev.from_, ev.flag, ev.frame))
        elif isinstance(ev, AlertEvent) and ev.name == "close_notify":
            out.append((ev.ts_ns, ev.from_, "close_notify", ev.frame))
    return sorted(out)


def _proxy_closed(m: Match, pa: CapturePoint, pb: CapturePoint) -> list[Verdict]:
    """Two legs of a TLS-terminating proxy: did the proxy close a leg before either endpoint
    closed anything (an idle timeout, a proxy limit)?"""
    first, _ = upstream_of(m)
    offset = m.clock.offset_ns if m.clock is not None else 0
    if first == "a":
        cleg, sleg, cp, sp, to_c = m.a, m.b, pa, pb, -offset
    else:
        cleg, sleg, cp, sp, to_c = m.b, m.a, pb, pa, offset
    # On the client leg the proxy is the "server"; on the server leg it is the "client".
    closes = [
        (t, "client" if who == "client" else "proxy", what, f, cp.name) for t, who, what, f in _closes(cleg)
    ]
    closes += [
        (t + to_c, "server" if who == "server" else "proxy", what, f, sp.name)
        for t, who, what, f in _closes(sleg)
    ]
    if not closes:
        return []
    closes.sort()
    t0, who, what, frame, where = closes[0]
    if who != "proxy":
        return []
    leg_name = "client" if where == cp.name else "server"
    other_point = sp.name if leg_name == "client" else cp.name
    other_closed = [c for c in closes if c[4] == other_point]
    leg = cleg if leg_name == "client" else sleg
    local_t0 = t0 if leg is cleg else t0 - to_c
    data = [ev.ts_ns for ev in leg.events if isinstance(ev, AppDataEvent) and ev.ts_ns <= local_t0]
    idle = ""
    if data:
        last = data[-1] + (0 if leg is cleg else to_c)
        idle = f" after {(t0 - last) / 1e9:.1f} s without application data"
    rest = (
        f"; the {'server' if leg_name == 'client' else 'client'} leg stayed open"
        if not other_closed
        else f"; the proxy's side of the other leg closed {(other_closed[0][0] - t0) / 1e9:.3f} s later "
        f"({other_closed[0][2]} from the {other_closed[0][1]})"
    )
    return [
        Verdict(
            "proxy_closed_leg",
            "error",
            (cp.name, sp.name),
            None,
            "medium",
            f"the proxy between {cp.name} and {sp.name} closed the {leg_name} leg first ({what} at "
            f"{where}, frame {frame}){idle}, while neither the client nor the server had closed"
            f"{rest}: an idle timeout or limit at the proxy?",
            {where: frame},
        )
    ]
