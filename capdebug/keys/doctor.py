"""Which TLS library a program uses, and how to get its keys: a pure diagnosis over ELF facts.

:func:`diagnose` takes what :mod:`capdebug.keys.probe` read (the program's :class:`ElfInfo`, its
libraries', or a process's mapped libraries) and returns a :class:`Diagnosis`: the library,
its version and linkage, the means that will make it write an NSS key log (``methods``), and
the plan in plain words, including what can still be learnt without keys.

Facts the rules rest on:
- OpenSSL 1.1.1 added ``SSL_CTX_set_keylog_callback``; a dynamically linked OpenSSL calls it
  through the PLT, so a preloaded library (our shim) can install it. OpenSSL never reads
  ``SSLKEYLOGFILE`` itself; 1.0.x has no callback at all.
- GnuTLS (3.4+; the issue's floor 3.6.13 is what Debian ships) and NSS read ``SSLKEYLOGFILE``.
- libcurl reads ``SSLKEYLOGFILE`` with its OpenSSL, GnuTLS and NSS backends; CPython 3.8+ does
  for contexts made by ``ssl.create_default_context()``.
- Node has ``--tls-keylog=FILE`` (12.3+), also accepted in ``NODE_OPTIONS``.
- Go's crypto/tls writes keys only to ``tls.Config.KeyLogWriter``; a static OpenSSL or
  BoringSSL is out of LD_PRELOAD's reach. Java's JSSE has no key log.
"""

from __future__ import annotations

import enum
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from .elf import ElfInfo

__all__ = ["Diagnosis", "KeylogMethod", "Linkage", "ProgramFacts", "TlsLibrary", "diagnose"]


class TlsLibrary(enum.Enum):
    OPENSSL = "openssl"
    LIBRESSL = "libressl"
    BORINGSSL = "boringssl"
    GNUTLS = "gnutls"
    NSS = "nss"
    GO = "go-crypto-tls"
    JAVA = "java-jsse"
    NONE = "none"


class Linkage(enum.Enum):
    DYNAMIC = "dynamic"
    """A shared library the dynamic loader maps (LD_PRELOAD can interpose)."""
    STATIC = "static"
    """Inside a program that has no dynamic loader at all."""
    BUNDLED = "bundled"
    """Compiled into a dynamically linked program (Node's OpenSSL): the loader cannot swap it."""
    NONE = "none"


class KeylogMethod(enum.Enum):
    ENV = "env"
    """Set ``SSLKEYLOGFILE``."""
    NODE_FLAG = "node-flag"
    """Add ``--tls-keylog=FILE`` to ``NODE_OPTIONS``."""
    SHIM = "shim"
    """Preload capdebug's key-log shim."""


@dataclass(frozen=True, slots=True)
class ProgramFacts:
    """What the probe read; the input of :func:`diagnose`."""

    path: str
    elf: ElfInfo | None
    """None for a script (see ``interpreter``) or an unreadable file."""
    libraries: Mapping[str, ElfInfo | None] = field(default_factory=dict)
    """soname or path -> facts, for every library found (None: named but not found)."""
    via: Mapping[str, str] = field(default_factory=dict)
    """library -> the library or program that needs it (for "libssl.so.3 through libpq.so.5")."""
    interpreter: tuple[str, ...] = ()
    """A script's ``#!`` line, split."""
    interpreter_facts: ProgramFacts | None = None
    pid: int | None = None
    """Set when the facts come from a running process (``/proc/PID/maps``)."""
    command_line: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Diagnosis:
    program: str
    tls_library: TlsLibrary
    version: str | None
    linkage: Linkage
    runtime: str | None
    """``node``, ``python``, ``java``, ``go``, ``curl`` or None."""
    methods: tuple[KeylogMethod, ...]
    """What ``capdebug run`` will switch on, in that order; empty when nothing outside works."""
    summary: str
    """One line: which library, how linked."""
    plan: tuple[str, ...]
    """Sentences: what to do."""
    without_keys: str
    evidence: tuple[str, ...] = ()

    def to_json(self) -> dict[str, object]:
        return {
            "program": self.program,
            "tls_library": self.tls_library.value,
            "version": self.version,
            "linkage": self.linkage.value,
            "runtime": self.runtime,
            "methods": [m.value for m in self.methods],
            "summary": self.summary,
            "plan": list(self.plan),
            "without_keys": self.without_keys,
            "evidence": list(self.evidence),
        }


