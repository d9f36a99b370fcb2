"""The edge of the doctor: read a program, its libraries or a process's maps into ProgramFacts.

Files are mapped (mmap) rather than read: node is 100 MB and only its headers, symbol tables
and ``.rodata`` are looked at. Libraries are found the way the dynamic loader would look
(DT_RUNPATH/DT_RPATH with ``$ORIGIN``, ``/etc/ld.so.conf``'s directories, the default
directories), breadth-first through DT_NEEDED. Only files named by the caller, their
libraries, ``/etc/ld.so.conf*`` and ``/proc/PID/{exe,maps,cmdline}`` are read.
"""

from __future__ import annotations

import glob
import mmap
import os
from collections.abc import Callable

from ..errors import UsageError
from .doctor import ProgramFacts
from .elf import ElfError, ElfInfo, is_elf, parse_elf, shebang

__all__ = ["library_dirs", "parse_maps", "probe_process", "probe_program"]

#: Libraries whose strings and symbols matter; the others are read for DT_NEEDED only.
_TLS_PREFIXES = ("libssl", "libcrypto", "libgnutls", "libnss3", "libcurl", "libpython")
_MAX_LIBRARIES = 400
_DEFAULT_DIRS = ("/lib64", "/usr/lib64", "/lib", "/usr/lib")


def _read_elf(path: str, *, full: bool) -> ElfInfo:
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size == 0:
            raise ElfError(f"{path} is empty")
        with mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ) as mm:
            view = memoryview(mm)
            try:
                return parse_elf(view, scan_strings=full, static_symbols=full)
            finally:
                view.release()


def _conf_dirs(path: str, depth: int = 0) -> list[str]:
    out: list[str] = []
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            lines = f.read().splitlines()
    except OSError:
        return out
    for line in lines:
        line = line.split("#", 1)[0].strip()
        if line.startswith("include ") and depth < 4:
            for inc in sorted(glob.glob(line.split(None, 1)[1])):
                out += _conf_dirs(inc, depth + 1)
        elif line.startswith("/"):
            out.append(line)
    return out


def library_dirs() -> list[str]:
    """The loader's search directories from /etc/ld.so.conf, then its defaults."""
    return [*_conf_dirs("/etc/ld.so.conf"), *_DEFAULT_DIRS]


def _resolve(name: str, origin: str, runpath: tuple[str, ...], dirs: list[str]) -> str | None:
    if "/" in name:
        return name if os.path.exists(name) else None
    for d in [p.replace("$ORIGIN", origin).replace("${ORIGIN}", origin) for p in runpath] + dirs:
        candidate = os.path.join(d, name)
        if os.path.exists(candidate):
            return candidate
    return None


def probe_program(path: str, which: Callable[[str], str | None]) -> ProgramFacts:
    """Facts about the program at ``path`` (a script is followed to its interpreter once).

    ``which`` finds a command on PATH for ``#!/usr/bin/env NAME`` scripts.
    """
    return _probe(path, which, depth=0)


def _probe(path: str, which: Callable[[str], str | None], depth: int) -> ProgramFacts:
    try:
        with open(path, "rb") as f:
            head = f.read(256)
    except IsADirectoryError as exc:
        raise UsageError(f"{path} is a directory, not a program") from exc
    if not is_elf(head):
        line = shebang(head)
        if line is None or depth > 2:
            return ProgramFacts(path=path, elf=None)
        interp = line[0]
        if os.path.basename(interp) == "env" and len(line) > 1:
            args = [a for a in line[1:] if not a.startswith("-")]
            found = which(args[0]) if args else None
            interp = found or interp
        inner = _probe(interp, which, depth + 1) if os.path.exists(interp) else None
        return ProgramFacts(path=path, elf=None, interpreter=tuple(line), interpreter_facts=inner)
    elf = _read_elf(path, full=True)
    libraries: dict[str, ElfInfo | None] = {}
    via: dict[str, str] = {}
    if not elf.static:
        dirs = library_dirs()
        queue: list[tuple[str, ElfInfo, str, str]] = [(path, elf, os.path.dirname(path), path)]
        while queue and len(libraries) < _MAX_LIBRARIES:
            owner, info, origin, _ = queue.pop(0)
            for name in info.needed:
                if name in libraries:
                    continue
                found = _resolve(name, origin, info.runpath, dirs)
                via[name] = owner
                if found is None:
                    libraries[name] = None
                    continue
                try:
                    lib = _read_elf(found, full=name.startswith(_TLS_PREFIXES))
                except (ElfError, OSError):
                    libraries[name] = None
                    continue
                libraries[name] = lib
                queue.append((name, lib, os.path.dirname(os.path.realpath(found)), found))
    return ProgramFacts(path=path, elf=elf, libraries=libraries, via=via)


def parse_maps(text: str) -> list[str]:
    """The distinct file paths mapped in a ``/proc/PID/maps`` text, in order of first mapping."""
    out: list[str] = []
    seen: set[str] = set()
    for line in text.splitlines():
        parts = line.split(None, 5)
        if len(parts) == 6 and parts[5].startswith("/"):
            p = parts[5].removesuffix(" (deleted)")
            if p not in seen:
                seen.add(p)
                out.append(p)
    return out


def probe_process(pid: int) -> ProgramFacts:
    """Facts about a running process: its executable and every library it has mapped now
    (which includes the ones loaded at run time, such as Python's ``_ssl`` and its libssl)."""
    base = f"/proc/{pid}"
    try:
        with open(f"{base}/maps", encoding="utf-8", errors="replace") as f:
            maps = parse_maps(f.read())
        with open(f"{base}/cmdline", "rb") as fb:
            cmdline = tuple(a.decode("utf-8", "replace") for a in fb.read().split(b"\0") if a)
        exe = os.readlink(f"{base}/exe")
    except FileNotFoundError as exc:
        raise UsageError(f"no process {pid}") from exc
    except PermissionError as exc:
        raise UsageError(f"cannot read /proc/{pid}: permission denied (run as its user or root)") from exc
    # /proc/PID/exe opens the very file that runs, even if it has since been replaced.
    elf = _read_elf(f"{base}/exe", full=True)
    libraries: dict[str, ElfInfo | None] = {}
    for p in maps:
        name = os.path.basename(p)
        if ".so" not in name or p == exe.removesuffix(" (deleted)"):
            continue
        try:
            libraries[name] = _read_elf(p, full=name.startswith(_TLS_PREFIXES))
        except (ElfError, OSError, ValueError):
            libraries[name] = None
    return ProgramFacts(
        path=exe.removesuffix(" (deleted)"), elf=elf, libraries=libraries, pid=pid, command_line=cmdline
    )
