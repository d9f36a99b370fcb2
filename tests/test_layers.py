"""The layering of ARCHITECTURE.md, enforced: imports only go down, third-party packages stay
in the one layer that owns them, and the pure layers read no clock, environment or file."""

from __future__ import annotations

import ast
from pathlib import Path

import capdebug

PKG = Path(capdebug.__file__).parent

# Which capdebug subpackages each layer may import (besides itself, errors, _buffer, _files, _text).
ALLOWED: dict[str, set[str]] = {
    # cli -> api -> {capture, analysis, tls, scenarios}. The CLI still reaches below the api
    # for its renderers (analysis.report/html), event types, and the commands not yet behind
    # the api (capture, keys, serve/connect/certs).
    "cli": {"api", "capture", "analysis", "tls", "scenarios", "crypto", "pcap", "net", "wire", "keys"},
    "api": {"capture", "analysis", "tls", "scenarios", "crypto", "pcap", "net", "wire"},
    "scenarios": {"tls", "capture", "pcap", "crypto", "wire"},
    "analysis": {"net", "crypto", "wire", "pcap"},
    "capture": {"pcap"},
    # keys: the doctor (ELF and /proc parsing, diagnosis) is self-contained; cli renders it.
    "keys": set(),
    "tls": {"crypto", "wire"},
    "crypto": {"wire"},
    "wire": set(),
    "net": {"pcap"},
    "pcap": set(),
}
COMMON = {"errors", "_buffer", "_files", "_text"}
# Top-level modules that belong to a layer (the others are COMMON, or the package's __init__).
TOP_LEVEL = {"api": "api", "_shares": "api"}
# Third-party packages and the only layer allowed to import each.
OWNERS = {
    "cryptography": {"crypto"},
    "hpack": {"analysis"},
    "subprocess": {"capture"},
    "typer": {"cli"},
    "rich": {"cli"},
    "click": {"cli"},
}


