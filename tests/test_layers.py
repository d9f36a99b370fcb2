"""The layering of ARCHITECTURE.md, enforced: imports only go down, and third-party packages
stay in the one layer that owns them."""

from __future__ import annotations

import ast
from pathlib import Path

import capdebug

PKG = Path(capdebug.__file__).parent

# Which capdebug subpackages each layer may import (besides itself, errors, _buffer, _files, _text).
ALLOWED: dict[str, set[str]] = {
    "cli": {"capture", "analysis", "tls", "scenarios", "crypto", "pcap", "net", "wire"},
    "scenarios": {"tls", "capture", "pcap", "crypto", "wire"},
    "analysis": {"net", "crypto", "wire", "pcap"},
    "capture": {"pcap"},
    "tls": {"crypto", "wire"},
    "crypto": {"wire"},
    "wire": set(),
    "net": {"pcap"},
    "pcap": set(),
}
COMMON = {"errors", "_buffer", "_files", "_text"}
# Third-party packages and the only layer allowed to import each.
OWNERS = {
    "cryptography": {"crypto"},
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
    return [
        (p.relative_to(PKG).parts[0], p)
        for p in sorted(PKG.rglob("*.py"))
        if len(p.relative_to(PKG).parts) > 1
    ]


def test_imports_go_down_only() -> None:
    bad = []
    for layer, path in _layer_files():
        for name, line in _imports(path):
            parts = name.split(".")
            if parts[0] != "capdebug" or len(parts) < 2:
                continue
            target = parts[1]
            if target == layer or target in COMMON or target == "__version__":
                continue
            if target not in ALLOWED[layer]:
                bad.append(f"{path.relative_to(PKG.parent)}:{line} imports {name} ({layer} -> {target})")
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
    names = dict(_imports(PKG / "analysis" / "decode.py"))
    assert "capdebug.net.flow" in names
    assert "capdebug.crypto.keylog" in names


def test_public_api() -> None:
    """``capdebug.__all__`` is the curated public API: it names exactly the public objects."""
    import types

    public = {
        n for n, v in vars(capdebug).items() if not n.startswith("_") and not isinstance(v, types.ModuleType)
    }
    public.discard("annotations")
    assert set(capdebug.__all__) - {"__version__"} == public
    assert len(capdebug.__all__) == len(set(capdebug.__all__))
