"""Every capture in samples/ triages to the verdicts its row of samples/README.md states, and
tshark (the independent decoder) decrypts it with nothing but the secrets embedded in it."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from capdebug.cli.scenario import observed_verdicts
from capdebug.scenarios import SCENARIOS
from tests.tools import require

SAMPLES = Path(__file__).resolve().parent.parent.parent / "samples"
ROW = re.compile(r"^\| `(?P<file>[^`]+\.pcapng)` \| (?P<wire>.*) \| (?P<verdicts>[^|]*) \|$")
PAIR = re.compile(r"`(?P<code>[a-z_]+)` \((?P<by>client|server|-)\)")

#: Samples in which tshark cannot see a decrypted handshake message, and why.
NO_DECRYPTED_HANDSHAKE = {
    "tls13-no-shared-cipher.pcapng": "the handshake fails before any key exists",
    "tls12-no-shared-cipher.pcapng": "the handshake fails before any key exists",
    "protocol-version-mismatch.pcapng": "the handshake fails before any key exists",
    "tls12-inappropriate-fallback.pcapng": "the handshake fails before any key exists",
    "tls13-reset-during-handshake.pcapng": "the server resets before its ServerHello",
    "tls13-capture-mid-connection.pcapng": "no ClientHello in the capture: tshark needs its random",
}
#: Connections whose secrets the sample leaves out on purpose.
MISSING_KEYS = {"tls13-keylog-missing-one.pcapng": 1}

Pairs = tuple[tuple[tuple[str, str | None], ...], ...]


def _rows() -> dict[str, Pairs]:
    rows: dict[str, Pairs] = {}
    for line in (SAMPLES / "README.md").read_text().splitlines():
        m = ROW.match(line)
        if m is None:
            continue
        conns = re.split(r"; conn \d+: ", re.sub(r"^conn 1: ", "", m["verdicts"]))
        rows[m["file"]] = tuple(
            tuple((p["code"], None if p["by"] == "-" else p["by"]) for p in PAIR.finditer(c)) for c in conns
        )
    return rows


ROWS = _rows()
FILES = sorted(p.name for p in SAMPLES.glob("*.pcapng"))


def test_every_sample_has_a_row_and_every_row_a_sample() -> None:
    assert FILES and sorted(ROWS) == FILES
    # One sample per runnable scenario, plus the quick-start demo.
    assert {f"{n}.pcapng" for n in SCENARIOS} <= set(FILES)
    assert "tls13-premature-close.pcapng" in FILES


@pytest.mark.parametrize("name", FILES)
def test_sample_triages_to_its_readme_row(name: str) -> None:
    assert observed_verdicts(SAMPLES / name) == ROWS[name]
    scenario = SCENARIOS.get(name.removesuffix(".pcapng"))
    if scenario is not None:  # the README agrees with the scenario's declaration, too
        assert ROWS[name] == tuple(
            tuple(sorted(c, key=lambda p: (p[0], p[1] or ""))) for c in scenario.expected
        )


def _tshark(path: Path, *fields: str, display: str) -> list[list[str]]:
    env = {k: v for k, v in os.environ.items() if k != "SSLKEYLOGFILE"}
    done = subprocess.run(
        ["tshark", "-n", "-r", str(path), "-o", "tls.keylog_file:", "-Y", display, "-T", "fields"]
        + [a for f in fields for a in ("-e", f)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return [line.split("\t") for line in done.stdout.splitlines() if line]


@pytest.mark.tools
@pytest.mark.parametrize("name", FILES)
def test_tshark_decrypts_each_sample_with_its_embedded_secrets_only(name: str) -> None:
    require("tshark")
    path = SAMPLES / name
    streams = {row[0] for row in _tshark(path, "tcp.stream", display="tcp.flags.syn == 1 || tls")}
    # Finished (type 20) is encrypted in both versions (and EncryptedExtensions, type 8, in TLS
    # 1.3): tshark shows either only once it decrypted the handshake.
    decrypted = {
        row[0]
        for row in _tshark(path, "tcp.stream", display="tls.handshake.type == 8 || tls.handshake.type == 20")
    }
    if name in NO_DECRYPTED_HANDSHAKE:
        assert decrypted == set(), NO_DECRYPTED_HANDSHAKE[name]
        return
    assert len(decrypted) == len(streams) - MISSING_KEYS.get(name, 0) >= 1


@pytest.mark.tools
@pytest.mark.parametrize("name", ["tls13-early-data-accepted.pcapng", "tls13-early-data-rejected.pcapng"])
def test_tshark_decrypts_the_0rtt_data_beside_the_resuming_client_hello(name: str) -> None:
    """The embedded CLIENT_EARLY_TRAFFIC_SECRET opens the early data, accepted or not: it is on
    the wire either way, in the ClientHello's flight of the second connection."""
    require("tshark")
    rows = _tshark(
        SAMPLES / name, "frame.number", "data.data", display="tcp.stream == 1 && tls.handshake.type == 1"
    )
    assert [row[1] for row in rows] == [b"ping".hex()]
