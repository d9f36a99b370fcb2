#!/usr/bin/env python3
"""Time the per-packet hot path of ``capdebug decrypt`` / ``triage`` in three cumulative stages.

    python scripts/bench_hotpath.py [CAPTURE] [--packets N] [--repeat 3] [--stages read,decode,track]

Stages, each a separate pass over the first N packets of CAPTURE (default: all of
/tmp/capdebug-corpus/corpus.pcap):

* ``read``: iterate ``open_capture(CAPTURE)`` and touch ``Packet.data``;
* ``decode``: the same plus ``decode_tcp(linktype, packet.data)``;
* ``track``: the same plus ``TcpTracker.feed(frame, packet.ts_ns, segment)``, walking the events
  as the decoder does (a type test per event).

Each stage runs ``--repeat`` times and the best run is reported (the machine may be shared), as
packets per second and the time added over the previous stage; the best CPU time
(``time.process_time``) is shown too, as it varies less on a busy machine. Run it on a warm page cache: the
first pass of the first stage also reads the file from disk.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from capdebug.net import StreamData, TcpTracker, decode_tcp
from capdebug.pcap import Packet, open_capture

DEFAULT_CAPTURE = "/tmp/capdebug-corpus/corpus.pcap"


def _read(path: str, limit: int) -> int:
    count = 0
    with open_capture(path) as reader:
        for item in reader:
            if type(item) is not Packet:
                continue
            count += 1
            item.data  # noqa: B018 - touch the field as every consumer does
            if count == limit:
                break
    return count


def _decode(path: str, limit: int) -> int:
    count = 0
    with open_capture(path) as reader:
        interfaces = reader.interfaces
        for item in reader:
            if type(item) is not Packet:
                continue
            count += 1
            decode_tcp(interfaces[item.interface].linktype, item.data)
            if count == limit:
                break
    return count


def _track(path: str, limit: int) -> int:
    count = 0
    tracker = TcpTracker()
    feed = tracker.feed
    data_events = 0
    with open_capture(path) as reader:
        interfaces = reader.interfaces
        for item in reader:
            if type(item) is not Packet:
                continue
            count += 1
            seg = decode_tcp(interfaces[item.interface].linktype, item.data)
            if seg is not None:
                for ev in feed(count, item.ts_ns, seg):
                    if type(ev) is StreamData:
                        data_events += 1
            if count == limit:
                break
    tracker.flush()
    return count


STAGES: dict[str, Callable[[str, int], int]] = {"read": _read, "decode": _decode, "track": _track}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("capture", nargs="?", default=DEFAULT_CAPTURE)
    parser.add_argument("--packets", type=int, default=0, help="only the first N packets (0: all)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per stage; the best is reported")
    parser.add_argument("--stages", default="read,decode,track", help="comma-separated subset")
    args = parser.parse_args()
    names = [s.strip() for s in args.stages.split(",") if s.strip()]
    for name in names:
        if name not in STAGES:
            parser.error(f"unknown stage {name!r} (choose from {', '.join(STAGES)})")
    limit = args.packets if args.packets > 0 else -1
    previous: float | None = None
    for name in STAGES:
        if name not in names:
            continue
        best = cpu = float("inf")
        count = 0
        for _ in range(max(1, args.repeat)):
            start, start_cpu = time.perf_counter(), time.process_time()
            count = STAGES[name](args.capture, limit)
            best = min(best, time.perf_counter() - start)
            cpu = min(cpu, time.process_time() - start_cpu)
        added = f"  (+{best - previous:5.2f} s)" if previous is not None else " " * 11
        print(
            f"{name:7} {count:>9,} packets  {best:6.2f} s  {count / best:>11,.0f} packets/s{added}"
            f"  cpu {cpu:6.2f} s",
            flush=True,
        )
        previous = best


if __name__ == "__main__":
    main()
