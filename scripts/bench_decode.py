#!/usr/bin/env python3
"""Benchmark ``capdebug decrypt`` and ``capdebug triage`` against tshark on a corpus made by
scripts/make_corpus.py, and check their results against the corpus manifest.

    python3 scripts/bench_decode.py CORPUS_DIR [--repeat 3] [--skip-tshark] [--json-report FILE]
        [--instructions] [--instructions-tshark] [--startup 5]

In one run it times, each as its own process (wall time; peak memory as the largest sum of
resident memory over that process and the workers it forks, sampled; pages the workers share
are counted in each, so this errs high), ``--repeat`` times in turn (so that a busy moment of a
shared machine falls on all of them alike), and compares the best run of each (memory: the
largest of all runs):

- ``capdebug decrypt --json CAPTURE --keylog K --export DIR``  (stdout to a file: the
  ``connection`` events give the conn numbers of the exported files)
- ``capdebug triage --json CAPTURE --keylog K``
- ``tshark -r CAPTURE -o tls.keylog_file:K -Y tls -T fields -e frame.number
  -e tls.record.content_type -e tls.handshake.type -e tls.alert_message.desc``

and prints a table with the ratios tshark/capdebug next to the targets of issue 3 (decrypt at
least 3x faster than tshark, triage at least 10x, peak memory under 256 MB). capdebug runs as
the console script installed next to this interpreter (not through a version manager's shim,
which adds its own start-up), with the package byte-compiled first as any installed wheel is
(``PYTHONDONTWRITEBYTECODE`` would otherwise make every run compile its sources). Before each
run the capture and key log are read once, so every command (tshark too) starts with them in
the page cache. Then it verifies:

- every connection's exported plaintext (``DIR/connN-client.bin``, ``connN-server.bin``) has
  the SHA-256 the manifest holds (connections matched by client ip:port);
- triage's verdicts match how each connection ended: close_notify answered -> clean_close,
  unanswered -> close_notify_unanswered by the peer; FIN without close_notify ->
  premature_close by the closer; RST -> reset or benign_reset by the closer; plus version and
  cipher suite, and no undecryptable record anywhere (the key log is complete).

Since the machine may be shared, wall times are noisy: ``--instructions`` also runs ``decrypt
--json`` and ``triage --json`` once each under ``valgrind --tool=cachegrind --cache-sim=no`` and
reports the instructions executed (the whole process tree: triage's forked workers are followed),
a figure that load does not change (``--instructions-tshark``: tshark too; slow). ``--startup N``
times decrypt and triage on a one-packet capture cut from the corpus (best and median of N
interleaved rounds, instructions with --instructions), the cost a user pays on every small case.

Exit code 0 when nothing mismatches, 1 otherwise. The verification functions are importable
(tests/bench uses them on a tiny corpus).
"""

from __future__ import annotations

import argparse
import compileall
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

TARGET_DECRYPT_RATIO = 3.0
TARGET_TRIAGE_RATIO = 10.0
TARGET_PEAK_MB = 256.0
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


@dataclass(frozen=True, slots=True)
class Measurement:
    name: str
    argv: list[str]
    wall_s: float
    cpu_s: float
    peak_rss_mb: float
    returncode: int
    stdout_bytes: int


@dataclass(slots=True)
class Mismatches:
    """Problems found by one verification, grouped by kind, with a few examples each."""

    checked: int = 0
    kinds: Counter[str] = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)

    def add(self, kind: str, example: str, keep: int = 5) -> None:
        self.kinds[kind] += 1
        ex = self.examples.setdefault(kind, [])
        if len(ex) < keep:
            ex.append(example)

    @property
    def total(self) -> int:
        return sum(self.kinds.values())


# --- measuring ----------------------------------------------------------------------------------


def warm(*paths: Path) -> None:
    """Read files through once so that the next command finds them in the page cache: the
    commands write ~1 GB (exports) or take GBs of memory (tshark), which can push the capture
    out of a small page cache, and then the next one would be timed reading the disk."""
    for path in paths:
        with path.open("rb", buffering=0) as f:
            while f.read(8 << 20):
                pass


