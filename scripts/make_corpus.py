#!/usr/bin/env python3
"""Generate the benchmark corpus: real TLS traffic between two network namespaces.

    sudo python3 scripts/make_corpus.py [--out DIR] [--size-mb 1000] [--connections 3000]
    sudo python3 scripts/make_corpus.py --profile small --size-mb 90 --out DIR

Needs root, ``ip`` (iproute2), ``ethtool`` and ``tcpdump``. The script

1. creates two network namespaces joined by a veth pair (MTU 1500; TSO, GSO and GRO off so
   that the capture holds real wire-sized segments, not 64 KB super-packets), with addresses
   that exist only inside the pair (169.254.77.0/30 and fd77::/64);
2. captures the server end with ``tcpdump --immediate-mode -B 262144 -U -s 0``;
3. runs Python ssl servers (scripts/corpus_peer.py, several processes sharing the port) and
   clients, one client process per TLS 1.3 suite (restricted through ``OPENSSL_CONF``, Python's
   ssl cannot restrict TLS 1.3 suites) plus one for TLS 1.2 (``set_ciphers`` per connection);
   TLS 1.2 and 1.3, AES-128-GCM, AES-256-GCM and ChaCha20-Poly1305; IPv4 and some IPv6;
   endings mixed between close_notify (answered or not), FIN without close_notify and RST
   (SO_LINGER 0), closed by either side; a few multi-MB transfers;
4. writes ``DIR/corpus.pcap``, ``DIR/corpus.keys`` (NSS key log written by the clients) and
   ``DIR/manifest.json`` (per connection: client port, version, suite, ending, closer, byte
   counts and SHA-256 of each direction's plaintext, checked by both peers), and fails if
   tcpdump dropped packets or the peers disagree about what was sent;
5. tears the namespaces down whatever happens.

The plan (sizes, suites, endings) is deterministic for a given ``--seed``; keys, randoms and
timestamps are not.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import IO, Any

HERE = Path(__file__).resolve().parent
PEER = HERE / "corpus_peer.py"

SERVER4, CLIENT4 = "169.254.77.1", "169.254.77.2"
SERVER6, CLIENT6 = "fd77::1", "fd77::2"
PORT = 443
FIRST_CLIENT_PORT = 20000

# OpenSSL names (what Python's SSLSocket.cipher() reports) -> IANA names.
TLS12_SUITES = {
    "ECDHE-RSA-AES128-GCM-SHA256": "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    "ECDHE-RSA-AES256-GCM-SHA384": "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    "ECDHE-RSA-CHACHA20-POLY1305": "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
}
TLS13_SUITES = ("TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256")

# Rough capture bytes per plaintext byte (Ethernet/IP/TCP headers and pcap record headers on
# 1448-byte segments, an ACK for every other segment, TLS record overhead) and per connection
# (handshake with a certificate, SYN/FIN/ACK packets).
OVERHEAD_FACTOR = 1.09
PER_CONNECTION_BYTES = 7000


class CorpusError(RuntimeError):
    pass


def log(msg: str) -> None:
    print(f"[make_corpus {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def run(*argv: str) -> None:
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise CorpusError(f"{' '.join(argv)} failed: {proc.stderr.strip()}")


# --- plan ---------------------------------------------------------------------------------------


# The small-record profile (issue 19): many short request/response exchanges per connection,
# the shape of API and web traffic, where per-record and per-connection costs dominate.
SMALL_EXCHANGES = (4, 30)
SMALL_MESSAGE_BYTES = (200, 8000)


def small_connections(size_mb: float) -> int:
    """Connections for about ``size_mb`` of capture in the small profile (message sizes are
    log-uniform between the bounds: mean about 2.1 KB; a record and its segments add ~9%)."""
    lo, hi = SMALL_MESSAGE_BYTES
    mean_message = (hi - lo) / math.log(hi / lo)
    per_conn = sum(SMALL_EXCHANGES) / 2 * 2 * mean_message * OVERHEAD_FACTOR + PER_CONNECTION_BYTES
    return max(1, round(size_mb * 1e6 / per_conn))


def small_rounds(rng: random.Random) -> list[list[int]]:
    lo, hi = SMALL_MESSAGE_BYTES

    def size() -> int:
        return round(math.exp(rng.uniform(math.log(lo), math.log(hi))))

    return [[size(), size()] for _ in range(rng.randint(*SMALL_EXCHANGES))]


def make_plan(
    size_mb: float, connections: int, seed: int, ipv6_share: float, profile: str = "bulk"
) -> dict[str, Any]:
    """Decide every connection's version, suite, sizes and ending."""
    if connections < 1 or connections > 40000:
        raise CorpusError("--connections must be between 1 and 40000 (one fixed client port each)")
    rng = random.Random(seed)
    target = size_mb * 1e6
    payload_total = max(connections * 2000, (target - connections * PER_CONNECTION_BYTES) / OVERHEAD_FACTOR)

    # A few large transfers (about a third of the bytes), the rest log-normally distributed.
    n_big = max(1, round(connections / 300)) if connections >= 4 else 0
    big_total = payload_total * 0.35 if n_big else 0.0
    big_weights = [rng.uniform(0.5, 2.0) for _ in range(n_big)]
    small_weights = [rng.lognormvariate(0, 1.2) for _ in range(connections - n_big)]
    totals = [big_total * w / sum(big_weights) for w in big_weights]
    rest = payload_total - big_total
    totals += [rest * w / sum(small_weights) for w in small_weights]
    rng.shuffle(totals)

    endings = ["close_notify"] * 4 + ["fin"] * 3 + ["rst"] * 3
    suites: list[tuple[str, str]] = [("TLSv1.2", s) for s in TLS12_SUITES] + [
        ("TLSv1.3", s) for s in TLS13_SUITES
    ]
    conns = []
    for i, total in enumerate(totals, start=1):
        version, suite = suites[(i - 1) % len(suites)] if i <= len(suites) else rng.choice(suites)
        ending = endings[(i - 1) % len(endings)] if i <= len(endings) else rng.choice(endings)
        closer = "client" if i % 2 else "server"
        upload = rng.random() < 0.15
        rounds = []
        if profile == "small":
            rounds = small_rounds(rng)
        else:
            n_rounds = rng.choice((1, 1, 1, 2, 3, 5))
            left = int(total)
            for r in range(n_rounds):
                share = left if r == n_rounds - 1 else int(left * rng.uniform(0.1, 0.6))
                left -= share
                small = rng.randint(60, 2000)
                rounds.append([share, small] if upload else [small, share])
        conns.append(
            {
                "id": i,
                "family": 6 if rng.random() < ipv6_share else 4,
                "client_port": FIRST_CLIENT_PORT + i,
                "version": version,
                "suite": suite,
                "ending": ending,
                "closer": closer,
                # When close_notify ends it: does the peer answer with its own?
                "answered": ending == "close_notify" and rng.random() < 0.75,
                "rounds": rounds,
            }
        )
    return {"payload_seed": seed, "connections": conns}