def _imports(path: Path) -> list[tuple[str, int]]:
    """(absolute module name, line) for each import in ``path``."""
    rel = path.relative_to(PKG.parent).with_suffix("")
    package = list(rel.parts[:-1])
    out: list[tuple[str, int]] = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out += [(a.name, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
                names = [f"{mod}.{a.name}" for a in node.names] if not node.module else [mod]
                out += [(n, node.lineno) for n in names]
            elif node.module:
                out.append((node.module, node.lineno))
    return out


def _layer_files() -> list[tuple[str, Path]]:
    out = []
    for p in sorted(PKG.rglob("*.py")):
        parts = p.relative_to(PKG).parts
        if len(parts) > 1:
            out.append((parts[0], p))
        elif p.stem in TOP_LEVEL:
            out.append((TOP_LEVEL[p.stem], p))
    return out


def test_imports_go_down_only() -> None:
    bad = []
    for layer, path in _layer_files():
        for name, line in _imports(path):
            parts = name.split(".")
            if parts[0] != "capdebug" or len(parts) < 2:
                continue
            target = TOP_LEVEL.get(parts[1], parts[1])
            if target == layer or target in COMMON or target == "__version__":
                continue
            if target not in ALLOWED[layer]:
                bad.append(f"{path.relative_to(PKG.parent)}:{line} imports {name} ({layer} -> {target})")
    assert bad == []


# The commands behind the api import it, the renderers and the types they render, nothing else
# of the library (the capture, keys and engine commands are not behind the api yet).
_API_COMMANDS = ("triage", "decrypt", "report", "_common")
_RENDERING = {"capdebug.analysis.events", "capdebug.analysis.report", "capdebug.analysis.html"}
_RENDERING |= {"capdebug.analysis.triage", "capdebug.crypto.keylog", "capdebug.errors", "capdebug.api"}
_RENDERING |= {"capdebug._text", "capdebug._files"}  # escaping at the edge; private output files


def test_decoding_commands_call_only_the_api() -> None:
    bad = []
    for name in _API_COMMANDS:
        path = PKG / "cli" / f"{name}.py"
        for module, line in _imports(path):
            if module.startswith("capdebug.") and not module.startswith("capdebug.cli."):
                if module not in _RENDERING:
                    bad.append(f"cli/{name}.py:{line} imports {module}")
    assert bad == []


def test_third_party_stays_in_its_layer() -> None:
    bad = []
    for layer, path in _layer_files():
        for name, line in _imports(path):
            root = name.split(".")[0]
            owners = OWNERS.get(root)
            if owners is not None and layer not in owners:
                bad.append(f"{path.relative_to(PKG.parent)}:{line} imports {name}")
    for path in PKG.glob("*.py"):
        for name, line in _imports(path):
            if name.split(".")[0] in OWNERS:
                bad.append(f"{path.relative_to(PKG.parent)}:{line} imports {name}")
    assert bad == []


def test_the_checker_sees_violations(tmp_path: Path) -> None:
    """The checker itself can fail: a relative import two levels up is resolved."""
    names = dict(_imports(PKG / "analysis" / "decode" / "decoder.py"))
    assert "capdebug.net.flow" in names
    assert "capdebug.crypto.keylog" in names


def test_public_api() -> None:
    """``capdebug.__all__`` is the curated public API: it names exactly the public objects,
    the ones loaded eagerly and the api ones loaded on first use."""
    import subprocess
    import sys
    import types

    from capdebug import api

    public = {
        n for n, v in vars(capdebug).items() if not n.startswith("_") and not isinstance(v, types.ModuleType)
    }
    public.discard("annotations")
    lazy = set(capdebug._LAZY)
    assert public - lazy <= set(capdebug.__all__)
    assert set(capdebug.__all__) - {"__version__"} == (public - lazy) | lazy
    assert len(capdebug.__all__) == len(set(capdebug.__all__))
    for name in capdebug.__all__:
        assert not isinstance(getattr(capdebug, name), types.ModuleType), name
    assert set(dir(capdebug)) >= set(capdebug.__all__)
    # Every entry point of the api is public, under the same object.
    for name in api.__all__:
        if name != "KeylogSource":
            assert getattr(capdebug, name) is getattr(api, name), name
    # ... and `import capdebug` alone does not load it (nor what it decodes with).
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import capdebug, sys; print(sorted(m for m in sys.modules if 'capdebug.' in m))",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.strip() == "['capdebug.errors']"


# -- the pure layers read no clock, environment variable or file ---------------------------

PURE = ("wire", "crypto", "tls", "pcap", "net", "analysis")
# Attributes that read the clock or the environment, or open files, by the module (or class)
# they are looked up on; aliases (``import datetime as dt``, ``from os import environ``) are
# followed.
_IMPURE_ATTRS: dict[str, set[str]] = {
    "os": {"environ", "environb", "getenv", "getenvb", "putenv", "open", "fdopen"},
    "time": {"time", "time_ns", "monotonic", "monotonic_ns", "perf_counter", "perf_counter_ns"},
    "datetime": {"now", "utcnow", "today"},
    "date": {"today"},
    "io": {"open"},
    # capdebug._files writes (0600, never through a symlink): still writing a file.
    "_files": {"open_private", "write_private", "atomic_output"},
}
# Methods that read or write a file whatever the object (pathlib.Path's, mostly).
_IMPURE_METHODS = {"read_text", "read_bytes", "write_text", "write_bytes"}

# (file, enclosing function) -> why it may stay. Each is a path form beside a stream/bytes form,
# or a contract that a test pins; the paths are always chosen by the edge (api, cli).
ALLOW_IMPURE: dict[tuple[str, str], str] = {
    ("capdebug/pcap/open.py", "open_capture"): "the path form of open_capture(stream): the edge "
    "names the capture, the reader owns the file it opened",
    ("capdebug/pcap/classic.py", "write_pcap"): "the path form of write_pcap(stream)",
    ("capdebug/crypto/keylog.py", "KeyLog.from_file"): "the path form of KeyLog.parse(bytes); "
    "the edge names the file (--keylog, $SSLKEYLOGFILE's value)",
    ("capdebug/crypto/rsa_kx.py", "RsaKey.from_file"): "the path form of RsaKey.from_bytes; "
    "the edge names the file (--rsa-key FILE[@HOST:PORT])",
    ("capdebug/crypto/keylog.py", "write_keylog_file"): "the one writer of key-log files: 0600 "
    "from the first byte, never through a symlink (kept in one place for that rule)",
    ("capdebug/crypto/testpki.py", "_write"): "writes the throwaway test PKI into the folder "
    "`capdebug certs make` names (0600 keys from the first byte)",
    ("capdebug/analysis/sessions.py", "embed_keylog"): "writes the embedded pcapng the edge names "
    "(keys embed); to move behind api with the keys commands",
    ("capdebug/analysis/sessions.py", "strip_secrets"): "writes the stripped pcapng the edge names "
    "(keys strip); to move behind api with the keys commands",
    ("capdebug/analysis/sessions.py", "export_connections"): "writes the excerpt the edge names "
    "(keys export); to move behind api with the keys commands",
    ("capdebug/tls/trace.py", "Tracer.create"): "CAPDEBUG_TRACE is a contract of the engine "
    "that a test pins (tests/tls/test_engine_memory.py::test_trace_off_formats_nothing): to "
    "move to the edge together with that test",
}


class _Impurities(ast.NodeVisitor):
    """(enclosing function, line, what) for each clock, environment or file access."""

    def __init__(self) -> None:
        self.found: list[tuple[str, int, str]] = []
        self.scope: list[str] = []
        self.alias: dict[str, str] = {}  # local name -> module or class it stands for

    def _add(self, node: ast.AST, what: str) -> None:
        self.found.append((".".join(self.scope) or "<module>", getattr(node, "lineno", 0), what))

    def visit_Import(self, node: ast.Import) -> None:
        for a in node.names:
            self.alias[a.asname or a.name] = a.name.split(".")[-1]

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        module = (node.module or "").split(".")[-1]
        for a in node.names:
            if module in _IMPURE_ATTRS and a.name in _IMPURE_ATTRS[module] and module != "_files":
                self._add(node, f"from {node.module} import {a.name}")
            self.alias[a.asname or a.name] = a.name

    def _scoped(self, node: ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        self.scope.append(node.name)
        self.generic_visit(node)
        self.scope.pop()

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        self._scoped(node)

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        self._scoped(node)

    def visit_AsyncFunctionDef(self, node: ast.AsyncFunctionDef) -> None:
        self._scoped(node)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        base = node.value
        name = None
        if isinstance(base, ast.Name):
            name = base.id
        elif isinstance(base, ast.Attribute):
            name = base.attr
        if name is not None:
            name = self.alias.get(name, name)
            if node.attr in _IMPURE_ATTRS.get(name, ()):
                self._add(node, f"{name}.{node.attr}")
        if node.attr in _IMPURE_METHODS:
            self._add(node, f".{node.attr}()")
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        if isinstance(node.func, ast.Name) and node.func.id == "open":
            self._add(node, "open()")
        elif isinstance(node.func, ast.Name) and node.func.id in _IMPURE_ATTRS["_files"]:
            self._add(node, f"{node.func.id}()")
        self.generic_visit(node)


def impurities(source: str) -> list[tuple[str, int, str]]:
    visitor = _Impurities()
    visitor.visit(ast.parse(source))
    return visitor.found


def test_pure_layers_read_no_clock_environment_or_file() -> None:
    bad = []
    allowed_seen = set()
    for layer, path in _layer_files():
        if layer not in PURE:
            continue
        rel = str(path.relative_to(PKG.parent))
        for scope, line, what in impurities(path.read_text()):
            if (rel, scope) in ALLOW_IMPURE:
                allowed_seen.add((rel, scope))
            else:
                bad.append(f"{rel}:{line} ({scope}) uses {what}")
    assert bad == []
    # An allowance that is no longer needed is removed, not kept "just in case".
    assert allowed_seen == set(ALLOW_IMPURE)


def test_the_purity_checker_sees_violations() -> None:
    planted = (
        "import os, time\n"
        "import datetime as dt\n"
        "from datetime import datetime\n"
        "from os import environ\n"
        "from pathlib import Path\n"
        "class Reader:\n"
        "    def load(self, p: Path) -> bytes:\n"
        "        return p.read_bytes()\n"
        "def f() -> None:\n"
        "    os.environ.get('X'); os.getenv('Y'); time.monotonic(); time.time()\n"
        "    datetime.now(); dt.datetime.utcnow(); dt.date.today(); time.perf_counter()\n"
        "    open('x'); os.open('x', 0); Path('x').write_text('y')\n"
    )
    found = impurities(planted)
    whats = [what for _, _, what in found]
    assert whats == [
        "from os import environ",
        ".read_bytes()",
        "os.environ",
        "os.getenv",
        "time.monotonic",
        "time.time",
        "datetime.now",
        "datetime.utcnow",
        "date.today",
        "time.perf_counter",
        "open()",
        "os.open",
        ".write_text()",
    ]
    assert found[1][:2] == ("Reader.load", 8)
    assert {scope for scope, _, _ in found[2:]} == {"f"}
    # Pure code gives nothing.
    assert impurities("def g(now: int) -> int:\n    return now + 1\n") == []
