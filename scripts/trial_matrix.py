#!/usr/bin/env python3
"""Differential trial: `capdebug decrypt --json` and `capdebug triage --json` against tshark.

Real peers (OpenSSL s_server/s_client, GnuTLS, Python ssl, curl + nginx, Node, Go) talk over
loopback (or a network namespace the script creates and removes), real tcpdumps capture each
conversation in several shapes at once (``lo`` as pcap, ``any`` as pcapng with nanosecond
timestamps (Linux cooked v2), ``any`` with ``-y LINUX_SLL``), and for every capture the events
capdebug shows are compared, frame by frame and in stream order, with what tshark shows with
the same key log (or RSA key):

* handshake messages (type), ChangeCipherSpec, alerts (description), application-data records
  (decrypted or not, and the plaintext length when decrypted);
* triage: the verdict codes each case must show are present, and no error verdict appears that
  the case does not expect.

Usage::

    python3 scripts/trial_matrix.py                  # every case, every shape
    python3 scripts/trial_matrix.py -k tls12 -k go   # cases whose name contains a pattern
    python3 scripts/trial_matrix.py --list           # the case names
    python3 scripts/trial_matrix.py --keep out/      # keep captures and key logs in out/CASE/
    python3 scripts/trial_matrix.py --json           # one JSON object per capture compared

Output: one line per (case, shape): ``match`` or ``MISMATCH`` with the first differences.
Exit code 0 when everything matched, 1 on any mismatch or failed case, 2 on bad usage.
Needs root (tcpdump, namespaces), tshark, openssl; a case whose peer is not installed fails.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))

from make_fixtures import Pki, make_pki  # noqa: E402

from tests.support.proc import TIMEOUT, Proc, ToolError, tool  # noqa: E402

Token = tuple[Any, ...]
"""("hs", type) | ("ccs",) | ("alert", description) | ("app", plaintext length or None, decrypted)."""
Key = tuple[int, int, str]
"""(conn, frame, from)."""

# -- captures --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Shape:
    """One way of capturing the same traffic."""

    name: str
    args: tuple[str, ...]
    suffix: str = "pcap"


SHAPES = (
    Shape("lo-pcap", ("-i", "lo")),
    Shape(
        "any-sll2-pcapng-nano", ("-i", "any", "--time-stamp-precision", "nano", "-y", "LINUX_SLL2"), "pcapng"
    ),
    Shape("any-sll-pcap", ("-i", "any", "-y", "LINUX_SLL")),
)


@contextmanager
def tcpdumps(
    folder: Path, shapes: Sequence[Shape], bpf: str, snaplen: int | None = None
) -> Iterator[list[Path]]:
    """Several tcpdumps of the same filter at once; the files, once they all stopped."""
    procs: list[tuple[subprocess.Popen[bytes], Path, list[str]]] = []
    try:
        for shape in shapes:
            path = folder / f"{shape.name}.{shape.suffix}"
            argv = [tool("tcpdump"), *shape.args, "--immediate-mode", "-B", "32768", "-U", "-w", str(path)]
            if shape.suffix == "pcapng":
                argv[1:1] = ["--pcapng"] if _tcpdump_has_pcapng() else []
            # In immediate mode every ring slot is snaplen-sized: 70,000 bytes (loopback's MTU is
            # 65,536) keeps about 470 slots in the 32 MiB buffer, where 256 KiB kept 128.
            argv += ["-s", str(snaplen or 70000)]
            argv.append(bpf)
            p = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
            )
            lines: list[str] = []
            procs.append((p, path, lines))
            ready = threading.Event()

            def watch(
                p: subprocess.Popen[bytes] = p, lines: list[str] = lines, ready: threading.Event = ready
            ) -> None:
                assert p.stderr is not None
                for raw in p.stderr:
                    lines.append(raw.decode("utf-8", "replace"))
                    if "listening on" in lines[-1]:
                        ready.set()
                ready.set()

            threading.Thread(target=watch, daemon=True).start()
            if not ready.wait(TIMEOUT) or p.poll() is not None:
                raise ToolError(f"tcpdump {' '.join(argv)} did not start: {''.join(lines)}")
        yield [path for _, path, _ in procs]
    finally:
        time.sleep(0.4)
        for p, _, _ in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
        for p, path, lines in procs:
            try:
                p.wait(TIMEOUT)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
            if not re.search(r"(?m)^0 packets dropped by kernel", "".join(lines)):
                raise ToolError(f"tcpdump for {path.name} dropped packets: {''.join(lines)}")


_PCAPNG: bool | None = None


def _tcpdump_has_pcapng() -> bool:
    # tcpdump 4.99 writes pcap only; pcapng files are made with editcap afterwards (see convert).
    return False


def to_pcapng(path: Path) -> None:
    """tcpdump 4.99 writes classic pcap (nanosecond when asked): convert in place to pcapng."""
    tmp = path.with_suffix(".tmp")
    subprocess.run([tool("editcap"), "-F", "pcapng", str(path), str(tmp)], check=True, capture_output=True)
    tmp.replace(path)


def free_port(family: int = socket.AF_INET) -> int:
    with socket.socket(family) as s:
        s.bind(("::1" if family == socket.AF_INET6 else "127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- the two views ---------------------------------------------------------------------------


@dataclass
class Capture:
    path: Path
    keylog: Path | None
    rsa_key: Path | None = None
    server_port: int = 0


def run_capdebug(command: str, cap: Capture) -> str:
    """``capdebug COMMAND CAPTURE --json`` with the capture's key sources; its stdout."""
    argv = ["capdebug", command, str(cap.path), "--json", "--no-env"]
    if cap.keylog is not None:
        argv += ["--keylog", str(cap.keylog)]
    if cap.rsa_key is not None:
        argv += ["--rsa-key", str(cap.rsa_key)]
    res = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    if res.returncode not in (0, 1):
        raise ToolError(f"capdebug {command} exited {res.returncode}: {res.stderr.strip()[-2000:]}")
    return res.stdout


