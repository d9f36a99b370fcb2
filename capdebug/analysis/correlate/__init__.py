"""Correlate captures of one incident taken at several points: which hop broke the connection.

Input: one :class:`CapturePoint` per capture (the decoder's events joined with a TCP pass,
see :mod:`.points`). Output: a :class:`Correlation`, the connections seen at two or more
points (matched as :mod:`.match` explains), each with the clock offsets between its points,
one merged timeline, and verdicts naming the two points a fault lies between
(:mod:`.verdicts`). Legs that match nothing are listed as such: an unmatched leg is a fact,
a wrong match would be a lie.

Pure: no file, clock or environment is read here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..events import ConnectionEvent
from .match import ClockEstimate, Match, find_matches, upstream_of
from .points import CapturePoint, Leg, Segment, build_point, tcp_segments
from .verdicts import Verdict, judge

__all__ = [
    "CapturePoint",
    "ClockEstimate",
    "Correlation",
    "Hop",
    "Leg",
    "Match",
    "MatchedConnection",
    "Segment",
    "Verdict",
    "build_point",
    "correlate",
    "tcp_segments",
]


@dataclass(slots=True)
class Hop:
    """One matched pair of legs, oriented client side first."""

    near: Leg
    """The leg nearer the client."""
    far: Leg
    kind: str
    confidence: str
    oriented_by: str
    """How "nearer the client" was decided."""
    clock: ClockEstimate | None
    """Clock of ``far``'s point minus clock of ``near``'s point."""


@dataclass(slots=True)
class MatchedConnection:
    """One connection (or one proxied request) seen at several capture points."""

    legs: list[Leg]
    """In order from the client side."""
    hops: list[Hop]
    verdicts: list[Verdict] = field(default_factory=list)

    @property
    def kind(self) -> str:
        """The weakest evidence any hop rests on."""
        order = ("sni_timing", "tcp_payload", "client_random")
        return min((h.kind for h in self.hops), key=order.index)

    @property
    def confidence(self) -> str:
        order = ("low", "medium", "high")
        return min((h.confidence for h in self.hops), key=order.index)


@dataclass(slots=True)
class Correlation:
    points: list[CapturePoint]
    connections: list[MatchedConnection]
    unmatched: list[Leg]

    @property
    def has_error(self) -> bool:
        return any(v.severity == "error" for c in self.connections for v in c.verdicts)

    def offsets(self, conn: MatchedConnection) -> dict[int, int]:
        """Point index -> add this to its timestamps to get the first leg's clock."""
        out = {conn.legs[0].point: 0}
        for _ in conn.hops:
            for h in conn.hops:
                if h.near.point in out and h.far.point not in out:
                    out[h.far.point] = out[h.near.point] - (h.clock.offset_ns if h.clock else 0)
                elif h.far.point in out and h.near.point not in out:
                    out[h.near.point] = out[h.far.point] + (h.clock.offset_ns if h.clock else 0)
        return out

    def timeline(self, conn: MatchedConnection) -> list[tuple[int, Leg, Any]]:
        """Every decoded event of every leg, on the first leg's clock: (time, leg, event)."""
        shift = self.offsets(conn)
        rows = []
        for leg in conn.legs:
            for ev in leg.events:
                if isinstance(ev, ConnectionEvent):
                    continue
                ts = getattr(ev, "ts_ns", None)
                if ts is None:
                    continue
                rows.append((ts + shift.get(leg.point, 0), leg, ev))
        rows.sort(key=lambda r: r[0])
        return rows

    def to_json(self) -> dict[str, Any]:
        return {
            "points": [
                {"name": p.name, "frames": p.frames, "tls_connections": len(p.legs)} for p in self.points
            ],
            "connections": [self._conn_json(i, c) for i, c in enumerate(self.connections, 1)],
            "unmatched": [self._leg_json(leg) for leg in self.unmatched],
        }

    def _leg_json(self, leg: Leg) -> dict[str, Any]:
        return {
            "point": self.points[leg.point].name,
            "conn": leg.conn,
            "client": leg.client,
            "server": leg.server,
            "sni": leg.sni,
            "client_random": leg.client_random.hex() if leg.client_random is not None else None,
        }

    def _conn_json(self, number: int, c: MatchedConnection) -> dict[str, Any]:
        names = {p: pt.name for p, pt in enumerate(self.points)}
        t0 = self.timeline(c)
        start = t0[0][0] if t0 else 0
        return {
            "id": number,
            "match": c.kind,
            "confidence": c.confidence,
            "legs": [self._leg_json(leg) for leg in c.legs],
            "hops": [
                {
                    "from": names[h.near.point],
                    "to": names[h.far.point],
                    "match": h.kind,
                    "confidence": h.confidence,
                    "oriented_by": h.oriented_by,
                    "clock": None
                    if h.clock is None
                    else {
                        "offset_s": h.clock.offset_ns / 1e9,
                        "delay_s": None if h.clock.delay_ns is None else h.clock.delay_ns / 1e9,
                        "spread_s": h.clock.spread_ns / 1e9,
                        "samples": h.clock.samples,
                    },
                }
                for h in c.hops
            ],
            "verdicts": [v.to_json() for v in c.verdicts],
            "timeline": [
                {"t": (t - start) / 1e9, "point": names[leg.point], **ev.to_json()} for t, leg, ev in t0
            ],
        }