WITHOUT_KEYS = (
    "Without keys, `capdebug triage CAPTURE` still shows the TLS version, cipher suite, SNI, ALPN, "
    "alerts sent in clear, the certificates of TLS 1.2 handshakes, and who closed or reset each "
    "connection."
)
_SHELLS = {"sh", "bash", "dash", "zsh", "ksh", "busybox", "env"}
_GNUTLS_VER = re.compile(r"GNUTLS_(\d+)_(\d+)(?:_(\d+))?$")
_OPENSSL_VER = re.compile(r"OPENSSL_(\d+)[._](\d+)[._](\d+)([a-z]?)$")


def diagnose(facts: ProgramFacts) -> Diagnosis:
    """The diagnosis for one program or process."""
    d = _diagnose(facts)
    if facts.pid is None:
        return d
    cmd = " ".join(facts.command_line) or facts.path
    restart = (
        f"Process {facts.pid} is already running: nothing can switch key logging on inside it "
        f"now. Restart it as `capdebug run --keylog FILE -- {cmd}`."
        if d.methods
        else f"Process {facts.pid} is already running."
    )
    return _replace_plan(d, (restart, *d.plan))


def _replace_plan(d: Diagnosis, plan: tuple[str, ...]) -> Diagnosis:
    return Diagnosis(
        d.program, d.tls_library, d.version, d.linkage, d.runtime, d.methods, d.summary, plan,
        d.without_keys, d.evidence,
    )  # fmt: skip


