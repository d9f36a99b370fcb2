"""scripts/make_corpus.py makes a real corpus, and scripts/bench_decode.py's checks hold on it.

A tiny corpus (about 2 MB, 10 connections: every version/suite and every ending appears once
by construction of the plan) between two real network namespaces, captured by tcpdump; then
``capdebug decrypt --export`` and ``capdebug triage`` run on it (untimed) and the benchmark's
verification functions compare them with the manifest. The checkers themselves are shown to
catch a wrong plaintext and a wrong ending.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.tools import require, require_root

pytestmark = [pytest.mark.slow, pytest.mark.tools]

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"_bench_{name}", SCRIPTS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


make_corpus = _load("make_corpus")
bench = _load("bench_decode")

CAPDEBUG = [sys.executable, "-c", "import sys; from capdebug.cli.app import main; main(sys.argv[1:])"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    require_root()
    require("tcpdump", "ethtool", "ip", "openssl")
    out = tmp_path_factory.mktemp("corpus")
    rc = make_corpus.main(
        ["--out", str(out), "--size-mb", "2", "--connections", "10", "--progress-every", "1"]
    )
    assert rc == 0
    manifest = bench.load_manifest(out)
    capture, keys = out / manifest["capture"], out / manifest["keylog"]
    export = out / "export"
    export.mkdir()
    dec = subprocess.run(
        [*CAPDEBUG, "decrypt", "--json", str(capture), "-k", str(keys), "--no-env", "--export", str(export)],
        capture_output=True,
        check=False,
        timeout=60,
    )
    assert dec.returncode in (0, 1), dec.stderr.decode()
    (out / "decrypt.jsonl").write_bytes(dec.stdout)
    tri = subprocess.run(
        [*CAPDEBUG, "triage", "--json", str(capture), "-k", str(keys), "--no-env"],
        capture_output=True,
        check=False,
        timeout=60,
    )
    assert tri.returncode in (0, 1), tri.stderr.decode()
    return {
        "dir": out,
        "manifest": manifest,
        "export": export,
        "conn_clients": bench.conn_clients_from_decrypt(out / "decrypt.jsonl"),
        "triage": json.loads(tri.stdout),
    }


def test_corpus_is_what_the_manifest_says(corpus: dict[str, Any]) -> None:
    m = corpus["manifest"]
    assert m["tcpdump"]["dropped_by_kernel"] == 0
    assert m["tcpdump"]["captured"] == m["packets"] > 100
    assert m["problems"] == []
    conns = m["connections"]
    assert len(conns) == 10
    assert {c["version"] for c in conns} == {"TLS 1.2", "TLS 1.3"}
    assert {c["suite"] for c in conns} >= {
        "TLS_AES_128_GCM_SHA256",
        "TLS_AES_256_GCM_SHA384",
        "TLS_CHACHA20_POLY1305_SHA256",
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
        "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
    }
    assert {c["ending"] for c in conns} == {"close_notify", "fin", "rst"}
    assert {c["closer"] for c in conns} == {"client", "server"}
    assert len({c["client_port"] for c in conns}) == 10
    # The key log holds a secret for every connection (TLS 1.2: one CLIENT_RANDOM each).
    keylog = (corpus["dir"] / m["keylog"]).read_text().splitlines()
    n12 = sum(1 for c in conns if c["version"] == "TLS 1.2")
    assert sum(1 for line in keylog if line.startswith("CLIENT_RANDOM ")) == n12
    assert sum(1 for line in keylog if line.startswith("CLIENT_TRAFFIC_SECRET_0 ")) == 10 - n12
    size = (corpus["dir"] / m["capture"]).stat().st_size
    assert 1_000_000 < size < 4_000_000


def test_exported_plaintext_matches_manifest(corpus: dict[str, Any]) -> None:
    res = bench.verify_exports(corpus["manifest"], corpus["conn_clients"], corpus["export"])
    assert res.checked == 20
    assert res.total == 0, res.examples


def test_verdicts_match_endings(corpus: dict[str, Any]) -> None:
    res, _extra = bench.verify_verdicts(corpus["manifest"], corpus["triage"])
    assert res.checked == 10
    assert res.total == 0, res.examples


def test_checkers_catch_wrong_plaintext_and_wrong_ending(corpus: dict[str, Any], tmp_path: Path) -> None:
    export = tmp_path / "export"
    export.mkdir()
    for f in corpus["export"].iterdir():
        (export / f.name).write_bytes(f.read_bytes())
    victim = sorted(export.glob("conn*-server.bin"))[0]
    victim.write_bytes(victim.read_bytes() + b"x")
    res = bench.verify_exports(corpus["manifest"], corpus["conn_clients"], export)
    assert res.kinds == {"server plaintext differs": 1}

    manifest = json.loads(json.dumps(corpus["manifest"]))
    flipped = next(c for c in manifest["connections"] if c["ending"] == "rst")
    flipped["ending"] = "fin"
    res, _ = bench.verify_verdicts(manifest, corpus["triage"])
    assert res.total == 1
    assert list(res.kinds) == [f"fin by {flipped['closer']}: verdict missing"]