def correlate(points: Sequence[CapturePoint]) -> Correlation:
    """Match every pair of capture points, group the matches into connections, judge each hop."""
    hops: list[tuple[Hop, Match]] = []
    for i in range(len(points)):
        for j in range(i + 1, len(points)):
            for m in find_matches(points[i], points[j]):
                first, how = upstream_of(m)
                near, far = (m.a, m.b) if first == "a" else (m.b, m.a)
                clock = m.clock
                if clock is not None and first == "b":
                    clock = ClockEstimate(
                        -clock.offset_ns,
                        None if clock.delay_ns is None else -clock.delay_ns,
                        clock.spread_ns,
                        clock.samples,
                    )
                hops.append((Hop(near, far, m.kind, m.confidence, how, clock), m))
    # Union the hops that share a leg into one connection.
    group: dict[int, int] = {}
    members: dict[int, list[tuple[Hop, Match]]] = {}
    for n, (hop, m) in enumerate(hops):
        ids = {group[id(leg)] for leg in (hop.near, hop.far) if id(leg) in group}
        target = min(ids) if ids else n
        members.setdefault(target, []).append((hop, m))
        for other in ids - {target}:
            members[target] += members.pop(other)
        for h, _ in members[target]:
            group[id(h.near)] = group[id(h.far)] = target
    connections = []
    for pairs in members.values():
        legs: list[Leg] = []
        for h, _ in pairs:
            for leg in (h.near, h.far):
                if all(leg is not x for x in legs):
                    legs.append(leg)
        # Order from the client side: a leg that is "far" in some hop comes after its "near".
        legs.sort(key=lambda leg: sum(1 for h, _ in pairs if h.far is leg))
        # Verdicts lie between neighbours on the path: with three points, a fault between the
        # first two is not reported again between the first and the third.
        position = {id(leg): n for n, leg in enumerate(legs)}
        adjacent = [(h, m) for h, m in pairs if abs(position[id(h.near)] - position[id(h.far)]) == 1]
        verdicts = [v for _, m in adjacent or pairs for v in judge(m, points)]
        hops_in_order = sorted(
            (h for h, _ in pairs), key=lambda h: (position[id(h.near)], position[id(h.far)])
        )
        connections.append(MatchedConnection(legs, hops_in_order, verdicts))
    connections.sort(key=lambda c: (c.legs[0].point, c.legs[0].conn))
    matched = {id(leg) for c in connections for leg in c.legs}
    unmatched = [leg for p in points for leg in p.legs if id(leg) not in matched]
    return Correlation(list(points), connections, unmatched)