def capdebug_view(cap: Capture) -> tuple[dict[Key, list[Token]], list[dict[str, Any]], list[dict[str, Any]]]:
    events = [json.loads(line) for line in run_capdebug("decrypt", cap).splitlines() if line.strip()]
    tokens: dict[Key, list[Token]] = {}
    notes: list[dict[str, Any]] = []
    tls13: set[int] = set()
    for ev in events:
        kind = ev["event"]
        tok: Token | None = None
        if kind == "handshake" and ev["type"] == 2 and ev.get("version") == "TLS 1.3":
            tls13.add(ev["conn"])
        if kind == "handshake" and ev["type"] < 0 and ev["conn"] in tls13:
            # A TLS 1.3 record known to be handshake by where it stands: its outer type, all
            # tshark shows without keys, is application_data (RFC 8446 5.2).
            tok = ("app", None, False)
        elif kind == "handshake":
            tok = ("hs", ev["type"] if ev["type"] >= 0 else None)
        elif kind == "ccs":
            tok = ("ccs",)
        elif kind == "alert":
            tok = ("alert", ev["description"])
        elif kind == "app_data":
            tok = ("app", ev["length"] if ev["decrypted"] else None, ev["decrypted"])
        elif kind == "heartbeat":
            tok = ("heartbeat",)
        elif kind in ("undecryptable", "gap", "overlap_conflict", "recovered", "evicted", "plaintext"):
            notes.append(ev)
        if tok is not None:
            tokens.setdefault((ev["conn"], ev["frame"], ev["from"]), []).append(tok)
    return tokens, events, notes


def _tshark_base(cap: Capture) -> list[str]:
    argv = [tool("tshark"), "-n", "-r", str(cap.path)]
    if cap.keylog is not None:
        argv += ["-o", f"tls.keylog_file:{cap.keylog}"]
    if cap.rsa_key is not None:
        argv += ["-o", f'uat:rsa_keys:"{cap.rsa_key}",""']
    if cap.server_port:
        argv += ["-d", f"tcp.port=={cap.server_port},tls"]
    # Decrypted application data must reach the "data" dissector (data.len is its plaintext
    # length), not HTTP's, which would reassemble several records into one message.
    for proto in ("http", "http2", "websocket", "pgsql", "ocsp"):
        argv += ["--disable-protocol", proto]
    return argv


def _as_list(v: Any) -> list[Any]:
    if v is None:
        return []
    return v if isinstance(v, list) else [v]


def _handshakes(obj: Any) -> list[Token]:
    out: list[Token] = []
    for hs in _as_list(obj):
        if isinstance(hs, dict) and "tls.handshake.type" in hs:
            out.append(("hs", int(hs["tls.handshake.type"])))
        elif isinstance(hs, dict):
            out.append(("hs", None))
        else:
            out.append(("hs", None))  # "Encrypted Handshake Message" text only
    return out


def tshark_view(cap: Capture) -> tuple[dict[Key, list[Token]], list[str]]:
    """(conn, frame, from) -> tokens, in stream order, plus notes where tshark's view is ambiguous."""
    fields = subprocess.run(
        [
            *_tshark_base(cap),
            "-T",
            "fields",
            "-E",
            "separator=|",
            "-e",
            "frame.number",
            "-e",
            "tcp.stream",
            "-e",
            "tcp.flags.syn",
            "-e",
            "tcp.flags.ack",
            "-e",
            "tcp.srcport",
            "-e",
            "tcp.dstport",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    ).stdout
    frame_info: dict[int, tuple[int, int]] = {}
    client_port: dict[int, int] = {}
    for line in fields.splitlines():
        f, stream, syn, ack, sport, dport = line.split("|")
        if not stream:
            continue
        conn = int(stream) + 1
        frame_info[int(f)] = (conn, int(sport))
        if syn in ("1", "True") and ack in ("0", "False"):
            client_port.setdefault(conn, int(sport))
        elif cap.server_port and int(dport) == cap.server_port:
            client_port.setdefault(conn, int(sport))
    raw = subprocess.run(
        [*_tshark_base(cap), "-Y", "tls", "-T", "json", "--no-duplicate-keys", "-J", "frame tls data"],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    ).stdout
    packets = json.loads(raw) if raw.strip() else []
    out: dict[Key, list[Token]] = {}
    notes: list[str] = []
    for pkt in packets:
        layers = pkt["_source"]["layers"]
        frame = int(layers["frame"]["frame.number"])
        conn, sport = frame_info[frame]
        who = "client" if client_port.get(conn) == sport else "server"
        toks: list[Token] = []
        app_idx: list[int] = []
        for tls in _as_list(layers.get("tls")):
            if not isinstance(tls, dict):
                continue
            for rec in _as_list(tls.get("tls.record")):
                if not isinstance(rec, dict):
                    continue
                ctype = int(rec.get("tls.record.content_type", rec.get("tls.record.opaque_type", -1)))
                opaque = "tls.record.opaque_type" in rec
                decrypted13 = opaque and "tls.record.content_type" in rec
                if ctype == 20:
                    toks.append(("ccs",))
                elif ctype == 21:
                    alert = rec.get("tls.alert_message")
                    desc = alert.get("tls.alert_message.desc") if isinstance(alert, dict) else None
                    toks.append(("alert", int(desc) if desc is not None else None))
                elif ctype == 22:
                    toks.extend(_handshakes(rec.get("tls.handshake")))
                elif ctype == 23:
                    if opaque and not decrypted13:
                        toks.append(("app", None, False))
                    else:
                        app_idx.append(len(toks))
                        toks.append(("app", None, None))  # decided below
                elif ctype == 24:
                    toks.append(("heartbeat",))
        lens = [int(d.get("data.len", 0)) for d in _as_list(layers.get("data")) if isinstance(d, dict)]
        if app_idx:
            if len(lens) == len(app_idx):
                for i, n in zip(app_idx, lens, strict=True):
                    toks[i] = ("app", n, True)
            elif not lens and cap.keylog is None and cap.rsa_key is None:
                for i in app_idx:
                    toks[i] = ("app", None, False)
            elif 0 < len(lens) < len(app_idx) and (cap.keylog is not None or cap.rsa_key is not None):
                # tshark shows no data for an empty plaintext: TLS 1.0's CBC countermeasure sends
                # an empty record before each data record (OpenSSL's 0/n split), so the records
                # without a plaintext are the empty ones before the others.
                empty = len(app_idx) - len(lens)
                for i, n in zip(app_idx, [0] * empty + lens, strict=True):
                    toks[i] = ("app", n, True)
            else:
                notes.append(f"frame {frame}: {len(app_idx)} app records, {len(lens)} plaintexts in tshark")
                for i in app_idx:
                    toks[i] = ("app", "?", "?")
        if toks:
            out.setdefault((conn, frame, who), []).extend(toks)
    return out, notes


def _known(t: Token) -> bool:
    return t[0] == "ccs" or (t[0] in ("hs", "alert") and t[1] is not None) or (t[0] == "app" and t[2] is True)


def compare(ours: dict[Key, list[Token]], theirs: dict[Key, list[Token]], lossy: bool = False) -> list[str]:
    """The frames whose tokens differ. ``lossy`` (a capture that lost bytes, e.g. to the
    snaplen): tshark stops decrypting a direction at its first hole while capdebug may prove
    keys again later (AEAD tag), so only what tshark did decode is compared, and capdebug's
    records at frames where tshark has nothing decoded are left out."""
    diffs: list[str] = []
    for key in sorted(set(ours) | set(theirs)):
        a, b = ours.get(key, []), theirs.get(key, [])
        if lossy:
            b = [t for t in b if _known(t)]
            a = [t for t in a if _known(t)] if b else []
        if len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True)):
            continue
        conn, frame, who = key
        diffs.append(f"conn {conn} frame {frame} {who}: capdebug {_fmt(a)} tshark {_fmt(b)}")
    return diffs


