"""NSS key log files: parse, index by client_random, format and write.

This is the only module that knows the line format of RFC 9850 ("The SSLKEYLOGFILE Format for
TLS", section 3)::

    <label> SP <client_random: 64 hex digits> SP <secret: hex>

Theory of operation
-------------------

A key log is written by whoever holds the secrets (a browser, openssl ``-keylogfile``, GnuTLS,
Python's ``SSLContext.keylog_filename``) and is read long after, often concatenated from several
runs. So parsing is forgiving line by line and strict per line: a line that is malformed in any
way (unknown label, bad hex, a secret length no cipher suite can produce) becomes a
:class:`KeyLogIssue` and is skipped, and the rest of the file is still used. Nothing is guessed:
a secret is only kept when its length is possible for its label.

Entries are indexed by ``(client_random, label)``. The first value wins: a later line with the
same key and the same secret is a harmless duplicate (merged silently); a later line with a
different secret is reported, because exactly one of them decrypts and silently picking the
last one would hide a broken key log.

Legacy ``RSA <first 8 bytes of the encrypted premaster> <premaster>`` lines (the pre-RFC NSS
form for RSA key exchange) are kept apart, keyed by the encrypted premaster prefix, because
they are not tied to a client_random.

Secrets never appear in ``repr`` or in issue messages.
"""

from __future__ import annotations

import os
import re
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from .._files import open_private
from ..errors import KeyLogError, UsageError
from .rsa_kx import RsaKey, describe_non_keylog

__all__ = [
    "ECH_LABELS",
    "EXPORTER_LABELS",
    "TLS12_LABELS",
    "TLS13_LABELS",
    "KeyLog",
    "KeyLogEntry",
    "KeyLogIssue",
    "RsaPremasterEntry",
    "format_line",
    "write_keylog_file",
]

#: RFC 9850 section 3.2: TLS 1.2 and earlier log the 48-byte master secret under this label.
TLS12_LABELS: Final = frozenset({"CLIENT_RANDOM"})

#: RFC 9850 section 3.1: TLS 1.3 secrets (RFC 8446 section 7.1 names them).
TLS13_LABELS: Final = frozenset(
    {
        "CLIENT_EARLY_TRAFFIC_SECRET",
        "CLIENT_HANDSHAKE_TRAFFIC_SECRET",
        "SERVER_HANDSHAKE_TRAFFIC_SECRET",
        "CLIENT_TRAFFIC_SECRET_0",
        "SERVER_TRAFFIC_SECRET_0",
        "EARLY_EXPORTER_SECRET",
        "EXPORTER_SECRET",
    }
)

#: Exporter secrets decrypt nothing on the wire; exports may leave them out.
EXPORTER_LABELS: Final = frozenset({"EXPORTER_SECRET", "EARLY_EXPORTER_SECRET"})

#: RFC 9850 section 3.3 (Encrypted Client Hello): ECH_SECRET is a hash-length secret,
#: ECH_CONFIG is the ECHConfig that was used, of any length.
ECH_LABELS: Final = frozenset({"ECH_SECRET", "ECH_CONFIG"})

# After each KeyUpdate (RFC 8446 section 7.2: application_traffic_secret_N+1) some loggers write
# numbered labels (CLIENT_TRAFFIC_SECRET_1, _2, ...). OpenSSL 3.0 writes the literal label
# CLIENT_TRAFFIC_SECRET_N / SERVER_TRAFFIC_SECRET_N for every generation; since generations are
# logged in order, the k-th distinct such line of a connection is stored as generation k.
_TRAFFIC_N: Final = re.compile(r"(?:CLIENT|SERVER)_TRAFFIC_SECRET_(?:0|[1-9][0-9]*|N)\Z")
_LITERAL_N: Final = frozenset({"CLIENT_TRAFFIC_SECRET_N", "SERVER_TRAFFIC_SECRET_N"})

# Hash lengths of every TLS 1.3 / RFC 9850 hash: SHA-256, SHA-384, and SHA-512 for
# implementations that log secrets of suites with it.
_HASH_LENGTHS: Final = frozenset({32, 48, 64})
_MASTER_SECRET_LENGTH: Final = 48  # RFC 5246 section 8.1
_CLIENT_RANDOM_LENGTH: Final = 32  # RFC 8446 section 4.1.2 / RFC 5246 section 7.4.1.2
_RSA_PREFIX_LENGTH: Final = 8  # NSS logs the first 8 bytes of EncryptedPreMasterSecret
_PREMASTER_LENGTH: Final = 48  # RFC 5246 section 7.4.7.1

