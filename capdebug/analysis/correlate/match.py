"""Which legs at two capture points are the same connection, and how their clocks differ.

Three kinds of evidence, strongest first:

``client_random``
    The ClientHello's 32 random bytes (RFC 8446 4.1.2) pass unchanged through NAT and any
    TCP-level middlebox, and two sessions never share them: a match is certain.
``tcp_payload``
    The same bytes at the same relative stream offsets (TLS ciphertext does not repeat). Found
    from segment contents, so NAT address/port rewriting and sequence-number offsets do not
    matter; used when one capture missed the ClientHello.
``sni_timing``
    A TLS-terminating proxy makes two sessions of one request: nothing on the wire is common
    except the server name, the timing (the server leg lies inside the client leg) and roughly
    the sizes. Weak, shown as two legs of one request, and refused when ambiguous: no match is
    better than a wrong one.

Clock offset (NTP's reasoning, RFC 5905 8): for segments seen at both points, ``tB - tA`` is
``offset + delay`` client->server and ``offset - delay`` server->client, so the mean of the two
medians is the offset and half their difference the one-way delay between the points.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from .points import CapturePoint, Leg, Segment

__all__ = ["ClockEstimate", "Match", "find_matches", "seq_delta", "upstream_of"]

_ANCHOR = 32
"""Bytes at a segment's start used as its fingerprint."""
_MAX_ANCHORS = 24
"""Segments per direction of a leg tried as anchors."""
_WEAK_SLACK_NS = 2_000_000_000
"""How far the server leg may lie outside the client leg (clock error, proxy lingering)."""
_MIN_DELAY_NS = 100_000
"""One-way delay below which its sign does not tell which point is nearer the client."""
ROLES = ("client", "server")


@dataclass(frozen=True, slots=True)
class ClockEstimate:
    """Clock of point ``b`` minus clock of point ``a``."""

    offset_ns: int
    delay_ns: int | None
    """One-way delay from ``a`` to ``b`` for client->server segments; None with one direction."""
    spread_ns: int
    """Half the interquartile range of the samples: how much to trust the offset."""
    samples: int


@dataclass(slots=True)
class Match:
    """Two legs judged to be the same connection (or two legs of one request)."""

    a: Leg
    b: Leg
    kind: str
    """"client_random" | "tcp_payload" | "sni_timing"."""
    confidence: str
    """"high" | "medium" | "low"."""
    delta: dict[str, int | None]
    """Per sending role: relative offset at ``b`` minus relative offset at ``a`` (None when
    the streams could not be aligned; always None for sni_timing)."""
    clock: ClockEstimate | None = None


def seq_delta(a: Sequence[Segment], b: Sequence[Segment], a_isn: bool, b_isn: bool) -> int | None:
    """How to map one direction's relative offsets at ``a`` onto ``b``: 0 when both saw the
    SYN, else the offset most content anchors agree on (None when none agree)."""
    if a_isn and b_isn:
        return 0
    index: dict[bytes, int] = {}
    for s in b:
        if len(s.payload) >= _ANCHOR:
            index.setdefault(s.payload[:_ANCHOR], s.rel)
    votes: Counter[int] = Counter()
    for s in [s for s in a if len(s.payload) >= _ANCHOR][:_MAX_ANCHORS]:
        rel = index.get(s.payload[:_ANCHOR])
        if rel is not None:
            votes[rel - s.rel] += 1
    if not votes:
        return None
    delta, _ = votes.most_common(1)[0]
    return delta