def client_group(c: dict[str, Any]) -> str:
    return "tls12" if c["version"] == "TLSv1.2" else c["suite"]


# --- network namespaces -------------------------------------------------------------------------


class Netns:
    """Two namespaces and a veth pair; ``close()`` removes them (deleting a namespace deletes its
    end of the pair, which deletes the pair)."""

    def __init__(self) -> None:
        tag = str(os.getpid())
        self.server_ns, self.client_ns = f"cdbg-s{tag}", f"cdbg-c{tag}"
        self.server_if, self.client_if = f"cdS{tag}", f"cdC{tag}"
        self.created: list[str] = []

    def open(self) -> None:
        ethtool = shutil.which("ethtool") or "/usr/sbin/ethtool"
        for ns in (self.server_ns, self.client_ns):
            run("ip", "netns", "add", ns)
            self.created.append(ns)
            run("ip", "-n", ns, "link", "set", "lo", "up")
        run("ip", "link", "add", self.server_if, "type", "veth", "peer", "name", self.client_if)
        for ns, dev, a4, a6 in (
            (self.server_ns, self.server_if, SERVER4, SERVER6),
            (self.client_ns, self.client_if, CLIENT4, CLIENT6),
        ):
            run("ip", "link", "set", dev, "netns", ns)
            run("ip", "-n", ns, "link", "set", dev, "mtu", "1500")
            run("ip", "-n", ns, "addr", "add", f"{a4}/30", "dev", dev)
            run("ip", "-n", ns, "-6", "addr", "add", f"{a6}/64", "dev", dev, "nodad")
            run("ip", "-n", ns, "link", "set", dev, "up")
            # Without this the capture holds up to 64 KB "segments" assembled by the stack.
            run("ip", "netns", "exec", ns, ethtool, "-K", dev, "tso", "off", "gso", "off", "gro", "off")

    def close(self) -> None:
        # The pair may still sit in the root namespace if setup failed before moving it.
        subprocess.run(["ip", "link", "del", self.server_if], capture_output=True, check=False)
        for ns in reversed(self.created):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)
        self.created.clear()

    def exec_argv(self, ns: str, *argv: str) -> list[str]:
        return ["ip", "netns", "exec", ns, *argv]