def _same(x: Token, y: Token) -> bool:
    if x[0] != y[0]:
        return False
    if x[0] == "app" and y[1] == "?":
        return True
    return x == y


def _fmt(toks: list[Token]) -> str:
    return "[" + " ".join(":".join(str(v) for v in t) for t in toks) + "]"


def triage(cap: Capture) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(run_capdebug("triage", cap))
    return data


# -- cases -----------------------------------------------------------------------------------


@dataclass
class Ctx:
    folder: Path
    pki: Pki
    shapes: Sequence[Shape] = SHAPES
    port: int = 0

    @property
    def keys(self) -> Path:
        return self.folder / "keys.log"


@dataclass
class Case:
    name: str
    run: Callable[[Ctx], list[Capture]]
    want: frozenset[str] = frozenset({"clean_close"})
    """Verdict codes each TLS connection's triage must show (any connection for "any:CODE")."""
    allow_errors: frozenset[str] = frozenset()
    """Error verdicts that are right for this case."""
    keyless: bool = True
    """Compare without keys too (on the first shape)."""
    lossy: bool = False
    """The capture loses bytes (see compare())."""


CASES: list[Case] = []


def case(
    name: str,
    want: Sequence[str] = ("clean_close",),
    allow_errors: Sequence[str] = (),
    keyless: bool = True,
    lossy: bool = False,
) -> Callable[[Callable[[Ctx], list[Capture]]], Callable[[Ctx], list[Capture]]]:
    def deco(fn: Callable[[Ctx], list[Capture]]) -> Callable[[Ctx], list[Capture]]:
        CASES.append(Case(name, fn, frozenset(want), frozenset(allow_errors), keyless, lossy))
        return fn

    return deco


def _captures(
    ctx: Ctx, paths: list[Path], keylog: Path | None = None, rsa_key: Path | None = None
) -> list[Capture]:
    out = []
    for p in paths:
        if p.suffix == ".pcapng":
            to_pcapng(p)
        out.append(Capture(p, keylog if keylog is not None or rsa_key else ctx.keys, rsa_key, ctx.port))
    return out


# OpenSSL --------------------------------------------------------------------------------------


def s_server(
    ctx: Ctx, args: Sequence[str], rsa: bool = False, naccept: int = 1, host: str = "127.0.0.1"
) -> Proc:
    cert, key = (
        (ctx.pki.server_rsa_cert, ctx.pki.server_rsa_key)
        if rsa
        else (ctx.pki.server_ec_cert, ctx.pki.server_ec_key)
    )
    accept = f"[{host}]:{ctx.port}" if ":" in host else f"{host}:{ctx.port}"
    argv = ["openssl", "s_server", "-accept", accept, "-cert", str(cert), "-key", str(key)]
    argv += ["-keylogfile", str(ctx.keys), "-naccept", str(naccept), *args]
    p = Proc(argv, name="s_server")
    p.wait_for("ACCEPT")
    return p


def s_client(
    ctx: Ctx, args: Sequence[str], env: dict[str, str] | None = None, host: str = "127.0.0.1"
) -> Proc:
    target = f"[{host}]:{ctx.port}" if ":" in host else f"{host}:{ctx.port}"
    argv = ["openssl", "s_client", "-connect", target, "-servername", "localhost", "-CAfile", str(ctx.pki.ca)]
    argv += ["-keylogfile", str(ctx.keys), *args]
    return Proc(argv, name="s_client", env=env)


def chat(client: Proc, server: Proc, rounds: int = 2, tag: str = "") -> None:
    for i in range(rounds):
        c, s = f"{tag}client line {i}\n", f"{tag}server line {i} " + "x" * (7 * i) + "\n"
        client.write(c)
        server.wait_for(c.strip())
        server.write(s)
        client.wait_for(s.strip())


def close_both(client: Proc, server: Proc) -> None:
    client.close_stdin()
    client.finish(ok=None)
    server.finish(ok=None)


def openssl_pair(
    ctx: Ctx,
    server_args: Sequence[str] = (),
    client_args: Sequence[str] = (),
    rsa: bool = False,
    client_env: dict[str, str] | None = None,
    host: str = "127.0.0.1",
    middle: Callable[[Proc, Proc], None] | None = None,
) -> list[Path]:
    ctx.port = free_port(socket.AF_INET6 if ":" in host else socket.AF_INET)
    with tcpdumps(ctx.folder, ctx.shapes, f"tcp port {ctx.port}") as paths:
        server = s_server(ctx, server_args, rsa=rsa, host=host)
        try:
            client = s_client(ctx, client_args, env=client_env, host=host)
            try:
                client.wait_for("SSL handshake has read")
                chat(client, server)
                if middle is not None:
                    middle(client, server)
                close_both(client, server)
            finally:
                client.kill()
        finally:
            server.kill()
    return paths


def _simple(
    name: str,
    server_args: Sequence[str],
    client_args: Sequence[str],
    rsa: bool = False,
    keyless: bool = True,
    env: dict[str, str] | None = None,
) -> None:
    @case(name, keyless=keyless)
    def run(ctx: Ctx) -> list[Capture]:
        return _captures(ctx, openssl_pair(ctx, server_args, client_args, rsa=rsa, client_env=env))


for _suite in (
    "TLS_AES_128_GCM_SHA256",
    "TLS_AES_256_GCM_SHA384",
    "TLS_CHACHA20_POLY1305_SHA256",
    "TLS_AES_128_CCM_SHA256",
    "TLS_AES_128_CCM_8_SHA256",
):
    _simple(f"ossl-tls13-{_suite}", ["-ciphersuites", _suite], ["-ciphersuites", _suite], keyless=True)

