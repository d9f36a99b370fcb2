"""The plaintext before TLS: which protocol upgraded to TLS, how, and where TLS starts.

A connection whose first payload is not TLS is followed here, sans-IO, on the two receive
buffers as they grow (the decoder's, untouched), until one of:

- an upgrade: a protocol's own command and its positive reply (SMTP ``STARTTLS``/220,
  RFC 3207; IMAP tagged ``STARTTLS``/``OK``, RFC 3501 6.2.1; POP3 ``STLS``/``+OK``, RFC 2595 4;
  FTP ``AUTH TLS``/234, RFC 4217 4; NNTP ``STARTTLS``/382, RFC 4642; ManageSieve
  ``STARTTLS``/``OK``, RFC 5804 2.2; LDAP's StartTLS extended operation, RFC 4511 4.14;
  XMPP ``<starttls/>``/``<proceed/>``, RFC 6120 5.4; PostgreSQL's SSLRequest and ``S``
  (protocol docs 53.2.10); MySQL's SSL request (CLIENT_SSL in the handshake response);
  HTTP ``CONNECT`` and a 2xx, RFC 9110 9.3.6). The client's TLS starts at the byte after its
  command, the server's at the byte after its reply.
- a ClientHello found later in a client stream that began in plaintext (any protocol): the
  client's TLS starts there, the server's at what it had sent by then (a server cannot answer
  a ClientHello before it arrives).
- :data:`MAX_PRELUDE` bytes in a direction with neither: not TLS.

A refused upgrade (454, ``NO``, ``-ERR``, ``N``, a non-zero LDAP resultCode...) is kept: the
client may go on in plaintext or try again. MySQL has no refusal on the wire: a server that
cannot do TLS leaves CLIENT_SSL out of its greeting, and a client that requires TLS closes
without answering; :meth:`Prelude.client_closed` (told by the decoder) calls that a refusal.
Nothing here reads a clock or a file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..wire.record import looks_like_tls

__all__ = ["MAX_PRELUDE", "TLS_PORTS", "Prelude", "Upgrade", "classify", "never_upgrades", "preview"]

MAX_PRELUDE = 65536
"""Bytes of plaintext followed per direction before the connection is called not TLS."""

TLS_PORTS = frozenset((443, 465, 563, 636, 853, 989, 990, 992, 993, 994, 995, 4433, 5061, 5223, 8443, 8883))
"""Ports where TLS from the first byte is expected: plaintext there is worth a verdict."""

_PG_SSL_REQUEST = b"\x00\x00\x00\x08\x04\xd2\x16\x2f"
_PG_GSS_REQUEST = b"\x00\x00\x00\x08\x04\xd2\x16\x30"
_LDAP_STARTTLS_OID = b"1.3.6.1.4.1.1466.20037"
_MYSQL_CLIENT_SSL = 0x0800
_LINE_COMMAND = re.compile(
    rb"^(?:([A-Za-z0-9.]+) )?(STARTTLS|STLS|AUTH TLS|AUTH SSL|AUTH TLS-C)\s*$", re.IGNORECASE
)
_CONNECT = re.compile(rb"^CONNECT [^ ]+ HTTP/1\.[01]$")
_HTTP_STATUS = re.compile(rb"^HTTP/1\.[01] (\d{3})")
_XMPP_REPLY = re.compile(rb"<(proceed|failure)\b[^>]*>")


@dataclass(frozen=True, slots=True)
class Upgrade:
    """A command to start TLS and its reply (``accepted`` False: refused)."""

    protocol: str
    command: str
    reply: str
    accepted: bool
    command_frame: int
    reply_frame: int
    ts_ns: int
    client_at: int
    """Offset in the client's stream where its TLS starts."""
    server_at: int
    """Offset in the server's stream where its TLS starts."""


def preview(data: bytes | bytearray, limit: int = 64) -> str:
    """The first bytes as text, control bytes escaped (``\\r``, ``\\n``, ``\\xNN``)."""
    out = []
    for b in bytes(data[:limit]):
        if b == 13:
            out.append("\\r")
        elif b == 10:
            out.append("\\n")
        elif 32 <= b < 127 and b != 92:
            out.append(chr(b))
        else:
            out.append(f"\\x{b:02x}")
    return "".join(out) + ("..." if len(data) > limit else "")