# --- processes ----------------------------------------------------------------------------------


class Tcpdump:
    def __init__(self, netns: Netns, path: Path) -> None:
        argv = netns.exec_argv(
            netns.server_ns,
            shutil.which("tcpdump") or "/usr/sbin/tcpdump",
            "-i",
            netns.server_if,
            "--immediate-mode",
            "-B",
            "262144",
            "-U",
            "-s",
            "0",
            "-Z",
            "root",
            "-w",
            str(path),
        )
        self.proc = subprocess.Popen(argv, stderr=subprocess.PIPE, text=True)
        self.stderr: list[str] = []
        assert self.proc.stderr is not None
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            line = self.proc.stderr.readline()
            if not line:
                break
            self.stderr.append(line)
            if "listening on" in line:
                return
        self.proc.kill()
        raise CorpusError(f"tcpdump did not start: {''.join(self.stderr)}")

    def stop(self) -> dict[str, int]:
        self.proc.send_signal(signal.SIGINT)
        _, err = self.proc.communicate(timeout=60)
        self.stderr.append(err)
        text = "".join(self.stderr)
        stats = {}
        for key, pat in (
            ("captured", r"(\d+) packets? captured"),
            ("received_by_filter", r"(\d+) packets? received by filter"),
            ("dropped_by_kernel", r"(\d+) packets? dropped by kernel"),
        ):
            m = re.search(pat, text)
            if m is None:
                raise CorpusError(f"no tcpdump statistics in: {text}")
            stats[key] = int(m.group(1))
        return stats


def read_lines(stream: IO[str], sink: list[dict[str, Any]], lock: threading.Lock) -> None:
    for line in stream:
        line = line.strip()
        if not line:
            continue
        rec = json.loads(line)
        with lock:
            sink.append(rec)


def openssl_conf(tmp: Path, suite: str) -> Path:
    path = tmp / f"openssl-{suite}.cnf"
    path.write_text(
        "openssl_conf = init\n[init]\nssl_conf = ssl_sect\n[ssl_sect]\nsystem_default = sys\n"
        f"[sys]\nCiphersuites = {suite}\n"
    )
    return path


def make_cert(tmp: Path) -> tuple[Path, Path]:
    cert, key = tmp / "server.crt", tmp / "server.key"
    run(
        "openssl",
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        str(key),
        "-out",
        str(cert),
        "-days",
        "30",
        "-subj",
        "/CN=corpus.test",
        "-addext",
        "subjectAltName=DNS:corpus.test",
    )
    return cert, key


def preflight() -> None:
    missing = [
        tool
        for tool in ("ip", "tcpdump", "ethtool", "openssl")
        if shutil.which(tool) is None and not Path(f"/usr/sbin/{tool}").exists()
    ]
    if missing:
        raise CorpusError(
            f"missing tools: {', '.join(missing)} (apt-get install iproute2 tcpdump ethtool openssl)"
        )