for _cipher, _rsa in (
    ("ECDHE-ECDSA-AES128-GCM-SHA256", False),
    ("ECDHE-ECDSA-AES256-GCM-SHA384", False),
    ("ECDHE-ECDSA-CHACHA20-POLY1305", False),
    ("ECDHE-ECDSA-AES128-CCM", False),
    ("ECDHE-ECDSA-AES128-CCM8", False),
    ("ECDHE-ECDSA-AES128-SHA", False),
    ("ECDHE-ECDSA-AES128-SHA256", False),
    ("ECDHE-ECDSA-AES256-SHA384", False),
    ("AES256-SHA", True),
    ("DHE-RSA-AES256-SHA256", True),
):
    # The server is told the suite too: OpenSSL's DEFAULT list leaves CCM out.
    _simple(f"ossl-tls12-{_cipher}", ["-cipher", _cipher], ["-tls1_2", "-cipher", _cipher], rsa=_rsa)
    if "SHA" in _cipher and "GCM" not in _cipher and "CHACHA" not in _cipher:
        _simple(f"ossl-tls12-{_cipher}-no_etm", [], ["-tls1_2", "-cipher", _cipher, "-no_etm"], rsa=_rsa)


# TLS 1.0 and 1.1 (still met on old servers and devices): OpenSSL 3 allows them at security
# level 0 only. Their own PRF (MD5 and SHA-1), TLS 1.0's chained CBC IV, with and without
# encrypt-then-MAC, and an RSA key exchange read with the server's private key.
for _version in ("tls1", "tls1_1"):
    for _cipher, _rsa in (("ECDHE-ECDSA-AES128-SHA", False), ("AES256-SHA", True)):
        _legacy = ["-cipher", f"{_cipher}:@SECLEVEL=0", f"-{_version}"]
        _simple(f"ossl-{_version}-{_cipher}", _legacy, _legacy, rsa=_rsa)
        _simple(f"ossl-{_version}-{_cipher}-no_etm", _legacy, [*_legacy, "-no_etm"], rsa=_rsa)


@case("ossl-tls1-rsa-kx-rsa-key")
def _rsa_kx_tls10(ctx: Ctx) -> list[Capture]:
    legacy = ["-tls1", "-cipher", "AES128-SHA:@SECLEVEL=0"]
    return _captures(ctx, openssl_pair(ctx, legacy, legacy, rsa=True), rsa_key=ctx.pki.server_rsa_key)


def _no_ems_conf(ctx: Ctx) -> dict[str, str]:
    cnf = ctx.folder / "no-ems.cnf"
    cnf.write_text(
        "openssl_conf = openssl_init\n[openssl_init]\nssl_conf = ssl_sect\n[ssl_sect]\n"
        "system_default = system_default_sect\n[system_default_sect]\nOptions = -ExtendedMasterSecret\n"
    )
    return {"OPENSSL_CONF": str(cnf)}


@case("ossl-tls12-no-ems-cbc")
def _no_ems(ctx: Ctx) -> list[Capture]:
    return _captures(
        ctx,
        openssl_pair(ctx, [], ["-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-SHA"], client_env=_no_ems_conf(ctx)),
    )


@case("ossl-tls12-rsa-kx-rsa-key")
def _rsa_kx(ctx: Ctx) -> list[Capture]:
    paths = openssl_pair(ctx, [], ["-tls1_2", "-cipher", "AES128-GCM-SHA256"], rsa=True)
    return _captures(ctx, paths, rsa_key=ctx.pki.server_rsa_key)


@case("ossl-tls12-rsa-kx-cbc-no-ems-rsa-key")
def _rsa_kx_cbc(ctx: Ctx) -> list[Capture]:
    paths = openssl_pair(
        ctx, [], ["-tls1_2", "-cipher", "AES128-SHA256", "-no_etm"], rsa=True, client_env=_no_ems_conf(ctx)
    )
    return _captures(ctx, paths, rsa_key=ctx.pki.server_rsa_key)


@case("ossl-tls13-hrr")
def _hrr(ctx: Ctx) -> list[Capture]:
    return _captures(ctx, openssl_pair(ctx, ["-groups", "P-384"], ["-groups", "X25519:P-384"]))


def _mtls(ctx: Ctx, client_args: Sequence[str]) -> list[Capture]:
    """The server asks for a client certificate (signed by the test CA), which the client sends."""
    p = ctx.pki
    server_args = ["-Verify", "1", "-CAfile", str(p.ca)]
    identity = ["-cert", str(p.client_cert), "-key", str(p.client_key)]
    return _captures(ctx, openssl_pair(ctx, server_args, [*client_args, *identity]))


@case("ossl-tls13-mtls")
def _mtls13(ctx: Ctx) -> list[Capture]:
    return _mtls(ctx, [])


@case("ossl-tls12-mtls-cbc")
def _mtls12(ctx: Ctx) -> list[Capture]:
    return _mtls(ctx, ["-tls1_2", "-cipher", "ECDHE-ECDSA-AES256-SHA"])


def _keyupdates(client: Proc, server: Proc) -> None:
    client.write("K\n")
    client.wait_for("KEYUPDATE")
    chat(client, server, 1, "after K ")
    client.write("k\n")
    client.wait_for("KEYUPDATE", count=2)
    chat(client, server, 1, "after k ")
    server.write("K\n")
    time.sleep(0.3)  # s_server prints nothing for its own KeyUpdate
    chat(client, server, 1, "after server K ")


@case("ossl-tls13-keyupdate")
def _ku(ctx: Ctx) -> list[Capture]:
    return _captures(ctx, openssl_pair(ctx, [], [], middle=_keyupdates))


def _reneg(client: Proc, server: Proc) -> None:
    client.write("R\n")
    client.wait_for("RENEGOTIATING")
    time.sleep(0.3)
    chat(client, server, 1, "after R ")


@case("ossl-tls12-renegotiation-cbc")
def _renego(ctx: Ctx) -> list[Capture]:
    return _captures(
        ctx,
        openssl_pair(
            ctx, ["-client_renegotiation"], ["-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-SHA256"], middle=_reneg
        ),
    )


@case("ossl-tls12-renegotiation-gcm")
def _renego_gcm(ctx: Ctx) -> list[Capture]:
    return _captures(
        ctx,
        openssl_pair(
            ctx,
            ["-client_renegotiation"],
            ["-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256"],
            middle=_reneg,
        ),
    )


def _big(client: Proc, server: Proc) -> None:
    blob = ("B" * 60000 + "\n").encode()
    client.send(blob)
    server.wait_for("B" * 100)
    server.send(("S" * 40000 + "\n").encode())
    client.wait_for("S" * 100)


@case("ossl-tls13-large-records")
def _large13(ctx: Ctx) -> list[Capture]:
    return _captures(ctx, openssl_pair(ctx, [], [], middle=_big))


