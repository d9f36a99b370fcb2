"""Just enough of ELF to say which TLS library a program carries: pure, bytes in, facts out.

Reads the ELF header, program headers (PT_INTERP, PT_DYNAMIC), section headers, the dynamic
section (DT_NEEDED, DT_SONAME, DT_RPATH, DT_RUNPATH), the dynamic and static symbol tables'
names, the GNU version definitions (``OPENSSL_3.0.0``, ``GNUTLS_3_6_13``: the most reliable
version of a shared library), version strings in ``.rodata`` and Go's build information.
Layout: the System V gABI, "ELF-64 Object File Format" 1.5, and glibc's ``elf.h``; Go's
build information: ``debug/buildinfo`` of the Go distribution (the format is documented there).

Everything is bounds-checked: a truncated or hostile file raises :class:`ElfError` (a
``DecodeError``) and never an ``IndexError`` or ``struct.error``.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass, field

from ..errors import DecodeError

BytesLike = bytes | bytearray | memoryview

__all__ = ["ElfError", "ElfInfo", "go_version_from_buildinfo", "is_elf", "parse_elf", "shebang"]

ELF_MAGIC = b"\x7fELF"
_PT_DYNAMIC, _PT_INTERP, _PT_LOAD = 2, 3, 1
_SHT_SYMTAB, _SHT_DYNSYM, _SHT_GNU_VERDEF = 2, 11, 0x6FFFFFFD
_DT_NEEDED, _DT_STRTAB, _DT_STRSZ, _DT_SONAME, _DT_RPATH, _DT_RUNPATH = 1, 5, 10, 14, 15, 29
_ET_DYN = 3
_MACHINES = {3: "i386", 40: "arm", 62: "x86_64", 183: "aarch64", 243: "riscv64", 21: "ppc64", 22: "s390x"}

#: Version strings worth finding; each library embeds one (``OpenSSL_version()``'s text).
_VERSION_RE = re.compile(
    rb"(OpenSSL \d+\.\d+\.\d+[a-z]?(?:[ -][ -~]{0,40}?)?|LibreSSL \d+\.\d+\.\d+|BoringSSL)\x00"
)
#: Go's build information starts with this magic (Go ``debug/buildinfo``), 16-byte aligned.
_GO_MAGIC = b"\xff Go buildinf:"
_MAX_SYMBOLS = 2_000_000


class ElfError(DecodeError):
    """The bytes are not an ELF file this parser can read (truncated, corrupt, unsupported)."""


@dataclass(frozen=True, slots=True)
class ElfInfo:
    """What one ELF file says about itself."""

    machine: str
    """``x86_64``, ``aarch64``... (``e_machine``), or ``machine-N`` when unknown."""
    bits: int
    """32 or 64 (``EI_CLASS``)."""
    shared_object: bool
    """``ET_DYN`` without an interpreter: a library (a PIE program has PT_INTERP)."""
    interpreter: str | None
    """PT_INTERP: the dynamic loader; None for a statically linked program."""
    needed: tuple[str, ...] = ()
    """DT_NEEDED, in order."""
    soname: str | None = None
    runpath: tuple[str, ...] = ()
    """DT_RUNPATH, else DT_RPATH, split on ``:`` (``$ORIGIN`` left for the caller)."""
    dynamic_symbols: frozenset[str] = field(default_factory=frozenset)
    """Names defined by this file in ``.dynsym`` (what it exports)."""
    imported_symbols: frozenset[str] = field(default_factory=frozenset)
    """Names ``.dynsym`` needs from elsewhere."""
    static_symbols: frozenset[str] = field(default_factory=frozenset)
    """Defined names in ``.symtab`` (absent when stripped)."""
    version_definitions: tuple[str, ...] = ()
    """GNU version definitions (``OPENSSL_3.0.0``...), the file's own first."""
    version_strings: tuple[str, ...] = ()
    """Library version texts found in read-only data (``OpenSSL 3.0.13 30 Jan 2024``)."""
    go_version: str | None = None
    """``go1.19.8`` when the file carries Go build information."""

    @property
    def static(self) -> bool:
        """A program with no dynamic loader: LD_PRELOAD cannot reach into it."""
        return self.interpreter is None and not self.shared_object

    def defines(self, name: str) -> bool:
        return name in self.dynamic_symbols or name in self.static_symbols