def _diagnose(facts: ProgramFacts) -> Diagnosis:
    name = facts.path
    base = os.path.basename(name)
    if facts.elf is None:
        if facts.interpreter_facts is not None:
            inner = _diagnose(facts.interpreter_facts)
            interp = os.path.basename(facts.interpreter_facts.path)
            if interp in _SHELLS or inner.tls_library is TlsLibrary.NONE:
                return _unknown(name, f"a script run by {interp}", (f"#! {' '.join(facts.interpreter)}",))
            return Diagnosis(
                name, inner.tls_library, inner.version, inner.linkage, inner.runtime, inner.methods,
                f"a script run by {interp}: {inner.summary}", inner.plan, inner.without_keys,
                (f"#! {' '.join(facts.interpreter)}", *inner.evidence),
            )  # fmt: skip
        return _unknown(name, "not an ELF program or script capdebug can read", ())
    elf = facts.elf
    libs = {k: v for k, v in facts.libraries.items() if v is not None}
    evidence: list[str] = []
    kind = "statically linked" if elf.static else "dynamically linked"

    if elf.go_version is not None:
        evidence.append(f".go.buildinfo: {elf.go_version}")
        return Diagnosis(
            name, TlsLibrary.GO, elf.go_version, Linkage.STATIC, "go", (),
            f"a Go program ({elf.go_version}) using Go's crypto/tls",
            (
                "Go's crypto/tls writes keys only where the program tells it: set "
                "`tls.Config.KeyLogWriter` to a file opened with mode 0600 (for instance from "
                "os.Getenv(\"SSLKEYLOGFILE\")) and rebuild. Nothing outside the program can do it: "
                "Go links its TLS statically and LD_PRELOAD never reaches it.",
            ),
            WITHOUT_KEYS, tuple(evidence),
        )  # fmt: skip
    if base in ("node", "nodejs") or any(s.startswith("_ZN4node") for s in elf.dynamic_symbols):
        version = _openssl_version(elf, None)
        evidence.append("exports node:: symbols" if base not in ("node", "nodejs") else f"program {base}")
        return Diagnosis(
            name, TlsLibrary.OPENSSL, version, Linkage.BUNDLED, "node", (KeylogMethod.NODE_FLAG,),
            f"Node.js with its own OpenSSL{_v(version)} compiled in",
            (
                "Pass `--tls-keylog=FILE` to node (or put it in NODE_OPTIONS); `capdebug run` "
                "does this. Node's OpenSSL is compiled into the binary, so the key-log shim cannot "
                "reach it.",
            ),
            WITHOUT_KEYS, tuple(evidence),
        )  # fmt: skip
    if "libjli.so" in elf.needed or elf.defines("JLI_Launch"):
        return Diagnosis(
            name, TlsLibrary.JAVA, None, Linkage.BUNDLED, "java", (),
            "a Java launcher: TLS is JSSE, inside the JVM",
            (
                "Java's JSSE writes no NSS key log and reads no SSLKEYLOGFILE. Load a Java agent "
                "that exports the TLS secrets in NSS format (run the JVM with "
                "`-javaagent:AGENT.jar=FILE`), then give FILE to capdebug.",
            ),
            WITHOUT_KEYS, ("needs libjli.so",),
        )  # fmt: skip

    python = elf.defines("Py_BytesMain") or any(n.startswith("libpython3") for n in elf.needed)
    curl = any(k.startswith("libcurl.so") for k in libs) or base == "curl"
    ssl = _find(libs, "libssl.so")
    gnutls = _find(libs, "libgnutls.so")
    nss = _find(libs, "libnss3.so") or _find(libs, "libssl3.so")
    for key in (ssl, gnutls, nss):
        if key is not None:
            evidence.append(f"loads {key}{_through(facts, key)}")

    if python:
        version = _openssl_version(libs.get(ssl or ""), libs.get(_find(libs, "libcrypto.so") or ""))
        evidence.append("CPython interpreter (Py_BytesMain)")
        return Diagnosis(
            name, TlsLibrary.OPENSSL, version, Linkage.DYNAMIC, "python",
            (KeylogMethod.ENV, KeylogMethod.SHIM),
            f"CPython; its ssl module loads OpenSSL{_v(version)} when imported",
            (
                "Set SSLKEYLOGFILE: Python 3.8+ honours it for contexts made by "
                "ssl.create_default_context() (as urllib, http.client and most libraries do). A "
                "program that builds its own SSLContext can set `ctx.keylog_filename`; "
                "`capdebug run` also preloads the key-log shim, which covers those.",
            ),
            WITHOUT_KEYS, tuple(evidence),
        )  # fmt: skip
    if curl:
        evidence.append("uses libcurl")
        version = _openssl_version(libs.get(ssl or ""), libs.get(_find(libs, "libcrypto.so") or ""))
        return Diagnosis(
            name, TlsLibrary.OPENSSL if ssl else TlsLibrary.GNUTLS if gnutls else TlsLibrary.NONE,
            version if ssl else _gnutls_version(libs.get(gnutls or "")), Linkage.DYNAMIC, "curl",
            (KeylogMethod.ENV,),
            "uses libcurl" + (f" with {ssl}" if ssl else f" with {gnutls}" if gnutls else ""),
            ("Set SSLKEYLOGFILE: libcurl writes the key log itself.",),
            WITHOUT_KEYS, tuple(evidence),
        )  # fmt: skip

    # Several TLS libraries can be loaded (psql: OpenSSL through libpq, GnuTLS through libldap):
    # the one nearest the program (breadth-first order of the probe) is named; every one that
    # can log gets its means switched on.
    methods: list[KeylogMethod] = []
    plan: list[str] = []
    found: list[tuple[TlsLibrary, str | None]] = []
    for key in sorted((k for k in (ssl, gnutls, nss) if k), key=list(libs).index):
        lib = libs[key]
        if key == gnutls:
            version = _gnutls_version(lib)
            found.append((TlsLibrary.GNUTLS, version))
            methods.append(KeylogMethod.ENV)
            plan.append(f"Set SSLKEYLOGFILE: GnuTLS{_v(version)} ({key}) writes the key log itself.")
        elif key == nss:
            found.append((TlsLibrary.NSS, None))
            methods.append(KeylogMethod.ENV)
            plan.append(f"Set SSLKEYLOGFILE: NSS ({key}) writes the key log itself.")
        else:
            version = _openssl_version(lib, libs.get(_find(libs, "libcrypto.so") or ""))
            libre = any(v.startswith("LibreSSL") for v in lib.version_strings)
            found.append((TlsLibrary.LIBRESSL if libre else TlsLibrary.OPENSSL, version))
            if lib.defines("SSL_CTX_set_keylog_callback"):
                methods.append(KeylogMethod.SHIM)
                plan.append(
                    f"The key-log shim will work: {key} is loaded dynamically, so `capdebug run` "
                    "preloads a small library that installs OpenSSL's key-log callback on every "
                    "SSL_CTX (OpenSSL 1.1.1+ has one), without changing anything else."
                )
            else:
                plan.append(
                    f"{key} has no SSL_CTX_set_keylog_callback (OpenSSL before 1.1.1 or LibreSSL): "
                    "no key log can be obtained from outside; upgrade the library."
                )
    if found:
        library, version = found[0]
        names = ", ".join(k for k in sorted((k for k in (ssl, gnutls, nss) if k), key=list(libs).index))
        summary = f"{kind}, {library.value}{_v(version)} ({names})"
        return Diagnosis(
            name, library, version, Linkage.DYNAMIC, None, tuple(dict.fromkeys(methods)), summary,
            tuple(plan), WITHOUT_KEYS, tuple(evidence),
        )  # fmt: skip

    # The program itself carries a TLS library (no shared libssl in sight).
    boring = any("BoringSSL" in v for v in elf.version_strings) or elf.defines("BORINGSSL_self_test")
    has_openssl = elf.defines("SSL_CTX_new") or any(v.startswith("OpenSSL") for v in elf.version_strings)
    if boring or has_openssl:
        version = None if boring else _openssl_version(elf, None)
        what = "BoringSSL" if boring else f"OpenSSL{_v(version)}"
        link = Linkage.STATIC if elf.static else Linkage.BUNDLED
        evidence.extend(f"string {v!r}" for v in elf.version_strings[:2])
        if elf.defines("SSL_CTX_new"):
            evidence.append("defines SSL_CTX_new")
        return Diagnosis(
            name, TlsLibrary.BORINGSSL if boring else TlsLibrary.OPENSSL, version, link, None, (),
            f"{kind}, with {what} compiled into the program",
            (
                f"{what} is compiled into the program, so no outside library (LD_PRELOAD) can "
                "reach it and it reads no SSLKEYLOGFILE. The program must log keys itself: call "
                "SSL_CTX_set_keylog_callback() on its SSL_CTX, writing each line to a file "
                "opened with mode 0600, and rebuild.",
            ),
            WITHOUT_KEYS, tuple(evidence),
        )  # fmt: skip
    return _unknown(name, f"{kind}, no TLS library linked", tuple(evidence), static=elf.static)