@case("ossl-tls12-maxfraglen-512")
def _mfl(ctx: Ctx) -> list[Capture]:
    return _captures(
        ctx,
        openssl_pair(
            ctx, [], ["-tls1_2", "-maxfraglen", "512", "-cipher", "ECDHE-ECDSA-AES128-SHA"], middle=_big
        ),
    )


@case("ossl-tls13-maxfraglen-512")
def _mfl13(ctx: Ctx) -> list[Capture]:
    return _captures(ctx, openssl_pair(ctx, [], ["-maxfraglen", "512"], middle=_big))


@case("ossl-tls13-ipv6")
def _v6(ctx: Ctx) -> list[Capture]:
    return _captures(ctx, openssl_pair(ctx, [], [], host="::1"))


@case("ossl-tls12-ipv6-cbc")
def _v6_12(ctx: Ctx) -> list[Capture]:
    return _captures(
        ctx, openssl_pair(ctx, [], ["-tls1_2", "-cipher", "ECDHE-ECDSA-AES256-SHA384"], host="::1")
    )


def _resumption(
    ctx: Ctx,
    server_args: Sequence[str],
    client_args: Sequence[str],
    early: bool = False,
    reused: str = "Reused",
) -> list[Path]:
    ctx.port = free_port()
    sess = ctx.folder / "sess.pem"
    early_file = ctx.folder / "early.txt"
    early_file.write_text("GET /early HTTP/1.1\r\nHost: localhost\r\n\r\n")
    with tcpdumps(ctx.folder, ctx.shapes, f"tcp port {ctx.port}") as paths:
        server = s_server(ctx, server_args, naccept=2)
        try:
            first = s_client(ctx, [*client_args, "-sess_out", str(sess)])
            try:
                first.wait_for("SSL handshake has read")
                chat(first, server, 1)
                deadline = time.monotonic() + TIMEOUT
                while not (sess.exists() and sess.stat().st_size) and time.monotonic() < deadline:
                    time.sleep(0.05)
                time.sleep(0.2)
                first.close_stdin()
                first.finish(ok=None)
            finally:
                first.kill()
            args = [*client_args, "-sess_in", str(sess)] + (["-early_data", str(early_file)] if early else [])
            second = s_client(ctx, args)
            try:
                second.wait_for(reused)
                chat(second, server, 1, "resumed ")
                close_both(second, server)
            finally:
                second.kill()
        finally:
            server.kill()
    return paths


@case("ossl-tls12-resume-session-id-cbc", want=("clean_close", "resumed"))
def _r12id(ctx: Ctx) -> list[Capture]:
    return _captures(
        ctx, _resumption(ctx, ["-no_ticket"], ["-tls1_2", "-no_ticket", "-cipher", "ECDHE-ECDSA-AES128-SHA"])
    )


@case("ossl-tls12-resume-ticket-no-ems", want=("clean_close", "resumed"))
def _r12t(ctx: Ctx) -> list[Capture]:
    return _captures(ctx, _resumption(ctx, [], ["-tls1_2", "-cipher", "ECDHE-ECDSA-CHACHA20-POLY1305"]))


@case("ossl-tls13-resume", want=("clean_close", "resumed"))
def _r13(ctx: Ctx) -> list[Capture]:
    return _captures(ctx, _resumption(ctx, [], []))


@case("ossl-tls13-early-data", want=("clean_close", "resumed"))
def _r13e(ctx: Ctx) -> list[Capture]:
    return _captures(ctx, _resumption(ctx, ["-early_data", "-max_early_data", "16384"], [], early=True))


@case("ossl-tls13-early-data-rejected-hrr", want=("clean_close",))
def _r13e_hrr(ctx: Ctx) -> list[Capture]:
    # The ticket allows early data; the second connection's key share does not suit the server
    # (-groups differs only on the client side), so it answers with an HRR, which rejects 0-RTT.
    return _captures(
        ctx,
        _resumption(
            ctx,
            ["-early_data", "-groups", "P-256"],
            ["-groups", "X25519:P-256"],
            early=True,
            reused="Early data was rejected",
        ),
    )


# Other peers ---------------------------------------------------------------------------------


def _gnutls(ctx: Ctx, priority: str, extra_cli: Sequence[str] = (), big: bool = False) -> list[Path]:
    ctx.port = free_port()
    env = {"SSLKEYLOGFILE": str(ctx.keys)}
    with tcpdumps(ctx.folder, ctx.shapes, f"tcp port {ctx.port}") as paths:
        server = Proc(
            [
                tool("gnutls-serv"),
                "-p",
                str(ctx.port),
                "--echo",
                "--x509certfile",
                str(ctx.pki.server_ec_cert),
                "--x509keyfile",
                str(ctx.pki.server_ec_key),
                "--priority",
                priority,
            ],
            name="gnutls-serv",
            env=env,
        )
        try:
            server.wait_for("Echo Server listening")
            client = Proc(
                [
                    tool("gnutls-cli"),
                    "-p",
                    str(ctx.port),
                    "--x509cafile",
                    str(ctx.pki.ca),
                    "--priority",
                    priority,
                    *extra_cli,
                    "localhost",
                ],
                name="gnutls-cli",
                env=env,
            )
            try:
                client.wait_for("Handshake was completed")
                for i in range(2):
                    line = f"gnutls line {i}" + ("G" * 5000 if big else "")
                    client.write(line + "\n")
                    client.wait_for(f"gnutls line {i}")
                client.close_stdin()
                client.finish(ok=None)
            finally:
                client.kill()
        finally:
            server.kill()
    return paths


@case("gnutls-tls13", allow_errors=("premature_close",))
def _g13(ctx: Ctx) -> list[Capture]:
    return _captures(ctx, _gnutls(ctx, "NORMAL"))


@case("gnutls-tls12-cbc-etm", want=(), allow_errors=("premature_close",))
def _g12cbc(ctx: Ctx) -> list[Capture]:
    return _captures(
        ctx,
        _gnutls(
            ctx, "NONE:+VERS-TLS1.2:+AES-128-CBC:+SHA1:+ECDHE-ECDSA:+SIGN-ALL:+CURVE-ALL:+COMP-NULL:+MAC-ALL"
        ),
    )


@case("gnutls-tls12-ccm", want=(), allow_errors=("premature_close",))
def _g12ccm(ctx: Ctx) -> list[Capture]:
    return _captures(
        ctx, _gnutls(ctx, "NONE:+VERS-TLS1.2:+AES-128-CCM:+AEAD:+ECDHE-ECDSA:+SIGN-ALL:+CURVE-ALL:+COMP-NULL")
    )