def _clock(m: Match) -> ClockEstimate | None:
    per_role: dict[str, list[int]] = {}
    for role in ROLES:
        delta = m.delta[role]
        if delta is None:
            continue
        first_a: dict[tuple[int, int], int] = {}
        for s in m.a.sent[role]:
            if s.payload or s.flags & 0x07:
                first_a.setdefault((s.rel, s.flags & 0x07), s.ts_ns)
        seen: set[tuple[int, int]] = set()
        samples = []
        for s in m.b.sent[role]:
            if not (s.payload or s.flags & 0x07):
                continue
            key = (s.rel - delta, s.flags & 0x07)
            if key in seen:
                continue
            seen.add(key)
            t = first_a.get(key)
            if t is not None:
                samples.append(s.ts_ns - t)
        if samples:
            per_role[role] = samples
    if not per_role:
        return None
    medians = {r: statistics.median(v) for r, v in per_role.items()}
    spreads = [_half_iqr(v) for v in per_role.values()]
    n = sum(len(v) for v in per_role.values())
    if len(medians) == 2:
        offset = (medians["client"] + medians["server"]) / 2
        delay: int | None = round((medians["client"] - medians["server"]) / 2)
    else:
        offset, delay = next(iter(medians.values())), None
    return ClockEstimate(round(offset), delay, round(max(spreads)), n)


def _half_iqr(values: list[int]) -> float:
    if len(values) < 4:
        return (max(values) - min(values)) / 2
    q = statistics.quantiles(values, n=4)
    return (q[2] - q[0]) / 2


def _aligned(a: Leg, b: Leg) -> dict[str, int | None]:
    return {r: seq_delta(a.sent[r], b.sent[r], a.isn[r] is not None, b.isn[r] is not None) for r in ROLES}


_Anchors = dict[bytes, list[tuple[Leg, str, int]]]
"""First bytes of a segment -> the legs, sending roles and relative offsets where it starts."""


def _anchor_index(legs: list[Leg]) -> _Anchors:
    index: _Anchors = {}
    for leg in legs:
        for role in ROLES:
            for s in leg.sent[role]:
                if len(s.payload) >= _ANCHOR:
                    index.setdefault(s.payload[:_ANCHOR], []).append((leg, role, s.rel))
    return index


def _payload_match(a: Leg, index: _Anchors, used: set[int]) -> tuple[Leg, dict[str, int | None]] | None:
    """The one free leg sharing at least two anchors with ``a`` at consistent offsets.

    Roles are matched too: where the decoder had to guess them on one leg (no SYN, no
    ClientHello) they can be the wrong way round, and the leg that knows them is believed."""
    votes: Counter[tuple[int, str, str, int]] = Counter()
    legs: dict[int, Leg] = {}
    for role in ROLES:
        for s in [s for s in a.sent[role] if len(s.payload) >= _ANCHOR][:_MAX_ANCHORS]:
            for b, b_role, rel in index.get(s.payload[:_ANCHOR], ()):
                if id(b) not in used:
                    legs[id(b)] = b
                    votes[(id(b), role, b_role, rel - s.rel)] += 1
    # Per leg and direction the offset most anchors agree on; then both directions together.
    best: dict[tuple[int, str, str], int] = {}
    for (leg_id, role, b_role, _delta), n in votes.items():
        best[(leg_id, role, b_role)] = max(best.get((leg_id, role, b_role), 0), n)
    per_leg: Counter[tuple[int, bool]] = Counter()
    for (leg_id, role, b_role), n in best.items():
        per_leg[(leg_id, role != b_role)] += n
    found = [key for key, n in per_leg.items() if n >= 2]
    if len(found) != 1:
        return None
    leg_id, swapped = found[0]
    b = legs[leg_id]
    if swapped:
        if b.roles_from == "guess":
            b.swap_roles()
        elif a.roles_from == "guess":
            a.swap_roles()
        else:
            return None  # both sure of their roles and they disagree: not the same connection
    return b, _aligned(a, b)


def _weak_candidates(a: Leg, others: list[Leg], offset_ns: int) -> list[Leg]:
    """Legs at the other point that could be the other side of a TLS-terminating proxy: same
    server name, different session, lying inside ``a`` in time (either way round)."""
    out = []
    for b in others:
        if not a.sni or b.sni != a.sni or a.client_random == b.client_random:
            continue
        b_start, b_end = b.start_ns - offset_ns, b.end_ns - offset_ns
        # The inner leg starts while the outer one is open (the proxy opens the server leg for
        # the client's request) and ends no later than shortly after it.
        inner_ab = a.start_ns <= b_start <= a.end_ns and b_end <= a.end_ns + _WEAK_SLACK_NS
        inner_ba = b_start <= a.start_ns <= b_end and a.end_ns <= b_end + _WEAK_SLACK_NS
        if not (inner_ab or inner_ba):
            continue
        if not _sizes_agree(a, b):
            continue
        out.append(b)
    return out