def generate(args: argparse.Namespace) -> dict[str, Any]:
    preflight()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    pcap, keys, manifest_path = out / "corpus.pcap", out / "corpus.keys", out / "manifest.json"
    for stale in (pcap, keys, manifest_path):
        stale.unlink(missing_ok=True)
    connections = args.connections
    if connections is None:
        connections = small_connections(args.size_mb) if args.profile == "small" else 3000
    plan = make_plan(args.size_mb, connections, args.seed, args.ipv6_share, args.profile)
    planned = sum(sum(a + b for a, b in c["rounds"]) for c in plan["connections"])
    log(
        f"plan: {len(plan['connections'])} connections, {planned / 1e6:.1f} MB of plaintext "
        f"(target capture {args.size_mb:g} MB)"
    )
    tmp = Path(tempfile.mkdtemp(prefix="capdebug-corpus-"))
    netns = Netns()
    procs: list[subprocess.Popen[str]] = []
    readers: list[threading.Thread] = []
    tcpdump: Tcpdump | None = None
    results: list[dict[str, Any]] = []
    lock = threading.Lock()
    try:
        plan_path = tmp / "plan.json"
        plan_path.write_text(json.dumps(plan))
        cert, key = make_cert(tmp)
        netns.open()
        log(f"namespaces {netns.server_ns} / {netns.client_ns} up (veth {netns.server_if}, MTU 1500)")
        tcpdump = Tcpdump(netns, pcap)
        started = time.monotonic()

        # Servers: several processes on one port (SO_REUSEPORT), so the GIL is not the limit.
        server_procs = []
        for _ in range(args.server_procs):
            argv = netns.exec_argv(
                netns.server_ns,
                sys.executable,
                str(PEER),
                "server",
                "--plan",
                str(plan_path),
                "--cert",
                str(cert),
                "--key",
                str(key),
                "--addr4",
                SERVER4,
                "--addr6",
                SERVER6,
                "--port",
                str(PORT),
            )
            p = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
            procs.append(p)
            server_procs.append(p)
            assert p.stdout is not None
            first = p.stdout.readline()
            if '"ready"' not in first:
                raise CorpusError(f"server did not start: {first!r}")
            readers.append(threading.Thread(target=read_lines, args=(p.stdout, results, lock), daemon=True))
            readers[-1].start()

        groups: dict[str, list[int]] = {}
        for c in plan["connections"]:
            groups.setdefault(client_group(c), []).append(c["id"])
        client_procs = []
        keylogs = []
        for name, ids in sorted(groups.items()):
            ids_path = tmp / f"ids-{name}.txt"
            ids_path.write_text(" ".join(map(str, ids)))
            keylog = tmp / f"keys-{name}.log"
            keylogs.append(keylog)
            env = dict(os.environ)
            if name != "tls12":
                env["OPENSSL_CONF"] = str(openssl_conf(tmp, name))
            argv = netns.exec_argv(
                netns.client_ns,
                sys.executable,
                str(PEER),
                "client",
                "--plan",
                str(plan_path),
                "--ids",
                str(ids_path),
                "--keylog",
                str(keylog),
                "--threads",
                str(args.threads),
                "--client4",
                CLIENT4,
                "--server4",
                SERVER4,
                "--client6",
                CLIENT6,
                "--server6",
                SERVER6,
                "--port",
                str(PORT),
            )
            p = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, env=env)
            procs.append(p)
            client_procs.append(p)
            assert p.stdout is not None
            readers.append(threading.Thread(target=read_lines, args=(p.stdout, results, lock), daemon=True))
            readers[-1].start()

        total = len(plan["connections"])
        last = 0.0
        while any(p.poll() is None for p in client_procs):
            time.sleep(0.2)
            now = time.monotonic()
            if now - last >= args.progress_every:
                last = now
                with lock:
                    done = sum(1 for r in results if r.get("side") == "client")
                size = pcap.stat().st_size if pcap.exists() else 0
                log(
                    f"{done}/{total} connections, capture {size / 1e6:.0f} MB, "
                    f"{size / 1e6 / max(now - started, 1e-9):.0f} MB/s"
                )
        for t in readers[args.server_procs :]:
            t.join(timeout=30)  # the clients' last reports
        for p in client_procs:
            if p.returncode != 0:
                raise CorpusError(f"a client process failed with exit code {p.returncode}")
        # Let the last FIN/ACK exchanges and the servers' reports land before stopping.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with lock:
                servers_done = sum(1 for r in results if r.get("side") == "server")
            if servers_done >= total:
                break
            time.sleep(0.1)
        time.sleep(1.0)
        stats = tcpdump.stop()
        tcpdump = None
        elapsed = time.monotonic() - started
        log(
            f"tcpdump: {stats['captured']} captured, {stats['received_by_filter']} received by filter, "
            f"{stats['dropped_by_kernel']} dropped by kernel"
        )

        with keys.open("wb") as f:
            for k in keylogs:
                if k.exists():
                    f.write(k.read_bytes())
        manifest = build_manifest(plan, results, stats, pcap, elapsed)
        manifest_path.write_text(json.dumps(manifest, indent=1) + "\n")
        problems = manifest["problems"]
        log(
            f"wrote {pcap} ({manifest['capture_bytes'] / 1e6:.1f} MB), {keys}, {manifest_path} "
            f"in {elapsed:.1f} s; {len(problems)} problems"
        )
        if stats["dropped_by_kernel"] or stats["captured"] != stats["received_by_filter"]:
            raise CorpusError(f"tcpdump lost packets: {stats}")
        if problems:
            raise CorpusError(f"{len(problems)} connection problems, e.g. {problems[:3]}")
        return manifest
    finally:
        if tcpdump is not None:
            tcpdump.proc.kill()
            tcpdump.proc.communicate()
        for p in procs:
            if p.poll() is None:
                p.kill()
            p.wait()
        for t in readers:
            t.join(timeout=5)
        for p in procs:
            if p.stdout is not None:
                p.stdout.close()
        netns.close()
        shutil.rmtree(tmp, ignore_errors=True)


