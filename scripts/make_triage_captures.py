#!/usr/bin/env python3
"""Generate the real captures behind the triage tests (tests/fixtures/triage/).

One capture per scenario of ``tests/triage/scenarios.py`` (real Python ssl / OpenSSL peers over
loopback, real tcpdump, one ephemeral port each), its NSS key log when the stacks wrote one, and
``manifest.json`` saying how each was made::

    python3 scripts/make_triage_captures.py [OUTDIR] [SCENARIO ...]

Certificates come from ``capdebug.crypto.testpki`` in a temporary directory and are not kept.
Re-running overwrites the files; bytes, ports and timestamps change, the verdicts must not.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.triage import scenarios  # noqa: E402  (after the sys.path tweak)


def main(argv: list[str]) -> int:
    out = Path(argv[0]) if argv else REPO / "tests" / "fixtures" / "triage"
    names = argv[1:] or list(scenarios.SCENARIOS)
    out.mkdir(parents=True, exist_ok=True)
    manifest_path = out / "manifest.json"
    manifest: dict[str, dict[str, object]] = {}
    if manifest_path.exists():
        manifest = json.loads(manifest_path.read_text())["captures"]
    with tempfile.TemporaryDirectory(prefix="capdebug-triage-") as tmp:
        work = Path(tmp)
        pki = scenarios.make_pki(work / "pki")
        for name in names:
            cap = scenarios.run(name, work / name, pki)
            shutil.copyfile(cap.pcap, out / f"{name}.pcap")
            keys = None
            if cap.keys is not None:
                keys = f"{name}.keys"
                shutil.copyfile(cap.keys, out / keys)
            else:
                (out / f"{name}.keys").unlink(missing_ok=True)
            manifest[name] = {
                "pcap": f"{name}.pcap",
                "keys": keys,
                "server_port": cap.port,
                "method": cap.method,
            }
            print(f"{name}: {cap.pcap.stat().st_size} bytes", file=sys.stderr)
    manifest_path.write_text(
        json.dumps({"generator": "scripts/make_triage_captures.py", "captures": manifest}, indent=1) + "\n"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