_REQUIRED_13: Final = (
    "CLIENT_HANDSHAKE_TRAFFIC_SECRET",
    "SERVER_HANDSHAKE_TRAFFIC_SECRET",
    "CLIENT_TRAFFIC_SECRET_0",
    "SERVER_TRAFFIC_SECRET_0",
)

_NEWLINE: Final = re.compile(r"\r\n|\r|\n")


@dataclass(frozen=True, slots=True)
class KeyLogIssue:
    """One key log line that was skipped or not used, and why."""

    line_no: int
    """1-based line number in ``source``."""
    message: str
    """What is wrong, without any secret value."""
    source: str = "<keylog>"
    """The file (or ``<keylog>``) the line came from."""

    def __str__(self) -> str:
        return f"{self.source}: line {self.line_no}: {self.message}"


@dataclass(frozen=True, slots=True)
class KeyLogEntry:
    """One secret, as logged for one connection."""

    label: str
    """RFC 9850 label, upper case (``CLIENT_TRAFFIC_SECRET_0``); OpenSSL's literal
    ``..._TRAFFIC_SECRET_N`` lines are stored numbered (``CLIENT_TRAFFIC_SECRET_1``, ...)."""
    client_random: bytes
    """The 32-byte ClientHello.random that names the connection."""
    secret: bytes = field(repr=False)
    """The secret itself; never shown."""
    line_no: int
    """Line it was first seen on."""
    source: str = "<keylog>"
    """File it was first seen in."""


@dataclass(frozen=True, slots=True)
class RsaPremasterEntry:
    """A legacy ``RSA`` line: the premaster secret of an RSA key exchange (RFC 5246 7.4.7.1)."""

    encrypted_premaster_prefix: bytes
    """First 8 bytes of the EncryptedPreMasterSecret from the ClientKeyExchange."""
    premaster: bytes = field(repr=False)
    """The 48-byte PreMasterSecret."""
    line_no: int
    source: str = "<keylog>"


#: Archive and compression magics (RFC 1952 2.3.1 gzip; zip's local file header; xz; zstd):
#: a key log is plain text, so such a file is named rather than called "not a text file".
_COMPRESSED: Final = {
    b"\x1f\x8b": "gzip-compressed data (a key log is plain text: decompress it first)",
    b"PK\x03\x04": "a zip archive (extract the key log from it first)",
    b"\xfd7zXZ": "xz-compressed data (a key log is plain text: decompress it first)",
    b"\x28\xb5\x2f\xfd": "zstd-compressed data (a key log is plain text: decompress it first)",
}


def _compressed(data: bytes) -> str | None:
    for magic, what in _COMPRESSED.items():
        if data.startswith(magic):
            return what
    return None


def _short(client_random: bytes) -> str:
    return client_random[:4].hex() + "\u2026"


def _secret_length_ok(label: str, length: int) -> str | None:
    """None when ``length`` bytes is possible for ``label``, else why not."""
    if label == "CLIENT_RANDOM":
        if length != _MASTER_SECRET_LENGTH:
            return f"CLIENT_RANDOM secret must be 48 bytes (a master secret), got {length}"
        return None
    if label == "ECH_CONFIG":
        return None if length > 0 else "ECH_CONFIG value is empty"
    if length not in _HASH_LENGTHS:
        return f"{label} secret must be 32, 48 or 64 bytes (a hash length), got {length}"
    return None


def _known_label(label: str) -> bool:
    return (
        label in TLS12_LABELS or label in TLS13_LABELS or label in ECH_LABELS or bool(_TRAFFIC_N.match(label))
    )


def _parse_hex(token: str, what: str) -> tuple[bytes | None, str | None]:
    if len(token) % 2:
        return None, f"{what} has an odd number of hex digits ({len(token)})"
    # The token comes from str.split, so it holds no whitespace, the only thing besides hex
    # digits that bytes.fromhex accepts; its own error message is replaced by a clearer one.
    try:
        return bytes.fromhex(token), None
    except ValueError:
        return None, f"{what} is not hex"


def format_line(label: str, client_random: bytes, secret: bytes) -> str:
    """One NSS key log line (no newline): upper-case label, lower-case hex (RFC 9850 section 3).

    Raises :class:`~capdebug.errors.UsageError` for an unknown label, a client_random that is
    not 32 bytes or a secret length impossible for the label, so that a bad line is never written.
    """
    if not _known_label(label):
        raise UsageError(f"unknown key log label {label!r}")
    if len(client_random) != _CLIENT_RANDOM_LENGTH:
        raise UsageError(f"client_random must be 32 bytes, got {len(client_random)}")
    problem = _secret_length_ok(label, len(secret))
    if problem is not None:
        raise UsageError(problem)
    return f"{label} {client_random.hex()} {secret.hex()}"


