#!/usr/bin/env python3
"""Regenerate samples/: one small pcapng per runnable scenario (``capdebug/scenarios``), each
with its secrets embedded, and samples/README.md with the table of what each shows.

    python3 scripts/make_samples.py [SCENARIO ...]

Needs tcpdump and the right to capture on the loopback (root or CAP_NET_RAW). A scenario whose
capture does not triage to exactly the verdicts it declares is not written: the script says so
and exits 1, so samples/ never holds a capture that contradicts its README row.

``samples/tls13-premature-close.pcapng`` (the README's quick-start demo) is not made here: it
comes from ``scripts/make_fixtures.py`` (real OpenSSL/Python peers) and the golden JSON tests pin
it; its README row is computed from the file like the others.
"""

from __future__ import annotations

import datetime as dt
import shutil
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from capdebug.cli.scenario import observed_verdicts  # noqa: E402  (after the sys.path tweak)
from capdebug.scenarios import SCENARIOS, run_scenario  # noqa: E402

SAMPLES = REPO / "samples"
DEMO = "tls13-premature-close"
DEMO_WIRE = (
    "real OpenSSL/Python peers (scripts/make_fixtures.py): the client sends a request, the server "
    "starts answering, the client closes TCP without close_notify"
)
_TRIES = 3


def _cell(pairs: tuple[tuple[str, str | None], ...]) -> str:
    return ", ".join(f"`{code}` ({by or '-'})" for code, by in pairs) or "none"


def _verdicts(got: tuple[tuple[tuple[str, str | None], ...], ...]) -> str:
    if len(got) == 1:
        return _cell(got[0])
    return "; ".join(f"conn {i + 1}: {_cell(c)}" for i, c in enumerate(got))


def write_readme() -> None:
    rows = []
    demo = SAMPLES / f"{DEMO}.pcapng"
    if demo.exists():
        rows.append((DEMO, DEMO_WIRE, _verdicts(observed_verdicts(demo))))
    for sc in SCENARIOS.values():
        path = SAMPLES / f"{sc.name}.pcapng"
        if not path.exists():
            continue
        rows.append((sc.name, sc.wire, _verdicts(observed_verdicts(path))))
    lines = [
        "# Samples",
        "",
        "Small captures of common TLS failures, each with its secrets embedded (a pcapng Decryption",
        "Secrets Block): `capdebug triage FILE` and `capdebug decrypt FILE` (or Wireshark) need no key",
        "log. Regenerate them with `python3 scripts/make_samples.py` (as root: it captures with",
        "tcpdump); `capdebug scenario run NAME` makes one afresh. Verdicts are `code` (who is blamed)",
        "as `capdebug triage --json` gives them; `tests/scenarios/test_samples.py` checks every row.",
        "",
        "| sample | what happens on the wire | verdicts |",
        "| --- | --- | --- |",
    ]
    lines += [f"| `{name}.pcapng` | {wire} | {verdicts} |" for name, wire, verdicts in rows]
    (SAMPLES / "README.md").write_text("\n".join(lines) + "\n")


def main(argv: list[str]) -> int:
    names = argv or list(SCENARIOS)
    SAMPLES.mkdir(exist_ok=True)
    failed = []
    with tempfile.TemporaryDirectory(prefix="capdebug-samples-") as tmp:
        for name in names:
            sc = SCENARIOS[name]
            for attempt in range(1, _TRIES + 1):
                run = run_scenario(name, Path(tmp), now=dt.datetime.now(dt.UTC))
                got = observed_verdicts(run.pcapng)
                expected = tuple(tuple(sorted(c, key=lambda p: (p[0], p[1] or ""))) for c in sc.expected)
                if got == expected:
                    shutil.copyfile(run.pcapng, SAMPLES / f"{name}.pcapng")
                    print(f"{name}: {run.pcapng.stat().st_size} bytes", file=sys.stderr)
                    break
                print(f"{name}: try {attempt}: got {got}, expected {expected}", file=sys.stderr)
            else:
                failed.append(name)
    write_readme()
    if failed:
        print(f"not written (verdicts differ): {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
