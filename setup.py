"""Optional compiled build: ``CAPDEBUG_MYPYC=1 pip install .`` compiles the decode path's hot
modules with mypyc (README, "Compiled build"). Without the switch nothing is compiled and the
package is pure Python, as it is everywhere else (metadata lives in pyproject.toml)."""

from __future__ import annotations

import os
import sys

from setuptools import setup

#: Chosen by measurement (cProfile shares and cachegrind instruction counts of ``decrypt --json``
#: and ``triage --json`` on the bench corpora): capture readers, link/IP/TCP and reassembly,
#: record and handshake codecs, record protection, the decoder, events and their JSON, triage's
#: collection of facts. scripts/build_compiled.sh checks each is compiled in the built package.
MYPYC_MODULES = [
    "capdebug/_buffer.py",
    "capdebug/pcap/_reader.py",
    "capdebug/pcap/classic.py",
    "capdebug/pcap/pcapng.py",
    "capdebug/net/fastpath.py",
    "capdebug/net/flow.py",
    "capdebug/net/health.py",
    "capdebug/net/ip.py",
    "capdebug/net/link.py",
    "capdebug/net/reassembly.py",
    "capdebug/net/tcp.py",
    "capdebug/wire/constants.py",
    "capdebug/wire/extensions.py",
    "capdebug/wire/handshake.py",
    "capdebug/wire/record.py",
    "capdebug/crypto/keylog.py",
    "capdebug/crypto/protection.py",
    "capdebug/crypto/record.py",
    "capdebug/analysis/describe.py",
    "capdebug/analysis/event_base.py",
    "capdebug/analysis/events.py",
    "capdebug/analysis/keys.py",
    "capdebug/analysis/messages.py",
    "capdebug/analysis/recovery.py",
    "capdebug/analysis/sessions.py",
    "capdebug/analysis/tcp_events.py",
    "capdebug/analysis/decode/bulk.py",
    "capdebug/analysis/decode/content.py",
    "capdebug/analysis/decode/decoder.py",
    "capdebug/analysis/decode/framing.py",
    "capdebug/analysis/decode/order.py",
    "capdebug/analysis/decode/resync.py",
    "capdebug/analysis/decode/session.py",
    "capdebug/analysis/decode/sniff.py",
    "capdebug/analysis/decode/stages.py",
    "capdebug/analysis/decode/trial.py",
    "capdebug/analysis/triage/collect.py",
]


def _ext_modules() -> list[object]:
    if os.environ.get("CAPDEBUG_MYPYC", "") != "1":
        return []
    if any(cmd in sys.argv[1:] for cmd in ("egg_info", "dist_info")):
        return []  # metadata only: no need to run mypyc for it (it takes a minute)
    try:
        from mypyc.build import mypycify
    except ImportError:
        sys.exit("CAPDEBUG_MYPYC=1: mypyc not found; install mypy (>=2.4) or build with isolation")
    # opt_level 3 as mypyc's default; one compilation group, so that calls between the modules
    # are native.
    return list(mypycify(MYPYC_MODULES, opt_level="3", debug_level="0"))


setup(ext_modules=_ext_modules())