def _unknown(name: str, what: str, evidence: tuple[str, ...], *, static: bool = False) -> Diagnosis:
    if static:
        return Diagnosis(
            name, TlsLibrary.NONE, None, Linkage.NONE, None, (), what,
            ("No TLS library found in this statically linked program: it may not speak TLS.",),
            WITHOUT_KEYS, evidence,
        )  # fmt: skip
    return Diagnosis(
        name, TlsLibrary.NONE, None, Linkage.NONE, None, (KeylogMethod.ENV, KeylogMethod.SHIM), what,
        (
            "No TLS library is linked. If it runs other programs or loads TLS at run time, "
            "`capdebug run` sets SSLKEYLOGFILE and preloads the key-log shim for every program it "
            "starts; run `capdebug keys doctor` on the program that actually connects to be sure.",
        ),
        WITHOUT_KEYS, evidence,
    )  # fmt: skip


def _find(libs: Mapping[str, ElfInfo], prefix: str) -> str | None:
    return next((k for k in libs if os.path.basename(k).startswith(prefix)), None)


def _through(facts: ProgramFacts, key: str) -> str:
    chain: list[str] = []
    at = facts.via.get(key)
    while at is not None and at != facts.path and len(chain) < 5:
        chain.append(at)
        at = facts.via.get(at)
    return f" through {' -> '.join(chain)}" if chain else ""


def _v(version: str | None) -> str:
    return f" {version}" if version else ""


def _openssl_version(ssl: ElfInfo | None, crypto: ElfInfo | None) -> str | None:
    """Exact text from OpenSSL_version() when present, else the newest version definition."""
    for lib in (crypto, ssl):
        if lib is not None:
            for text in lib.version_strings:
                m = re.match(r"(?:OpenSSL|LibreSSL) (\d+\.\d+\.\d+[a-z]?)", text)
                if m:
                    return m.group(1)
    best: tuple[int, int, int] | None = None
    for lib in (ssl, crypto):
        for v in lib.version_definitions if lib is not None else ():
            m = _OPENSSL_VER.match(v)
            if m:
                t = (int(m.group(1)), int(m.group(2)), int(m.group(3)))
                best = t if best is None or t > best else best
    return f"{best[0]}.{best[1]}.{best[2]}+" if best else None


def _gnutls_version(lib: ElfInfo | None) -> str | None:
    """GnuTLS tags each API addition (GNUTLS_3_6_13): the newest tag is a floor of the version."""
    best: tuple[int, int, int] | None = None
    for v in lib.version_definitions if lib is not None else ():
        m = _GNUTLS_VER.match(v)
        if m:
            t = (int(m.group(1)), int(m.group(2)), int(m.group(3) or 0))
            best = t if best is None or t > best else best
    return f"{best[0]}.{best[1]}.{best[2]}+" if best else None
