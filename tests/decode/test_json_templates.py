"""The template-written JSON lines of the frequent events (``app_data``, ``tcp``) are the bytes
the generic path (``to_json()`` through the JSON encoder) writes: compared on every event of
every fixture, with and without keys, and on the cases a template must hand to the generic
path (0-RTT data, a ``from`` or ``flag`` that would need escaping)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from capdebug.analysis.events import AppDataEvent, DecodeEvent, TcpEvent, encode_json
from capdebug.api import decode_capture, load_keys

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"


def _captures() -> list[tuple[str, Path, Path | None]]:
    out: list[tuple[str, Path, Path | None]] = []
    for folder in (FIXTURES, FIXTURES / "triage", FIXTURES / "trial"):
        for pcap in sorted(folder.glob("*.pcap*")):
            keys = pcap.with_suffix(".keys")
            out.append((pcap.name, pcap, keys if keys.exists() else None))
    out.append(("sample", ROOT / "samples" / "tls13-premature-close.pcapng", None))
    return out


CAPTURES = _captures()
TEMPLATED = (AppDataEvent, TcpEvent)


def test_templated_events_override_the_generic_path() -> None:
    # Without this the comparison below would compare the generic path with itself.
    for cls in TEMPLATED:
        assert cls.to_json_line is not DecodeEvent.to_json_line


@pytest.mark.parametrize(("name", "pcap", "keys"), CAPTURES, ids=[c[0] for c in CAPTURES])
def test_template_lines_match_generic_encoding(name: str, pcap: Path, keys: Path | None) -> None:
    seen: Counter[str] = Counter()
    for with_keys in (True, False) if keys is not None else (False,):
        loaded = load_keys(pcap, [keys] if with_keys and keys is not None else [])
        with decode_capture(pcap, loaded) as decoding:
            for ev in decoding:
                assert ev.to_json_line() == encode_json(ev.to_json()), ev
                seen[type(ev).__name__] += 1
    assert seen, f"{name}: no events"


def test_every_fixture_set_exercises_the_templates() -> None:
    kinds: Counter[str] = Counter()
    for _, pcap, keys in CAPTURES:
        loaded = load_keys(pcap, [keys] if keys is not None else [])
        with decode_capture(pcap, loaded) as decoding:
            for ev in decoding:
                if isinstance(ev, TEMPLATED):
                    kinds[f"{type(ev).__name__}/{getattr(ev, 'decrypted', '')}"] += 1
    assert kinds["TcpEvent/"] > 0
    assert kinds["AppDataEvent/True"] > 0
    assert kinds["AppDataEvent/False"] > 0


@pytest.mark.parametrize(
    "ev",
    [
        AppDataEvent(
            conn=3, frame=7, ts_ns=1_700_000_000_123_456_789, from_="client", length=5, decrypted=True
        ),
        AppDataEvent(conn=1, frame=2, ts_ns=0, from_="server", length=0, decrypted=False),
        AppDataEvent(conn=1, frame=2, ts_ns=10**18 + 1, from_="client", length=1, decrypted=True, early=True),
        AppDataEvent(conn=1, frame=2, ts_ns=5, from_='cli"ent\u00e9', length=1, decrypted=True),
        TcpEvent(conn=2, frame=9, ts_ns=1_234_567_890_000_000_001, from_="server", flag="RST"),
        TcpEvent(conn=2, frame=9, ts_ns=1, from_="client", flag="S\\YN"),
        TcpEvent(conn=2, frame=9, ts_ns=999_999_999, from_="x\ny", flag="FIN"),
    ],
)
def test_template_edge_cases(ev: DecodeEvent) -> None:
    assert ev.to_json_line() == encode_json(ev.to_json())