def classify(data: bytes | bytearray) -> str:
    """What the first bytes of a direction look like: ``http``, ``ssh``, ``smtp``, ``ftp``,
    ``pop3``, ``imap``, ``tls``, ``text`` or ``binary``."""
    head = bytes(data[:16])
    if not head:
        return "binary"
    if looks_like_tls(head):
        return "tls"
    if head.startswith(b"HTTP/1.") or re.match(rb"^(GET|POST|PUT|HEAD|DELETE|OPTIONS|PATCH|CONNECT) ", head):
        return "http"
    if head.lower().startswith((b"<!doctype html", b"<html")):
        return "http"  # a body without a status line (an HTTP/0.9-style error page)
    if head.startswith(b"SSH-"):
        return "ssh"
    if head.startswith(b"+OK") or head.startswith(b"-ERR"):
        return "pop3"
    if head.startswith(b"* OK") or head.startswith(b"* PREAUTH"):
        return "imap"
    if re.match(rb"^220[ -]", head):
        low = bytes(data[:200]).lower()
        return "ftp" if b"ftp" in low else "smtp"
    if all(32 <= b < 127 or b in (9, 10, 13) for b in head):
        return "text"
    return "binary"


def never_upgrades(data: bytes | bytearray) -> bool:
    """First bytes of a connection that is not followed for an upgrade: an SSH banner, an HTTP
    request other than CONNECT, an HTTP response (RFC 2817's Upgrade to TLS is not seen in
    practice). The decoder then need not hold its output while it waits."""
    head = bytes(data[:8])
    if head.startswith((b"SSH-", b"HTTP/1.")):
        return True
    return classify(head) == "http" and not head.startswith(b"CONNECT ")


def _line(buf: bytearray, start: int) -> tuple[bytes, int] | None:
    """The next complete line at ``start`` (without CRLF) and the offset after it."""
    end = buf.find(b"\n", start)
    if end < 0:
        return None
    return bytes(buf[start:end]).rstrip(b"\r"), end + 1