def _tree_rss_kib(root: int) -> int:
    """Resident memory of ``root`` and all its descendants now (KiB), from /proc."""
    parents: dict[int, int] = {}
    rss: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
            with open(f"/proc/{entry}/statm", "rb") as f:
                resident_pages = int(f.read().split()[1])
        except (OSError, IndexError, ValueError):
            continue
        # Field 4 (ppid) follows the command name, which is in parentheses and may hold spaces.
        parents[int(entry)] = int(stat[stat.rindex(b")") + 2 :].split()[1])
        rss[int(entry)] = resident_pages * (os.sysconf("SC_PAGE_SIZE") // 1024)
    tree = {root}
    grew = True
    while grew:
        grew = False
        for pid, ppid in parents.items():
            if ppid in tree and pid not in tree:
                tree.add(pid)
                grew = True
    return sum(rss.get(pid, 0) for pid in tree)


def measure(name: str, argv: list[str], stdout_path: Path, ok_codes: tuple[int, ...] = (0, 1)) -> Measurement:
    """Run argv with stdout to a file; wall time, CPU time (its children's included) and peak
    memory: the largest sum of resident memory over the process and its descendants (sampled
    every 20 ms: triage may fork workers), or its own ru_maxrss if that is larger."""
    peak = [0]
    with stdout_path.open("wb") as out:
        start = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.PIPE)
        done = threading.Event()

        def sample() -> None:
            while not done.wait(0.02):
                peak[0] = max(peak[0], _tree_rss_kib(proc.pid))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        assert proc.stderr is not None
        err = proc.stderr.read()  # small; read before wait4 so a chatty child cannot block
        _, status, rusage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        done.set()
        sampler.join()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode not in ok_codes:
        raise RuntimeError(f"{name} failed ({proc.returncode}): {err.decode(errors='replace')[-2000:]}")
    return Measurement(
        name=name,
        argv=argv,
        wall_s=wall,
        cpu_s=rusage.ru_utime + rusage.ru_stime,
        peak_rss_mb=max(rusage.ru_maxrss, peak[0]) / 1024,
        returncode=proc.returncode,
        stdout_bytes=stdout_path.stat().st_size,
    )


def capdebug_argv(capdebug: str) -> list[str]:
    beside = Path(sys.executable).parent / capdebug
    if os.sep not in capdebug and beside.is_file() and os.access(beside, os.X_OK):
        return [str(beside)]
    found = shutil.which(capdebug)
    if found is None:
        # Not installed as a command: the same entry point through this interpreter.
        return [sys.executable, "-c", "import sys; from capdebug.cli.app import main; main(sys.argv[1:])"]
    return [found]


def cachegrind_instructions(argv: list[str], stdout_path: Path, work: Path) -> int:
    """Instructions executed by argv and every process it forks (cachegrind, no cache simulation:
    only the instruction count is wanted). Valgrind is not needed for the rest of the benchmark."""
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        raise RuntimeError("--instructions needs valgrind (apt-get install valgrind)")
    out_pattern = work / "cachegrind.out.%p"
    for old in work.glob("cachegrind.out.*"):
        old.unlink()
    with stdout_path.open("wb") as out:
        proc = subprocess.run(
            [
                valgrind,
                "--tool=cachegrind",
                "--cache-sim=no",
                "--trace-children=yes",
                f"--cachegrind-out-file={out_pattern}",
                *argv,
            ],
            stdout=out,
            stderr=subprocess.PIPE,
            check=False,
        )
    total = 0
    for path in work.glob("cachegrind.out.*"):
        for line in path.read_text(errors="replace").splitlines():
            if line.startswith("summary:"):
                total += int(line.split()[1])
        path.unlink()
    if total == 0:
        err = proc.stderr.decode(errors="replace")[-500:]
        raise RuntimeError(f"no cachegrind summary for {argv[0]}: {err}")
    return total