def _sizes_agree(a: Leg, b: Leg) -> bool:
    """Application bytes each way within a quarter (plus record overheads) of each other:
    the proxy forwards the same plaintext, re-encrypted."""
    for role in ROLES:
        x, y = a.app_bytes(role), b.app_bytes(role)
        if abs(x - y) > max(x, y) // 4 + 256:
            return False
    return True


def find_matches(a_point: CapturePoint, b_point: CapturePoint) -> list[Match]:
    """Every match between legs of two capture points, each leg in at most one match."""
    matches: list[Match] = []
    used_b: set[int] = set()
    by_random = {leg.client_random: leg for leg in b_point.legs if leg.client_random is not None}
    rest_a = []
    for a in a_point.legs:
        b = by_random.get(a.client_random) if a.client_random is not None else None
        if b is not None and id(b) not in used_b:
            used_b.add(id(b))
            matches.append(Match(a, b, "client_random", "high", _aligned(a, b)))
        else:
            rest_a.append(a)
    still_a = []
    anchors = _anchor_index([b for b in b_point.legs if id(b) not in used_b]) if rest_a else {}
    for a in rest_a:
        got = _payload_match(a, anchors, used_b)
        if got is None:
            still_a.append(a)
            continue
        used_b.add(id(got[0]))
        matches.append(Match(a, got[0], "tcp_payload", "medium", got[1]))
    for m in matches:
        m.clock = _clock(m)
    # Weak matches use the clock offset learned from the strong ones when there is one.
    clocks = [m.clock.offset_ns for m in matches if m.clock is not None]
    offset = round(statistics.median(clocks)) if clocks else 0
    free_b = [b for b in b_point.legs if id(b) not in used_b]
    for a in still_a:
        cands = _weak_candidates(a, free_b, offset)
        if len(cands) != 1:
            continue
        b = cands[0]
        # The same test from b's side: b must not fit another leg of a's point just as well.
        if len(_weak_candidates(b, still_a, -offset)) != 1:
            continue
        free_b.remove(b)
        matches.append(Match(a, b, "sni_timing", "low", {"client": None, "server": None}))
    return matches


def upstream_of(m: Match) -> tuple[str, str]:
    """Which leg of the match is nearer the client ("a" or "b"), and how that was decided.

    A router decrements the TTL (RFC 791 3.2; hop limit, RFC 8200 3), so the client's segments
    carry a higher TTL nearer the client. Else the one-way delay's sign; else the order of the
    captures on the command line (said so)."""
    if m.kind == "sni_timing":
        offset = m.clock.offset_ns if m.clock is not None else 0
        return ("a" if m.a.start_ns <= m.b.start_ns - offset else "b"), "the client leg starts first"
    ttl_a, ttl_b = _median_ttl(m.a.sent["client"]), _median_ttl(m.b.sent["client"])
    if ttl_a is not None and ttl_b is not None and ttl_a != ttl_b:
        return ("a" if ttl_a > ttl_b else "b"), "TTL of the client's segments"
    # The delay's sign only when it stands well clear of the noise (two captures on one host
    # or one link differ by microseconds of scheduling, either way).
    delay = m.clock.delay_ns if m.clock is not None else None
    if m.clock is not None and delay is not None and abs(delay) > max(2 * m.clock.spread_ns, _MIN_DELAY_NS):
        return ("a" if delay > 0 else "b"), "one-way delay"
    return "a", "assumed from the order of the captures"


def _median_ttl(segs: Sequence[Segment]) -> int | None:
    ttls = [s.ttl for s in segs if s.ttl is not None]
    return round(statistics.median(ttls)) if ttls else None