@case("gnutls-tls13-record-size-limit", want=(), allow_errors=("premature_close",))
def _g13rsl(ctx: Ctx) -> list[Capture]:
    return _captures(ctx, _gnutls(ctx, "NORMAL", ["--recordsize", "1000"], big=True))


PY_PEER = r"""
import socket, ssl, sys, threading
port, keys, cert, key, ca, ver = sys.argv[1:7]
sctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER); sctx.load_cert_chain(cert, key)
cctx = ssl.create_default_context(cafile=ca); cctx.keylog_filename = keys
if ver == "1.2":
    cctx.maximum_version = ssl.TLSVersion.TLSv1_2
srv = socket.create_server(("127.0.0.1", int(port)))
def serve():
    c, _ = srv.accept()
    with sctx.wrap_socket(c, server_side=True) as s:
        while (d := s.recv(65536)):
            s.sendall(d.upper())
            if d.endswith(b"END\n"):
                break
        s.unwrap()
t = threading.Thread(target=serve); t.start()
with socket.create_connection(("127.0.0.1", int(port))) as raw:
    with cctx.wrap_socket(raw, server_hostname="localhost") as s:
        for msg in (b"hello\n", b"p" * 20000 + b"\n", b"END\n"):
            s.sendall(msg)
            got = b""
            while len(got) < len(msg):
                got += s.recv(65536)
        s.unwrap()
t.join()
"""


def _python(ctx: Ctx, ver: str) -> list[Path]:
    ctx.port = free_port()
    script = ctx.folder / "peer.py"
    script.write_text(PY_PEER)
    with tcpdumps(ctx.folder, ctx.shapes, f"tcp port {ctx.port}") as paths:
        p = ctx.pki
        subprocess.run(
            [
                sys.executable,
                str(script),
                str(ctx.port),
                str(ctx.keys),
                str(p.server_ec_cert),
                str(p.server_ec_key),
                str(p.ca),
                ver,
            ],
            check=True,
            timeout=60,
        )
    return paths


@case("python-ssl-tls13")
def _py13(ctx: Ctx) -> list[Capture]:
    return _captures(ctx, _python(ctx, "1.3"))


@case("python-ssl-tls12")
def _py12(ctx: Ctx) -> list[Capture]:
    return _captures(ctx, _python(ctx, "1.2"))


NGINX_CONF = """
worker_processes 1;
daemon off;
error_log {d}/error.log;
pid {d}/nginx.pid;
user root;
events {{ worker_connections 64; }}
http {{
  access_log off;
  client_body_temp_path {d}/body; proxy_temp_path {d}/proxy; fastcgi_temp_path {d}/fcgi;
  uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;
  server {{
    listen 127.0.0.1:{port} ssl http2;
    ssl_certificate {cert}; ssl_certificate_key {key};
    ssl_protocols TLSv1.2 TLSv1.3;
    location / {{ root {d}/www; }}
  }}
}}
"""