def is_elf(head: bytes) -> bool:
    return head[:4] == ELF_MAGIC


def shebang(head: bytes) -> list[str] | None:
    """``#!/usr/bin/env python3 -u`` -> ``["/usr/bin/env", "python3", "-u"]``; None if not a script."""
    if not head.startswith(b"#!"):
        return None
    line = head[2:].split(b"\n", 1)[0].decode("utf-8", "replace").strip()
    return line.split() or None


class _Reader:
    def __init__(self, data: BytesLike, little: bool, bits: int) -> None:
        self.data = memoryview(data).cast("B")
        self.end = "<" if little else ">"
        self.word = "Q" if bits == 64 else "I"
        self.size = len(self.data)

    def unpack(self, fmt: str, offset: int) -> tuple[int, ...]:
        fmt = self.end + fmt.replace("W", self.word)
        n = struct.calcsize(fmt)
        if offset < 0 or offset + n > self.size:
            raise ElfError(f"ELF structure at offset {offset} runs past the end of the file ({self.size})")
        return struct.unpack_from(fmt, self.data, offset)

    def span(self, offset: int, length: int) -> memoryview:
        if offset < 0 or length < 0 or offset + length > self.size:
            raise ElfError(f"ELF section at offset {offset} (+{length}) runs past the end of the file")
        return self.data[offset : offset + length]

    def cstr(self, table: memoryview, index: int) -> str:
        if index >= len(table):
            raise ElfError("ELF string index past its string table")
        end = bytes(table[index : index + 4096]).find(b"\x00")
        raw = bytes(table[index : index + end]) if end >= 0 else bytes(table[index:])
        return raw.decode("utf-8", "replace")


@dataclass(frozen=True, slots=True)
class _Section:
    name_index: int
    type: int
    addr: int
    offset: int
    size: int
    link: int


