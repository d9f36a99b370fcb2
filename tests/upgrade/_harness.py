"""Shared parts of the upgrade tests: a capture of one real exchange, capdebug's events and
tshark's view of the same frames (with decode-as for the protocol on its test port)."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path

from capdebug.analysis.events import AlertEvent, DecodeEvent, HandshakeEvent, UpgradeEvent
from capdebug.analysis.sessions import iter_events, load_keys
from capdebug.analysis.triage import triage
from capdebug.pcap.open import open_capture


def events(capture: Path, keylog: Path | None) -> list[DecodeEvent]:
    keys = load_keys(capture, [keylog] if keylog else [], use_env=False)
    with open_capture(capture) as reader:
        return list(iter_events(reader, keys.keylog))


def verdict_codes(capture: Path, keylog: Path | None) -> dict[str, str | None]:
    """code -> by, over every connection."""
    return {v.code: v.by for r in triage(events(capture, keylog)) for v in r.verdicts}


def handshake_rows(evs: Sequence[DecodeEvent]) -> list[tuple[int, int]]:
    return sorted((e.frame, e.type) for e in evs if isinstance(e, HandshakeEvent) and e.type >= 0)


def upgrades(evs: Sequence[DecodeEvent]) -> list[UpgradeEvent]:
    return [e for e in evs if isinstance(e, UpgradeEvent)]


def tshark_handshake_rows(capture: Path, keylog: Path, decode_as: str) -> list[tuple[int, int]]:
    """(frame, handshake type) of every handshake message tshark decrypts and decodes."""
    cmd = [
        "tshark", "-n", "-r", str(capture), "-d", decode_as, "-o", f"tls.keylog_file:{keylog}",
        "-Y", "tls.handshake.type", "-T", "fields", "-e", "frame.number", "-e", "tls.handshake.type",
    ]  # fmt: skip
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    rows = []
    for line in out.splitlines():
        frame, types = line.split("\t")
        rows += [(int(frame), int(t)) for t in types.split(",") if t]
    return sorted(rows)


def alert_rows(evs: Sequence[DecodeEvent]) -> list[tuple[int, int | None]]:
    """(frame, description) of every alert capdebug shows."""
    return sorted((e.frame, e.description) for e in evs if isinstance(e, AlertEvent))


def tshark_table(
    capture: Path, keylog: Path | None, decode_as: str, *fields: str
) -> list[dict[str, list[str]]]:
    """One tshark pass: per frame, each field's values (several occurrences split; ``|`` joins
    them, so values must not contain it)."""
    cmd = ["tshark", "-n", "-r", str(capture), "-d", decode_as, "-T", "fields", "-E", "aggregator=|"]
    if keylog is not None:
        cmd += ["-o", f"tls.keylog_file:{keylog}"]
    for f in fields:
        cmd += ["-e", f]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    rows = []
    for line in out.splitlines():
        values = line.split("\t")
        assert len(values) == len(fields), line
        rows.append({f: v.split("|") if v else [] for f, v in zip(fields, values, strict=True)})
    return rows


def s_client(args: Sequence[str], *, data: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    """openssl s_client run to the end of its stdin (it then closes the connection)."""
    return subprocess.run(
        ["openssl", "s_client", *args], input=data, capture_output=True, timeout=30, check=False
    )
