#!/usr/bin/env python3
"""Run an atheris (libFuzzer) campaign against one capdebug fuzz target for N minutes.

    pip install atheris
    nice python scripts/fuzz.py TARGET --minutes N [--corpus DIR] [--jobs 1]
    python scripts/fuzz.py --list

Targets are described in ``scripts/fuzz_targets.py`` (capture, keylog, decode, server, client,
server-hs, client-hs, server-app, client-app). The corpus folder (default
``fuzz-corpus/TARGET``, not committed) is seeded with the fixture captures for ``capture`` and
``decode``, with real flights for the engine targets, and grows as libFuzzer finds new paths.
A crash leaves ``crash-*`` next to the corpus and the traceback on stderr; replay one with
``python scripts/fuzz.py TARGET --replay FILE``. Every crash becomes a regression test in
``tests/fuzz/``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def _seed(target: str, corpus: Path) -> None:
    import fuzz_targets as ft

    corpus.mkdir(parents=True, exist_ok=True)
    if any(corpus.iterdir()):
        return
    seeds: list[bytes] = []
    if target in ("capture", "decode"):
        seeds = ft.seed_captures()
    elif target == "keylog":
        seeds = [p.read_bytes() for p in sorted(ft.FIXTURES.glob("*.keys"))]
    elif target == "server":
        client = ft._client()
        client.start_handshake()
        seeds = [client.data_to_send()]
    elif target == "client":
        client, server = ft._client(), ft._server()
        client.start_handshake()
        server.receive_data(client.data_to_send())
        seeds = [server.data_to_send()]
    else:
        # A handshake message (type 22) and application data (23), as record triples.
        seeds = [
            b"\x16\x00\x05\x18\x00\x00\x01\x01",  # KeyUpdate(update_requested)
            b"\x17\x00\x05hello\x15\x00\x02\x01\x00",  # data, then close_notify
        ]
    for i, seed in enumerate(seeds):
        (corpus / f"seed-{i}").write_bytes(seed)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("target", nargs="?")
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--corpus", type=Path)
    parser.add_argument("--replay", type=Path, help="Run the target once on this file.")
    parser.add_argument("--max-len", type=int, default=0, help="libFuzzer -max_len (0: its default).")
    parser.add_argument("--list", action="store_true")
    args = parser.parse_args()

    if args.replay is None and not args.list and args.target:
        import atheris

        # Coverage feedback from capdebug's code: instrumented as it is imported (instrumenting
        # everything already loaded instead, atheris.instrument_all, took minutes).
        with atheris.instrument_imports(include=["capdebug"]):
            import fuzz_targets as ft
    else:
        import fuzz_targets as ft

    if args.list or not args.target:
        print("\n".join(ft.TARGETS))
        return
    if args.target not in ft.TARGETS:
        parser.error(f"unknown target {args.target!r} (known: {', '.join(ft.TARGETS)})")
    fn = ft.TARGETS[args.target]
    if args.replay is not None:
        fn(args.replay.read_bytes())
        print("no crash")
        return

    corpus = args.corpus or Path("fuzz-corpus") / args.target
    _seed(args.target, corpus)
    fn(b"")  # build the PKI and caches before libFuzzer starts counting
    libfuzzer = [
        sys.argv[0],
        str(corpus),
        f"-max_total_time={int(args.minutes * 60)}",
        f"-artifact_prefix={corpus}/../crash-{args.target}-",
        "-print_final_stats=1",
        "-timeout=30",
        "-rss_limit_mb=3072",
    ]
    if args.max_len:
        libfuzzer.append(f"-max_len={args.max_len}")
    import atheris

    atheris.Setup(libfuzzer, fn)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