class Prelude:
    """Follows one connection's plaintext both ways (the decoder's buffers, by role)."""

    __slots__ = (
        "_c_lines",
        "_c_scan",
        "_hello_scan",
        "_n_scan",
        "_pending",
        "_s_finals",
        "_s_scan",
        "_target",
        "done",
        "refusals",
        "upgrade",
    )

    def __init__(self) -> None:
        self._c_scan = 0
        self._s_scan = 0
        self._c_lines = 0
        """Client command lines seen (a numbered reply answers each, after the greeting)."""
        self._n_scan = 0
        self._s_finals = 0
        """Final numbered replies ("ddd text") the server sent, its greeting first."""
        self._target = 0
        """Which final reply answers the pending command: SMTP pipelining (RFC 2920) lets
        STARTTLS end a group of commands, so the reply is counted, not the next one."""
        self._hello_scan = 0
        self._pending: tuple[str, str, int, int, int, bytes] | None = None
        """(protocol, command, command frame, client offset after it, server offset of the
        reply's start, imap tag)."""
        self.upgrade: Upgrade | None = None
        self.refusals: list[Upgrade] = []
        self.done = False
        """Nothing more to follow (an upgrade, or past the limit)."""

    @property
    def asked(self) -> bool:
        """An upgrade command waits for its reply."""
        return self._pending is not None

    def advance(self, client: bytearray, server: bytearray, frame: int, ts: int) -> Upgrade | None:
        """Look at what arrived; an :class:`Upgrade` when one is decided (accepted or refused)."""
        if self.done:
            return None
        if self._pending is None:
            self._command(client, server, frame, ts)
            if self.upgrade is not None:
                return self.upgrade
        if self._pending is not None:
            result = self._reply(client, server, frame, ts)
            if result is not None:
                self._pending = None
                if result.accepted:
                    self.upgrade = result
                    self.done = True
                else:
                    self.refusals.append(result)
                return result
        hello = self._find_client_hello(client)
        if hello is not None:
            self.upgrade = Upgrade("unknown", "", "", True, frame, frame, ts, hello, len(server))
            self.done = True
            return self.upgrade
        if len(client) > MAX_PRELUDE or len(server) > MAX_PRELUDE:
            self.done = True
        return None

    # -- commands ------------------------------------------------------------------------

    def _command(self, client: bytearray, server: bytearray, frame: int, ts: int) -> None:
        if self._c_scan == 0:
            # Binary requests at the very start of the client's stream.
            if client[:8] == _PG_SSL_REQUEST:
                self._pending = ("postgresql", "SSLRequest", frame, 8, len(server), b"")
                self._c_scan = 8
                return
            if client[:8] == _PG_GSS_REQUEST and len(server) >= 1:
                # GSSENCRequest refused ('N'), then the SSLRequest follows (protocol 53.2.11).
                if client[8:16] == _PG_SSL_REQUEST and len(server) >= 1:
                    self._pending = ("postgresql", "SSLRequest", frame, 16, 1, b"")
                    self._c_scan = 16
                return
        mysql = len(server) > 4 and server[3] == 0 and server[4] == 0x0A
        if mysql and self._mysql(client, server, frame, ts):
            return
        if client[:1] == b"\x30" and _LDAP_STARTTLS_OID in client[:256]:
            end = _ber_end(client, 0)
            if end is not None:
                self._pending = ("ldap", "StartTLS extended request", frame, end, len(server), b"")
                self._c_scan = end
                return
        at = client.find(b"<starttls", self._c_scan)
        if at >= 0:
            end = client.find(b">", at)
            if end >= 0:
                self._pending = ("xmpp", "<starttls/>", frame, end + 1, len(server), b"")
                self._c_scan = end + 1
            return
        while True:
            got = _line(client, self._c_scan)
            if got is None:
                return
            text, after = got
            if self._c_scan == 0 and _CONNECT.match(text):
                head_end = client.find(b"\r\n\r\n")
                if head_end < 0:
                    return
                request = text.decode("ascii", "replace")
                self._pending = ("http-connect", request, frame, head_end + 4, len(server), b"")
                self._c_scan = head_end + 4
                return
            self._c_scan = after
            self._c_lines += 1
            m = _LINE_COMMAND.match(text)
            if m is not None and len(text) < 64:
                self._target = self._c_lines  # the greeting is reply 0
                tag = m.group(1) or b""
                verb = m.group(2).upper()
                self._pending = (
                    _protocol(verb, tag, server),
                    text.decode("ascii", "replace"),
                    frame,
                    after,
                    len(server),
                    tag,
                )
                return

    def _mysql(self, client: bytearray, server: bytearray, frame: int, ts: int) -> bool:
        # Initial handshake packet (protocol 10): 3-byte length, sequence 0, then 0x0a.
        if len(server) < 5 or server[3] != 0 or server[4] != 0x0A:
            return False
        greeting_end = 4 + int.from_bytes(server[0:3], "little")
        if len(client) < 6 or client[3] != 1:
            return False
        flags = int.from_bytes(client[4:6], "little")
        if not flags & _MYSQL_CLIENT_SSL:
            return False
        length = int.from_bytes(client[0:3], "little")
        end = 4 + length
        if len(client) < end:
            return False
        # No reply: TLS starts right after the SSL request (and after the greeting).
        self.upgrade = Upgrade(
            "mysql", "SSL request (CLIENT_SSL)", "", True, frame, frame, ts, end, greeting_end
        )
        self.done = True
        self._pending = None
        return True

    def client_closed(self, client: bytearray, server: bytearray, frame: int, ts: int) -> Upgrade | None:
        """The client sent FIN or RST while the connection is still in plaintext: a refusal
        when the server's MySQL greeting did not offer TLS and the client never answered it."""
        if self.done or client or self._mysql_ssl_offered(server) is not False:
            return None
        refusal = Upgrade("mysql", "", "greeting without CLIENT_SSL", False, frame, frame, ts, 0, 0)
        self.refusals.append(refusal)
        self.done = True
        return refusal

    @staticmethod
    def _mysql_ssl_offered(server: bytearray) -> bool | None:
        """CLIENT_SSL in a complete MySQL greeting (protocol 10: version NUL-terminated,
        connection id, 8 bytes of auth data, a filler, then the low capability flags); None
        when the server's stream does not start with one."""
        if len(server) < 5 or server[3] != 0 or server[4] != 0x0A:
            return None
        end = 4 + int.from_bytes(server[0:3], "little")
        nul = server.find(b"\x00", 5, end)
        flags_at = nul + 1 + 4 + 8 + 1
        if nul < 0 or flags_at + 2 > end or len(server) < end:
            return None
        return bool(int.from_bytes(server[flags_at : flags_at + 2], "little") & _MYSQL_CLIENT_SSL)

    # -- replies ---------------------------------------------------------------------------

    def _reply(self, client: bytearray, server: bytearray, frame: int, ts: int) -> Upgrade | None:
        assert self._pending is not None
        protocol, command, command_frame, client_at, reply_from, tag = self._pending
        scan = max(self._s_scan, reply_from)
        reply = ""
        accepted = False
        end: int | None = None
        if protocol == "postgresql":
            if len(server) > scan:
                answer = bytes(server[scan : scan + 1])
                reply, accepted, end = answer.decode("latin-1"), answer == b"S", scan + 1
        elif protocol == "mysql":
            return None
        elif protocol == "ldap":
            if len(server) > scan and server[scan] == 0x30:
                end = _ber_end(server, scan)
                if end is not None:
                    rc = _ldap_result(server[scan:end])
                    reply, accepted = f"resultCode {rc}", rc == 0
        elif protocol == "xmpp":
            m = _XMPP_REPLY.search(bytes(server), scan)
            if m is not None:
                reply, end = m.group(0).decode("ascii", "replace"), m.end()
                accepted = m.group(1) == b"proceed"
        elif protocol == "http-connect":
            head_end = server.find(b"\r\n\r\n", scan)
            if head_end >= 0:
                status = _line(server, scan)
                text = status[0] if status else b""
                m = _HTTP_STATUS.match(text)
                reply = text.decode("ascii", "replace")
                accepted = m is not None and m.group(1).startswith(b"2")
                end = head_end + 4
        elif protocol in ("imap", "pop3", "managesieve"):
            while end is None:
                got = _line(server, scan)
                if got is None:
                    break
                text, after = got
                scan = after
                if protocol == "imap":
                    if not tag or not text.startswith(tag + b" "):
                        continue  # untagged responses before the tagged one
                    word = text[len(tag) + 1 :].split(b" ", 1)[0].upper()
                    accepted = word == b"OK"
                else:
                    accepted = text.startswith(b"+OK") or text.upper().startswith(b"OK")
                reply = text.decode("ascii", "replace")
                end = after
            self._s_scan = scan
        else:
            got = self._numbered(server)
            if got is not None:
                text, end = got
                reply = text.decode("ascii", "replace")
                accepted = text[:3] in (b"220", b"234", b"382")
        if end is None:
            return None
        self._s_scan = end
        return Upgrade(protocol, command, reply[:200], accepted, command_frame, frame, ts, client_at, end)

    def _numbered(self, server: bytearray) -> tuple[bytes, int] | None:
        """The final reply that answers the pending command (SMTP, FTP, NNTP): "ddd-" lines
        continue a reply, "ddd " ends it."""
        while True:
            got = _line(server, self._n_scan)
            if got is None:
                return None
            text, after = got
            self._n_scan = after
            if len(text) >= 4 and text[3:4] == b"-":
                continue
            index = self._s_finals
            self._s_finals += 1
            if index == self._target:
                return text, after

    def _find_client_hello(self, client: bytearray) -> int | None:
        """A TLS ClientHello record in the client's plaintext (bounded by MAX_PRELUDE)."""
        start = self._hello_scan
        limit = min(len(client), MAX_PRELUDE)
        while True:
            at = client.find(b"\x16\x03", start, limit)
            if at < 0 or at + 6 > len(client):
                self._hello_scan = max(self._hello_scan, min(limit, len(client) - 5) if at < 0 else at)
                return None
            if client[at + 5] == 1 and looks_like_tls(bytes(client[at : at + 16])):
                return at
            start = at + 1


def _protocol(verb: bytes, tag: bytes, server: bytearray) -> str:
    if verb == b"STLS":
        return "pop3"
    if verb.startswith(b"AUTH"):
        return "ftp"
    if tag:
        return "imap"
    if server[:1] == b'"':
        return "managesieve"
    if bytes(server[:4]) in (b"200 ", b"201 "):
        return "nntp"
    return "smtp"


def _ber_end(buf: bytearray, at: int) -> int | None:
    """End of the BER element at ``at`` (definite lengths, X.690 8.1.3), None if incomplete."""
    if len(buf) < at + 2:
        return None
    first = buf[at + 1]
    if first < 0x80:
        length, head = first, 2
    else:
        n = first & 0x7F
        if n == 0 or n > 4 or len(buf) < at + 2 + n:
            return None
        length, head = int.from_bytes(buf[at + 2 : at + 2 + n], "big"), 2 + n
    end = at + head + length
    return end if len(buf) >= end else None


def _ldap_result(msg: bytes | bytearray) -> int | None:
    """The resultCode of an LDAP ExtendedResponse (RFC 4511 4.12): the first ENUMERATED."""
    at = msg.find(b"\x0a\x01")
    return msg[at + 2] if at >= 0 and at + 2 < len(msg) else None
