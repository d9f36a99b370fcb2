"""The library API (capdebug.api) on fixtures: the forms of its inputs give the same events."""

from __future__ import annotations

import stat
from pathlib import Path

import capdebug
from capdebug.analysis.events import AppDataEvent

FIXTURES = Path(__file__).parent / "fixtures"
CAPTURE = FIXTURES / "tls13-resumption.pcap"
KEYS = FIXTURES / "tls13-resumption.keys"


def _json(decoding: capdebug.Decoding) -> list[dict[str, object]]:
    return [ev.to_json() for ev in decoding]


def test_a_parsed_keylog_a_stream_and_a_path_decode_alike() -> None:
    with capdebug.decode_capture(CAPTURE, capdebug.load_keys(CAPTURE, [KEYS])) as d:
        by_path = _json(d)
    keylog = capdebug.KeyLog.parse(KEYS.read_bytes(), source="test")
    with CAPTURE.open("rb") as f, capdebug.decode_capture(f, keylog) as d:
        by_stream = _json(d)
    assert by_stream == by_path
    assert any(e["event"] == "app_data" and e["decrypted"] for e in by_path)
    # Without keys nothing is decrypted, and the records are still all there.
    with capdebug.decode_capture(CAPTURE) as d:
        bare = _json(d)
    apps = [e for e in bare if e["event"] == "app_data"]
    assert apps and not any(e["decrypted"] for e in apps)


def test_env_keylog_is_used_only_when_given_and_nothing_else_is() -> None:
    assert len(capdebug.load_keys(CAPTURE).keylog) == 0
    keys = capdebug.load_keys(CAPTURE, env_keylog=str(KEYS))
    assert keys.from_env == str(KEYS) and len(keys.keylog) > 0
    assert capdebug.load_keys(CAPTURE, [KEYS], env_keylog=str(KEYS)).from_env is None


def test_exporter_gets_the_plaintext_of_decrypted_records(tmp_path: Path) -> None:
    keys = capdebug.load_keys(CAPTURE, [KEYS])
    with (
        capdebug.PlaintextExporter(tmp_path / "out") as sink,
        capdebug.decode_capture(CAPTURE, keys, app_data_sink=sink) as d,
    ):
        lengths = [e.length for e in d if isinstance(e, AppDataEvent) and e.decrypted]
    files = sorted((tmp_path / "out").iterdir())
    assert [p.name for p in files] == [f"conn{n}-{who}.bin" for n in (1, 2) for who in ("client", "server")]
    assert sum(p.stat().st_size for p in files) == sum(lengths) > 0
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in files)


def test_triage_result_and_warnings() -> None:
    result = capdebug.triage_capture(CAPTURE, capdebug.load_keys(CAPTURE, [KEYS]), jobs=1)
    assert isinstance(result, capdebug.TriageResult)
    assert [r.conn for r in result.reports] == [1, 2]
    assert result.warnings == []
    assert capdebug.auto_jobs(CAPTURE) == 1