class KeyLog:
    """Secrets from one or more key log files, indexed by client_random."""

    __slots__ = ("_by_random", "_next_n", "_order", "_rsa", "_traffic_n", "issues", "rsa_keys", "sources")

    def __init__(self) -> None:
        self._by_random: dict[bytes, dict[str, KeyLogEntry]] = {}
        self._order: list[KeyLogEntry] = []
        self._rsa: dict[bytes, RsaPremasterEntry] = {}
        # For literal ``..._TRAFFIC_SECRET_N`` lines: the next free generation per
        # (client_random, prefix), and the secrets already numbered, so that each line costs
        # O(1) (scanning generations 1, 2, ... for each line was quadratic: 10,000 KeyUpdates).
        self._next_n: dict[tuple[bytes, str], int] = {}
        self._traffic_n: set[tuple[bytes, str, bytes]] = set()
        self.issues: list[KeyLogIssue] = []
        """Every skipped or conflicting line, in the order met."""
        self.rsa_keys: list[RsaKey] = []
        """Servers' RSA private keys (``--rsa-key``): another source of TLS 1.2 RSA key
        exchange secrets, next to the ``RSA`` lines (see :mod:`capdebug.crypto.rsa_kx`)."""
        self.sources: list[str] = []
        """Every file or block that was read, usable lines or not (so that "no key log was
        given" is never said when one was)."""

    # -- building ------------------------------------------------------------------------

    @classmethod
    def parse(cls, text: str | bytes, source: str = "<keylog>") -> KeyLog:
        """Parse key log text. Never raises on content: bad lines become :attr:`issues`."""
        if isinstance(text, bytes | bytearray | memoryview):
            # A key log is ASCII; undecodable bytes become U+FFFD and so a per-line issue.
            text = bytes(text).decode("utf-8", errors="replace")
        log = cls()
        log.sources.append(source)
        log._feed(text, source)
        return log

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> KeyLog:
        """Read and parse a key log file.

        Raises :class:`~capdebug.errors.KeyLogError` when the file is missing, unreadable or
        not text at all (binary content); bad lines in a text file are only issues.
        """
        p = Path(path)
        try:
            data = p.read_bytes()
        except FileNotFoundError as exc:
            raise KeyLogError(f"key log file {str(p)!r} does not exist") from exc
        except IsADirectoryError as exc:
            raise KeyLogError(f"key log {str(p)!r} is a directory, not a file") from exc
        except OSError as exc:
            raise KeyLogError(f"cannot read key log file {str(p)!r}: {exc.strerror or exc}") from exc
        what = _compressed(data) or describe_non_keylog(data)
        if what is not None:
            raise KeyLogError(f"{str(p)!r} is not a key log (SSLKEYLOGFILE format): it is {what}")
        if b"\x00" in data:
            raise KeyLogError(f"key log file {str(p)!r} is not a text file (it contains NUL bytes)")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise KeyLogError(
                f"key log file {str(p)!r} is not a text file (not UTF-8 at byte {exc.start})"
            ) from exc
        log = cls()
        log.sources.append(str(p))
        log._feed(text, str(p))
        return log

    def merge(self, other: KeyLog) -> None:
        """Add ``other``'s entries after ours; its issues are appended, conflicts reported."""
        self.issues.extend(other.issues)
        self.sources.extend(other.sources)
        self.rsa_keys.extend(other.rsa_keys)
        for entry in other._order:
            self._add(entry)
        for rsa in other._rsa.values():
            self._add_rsa(rsa)

    def _feed(self, text: str, source: str) -> None:
        if text.startswith("\ufeff"):  # a BOM from an editor is not part of the first label
            text = text[1:]
        for line_no, raw in enumerate(_NEWLINE.split(text), start=1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            self._feed_line(line, line_no, source)

    def _issue(self, line_no: int, message: str, source: str) -> None:
        self.issues.append(KeyLogIssue(line_no, message, source))

    def _feed_line(self, line: str, line_no: int, source: str) -> None:
        fields = line.split()
        if len(fields) != 3:
            self._issue(line_no, f"expected 3 fields (label client_random secret), got {len(fields)}", source)
            return
        label = fields[0].upper()
        if label == "RSA":
            self._feed_rsa(fields[1], fields[2], line_no, source)
            return
        if not _known_label(label):
            # Never quoted: a line pasted in the wrong order puts a secret in the label field,
            # and a warning must not print it. Its length and the line number locate it.
            self._issue(line_no, f"unknown label ({len(fields[0])} characters)", source)
            return
        client_random, problem = _parse_hex(fields[1], "client_random")
        if client_random is None:
            self._issue(line_no, str(problem), source)
            return
        if len(client_random) != _CLIENT_RANDOM_LENGTH:
            self._issue(line_no, f"client_random must be 32 bytes, got {len(client_random)}", source)
            return
        secret, problem = _parse_hex(fields[2], f"{label} secret")
        if secret is None:
            self._issue(line_no, str(problem), source)
            return
        problem = _secret_length_ok(label, len(secret))
        if problem is not None:
            self._issue(line_no, problem, source)
            return
        if label in _LITERAL_N:
            numbered = self._next_generation(label[:-1], client_random, secret)
            if numbered is None:  # the same secret was already logged: a duplicate
                return
            label = numbered
        self._add(KeyLogEntry(label, client_random, secret, line_no, source))

    def _next_generation(self, prefix: str, client_random: bytes, secret: bytes) -> str | None:
        if (client_random, prefix, secret) in self._traffic_n:
            return None
        have = self._by_random.get(client_random, {})
        generation = self._next_n.get((client_random, prefix), 1)
        while f"{prefix}{generation}" in have:  # numbered lines given as such take their place
            generation += 1
        self._next_n[client_random, prefix] = generation + 1
        return f"{prefix}{generation}"

    def _feed_rsa(self, prefix_hex: str, premaster_hex: str, line_no: int, source: str) -> None:
        prefix, problem = _parse_hex(prefix_hex, "RSA encrypted premaster prefix")
        if prefix is None:
            self._issue(line_no, str(problem), source)
            return
        if len(prefix) != _RSA_PREFIX_LENGTH:
            self._issue(line_no, f"RSA encrypted premaster prefix must be 8 bytes, got {len(prefix)}", source)
            return
        premaster, problem = _parse_hex(premaster_hex, "RSA premaster secret")
        if premaster is None:
            self._issue(line_no, str(problem), source)
            return
        if len(premaster) != _PREMASTER_LENGTH:
            self._issue(line_no, f"RSA premaster secret must be 48 bytes, got {len(premaster)}", source)
            return
        self._add_rsa(RsaPremasterEntry(prefix, premaster, line_no, source))

    def _where(self, line_no: int, source: str, against: str) -> str:
        return f"line {line_no}" if source == against else f"{source} line {line_no}"

    def _add(self, entry: KeyLogEntry) -> None:
        labels = self._by_random.setdefault(entry.client_random, {})
        first = labels.get(entry.label)
        if first is None:
            labels[entry.label] = entry
            self._order.append(entry)
            if _TRAFFIC_N.match(entry.label) and not entry.label.endswith("_0"):
                prefix = entry.label.rstrip("0123456789")
                self._traffic_n.add((entry.client_random, prefix, entry.secret))
            return
        if first.secret != entry.secret:
            self._issue(
                entry.line_no,
                f"conflicting {entry.label} for client_random {_short(entry.client_random)}: "
                f"keeping the first value from {self._where(first.line_no, first.source, entry.source)}",
                entry.source,
            )

    def _add_rsa(self, entry: RsaPremasterEntry) -> None:
        first = self._rsa.get(entry.encrypted_premaster_prefix)
        if first is None:
            self._rsa[entry.encrypted_premaster_prefix] = entry
            return
        if first.premaster != entry.premaster:
            self._issue(
                entry.line_no,
                "conflicting RSA premaster for encrypted premaster "
                f"{_short(entry.encrypted_premaster_prefix)}: "
                f"keeping the first value from {self._where(first.line_no, first.source, entry.source)}",
                entry.source,
            )

    # -- queries -------------------------------------------------------------------------

    def __len__(self) -> int:
        """Number of client_random-keyed entries (legacy RSA lines are counted apart)."""
        return len(self._order)

    @property
    def sessions(self) -> int:
        """Number of TLS sessions with secrets: distinct client_randoms (a TLS 1.3 session
        has five lines) plus legacy RSA premasters."""
        return len(self._by_random) + len(self._rsa)

    def __contains__(self, client_random: object) -> bool:
        return client_random in self._by_random

    def __repr__(self) -> str:
        return (
            f"KeyLog({len(self._order)} entries, {len(self._by_random)} client_randoms, "
            f"{len(self.issues)} issues)"
        )

    def entries(self) -> Iterator[KeyLogEntry]:
        """Client_random-keyed entries in first-seen order."""
        return iter(self._order)

    @property
    def has_rsa_material(self) -> bool:
        """RSA lines or private keys were given: RSA key exchanges may be decrypted."""
        return bool(self._rsa or self.rsa_keys)

    @property
    def given(self) -> bool:
        """Any key source was given (a file, a block, a private key), usable or not."""
        return bool(self.sources or self.rsa_keys or self._order or self._rsa)

    def rsa_premaster(self, encrypted_premaster: bytes) -> bytes | None:
        """The premaster for an EncryptedPreMasterSecret (whole, or its first 8 bytes)."""
        entry = self._rsa.get(bytes(encrypted_premaster[:_RSA_PREFIX_LENGTH]))
        return None if entry is None else entry.premaster

    def client_randoms(self) -> set[bytes]:
        return set(self._by_random)

    def secrets_for(self, client_random: bytes) -> dict[str, bytes]:
        """Label -> secret for one connection (empty when unknown)."""
        return {label: e.secret for label, e in self._by_random.get(client_random, {}).items()}

    def get(self, client_random: bytes, label: str) -> bytes | None:
        entry = self._by_random.get(client_random, {}).get(label)
        return None if entry is None else entry.secret

    def labels_missing(self, client_random: bytes, version: str) -> list[str]:
        """Which labels needed to decrypt a whole session of ``version`` are absent.

        ``"1.3"`` needs both handshake and both first application traffic secrets
        (RFC 8446 section 7.1); ``"1.2"`` (and ``"1.0"``/``"1.1"``) need the master secret.
        """
        have = self._by_random.get(client_random, {})
        if version == "1.3":
            return [label for label in _REQUIRED_13 if label not in have]
        if version in ("1.2", "1.1", "1.0"):
            return [] if "CLIENT_RANDOM" in have else ["CLIENT_RANDOM"]
        raise UsageError(f"unknown TLS version {version!r} (expected 1.0, 1.1, 1.2 or 1.3)")

    # -- export --------------------------------------------------------------------------

    def lines(
        self,
        client_randoms: Collection[bytes] | None = None,
        *,
        exclude_labels: Collection[str] = (),
    ) -> list[str]:
        """NSS lines (upper-case label, lower-case hex) in first-seen order.

        With ``client_randoms`` only those connections are exported (legacy RSA lines, which
        name no connection, only when exporting everything).
        """
        wanted = None if client_randoms is None else frozenset(client_randoms)
        excluded = frozenset(exclude_labels)
        out = [
            f"{e.label} {e.client_random.hex()} {e.secret.hex()}"
            for e in self._order
            if (wanted is None or e.client_random in wanted) and e.label not in excluded
        ]
        if wanted is None and "RSA" not in excluded:
            out.extend(
                f"RSA {r.encrypted_premaster_prefix.hex()} {r.premaster.hex()}" for r in self._rsa.values()
            )
        return out

    def to_text(
        self,
        client_randoms: Collection[bytes] | None = None,
        *,
        exclude_labels: Collection[str] = (),
    ) -> str:
        """:meth:`lines` joined with newlines, with a trailing newline (empty string if none)."""
        lines = self.lines(client_randoms, exclude_labels=exclude_labels)
        return "".join(line + "\n" for line in lines)


def write_keylog_file(path: str | os.PathLike[str], lines: Iterable[str], append: bool = True) -> None:
    """Write NSS lines to ``path``, a private (0600) file (see :func:`capdebug._files.open_private`).

    A key log decrypts everything it covers, so it must not be readable by others: it is created
    0600, a symlink at ``path`` is replaced rather than followed, and an existing file others can
    read is replaced by a private copy before anything is appended.
    Raises :class:`~capdebug.errors.KeyLogError`; messages never include
    secret values.
    """
    chunks: list[str] = []
    for line in lines:
        line = line.rstrip("\r\n")
        if "\n" in line or "\r" in line:
            # One logical line per entry: an embedded newline would let a caller forge lines.
            raise KeyLogError("key log line contains a newline")
        chunks.append(line + "\n")
    try:
        stream = open_private(path, append=append)
    except OSError as exc:
        raise KeyLogError(f"cannot open key log file {os.fspath(path)!r}: {exc.strerror or exc}") from exc
    try:
        with stream:
            stream.write("".join(chunks).encode("ascii", errors="replace"))
    except OSError as exc:
        raise KeyLogError(f"cannot write key log file {os.fspath(path)!r}: {exc.strerror or exc}") from exc