def one_packet_capture(capture: Path, out: Path) -> Path:
    """The capture's first packet alone (classic pcap: 24-byte header, 16-byte record header)."""
    with capture.open("rb") as f:
        header = f.read(24)
        record = f.read(16)
        order = "<" if header[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
        incl = int.from_bytes(record[8:12], "little" if order == "<" else "big")
        out.write_bytes(header + record + f.read(incl))
    return out


def fmt_g(n: float) -> str:
    return f"{n / 1e9:.3f} G"


# --- verification -------------------------------------------------------------------------------


def load_manifest(corpus: Path) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((corpus / "manifest.json").read_text())
    return doc


def conn_clients_from_decrypt(json_lines: Path) -> dict[int, str]:
    """conn number -> client "ip:port", from the decoder's ``connection`` events."""
    out: dict[int, str] = {}
    with json_lines.open("rb") as f:
        for line in f:
            # Cheap prefilter: most lines are record events.
            if b'"connection"' not in line:
                continue
            ev = json.loads(line)
            if ev.get("event") == "connection":
                out[int(ev["conn"])] = str(ev["client"])
    return out


def _file_sha256(path: Path) -> str:
    if not path.exists():
        return EMPTY_SHA256
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def verify_exports(manifest: dict[str, Any], conn_clients: dict[int, str], export_dir: Path) -> Mismatches:
    """Exported plaintext of every manifest connection against the manifest's SHA-256."""
    res = Mismatches()
    by_client = {c["client"]: c for c in manifest["connections"]}
    seen: set[str] = set()
    for conn, client in sorted(conn_clients.items()):
        m = by_client.get(client)
        if m is None:
            res.add("connection not in manifest", f"conn {conn} client {client}")
            continue
        seen.add(client)
        for side in ("client", "server"):
            res.checked += 1
            path = export_dir / f"conn{conn}-{side}.bin"
            got = _file_sha256(path)
            if got != m[f"{side}_sha256"]:
                size = path.stat().st_size if path.exists() else 0
                res.add(
                    f"{side} plaintext differs",
                    f"conn {conn} ({client}, {m['version']} {m['suite']}, ending {m['ending']} by "
                    f"{m['closer']}): exported {size} bytes, manifest {m[f'{side}_bytes']} bytes",
                )
    for client, m in by_client.items():
        if client not in seen:
            res.add("connection not decoded", f"{client} ({m['version']} {m['suite']})")
    return res


def expected_close(m: dict[str, Any]) -> tuple[set[str], str | None]:
    """The verdict codes acceptable for how the manifest says the connection ended, and by whom."""
    closer, peer = m["closer"], ("server" if m["closer"] == "client" else "client")
    if m["ending"] == "close_notify":
        if m["answered"]:
            return {"clean_close"}, None
        return {"close_notify_unanswered"}, peer
    if m["ending"] == "fin":
        return {"premature_close"}, closer
    return {"reset", "benign_reset"}, closer


def verify_verdicts(manifest: dict[str, Any], triage_doc: dict[str, Any]) -> tuple[Mismatches, Mismatches]:
    """Triage verdicts against the manifest's endings, version and suite.

    Returns (mismatches, unexpected): the second counts error verdicts the ending does not
    explain (reported, not counted as mismatches: e.g. the peer's own premature close after a
    FIN is a real consequence)."""
    res, extra = Mismatches(), Mismatches()
    by_client = {c["client"]: c for c in manifest["connections"]}
    seen: set[str] = set()
    for c in triage_doc["connections"]:
        m = by_client.get(c["client"])
        if m is None:
            res.add("connection not in manifest", f"conn {c['conn']} client {c['client']}")
            continue
        seen.add(c["client"])
        res.checked += 1
        where = f"conn {c['conn']} ({c['client']}, {m['version']} {m['suite']})"
        verdicts = c.get("verdicts") or []
        codes, by = expected_close(m)
        hit = [v for v in verdicts if v["code"] in codes and (by is None or v.get("by") == by)]
        if not hit:
            got = ", ".join(f"{v['code']}/{v.get('by')}" for v in verdicts) or "none"
            want = "/".join(sorted(codes)) + (f" by {by}" if by else "")
            ending = m["ending"] + (" answered" if m["answered"] else "")
            res.add(
                f"{m['ending']} by {m['closer']}: verdict missing",
                f"{where}: ending {ending} by {m['closer']}, want {want}, got {got}",
            )
        if c.get("version") != m["version"]:
            res.add("version differs", f"{where}: triage says {c.get('version')}")
        if c.get("cipher_suite") != m["suite"]:
            res.add("cipher suite differs", f"{where}: triage says {c.get('cipher_suite')}")
        for v in verdicts:
            if v["code"] == "undecryptable":
                res.add("undecryptable records", f"{where}: {v.get('detail')}")
            elif v["severity"] == "error" and v not in hit:
                extra.add(f"{v['code']}/{v.get('by')} after {m['ending']} by {m['closer']}", f"{where}")
    for client, m in by_client.items():
        if client not in seen:
            res.add("connection missing from triage", f"{client} ({m['version']} {m['suite']})")
    extra.checked = res.checked
    return res, extra


# --- report -------------------------------------------------------------------------------------


def print_mismatches(title: str, mm: Mismatches) -> None:
    print(f"{title}: {mm.checked} checked, {mm.total} mismatches")
    for kind, n in mm.kinds.most_common():
        print(f"  {n:6d}  {kind}")
        for ex in mm.examples.get(kind, []):
            print(f"          e.g. {ex}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("corpus", type=Path, help="folder written by make_corpus.py")
    p.add_argument("--capdebug", default="capdebug", help="capdebug command")
    p.add_argument("--tshark", default="tshark")
    p.add_argument("--skip-tshark", action="store_true", help="no tshark run (no ratios)")
    p.add_argument("--repeat", type=int, default=3, help="rounds of all commands; the best of each counts")
    p.add_argument("--work", type=Path, help="keep outputs here (default: a temporary folder)")
    p.add_argument("--json-report", type=Path, help="also write the figures as JSON")
    p.add_argument("--instructions", action="store_true", help="also count instructions (cachegrind; slow)")
    p.add_argument("--instructions-tshark", action="store_true", help="count tshark's too (slower)")
    p.add_argument(
        "--startup", type=int, default=0, metavar="N", help="time N rounds on a one-packet capture"
    )
    p.add_argument("--skip-verify", action="store_true", help="no export/verdict check")
    args = p.parse_args(argv)

    corpus: Path = args.corpus
    manifest = load_manifest(corpus)
    capture, keys = corpus / manifest["capture"], corpus / manifest["keylog"]
    work = args.work or Path(tempfile.mkdtemp(prefix="capdebug-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    export = work / "export"
    shutil.rmtree(export, ignore_errors=True)
    export.mkdir()
    cd = capdebug_argv(args.capdebug)

    print(
        f"corpus: {capture} {manifest['capture_bytes'] / 1e6:.1f} MB, {manifest['packets']} packets, "
        f"{len(manifest['connections'])} connections, {manifest['plaintext_bytes'] / 1e6:.1f} MB plaintext "
        "(SSLKEYLOGFILE ignored: --no-env)",
        flush=True,
    )
    load = os.getloadavg()[0]
    if load > 0.5:
        print(f"  note: load average {load:.1f} on {os.cpu_count()} CPUs: wall times are inflated; see cpu s")
    package = Path(__file__).resolve().parent.parent / "capdebug"
    if package.is_dir():
        compileall.compile_dir(package, quiet=1)
    commands: dict[str, tuple[str, list[str], Path, tuple[int, ...]]] = {
        # The target is about `decrypt --json` (every record decrypted and authenticated); writing
        # ~1 GB of plaintext for the check below is timed separately.
        "decrypt": (
            "capdebug decrypt --json",
            [*cd, "decrypt", "--json", str(capture), "--keylog", str(keys), "--no-env"],
            work / "decrypt.jsonl",
            (0, 1),
        ),
        "decrypt_export": (
            "capdebug decrypt --json --export",
            [
                *cd,
                "decrypt",
                "--json",
                str(capture),
                "--keylog",
                str(keys),
                "--no-env",
                "--export",
                str(export),
            ],
            work / "decrypt-export.jsonl",
            (0, 1),
        ),
        "triage": (
            "capdebug triage --json",
            [*cd, "triage", "--json", str(capture), "--keylog", str(keys), "--no-env"],
            work / "triage.json",
            (0, 1),
        ),
    }
    if not args.skip_tshark:
        commands["tshark"] = (
            "tshark -Y tls -T fields",
            [
                args.tshark,
                "-r",
                str(capture),
                "-o",
                f"tls.keylog_file:{keys}",
                "-Y",
                "tls",
                "-T",
                "fields",
                "-e",
                "frame.number",
                "-e",
                "tls.record.content_type",
                "-e",
                "tls.handshake.type",
                "-e",
                "tls.alert_message.desc",
            ],
            work / "tshark.txt",
            (0,),
        )
    all_runs: dict[str, list[Measurement]] = {key: [] for key in commands}
    for round_ in range(1, max(1, args.repeat) + 1):
        for key, (name, argv_, out, ok) in commands.items():
            if key == "decrypt_export":
                shutil.rmtree(export, ignore_errors=True)
                export.mkdir()
            warm(capture, keys)
            m = measure(name, argv_, out, ok_codes=ok)
            all_runs[key].append(m)
            print(f"  round {round_}: {key}: {m.wall_s:.1f} s", flush=True)
    # The best run of each: what the machine can do when nothing else is running.
    # Time: the best run of each. Memory: the largest of any run (memory is not luck).
    runs: dict[str, Measurement] = {
        k: replace(min(v, key=lambda m: m.wall_s), peak_rss_mb=max(m.peak_rss_mb for m in v))
        for k, v in all_runs.items()
    }
    print()
    ts = runs.get("tshark")
    print(
        f"{'command':34s} {'wall s':>8s} {'cpu s':>8s} {'peak MB':>8s}   "
        f"{'tshark/this: wall':>17s} {'cpu':>7s} {'memory':>7s}"
    )
    for r in runs.values():
        ratios = (
            f"{ts.wall_s / r.wall_s:16.2f}x {ts.cpu_s / r.cpu_s:6.2f}x {ts.peak_rss_mb / r.peak_rss_mb:6.2f}x"
            if ts
            else f"{'-':>17s} {'-':>7s} {'-':>7s}"
        )
        print(f"{r.name:34s} {r.wall_s:8.2f} {r.cpu_s:8.2f} {r.peak_rss_mb:8.1f}   {ratios}")
    if len(next(iter(all_runs.values()))) > 1:
        print("wall s of every round:")
        for key, ms in all_runs.items():
            walls = [m.wall_s for m in ms]
            print(
                f"  {key:16s} {' '.join(f'{w:6.2f}' for w in walls)}   median {statistics.median(walls):.2f}"
            )
        if ts:
            med_ts = statistics.median(m.wall_s for m in all_runs["tshark"])
            for key in ("decrypt", "triage"):
                med = statistics.median(m.wall_s for m in all_runs[key])
                print(f"  median ratio tshark/{key}: {med_ts / med:.2f}x")
    print()
    targets = []
    if ts:
        for key, goal in (("decrypt", TARGET_DECRYPT_RATIO), ("triage", TARGET_TRIAGE_RATIO)):
            r = runs[key]
            targets.append((f"{key} >= {goal:g}x faster than tshark (wall)", ts.wall_s / r.wall_s >= goal))
            targets.append((f"{key} >= {goal:g}x faster than tshark (cpu)", ts.cpu_s / r.cpu_s >= goal))
    for key in ("decrypt", "decrypt_export", "triage"):
        targets.append((f"{key} peak memory < 256 MB", runs[key].peak_rss_mb < TARGET_PEAK_MB))
    for label, ok in targets:
        print(f"  target {label}: {'met' if ok else 'NOT MET'}")
    print()

    instructions: dict[str, int] = {}
    if args.instructions:
        for key in ("decrypt", "triage") + (("tshark",) if args.instructions_tshark and ts else ()):
            _, argv_, _, _ = commands[key]
            instructions[key] = cachegrind_instructions(argv_, work / f"{key}.cg.out", work)
        print("instructions (cachegrind, whole process tree):")
        for key, n in instructions.items():
            vs = f"   tshark/this {instructions['tshark'] / n:.2f}x" if "tshark" in instructions else ""
            print(f"  {key:16s} {fmt_g(n):>12s}{vs}")
        print()
    startup: dict[str, dict[str, Any]] = {}
    if args.startup > 0:
        one = one_packet_capture(capture, work / "one.pcap")
        small = {
            "decrypt": [*cd, "decrypt", "--json", str(one), "--keylog", str(keys), "--no-env"],
            "triage": [*cd, "triage", "--json", str(one), "--no-env"],
        }
        if not args.skip_tshark:
            small["tshark"] = [args.tshark, "-r", str(one), "-Y", "tls", "-T", "fields", "-e", "frame.number"]
        walls: dict[str, list[float]] = {k: [] for k in small}
        for _ in range(args.startup):
            for key, argv_ in small.items():
                walls[key].append(measure(key, argv_, work / "one.out", ok_codes=(0, 1)).wall_s)
        print(f"start-up on a one-packet capture ({args.startup} interleaved rounds):")
        for key, ws in walls.items():
            n = cachegrind_instructions(small[key], work / "one.out", work) if args.instructions else 0
            startup[key] = {"best_s": min(ws), "median_s": statistics.median(ws), "instructions": n}
            print(
                f"  {key:16s} best {min(ws):.3f} s  median {statistics.median(ws):.3f} s"
                + (f"  {fmt_g(n)}" if n else "")
            )
        print()

    exports, verdicts, extra = Mismatches(), Mismatches(), Mismatches()
    if not args.skip_verify:
        conn_clients = conn_clients_from_decrypt(work / "decrypt-export.jsonl")
        exports = verify_exports(manifest, conn_clients, export)
        print_mismatches("exported plaintext vs manifest SHA-256 (per direction)", exports)
        triage_doc = json.loads((work / "triage.json").read_text())
        verdicts, extra = verify_verdicts(manifest, triage_doc)
        print_mismatches("triage verdicts vs manifest endings", verdicts)
        print_mismatches("error verdicts not explained by the ending (informational)", extra)

    if args.json_report:
        report = {
            "corpus": {k: manifest[k] for k in ("capture_bytes", "packets", "plaintext_bytes", "mix")}
            | {"connections": len(manifest["connections"])},
            "runs": {
                k: {
                    "wall_s": round(r.wall_s, 3),
                    "cpu_s": round(r.cpu_s, 3),
                    "peak_rss_mb": round(r.peak_rss_mb, 1),
                    "argv": r.argv,
                    "rounds_wall_s": [round(m.wall_s, 3) for m in all_runs[k]],
                }
                for k, r in runs.items()
            },
            "targets": dict(targets),
            "instructions": instructions,
            "startup": startup,
            "median_wall_s": {
                k: round(statistics.median(m.wall_s for m in v), 3) for k, v in all_runs.items()
            },
            "export_mismatches": dict(exports.kinds),
            "verdict_mismatches": dict(verdicts.kinds),
            "unexplained_errors": dict(extra.kinds),
        }
        args.json_report.write_text(json.dumps(report, indent=1) + "\n")
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)
    return 1 if exports.total or verdicts.total else 0


if __name__ == "__main__":
    sys.exit(main())