def build_manifest(
    plan: dict[str, Any], results: list[dict[str, Any]], stats: dict[str, int], pcap: Path, elapsed: float
) -> dict[str, Any]:
    by_side: dict[tuple[int, str], dict[str, Any]] = {}
    problems: list[str] = []
    for r in results:
        if r.get("error"):
            problems.append(f"{r['side']} of conn {r['id']}: {r['error']}")
        elif "id" in r:
            by_side[(r["id"], r["side"])] = r
    conns = []
    for c in plan["connections"]:
        cl, sv = by_side.get((c["id"], "client")), by_side.get((c["id"], "server"))
        if cl is None or sv is None:
            problems.append(f"conn {c['id']}: no report from the {'client' if cl is None else 'server'}")
            continue
        if cl["sent_sha256"] != sv["recv_sha256"] or sv["sent_sha256"] != cl["recv_sha256"]:
            problems.append(f"conn {c['id']}: the peers disagree about the plaintext")
        version = {"TLSv1.2": "TLS 1.2", "TLSv1.3": "TLS 1.3"}.get(cl.get("version", ""), cl.get("version"))
        suite = TLS12_SUITES.get(cl.get("cipher", ""), cl.get("cipher"))
        expected_suite = TLS12_SUITES.get(c["suite"], c["suite"])
        if suite != expected_suite:
            problems.append(f"conn {c['id']}: negotiated {suite}, planned {expected_suite}")
        host_c, host_s = (f"[{CLIENT6}]", f"[{SERVER6}]") if c["family"] == 6 else (CLIENT4, SERVER4)
        conns.append(
            {
                "id": c["id"],
                "client": f"{host_c}:{c['client_port']}",
                "server": f"{host_s}:{PORT}",
                "client_port": c["client_port"],
                "version": version,
                "suite": suite,
                "ending": c["ending"],
                "closer": c["closer"],
                "answered": c["answered"],
                "rounds": len(c["rounds"]),
                "client_bytes": cl["sent"],
                "server_bytes": sv["sent"],
                "client_sha256": cl["sent_sha256"],
                "server_sha256": sv["sent_sha256"],
            }
        )
    return {
        "capture": pcap.name,
        "keylog": "corpus.keys",
        "capture_bytes": pcap.stat().st_size,
        "packets": stats["captured"],
        "tcpdump": stats,
        "elapsed_s": round(elapsed, 2),
        "plaintext_bytes": sum(c["client_bytes"] + c["server_bytes"] for c in conns),
        "mix": {
            "version_suite": dict(Counter(f"{c['version']} {c['suite']}" for c in conns)),
            "ending_closer": dict(Counter(f"{c['ending']} by {c['closer']}" for c in conns)),
            "ipv6": sum(1 for c in conns if c["client"].startswith("[")),
        },
        "problems": problems,
        "connections": conns,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="/tmp/capdebug-corpus", help="output folder")
    p.add_argument("--size-mb", type=float, default=1000.0, help="approximate capture size")
    p.add_argument("--connections", type=int, help="default 3000 (bulk) or what --size-mb needs (small)")
    p.add_argument(
        "--profile",
        choices=("bulk", "small"),
        default="bulk",
        help="bulk: log-normal transfers, a few multi-MB; small: 4-30 exchanges of 200-8,000 "
        "bytes per connection (per-record costs dominate)",
    )
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--threads", type=int, default=3, help="threads per client process (4 processes)")
    p.add_argument("--server-procs", type=int, default=2)
    p.add_argument("--ipv6-share", type=float, default=0.15, help="fraction of connections over IPv6")
    p.add_argument("--progress-every", type=float, default=5.0, help="seconds between progress lines")
    args = p.parse_args(argv)
    if os.geteuid() != 0:
        print("make_corpus.py needs root (network namespaces, tcpdump)", file=sys.stderr)
        return 2
    try:
        m = generate(args)
    except CorpusError as exc:
        log(f"FAILED: {exc}")
        return 1
    log(
        f"done: {m['packets']} packets, {len(m['connections'])} connections, "
        f"{m['plaintext_bytes'] / 1e6:.1f} MB plaintext, mix {json.dumps(m['mix'])}"
    )
    return 0


if __name__ == "__main__":
    # A SIGTERM must still run the teardown in generate()'s finally.
    signal.signal(signal.SIGTERM, lambda _sig, _frame: sys.exit(143))
    sys.exit(main())