def parse_elf(data: BytesLike, *, scan_strings: bool = True, static_symbols: bool = True) -> ElfInfo:
    """Parse an ELF file held in ``data`` (bytes, mmap, memoryview).

    ``scan_strings`` looks for version strings in ``.rodata`` (a regular-expression pass over
    it); ``static_symbols`` reads ``.symtab``. Both are skipped for libraries that only matter
    for their dependencies.
    """
    view = memoryview(data).cast("B")
    if len(view) < 52 or bytes(view[:4]) != ELF_MAGIC:
        raise ElfError("not an ELF file (no \\x7fELF magic)")
    ei_class, ei_data = view[4], view[5]
    if ei_class not in (1, 2) or ei_data not in (1, 2):
        raise ElfError(f"unsupported ELF class {ei_class} / data encoding {ei_data}")
    bits = 64 if ei_class == 2 else 32
    r = _Reader(view, ei_data == 1, bits)
    (e_type, e_machine, _v, _entry, phoff, shoff, _fl, _eh, phentsize, phnum, shentsize, shnum, shstrndx) = (
        r.unpack("HHIWWWIHHHHHH", 16)
    )
    phdrs = _program_headers(r, bits, phoff, phentsize, phnum)
    interpreter = None
    dynamic: tuple[int, int] | None = None
    loads: list[tuple[int, int, int]] = []
    for p_type, p_offset, p_vaddr, p_filesz in phdrs:
        if p_type == _PT_INTERP:
            interpreter = bytes(r.span(p_offset, p_filesz)).split(b"\x00")[0].decode("utf-8", "replace")
        elif p_type == _PT_DYNAMIC:
            dynamic = (p_offset, p_filesz)
        elif p_type == _PT_LOAD:
            loads.append((p_vaddr, p_offset, p_filesz))
    sections = _section_headers(r, bits, shoff, shentsize, shnum)
    names = _section_names(r, sections, shstrndx)

    needed: list[str] = []
    soname = None
    runpath: tuple[str, ...] = ()
    if dynamic is not None:
        needed, soname, runpath = _dynamic(r, bits, dynamic, loads)

    defined: set[str] = set()
    imported: set[str] = set()
    static: set[str] = set()
    verdefs: list[str] = []
    rodata: list[memoryview] = []
    go_version = None
    for name, sec in zip(names, sections, strict=True):
        if sec.type in (_SHT_DYNSYM, _SHT_SYMTAB) and (sec.type == _SHT_DYNSYM or static_symbols):
            strtab = sections[sec.link] if sec.link < len(sections) else None
            if strtab is None:
                raise ElfError(f"symbol table {name} links to a missing string table")
            into = (defined, imported) if sec.type == _SHT_DYNSYM else (static, None)
            _symbols(r, bits, sec, r.span(strtab.offset, strtab.size), *into)
        elif sec.type == _SHT_GNU_VERDEF and sec.link < len(sections):
            strtab = sections[sec.link]
            verdefs = _verdefs(r, sec, r.span(strtab.offset, strtab.size))
        elif name == ".rodata" or name == ".go.buildinfo":
            if name == ".go.buildinfo":
                go_version = go_version_from_buildinfo(r.span(sec.offset, min(sec.size, 1 << 16)))
            elif scan_strings:
                rodata.append(r.span(sec.offset, sec.size))
    if not sections and scan_strings:
        rodata.append(view)  # no section headers (sstrip'd): the whole file is the haystack
    if go_version is None and not sections and static_symbols:
        go_version = _find_go_buildinfo(view)
    versions: list[str] = []
    for blob in rodata:
        for m in _VERSION_RE.finditer(blob):
            text = m.group(1).decode("ascii").strip()
            if text not in versions:
                versions.append(text)
            if len(versions) >= 8:
                break
    return ElfInfo(
        machine=_MACHINES.get(e_machine, f"machine-{e_machine}"),
        bits=bits,
        shared_object=e_type == _ET_DYN and interpreter is None,
        interpreter=interpreter,
        needed=tuple(needed),
        soname=soname,
        runpath=runpath,
        dynamic_symbols=frozenset(defined),
        imported_symbols=frozenset(imported),
        static_symbols=frozenset(static),
        version_definitions=tuple(verdefs),
        version_strings=tuple(versions),
        go_version=go_version,
    )


def _program_headers(
    r: _Reader, bits: int, phoff: int, phentsize: int, phnum: int
) -> list[tuple[int, int, int, int]]:
    out = []
    for i in range(min(phnum, 4096)):
        at = phoff + i * phentsize
        if bits == 64:
            p_type, _flags, offset, vaddr, _paddr, filesz = r.unpack("IIQQQQ", at)
        else:
            p_type, offset, vaddr, _paddr, filesz = r.unpack("IIIII", at)
        out.append((p_type, offset, vaddr, filesz))
    return out


def _section_headers(r: _Reader, bits: int, shoff: int, shentsize: int, shnum: int) -> list[_Section]:
    if shoff == 0:
        return []
    fmt = "IIQQQQI" if bits == 64 else "IIIIIII"
    return [
        _Section(n, t, addr, off, size, link)
        for n, t, _f, addr, off, size, link in (
            r.unpack(fmt, shoff + i * shentsize) for i in range(min(shnum, 65536))
        )
    ]


def _section_names(r: _Reader, sections: list[_Section], shstrndx: int) -> list[str]:
    if not sections or shstrndx >= len(sections):
        return ["" for _ in sections]
    table = r.span(sections[shstrndx].offset, sections[shstrndx].size)
    return [r.cstr(table, s.name_index) if s.name_index < len(table) else "" for s in sections]


