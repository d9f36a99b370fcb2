"""Every runnable scenario end to end: the engine's server and client on real loopback sockets,
a real tcpdump through ``capture/``, the pcapng with its secrets embedded, and triage giving
exactly the scenario's verdict codes and who they blame, nothing more."""

from __future__ import annotations

import datetime as dt
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from capdebug.cli.scenario import observed_verdicts
from capdebug.pcap.model import SecretsBlock
from capdebug.pcap.open import open_capture
from capdebug.scenarios import SCENARIOS, run_scenario
from tests.tools import require, require_root

RUNNABLE = list(SCENARIOS)
CAPDEBUG = [sys.executable, "-c", "import sys; from capdebug.cli.app import main; main(sys.argv[1:])"]

#: What the engine itself saw on the side that meets the failure (its outcome line).
SIDE_OUTCOMES = {
    "tls13-premature-close-server": "client 1: ERR_PREMATURE_CLOSE",
    "tls13-premature-close-client": "server 1: ERR_PREMATURE_CLOSE",
    "tls13-reset-during-handshake": "server 1: ERR_INJECTED_RESET",
    "tls13-no-shared-cipher": "server 1: ERR_NO_SHARED_CIPHER",
    "tls13-unknown-ca": "client 1: ERR_CERT_UNKNOWN_CA",
    "tls13-expired-certificate": "client 1: ERR_CERT_EXPIRED",
    "tls13-hostname-mismatch": "client 1: ERR_CERT_HOSTNAME",
    "tls13-client-cert-required": "server 1: ERR_CERT_REQUIRED",
    "tls13-client-cert-rejected": "server 1: ERR_CERT_UNKNOWN_CA",
    "tls13-bad-record-mac": "server 1: ERR_BAD_RECORD_MAC",
    "tls13-clean-close": "client 1: done",
    "tls12-clean-close": "client 1: done",
    "tls12-premature-close-server": "client 1: ERR_PREMATURE_CLOSE",
    "tls12-bad-record-mac": "server 1: ERR_BAD_RECORD_MAC",
    "protocol-version-mismatch": "server 1: ERR_NO_SHARED_VERSION",
    "tls12-no-shared-cipher": "server 1: ERR_NO_SHARED_CIPHER",
    "tls12-client-cert-required": "server 1: ERR_CERT_REQUIRED",
    "tls12-resumption": "client 2: done",
    "tls12-inappropriate-fallback": "server 1: ERR_INAPPROPRIATE_FALLBACK",
    "tls13-early-data-accepted": "server 2: done",
    "tls13-early-data-rejected": "server 2: done",
}
#: Scenarios that fail before any secret exists: nothing to embed.
NO_SECRETS = {
    "tls13-no-shared-cipher",
    "tls12-no-shared-cipher",
    "protocol-version-mismatch",
    "tls12-inappropriate-fallback",
}
#: What the early_data verdict must say (the codes alone do not tell accepted from rejected).
EARLY_DATA = {"tls13-early-data-accepted": "accepted", "tls13-early-data-rejected": "rejected"}


def _sorted(expected: tuple[tuple[tuple[str, str | None], ...], ...]) -> object:
    return tuple(tuple(sorted(c, key=lambda p: (p[0], p[1] or ""))) for c in expected)


@pytest.mark.tools
@pytest.mark.slow
@pytest.mark.parametrize("name", RUNNABLE)
def test_scenario_triages_to_its_verdicts(name: str, tmp_path: Path) -> None:
    require("tcpdump")
    require_root()
    sc = SCENARIOS[name]
    run = run_scenario(name, tmp_path, now=dt.datetime.now(dt.UTC))
    assert run.pcapng == tmp_path / f"{name}.pcapng"
    assert stat.S_IMODE(run.pcapng.stat().st_mode) == 0o600  # it holds secrets
    assert observed_verdicts(run.pcapng) == _sorted(sc.expected), run.outcomes
    if name in SIDE_OUTCOMES:
        assert any(line.startswith(SIDE_OUTCOMES[name]) for line in run.outcomes), run.outcomes
    with open_capture(run.pcapng) as reader:
        blocks = [item for item in reader if isinstance(item, SecretsBlock)]
    # Secrets exist once the server chose its key share (even the reset one derived them before
    # it aborted); no shared suite or version means no secret at all. TLS 1.3 logs five lines per
    # connection (handshake and traffic secrets both ways, exporter), TLS 1.2 one (CLIENT_RANDOM).
    if name in NO_SECRETS:
        assert blocks == [] and run.secrets_lines == 0
    else:
        per_conn = 1 if sc.version == "TLS 1.2" else 5
        assert len(blocks) == 1 and blocks[0].packets_before == 0
        assert (
            blocks[0].data.count(b"\n")
            == run.secrets_lines
            >= per_conn * (sc.keylog_connections or sc.connections)
        )
    if name in EARLY_DATA:
        from capdebug.api import load_keys, triage_capture

        reports, _ = triage_capture(run.pcapng, load_keys(run.pcapng))
        (early,) = [v for v in reports[1].verdicts if v.code == "early_data"]
        assert early.detail.endswith(EARLY_DATA[name]), early.detail
        assert b"CLIENT_EARLY_TRAFFIC_SECRET" in blocks[0].data


def test_scenario_list_shows_every_scenario_and_its_verdicts() -> None:
    done = subprocess.run([*CAPDEBUG, "scenario", "list"], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    for name, sc in SCENARIOS.items():
        assert name in done.stdout
        assert f"verdicts: {sc.codes}" in done.stdout
    assert "premature_close(server)" in done.stdout


def test_scenario_run_prints_triage_and_exits_0(tmp_path: Path) -> None:
    require("tcpdump")
    require_root()
    done = subprocess.run(
        [*CAPDEBUG, "scenario", "run", "tls13-premature-close-server", "-o", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "premature_close (by server" in done.stdout
    assert "exactly the verdicts" in done.stdout
    assert (tmp_path / "tls13-premature-close-server.pcapng").exists()


def test_scenario_run_rejects_unknown(tmp_path: Path) -> None:
    done = subprocess.run(
        [*CAPDEBUG, "scenario", "run", "no-such", "-o", str(tmp_path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert "unknown scenario" in done.stderr and "Traceback" not in done.stderr


def test_without_capture_permission_it_says_what_to_do(tmp_path: Path) -> None:
    # A tcpdump that fails the way it does for a user without CAP_NET_RAW.
    fake = tmp_path / "tcpdump"
    fake.write_text(
        "#!/bin/sh\n"
        'echo "tcpdump: lo: You don\'t have permission to perform this capture on that device" >&2\n'
        "exit 1\n"
    )
    fake.chmod(0o755)
    done = subprocess.run(
        [*CAPDEBUG, "scenario", "run", "tls13-clean-close", "-o", str(tmp_path), "--tcpdump-path", str(fake)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode != 0
    assert "setcap cap_net_raw,cap_net_admin=eip" in done.stderr
    assert "sudo capdebug scenario run" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "tls13-clean-close.pcapng").exists()