def _nginx_curl(ctx: Ctx, curl_args: Sequence[str]) -> list[Path]:
    ctx.port = free_port()
    d = ctx.folder
    (d / "www").mkdir(exist_ok=True)
    (d / "www" / "index.html").write_text("<p>hello</p>\n" * 500)
    conf = d / "nginx.conf"
    conf.write_text(
        NGINX_CONF.format(d=d, port=ctx.port, cert=ctx.pki.server_ec_cert, key=ctx.pki.server_ec_key)
    )
    nginx = subprocess.Popen(
        [tool("nginx"), "-c", str(conf), "-p", str(d)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", ctx.port)) == 0:
                    break
            time.sleep(0.05)
        with tcpdumps(ctx.folder, ctx.shapes, f"tcp port {ctx.port}") as paths:
            url = f"https://localhost:{ctx.port}/index.html"
            subprocess.run(
                [
                    tool("curl"),
                    "-sS",
                    "-o",
                    "/dev/null",
                    "-o",
                    "/dev/null",
                    "--cacert",
                    str(ctx.pki.ca),
                    *curl_args,
                    url,
                    url,
                ],
                check=True,
                timeout=60,
                env={**os.environ, "SSLKEYLOGFILE": str(ctx.keys)},
            )
    finally:
        nginx.terminate()
        nginx.wait(TIMEOUT)
    return paths


@case("curl-nginx-http1.1-tls13", want=(), allow_errors=())
def _cn11(ctx: Ctx) -> list[Capture]:
    return _captures(ctx, _nginx_curl(ctx, ["--http1.1"]))


@case(
    "curl-nginx-http2-tls13", want=(), allow_errors=("premature_close",)
)  # curl sends GOAWAY, then FIN without close_notify
def _cn2(ctx: Ctx) -> list[Capture]:
    return _captures(ctx, _nginx_curl(ctx, ["--http2"]))


@case(
    "curl-nginx-http2-tls12", want=(), allow_errors=("premature_close",)
)  # curl sends GOAWAY, then FIN without close_notify
def _cn2_12(ctx: Ctx) -> list[Capture]:
    return _captures(ctx, _nginx_curl(ctx, ["--http2", "--tlsv1.2", "--tls-max", "1.2"]))


NODE_PEER = r"""
const https = require('https'), fs = require('fs');
const [port, keys, cert, key, ca, ver] = process.argv.slice(2);
const log = fs.createWriteStream(keys, {flags: 'a', mode: 0o600});
const srv = https.createServer({cert: fs.readFileSync(cert), key: fs.readFileSync(key), maxVersion: ver},
  (req, res) => { res.end('x'.repeat(30000)); });
srv.on('keylog', l => log.write(l));
srv.listen(+port, '127.0.0.1', () => {
  const agent = new https.Agent({keepAlive: false});
  const req = https.get({host: '127.0.0.1', port: +port, servername: 'localhost', path: '/',
                         ca: fs.readFileSync(ca), agent},
    res => { res.on('data', () => {}); res.on('end', () => { srv.close(); log.end(); }); });
  req.on('socket', s => s.on('keylog', l => log.write(l)));
});
"""


def _node(ctx: Ctx, ver: str) -> list[Path]:
    ctx.port = free_port()
    script = ctx.folder / "peer.js"
    script.write_text(NODE_PEER)
    return _self_contained_peer(ctx, [tool("node"), str(script)], ver)


def _self_contained_peer(ctx: Ctx, argv: list[str], ver: str) -> list[Path]:
    """Run a program that is both server and client of one connection (the Node and Go peers:
    ``PROG PORT KEYLOG CERT KEY CA VERSION``) under the capture shapes."""
    p = ctx.pki
    with tcpdumps(ctx.folder, ctx.shapes, f"tcp port {ctx.port}") as paths:
        files = (ctx.keys, p.server_ec_cert, p.server_ec_key, p.ca)
        subprocess.run([*argv, str(ctx.port), *map(str, files), ver], check=True, timeout=60)
    return paths


@case("node-https-tls13", want=())
def _n13(ctx: Ctx) -> list[Capture]:
    return _captures(ctx, _node(ctx, "TLSv1.3"))


@case("node-https-tls12", want=())
def _n12(ctx: Ctx) -> list[Capture]:
    return _captures(ctx, _node(ctx, "TLSv1.2"))


GO_PEER = r"""package main

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"os"
	"strings"
)

func main() {
	port, keys, cert, key, ca, ver := os.Args[1], os.Args[2], os.Args[3], os.Args[4], os.Args[5], os.Args[6]
	kl, err := os.OpenFile(keys, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0600)
	if err != nil { panic(err) }
	pair, err := tls.LoadX509KeyPair(cert, key)
	if err != nil { panic(err) }
	max := uint16(tls.VersionTLS13)
	if ver == "1.2" { max = tls.VersionTLS12 }
	scfg := &tls.Config{Certificates: []tls.Certificate{pair}, MaxVersion: max}
	ln, err := tls.Listen("tcp", "127.0.0.1:"+port, scfg)
	if err != nil { panic(err) }
	done := make(chan bool)
	go func() {
		c, err := ln.Accept()
		if err != nil { panic(err) }
		buf := make([]byte, 70000)
		n, _ := io.ReadAtLeast(c, buf, 5)
		c.Write([]byte(strings.ToUpper(string(buf[:n]))))
		c.Write([]byte(strings.Repeat("z", 40000)))
		c.Close()
		done <- true
	}()
	pem, _ := os.ReadFile(ca)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	ccfg := &tls.Config{RootCAs: pool, ServerName: "localhost", KeyLogWriter: kl, MaxVersion: max}
	c, err := tls.Dial("tcp", "127.0.0.1:"+port, ccfg)
	if err != nil { panic(err) }
	c.Write([]byte("hello go"))
	io.Copy(io.Discard, c)
	c.Close()
	<-done
}
"""


def _go(ctx: Ctx, ver: str) -> list[Path]:
    ctx.port = free_port()
    src = ctx.folder / "peer.go"
    src.write_text(GO_PEER)
    binary = ctx.folder / "peer"
    env = {
        **os.environ,
        "GOCACHE": str(Path(tempfile.gettempdir()) / "capdebug-trial-gocache"),
        "GO111MODULE": "off",
    }
    subprocess.run(
        [tool("go"), "build", "-o", str(binary), str(src)],
        check=True,
        timeout=300,
        env=env,
        capture_output=True,
    )
    return _self_contained_peer(ctx, [str(binary)], ver)


@case("go-tls13", want=())
def _go13(ctx: Ctx) -> list[Capture]:
    return _captures(ctx, _go(ctx, "1.3"))


@case("go-tls12", want=())
def _go12(ctx: Ctx) -> list[Capture]:
    return _captures(ctx, _go(ctx, "1.2"))


@case("capdebug-run-s_client-shim")
def _shim(ctx: Ctx) -> list[Capture]:
    """openssl s_client without -keylogfile; `capdebug run` preloads the key-log shim."""
    ctx.port = free_port()
    with tcpdumps(ctx.folder, ctx.shapes, f"tcp port {ctx.port}") as paths:
        server = s_server(ctx, [])
        try:
            client = Proc(
                [
                    "capdebug",
                    "run",
                    "--keylog",
                    str(ctx.folder / "shim.keys"),
                    "--",
                    "openssl",
                    "s_client",
                    "-connect",
                    f"127.0.0.1:{ctx.port}",
                    "-tls1_2",
                    "-cipher",
                    "ECDHE-ECDSA-AES256-SHA384",
                ],
                name="capdebug run",
            )
            client.wait_for("SSL handshake has read")
            chat(client, server)
            close_both(client, server)
        finally:
            server.kill()
    return _captures(ctx, paths, keylog=ctx.folder / "shim.keys")


# Capture shapes beyond the three default ones -------------------------------------------------


@case("shape-snaplen-200", want=(), allow_errors=("premature_close",), lossy=True)
def _snaplen(ctx: Ctx) -> list[Capture]:
    ctx.port = free_port()
    with tcpdumps(ctx.folder, (SHAPES[0],), f"tcp port {ctx.port}", snaplen=200) as paths:
        server = s_server(ctx, [])
        try:
            client = s_client(ctx, [])
            client.wait_for("SSL handshake has read")
            chat(client, server)
            _big(client, server)
            close_both(client, server)
        finally:
            server.kill()
    return _captures(ctx, paths)


NS = f"cdtrial{os.getpid()}"


@case("shape-mergecap-lo-and-veth", want=())
def _merged(ctx: Ctx) -> list[Capture]:
    """One connection on lo, another across a veth into a namespace; the two captures merged."""
    subprocess.run(["ip", "netns", "add", NS], check=True)
    try:
        for cmd in (
            ["ip", "link", "add", f"{NS}a", "type", "veth", "peer", "name", f"{NS}b"],
            ["ip", "link", "set", f"{NS}b", "netns", NS],
            ["ip", "addr", "add", "10.231.7.1/30", "dev", f"{NS}a"],
            ["ip", "link", "set", f"{NS}a", "up"],
            ["ip", "-n", NS, "addr", "add", "10.231.7.2/30", "dev", f"{NS}b"],
            ["ip", "-n", NS, "link", "set", f"{NS}b", "up"],
            ["ip", "-n", NS, "link", "set", "lo", "up"],
        ):
            subprocess.run(cmd, check=True)
        ctx.port = free_port()
        veth = Shape("veth", ("-i", f"{NS}a"))
        lo = Shape("lo", ("-i", "lo"))
        with tcpdumps(ctx.folder, (lo, veth), f"tcp port {ctx.port}") as paths:
            server = s_server(ctx, [])
            try:
                client = s_client(ctx, [])
                client.wait_for("SSL handshake has read")
                chat(client, server)
                close_both(client, server)
            finally:
                server.kill()
            ns_server = Proc(
                [
                    "ip",
                    "netns",
                    "exec",
                    NS,
                    "openssl",
                    "s_server",
                    "-accept",
                    f"10.231.7.2:{ctx.port}",
                    "-cert",
                    str(ctx.pki.server_ec_cert),
                    "-key",
                    str(ctx.pki.server_ec_key),
                    "-keylogfile",
                    str(ctx.keys),
                    "-naccept",
                    "1",
                    "-tls1_2",
                    "-cipher",
                    "ECDHE-ECDSA-AES128-SHA",
                ],
                name="ns s_server",
            )
            try:
                ns_server.wait_for("ACCEPT")
                client = Proc(
                    [
                        "openssl",
                        "s_client",
                        "-connect",
                        f"10.231.7.2:{ctx.port}",
                        "-keylogfile",
                        str(ctx.keys),
                    ],
                    name="s_client to ns",
                )
                client.wait_for("SSL handshake has read")
                chat(client, ns_server)
                close_both(client, ns_server)
            finally:
                ns_server.kill()
    finally:
        subprocess.run(["ip", "link", "del", f"{NS}a"], capture_output=True)
        subprocess.run(["ip", "netns", "del", NS], capture_output=True)
    merged = ctx.folder / "merged.pcapng"
    subprocess.run([tool("mergecap"), "-w", str(merged), *map(str, paths)], check=True)
    return _captures(ctx, [merged])


# -- the runner --------------------------------------------------------------------------------


@dataclass
class Result:
    case: str
    shape: str
    ok: bool
    details: list[str] = field(default_factory=list)
    verdicts: list[str] = field(default_factory=list)


def check_triage(c: Case, cap: Capture) -> tuple[list[str], list[str]]:
    report = triage(cap)
    problems: list[str] = []
    shown: list[str] = []
    for conn in report["connections"]:
        codes = {v["code"] for v in conn["verdicts"]}
        shown.append(f"conn {conn['conn']}: " + ",".join(f"{v['code']}({v['by']})" for v in conn["verdicts"]))
        for v in conn["verdicts"]:
            if v["severity"] == "error" and v["code"] not in c.allow_errors:
                problems.append(
                    f"triage conn {conn['conn']}: unexpected error {v['code']} by {v['by']}: "
                    + v["detail"][:200]
                )
        for want in c.want:
            if want == "resumed":
                continue
            if want not in codes:
                problems.append(f"triage conn {conn['conn']}: {want} missing (has {sorted(codes)})")
    return problems, shown


NO_KEY_CODES = ("no_key", "rsa_no_master_secret")


def run_case(c: Case, pki: Pki, keep: Path | None, shapes: Sequence[Shape]) -> list[Result]:
    folder = Path(tempfile.mkdtemp(prefix=f"trial-{c.name[:20]}-"))
    results: list[Result] = []
    try:
        ctx = Ctx(folder, pki, shapes)
        try:
            caps = c.run(ctx)
        except Exception as exc:  # a peer that failed: the case failed, the others go on
            return [
                Result(c.name, "-", False, [f"case failed: {exc!r}"[:2000], traceback.format_exc()[-1500:]])
            ]
        runs: list[tuple[str, Capture]] = [(cap.path.stem, cap) for cap in caps]
        if c.keyless and caps:
            runs.append(
                (caps[0].path.stem + "-nokeys", Capture(caps[0].path, None, None, caps[0].server_port))
            )
        for shape, cap in runs:
            try:
                ours, _, notes = capdebug_view(cap)
                theirs, tnotes = tshark_view(cap)
                diffs = compare(ours, theirs, c.lossy)
                with_keys = cap.keylog is not None or cap.rsa_key is not None
                for n in notes:
                    if (
                        n["event"] == "undecryptable"
                        and not with_keys
                        and n["reason"]["code"] in NO_KEY_CODES
                    ):
                        continue
                    if c.lossy and n["event"] in ("gap", "undecryptable", "recovered"):
                        continue
                    diffs.append(f"capdebug note: {json.dumps(n)[:300]}")
                diffs += [f"tshark: {n}" for n in tnotes]
                problems, shown = check_triage(c, cap) if with_keys else ([], [])
                results.append(Result(c.name, shape, not diffs and not problems, diffs + problems, shown))
            except Exception as exc:
                results.append(Result(c.name, shape, False, [f"comparison failed: {exc!r}"[:2000]]))
    finally:
        if keep is not None:
            dest = keep / c.name
            if dest.exists():
                shutil.rmtree(dest)
            shutil.copytree(folder, dest)
        shutil.rmtree(folder, ignore_errors=True)
    return results


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument(
        "-k",
        dest="patterns",
        action="append",
        default=[],
        help="run the cases whose name contains this (repeatable)",
    )
    ap.add_argument("--list", action="store_true", help="list the cases and exit")
    ap.add_argument("--keep", type=Path, help="keep each case's captures and key logs in DIR/CASE/")
    ap.add_argument(
        "--json", action="store_true", help="one JSON object per (case, capture) instead of the table"
    )
    ap.add_argument(
        "--shapes",
        default=",".join(s.name for s in SHAPES),
        help="capture shapes for the ordinary cases (default: all)",
    )
    ap.add_argument("-v", "--verbose", action="store_true", help="also print triage verdicts")
    args = ap.parse_args(argv)
    cases = [c for c in CASES if not args.patterns or any(p in c.name for p in args.patterns)]
    if args.list:
        for c in cases:
            print(c.name)
        return 0
    if not cases:
        print("no case matches", file=sys.stderr)
        return 2
    if os.geteuid() != 0:
        print("trial_matrix needs root (tcpdump, network namespaces)", file=sys.stderr)
        return 2
    shapes = [s for s in SHAPES if s.name in args.shapes.split(",")]
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
    pki_dir = Path(tempfile.mkdtemp(prefix="trial-pki-"))
    failed = 0
    total = 0
    try:
        pki = make_pki(pki_dir)
        for c in cases:
            for r in run_case(c, pki, args.keep, shapes):
                total += 1
                failed += not r.ok
                if args.json:
                    print(json.dumps(r.__dict__), flush=True)
                    continue
                print(f"{r.case:45} {r.shape:28} {'match' if r.ok else 'MISMATCH'}", flush=True)
                for d in r.details[:12]:
                    print(f"    {d}", flush=True)
                if len(r.details) > 12:
                    print(f"    ... {len(r.details) - 12} more", flush=True)
                if args.verbose:
                    for v in r.verdicts:
                        print(f"    triage {v}", flush=True)
    finally:
        shutil.rmtree(pki_dir, ignore_errors=True)
    if not args.json:
        print(f"\n{total} captures compared, {total - failed} matched, {failed} mismatched or failed")
    return 1 if failed else 0


if __name__ == "__main__":
    with suppress(KeyboardInterrupt):
        sys.exit(main())
    sys.exit(130)