def _dynamic(
    r: _Reader, bits: int, dynamic: tuple[int, int], loads: list[tuple[int, int, int]]
) -> tuple[list[str], str | None, tuple[str, ...]]:
    entry = 16 if bits == 64 else 8
    offset, size = dynamic
    tags: list[tuple[int, int]] = []
    for i in range(min(size // entry, 100_000)):
        tag, value = r.unpack("WW", offset + i * entry)
        if tag == 0:  # DT_NULL ends the array
            break
        tags.append((tag, value))
    strtab_addr = next((v for t, v in tags if t == _DT_STRTAB), None)
    strsz = next((v for t, v in tags if t == _DT_STRSZ), 0)
    if strtab_addr is None:
        return [], None, ()
    # DT_STRTAB is a virtual address: map it to a file offset through the PT_LOAD segments.
    str_off = next((off + strtab_addr - va for va, off, sz in loads if va <= strtab_addr < va + sz), None)
    if str_off is None:
        raise ElfError("DT_STRTAB points outside every loadable segment")
    table = r.span(str_off, min(strsz, r.size - str_off))
    needed = [r.cstr(table, v) for t, v in tags if t == _DT_NEEDED]
    soname = next((r.cstr(table, v) for t, v in tags if t == _DT_SONAME), None)
    run = next((v for t, v in tags if t == _DT_RUNPATH), None)
    if run is None:
        run = next((v for t, v in tags if t == _DT_RPATH), None)
    runpath = tuple(p for p in r.cstr(table, run).split(":") if p) if run is not None else ()
    return needed, soname, runpath


def _symbols(
    r: _Reader, bits: int, sec: _Section, strtab: memoryview, defined: set[str], imported: set[str] | None
) -> None:
    entsize = 24 if bits == 64 else 16
    count = min(sec.size // entsize, _MAX_SYMBOLS)
    table = bytes(strtab)
    raw = r.span(sec.offset, count * entsize)
    # One pass of iter_unpack: a big program (node) has 10^5 symbols.
    fmt = r.end + ("IBBHQQ" if bits == 64 else "IIIBBH")
    for entry in struct.iter_unpack(fmt, raw):
        name, shndx = (entry[0], entry[3]) if bits == 64 else (entry[0], entry[5])
        if name == 0 or name >= len(table):
            continue
        end = table.find(b"\x00", name)
        text = table[name : end if end >= 0 else len(table)].decode("utf-8", "replace")
        if shndx != 0:
            defined.add(text)
        elif imported is not None:
            imported.add(text)


def _verdefs(r: _Reader, sec: _Section, strtab: memoryview) -> list[str]:
    """Elf_Verdef chain (vd_next) with the first Elf_Verdaux name of each."""
    out: list[str] = []
    at = sec.offset
    for _ in range(4096):
        _ver, flags, _ndx, cnt, _hash, aux, nxt = r.unpack("HHHHIII", at)
        if cnt and not flags & 1:  # VER_FLG_BASE names the file itself
            (vda_name, _vda_next) = r.unpack("II", at + aux)
            out.append(r.cstr(strtab, vda_name))
        if nxt == 0:
            break
        at += nxt
    return out


def go_version_from_buildinfo(blob: BytesLike) -> str | None:
    """The Go version in a ``.go.buildinfo`` blob (Go 1.18+ inline format), else None.

    Layout (``debug/buildinfo``): 14-byte magic, pointer size, flags; with flags bit 1 set the
    version and module information follow at offset 32 as uvarint-length-prefixed strings.
    Older toolchains store pointers instead: then only "a Go program" is known (``go?``).
    """
    data = bytes(memoryview(blob)[:4096])
    if not data.startswith(_GO_MAGIC) or len(data) < 32:
        return None
    if not data[15] & 0x2:
        return "go?"
    n, shift, at = 0, 0, 32
    while at < len(data):
        b = data[at]
        n |= (b & 0x7F) << shift
        at += 1
        if not b & 0x80:
            break
        shift += 7
    text = data[at : at + n]
    return text.decode("utf-8", "replace") if text.startswith(b"go") else "go?"


def _find_go_buildinfo(view: memoryview) -> str | None:
    hay = bytes(view[: min(len(view), 64 << 20)])
    at = hay.find(_GO_MAGIC)
    while at >= 0 and at % 16:
        at = hay.find(_GO_MAGIC, at + 1)
    return go_version_from_buildinfo(view[at:]) if at >= 0 else None
