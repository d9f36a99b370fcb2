"""``capdebug serve``, ``capdebug connect`` and ``capdebug certs make``: test programs around
the engine, in the spirit of ``openssl s_server``/``s_client`` and s2nd/s2nc.

They only parse options, build a :class:`~capdebug.tls.config.TLSConfig`, run the socket
wrapper and print. Secrets go to ``--key-log FILE`` (or ``$SSLKEYLOGFILE``), written 0600,
one line the moment each secret is derived.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import typer

# The engine, its certificates and the X.509 loader are imported by the commands that use them,
# so `capdebug triage` and friends start without them. The names of the test PKI are needed for
# the help of `certs make`; they live in crypto.testpki, whose imports (cryptography.x509) the
# decoder has already loaded.
from .._text import escape_terminal
from ..crypto.testpki import PKI_LAYOUT
from ..errors import TLSError, UsageError, print_stacktraces
from ..wire.constants import CipherSuite, NamedGroup, ProtocolVersion

if TYPE_CHECKING:
    from ..tls.config import Credential, TLSConfig
    from ..tls.events import HandshakeComplete
    from ..tls.faults import Faults
    from ..tls.io import TLSSocket
    from ..tls.trace import TraceCategory

__all__ = ["register"]

certs_app = typer.Typer(help="Make test certificates.", no_args_is_help=True)


def _key_logger(path: str | None) -> Callable[[str], None] | None:
    """Append each line to ``path`` (or ``$SSLKEYLOGFILE``) at once, 0600: a handshake that
    fails half-way still leaves the secrets derived so far."""
    target = path or os.environ.get("SSLKEYLOGFILE") or None
    if not target:
        return None
    from ..crypto.keylog import write_keylog_file

    def log(line: str) -> None:
        write_keylog_file(target, [line], append=True)

    return log


def _suites(spec: str | None) -> tuple[CipherSuite, ...]:
    from ..tls.config import DEFAULT_CIPHER_SUITES

    if not spec:
        return DEFAULT_CIPHER_SUITES
    out = []
    for name in spec.split(","):
        try:
            out.append(CipherSuite[name.strip()])
        except KeyError:
            raise UsageError(f"unknown cipher suite {name!r}") from None
    return tuple(out)


def _ciphers(suites: str | None, ciphers: str | None) -> tuple[CipherSuite, ...]:
    """``--suites`` (IANA names) and ``--ciphers`` (OpenSSL names where they exist, or IANA
    names; separated by ``:`` or ``,`` as openssl takes them), in that order."""
    from ..tls.config import OPENSSL_CIPHER_NAMES

    if not ciphers:
        return _suites(suites)
    by_openssl = {name: suite for suite, name in OPENSSL_CIPHER_NAMES.items()}
    out = list(_suites(suites)) if suites else []
    for raw in ciphers.replace(":", ",").split(","):
        name = raw.strip()
        if not name:
            continue
        if name in by_openssl:
            out.append(by_openssl[name])
            continue
        try:
            out.append(CipherSuite[name])
        except KeyError:
            raise UsageError(f"unknown cipher {name!r} (OpenSSL or IANA name)") from None
    return tuple(out)


_VERSIONS = {"1.2": 0x0303, "tls1.2": 0x0303, "tlsv1.2": 0x0303, "tls1_2": 0x0303}
_VERSIONS |= {"1.3": 0x0304, "tls1.3": 0x0304, "tlsv1.3": 0x0304, "tls1_3": 0x0304}


def _version(spec: str | None, default: int, option: str) -> ProtocolVersion:
    if spec is None:
        return ProtocolVersion(default)
    value = _VERSIONS.get(spec.strip().lower())
    if value is None:
        raise UsageError(f"{option} must be 1.2 or 1.3 (or TLSv1.2, TLSv1.3), not {spec!r}")
    return ProtocolVersion(value)


def _groups(spec: str | None) -> tuple[NamedGroup, ...]:
    from ..tls.config import DEFAULT_GROUPS

    if not spec:
        return DEFAULT_GROUPS
    out = []
    for name in spec.split(","):
        name = name.strip()
        name = {"P-256": "secp256r1", "P-384": "secp384r1", "X25519": "x25519"}.get(name, name)
        try:
            out.append(NamedGroup[name])
        except KeyError:
            raise UsageError(f"unknown group {name!r}") from None
    return tuple(out)


def _trace(spec: str | None) -> TraceCategory | None:
    if not spec:
        return None
    from ..tls.trace import parse_categories

    return parse_categories(spec)


def _clock() -> dt.datetime:
    """The engine reads no clock: the command gives it this one (certificates are verified at
    the time each connection verifies them)."""
    return dt.datetime.now(dt.UTC)


def _trace_sink(category: TraceCategory, line: str) -> None:
    sys.stderr.write(f"[{(category.name or '').lower()}] {line}\n")


def _load_credential(cert: Path | None, key: Path | None) -> Credential | None:
    if cert is None and key is None:
        return None
    if cert is None or key is None:
        raise UsageError("--cert and --key go together")
    from ..crypto import x509_engine as cx509
    from ..tls.config import Credential

    chain, private_key = cx509.load_credential(cert.read_bytes(), key.read_bytes())
    return Credential(chain, private_key)


_SYSTEM_BUNDLES = (
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/cert.pem",
)


def _roots(ca: Path | None, system: bool = False) -> tuple[bytes, ...]:
    """``--ca`` certificates; without one, a client trusts the system bundle."""
    from ..crypto import x509_engine as cx509

    if ca is not None:
        return tuple(cx509.load_pem_certificates(ca.read_bytes()))
    if system:
        for bundle in _SYSTEM_BUNDLES:
            if os.path.exists(bundle):
                return tuple(cx509.load_pem_certificates(Path(bundle).read_bytes()))
    return ()


def _summary(hs: HandshakeComplete) -> str:
    version = "TLS 1.3" if hs.version == 0x0304 else "TLS 1.2"
    extras = ""
    if hs.resumed:
        extras += ", resumed"
    if hs.early_data is not None:
        extras += f", early data {'accepted' if hs.early_data else 'REJECTED'}"
    if hs.version != 0x0304:
        extras += f", extended master secret {'yes' if hs.extended_master_secret else 'NO'}"
        if hs.encrypt_then_mac:
            extras += ", encrypt_then_mac"
    # A resumed TLS 1.2 session has no key exchange of its own (RFC 5246 7.3).
    no_group = "-" if hs.resumed else "- (RSA key exchange)"
    return escape_terminal(
        f"handshake complete: {version}, {hs.cipher_suite.name}, "
        f"group {hs.group.name if hs.group is not None else no_group}, "
        f"signature {hs.signature_scheme.name if hs.signature_scheme is not None else '-'}, "
        f"alpn {hs.alpn or '-'}, sni {hs.server_name or '-'}"
        f"{', after HelloRetryRequest' if hs.hello_retry else ''}{extras}"
    )


def _split_hostport(target: str) -> tuple[str, int]:
    host, sep, port = target.rpartition(":")
    if not sep or not port.isdigit():
        raise UsageError(f"expected HOST:PORT, got {target!r}")
    return host.strip("[]"), int(port)


# -- --fault (tls/faults.py): a misbehaving peer on demand -----------------------------------

_FAULT_HELP = "Misbehave on purpose: NAME[=VALUE][,NAME...] (repeatable); --fault list names them."
_CLOSING_FAULTS = ("drop_close_notify", "rst_instead_of_fin", "send_after_close_notify", "truncate_records")


def _fault_spec(fault: list[str]) -> list[str]:
    """The --fault values; ``list`` prints the catalog, one line each, and exits."""
    from ..tls.faults import FAULTS, parse_faults

    if any(f.strip() == "list" for f in fault):
        for spec in FAULTS.values():
            arg = f"[={spec.argument}]" if spec.argument else ""
            typer.echo(f"{spec.name + arg:48} {spec.summary}")
        raise typer.Exit(0)
    parse_faults(fault)  # a bad name is a usage error before anything listens or connects
    return fault


def _certificate_fault(fault: list[str]) -> bool:
    """Does --fault choose the certificate (then it makes the test CA, not serve)?"""
    faults = _make_faults(fault)
    return faults is not None and faults.certificate is not None


def _make_faults(fault: list[str]) -> Faults | None:
    """Fresh faults for one connection (they are one-shot), or None without --fault."""
    from ..tls.faults import parse_faults

    return parse_faults(fault) if fault else None


def _fault_config(config: TLSConfig, fault: list[str], *, client: bool, have_cert: bool) -> TLSConfig:
    """The configuration faults: offered suites and groups, client authentication, and a
    broken certificate (written nowhere: it lives for this process only)."""
    import dataclasses

    from ..crypto.testpki import make_ca
    from ..tls.faults import fault_credential

    faults = _make_faults(fault)
    if faults is None:
        return config
    config = faults.configure(config)
    if faults.certificate is not None and not have_cert:
        now = dt.datetime.now(dt.UTC)
        trusted = make_ca(now)
        credential, _issuer = fault_credential(faults.certificate, now, client=client, ca=trusted)
        config = dataclasses.replace(config, credential=credential)
        folder = Path(tempfile.mkdtemp(prefix="capdebug-fault-"))
        (folder / "ca.pem").write_bytes(trusted.cert_pem)
        typer.echo(
            f"fault: presenting a {faults.certificate} certificate; trust it with: --ca {folder / 'ca.pem'}",
            err=True,
        )
    return config


def _close_with_fault(tls: TLSSocket, faults: Faults) -> None:
    """Serve side of a closing fault: a line of data, then close the way the fault says."""
    note = b"capdebug: injected fault\n"
    if faults.send_after_close_notify:
        tls.conn.close()  # close_notify, TCP still open
        tls.flush()
        tls.sendall(note)
        return
    tls.sendall(note)
    if faults.drop_close_notify:
        tls.shutdown_send()  # sends no close_notify (the fault), then FIN


def serve(
    port: int = typer.Option(4433, "--port", "-p", help="TCP port (0: pick one and print it)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    cert: Path | None = typer.Option(None, "--cert", help="PEM certificate chain (leaf first)."),
    key: Path | None = typer.Option(None, "--key", help="PEM private key of the leaf."),
    ca: Path | None = typer.Option(None, "--ca", help="PEM CA certificates to verify client certificates."),
    client_auth: str = typer.Option("none", "--client-auth", help="none | optional | required."),
    key_log: str | None = typer.Option(None, "--key-log", help="Append key log lines here (0600)."),
    key_log_updates: bool = typer.Option(
        False, "--key-log-updates", help="Also log CLIENT_/SERVER_TRAFFIC_SECRET_N after KeyUpdates."
    ),
    trace: str | None = typer.Option(None, "--trace", help="Trace categories: handshake,messages,..."),
    alpn: list[str] = typer.Option([], "--alpn", help="Accepted ALPN protocol (repeatable)."),
    suites: str | None = typer.Option(None, "--suites", help="Comma-separated IANA suite names."),
    groups: str | None = typer.Option(None, "--groups", help="Comma-separated groups (x25519,...)."),
    ciphers: str | None = typer.Option(
        None, "--ciphers", help="Suites by OpenSSL name (ECDHE-RSA-AES128-GCM-SHA256:...) or IANA name."
    ),
    min_version: str | None = typer.Option(None, "--min-version", help="Lowest version: 1.2 or 1.3."),
    max_version: str | None = typer.Option(None, "--max-version", help="Highest version: 1.2 or 1.3."),
    no_ems: bool = typer.Option(False, "--no-ems", help="TLS 1.2: no extended master secret."),
    no_etm: bool = typer.Option(False, "--no-etm", help="TLS 1.2 CBC: no encrypt_then_mac."),
    echo: bool = typer.Option(False, "--echo", help="Echo what the client sends."),
    www: bool = typer.Option(False, "--www", help="Answer one HTTP request with a status page."),
    once: bool = typer.Option(False, "--once", help="Serve one connection, then exit."),
    tickets: int = typer.Option(1, "--tickets", help="NewSessionTickets to send."),
    early_data: int = typer.Option(
        0, "--early-data", help="Accept this many bytes of 0-RTT early data per ticket (0: refuse)."
    ),
    fault: list[str] = typer.Option([], "--fault", help=_FAULT_HELP),
    max_connections: int = typer.Option(
        64, "--max-connections", min=1, help="Connections served at once; more are refused with an alert."
    ),
    handshake_timeout: float = typer.Option(
        10.0, "--handshake-timeout", min=0.001, help="Seconds a client has to complete the handshake."
    ),
    idle_timeout: float = typer.Option(
        60.0, "--idle-timeout", min=0.001, help="Seconds a connection may stay silent after the handshake."
    ),
) -> None:
    """A TLS 1.3 / 1.2 server on the capdebug engine (like openssl s_server)."""
    fault = _fault_spec(fault)
    from ..crypto import x509_engine as cx509
    from ..tls import certs
    from ..tls.config import ClientAuth, Credential, TLSConfig

    credential = _load_credential(cert, key)
    if credential is None and not _certificate_fault(fault):
        folder = Path(tempfile.mkdtemp(prefix="capdebug-serve-"))
        identity, _ca = certs.make_identity(dt.datetime.now(dt.UTC))
        (folder / "ca.pem").write_bytes(identity.ca_pem)
        credential = Credential(identity.chain_der, cx509.load_private_key(identity.key_pem))
        typer.echo(f"no --cert given: made a test CA, trust it with: --ca {folder / 'ca.pem'}", err=True)
    try:
        mode = ClientAuth(client_auth)
    except ValueError:
        raise UsageError(f"--client-auth must be none, optional or required, not {client_auth!r}") from None
    config = TLSConfig(
        cipher_suites=_ciphers(suites, ciphers),
        min_version=_version(min_version, 0x0303, "--min-version"),
        max_version=_version(max_version, 0x0304, "--max-version"),
        extended_master_secret=not no_ems,
        encrypt_then_mac=not no_etm,
        groups=_groups(groups),
        credential=credential,
        trust_roots=_roots(ca),
        client_auth=mode,
        alpn_protocols=tuple(alpn),
        key_log_callback=_key_logger(key_log),
        key_log_update_lines=key_log_updates,
        trace=_trace(trace),
        trace_callback=_trace_sink if trace else None,
        session_tickets=tickets,
        max_early_data=early_data,
    )
    config = _fault_config(config, fault, client=False, have_cert=cert is not None)
    from ._serve import ServeLimits, serve_connections

    limits = ServeLimits(max_connections, handshake_timeout, idle_timeout)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((host, port))
        listener.listen(128)
        bound = listener.getsockname()[1]
        typer.echo(f"listening on {host}:{bound}", err=True)
        sys.stderr.flush()
        serve_connections(
            listener,
            lambda sock, peer: _serve_one(sock, peer, config, echo=echo, www=www, faults=_make_faults(fault)),
            limits,
            log=lambda line: typer.echo(escape_terminal(line), err=True),
            once=once,
        )


def _serve_one(
    sock: socket.socket,
    peer: object,
    config: TLSConfig,
    *,
    echo: bool,
    www: bool,
    faults: Faults | None = None,
) -> None:
    from ..tls.connection import Connection
    from ..tls.events import EarlyDataReceived
    from ..tls.io import TLSSocket
    from ._serve import HttpHeadReader, TimedSocket

    conn = Connection(config, is_client=False, now=_clock, faults=faults)
    if isinstance(sock, TimedSocket):
        sock.handshake_done = lambda: conn.handshake_complete
    tls = TLSSocket(sock, conn, faults)
    try:
        hs = tls.negotiate()
        typer.echo(f"{peer}: {_summary(hs)}", err=True)
        early = b"".join(e.data for e in tls.events if isinstance(e, EarlyDataReceived))
        if early:
            typer.echo(f"{peer}: 0-RTT early data: {len(early)} bytes (single-use ticket)", err=True)
            if echo:
                tls.sendall(early)
            elif not www:
                sys.stdout.buffer.write(early)
                sys.stdout.flush()
        if faults is not None and not (echo or www) and any(getattr(faults, a) for a in _CLOSING_FAULTS):
            _close_with_fault(tls, faults)
        elif www:
            head = HttpHeadReader()  # bounded, linear (a 64 MB request was quadratic)
            while (chunk := tls.recv()) and not head.feed(chunk):
                pass
            if head.too_large:
                status, body = b"431 Request Header Fields Too Large", b"request head too large\n"
            else:
                status, body = b"200 OK", f"capdebug engine\n{_summary(hs)}\n".encode()
            tls.sendall(
                b"HTTP/1.0 "
                + status
                + b"\r\nContent-Type: text/plain\r\nContent-Length: "
                + str(len(body)).encode()
                + b"\r\nConnection: close\r\n\r\n"
                + body
            )
            tls.shutdown_send()
            while not head.too_large and tls.recv():
                pass  # until the client's close_notify, keeping nothing
        elif echo:
            while data := tls.recv():
                tls.sendall(data)
            tls.shutdown_send()
        else:
            while data := tls.recv():
                sys.stdout.buffer.write(data)
                sys.stdout.flush()
            tls.shutdown_send()
    except TLSError as exc:
        typer.echo(escape_terminal(f"{peer}: {exc} ({exc.kind.value}, at {exc.debug})"), err=True)
    finally:
        tls.close()


def connect(
    target: str = typer.Argument(..., help="HOST:PORT"),
    sni: str | None = typer.Option(None, "--sni", help="Server name to send and verify (default: HOST)."),
    ca: Path | None = typer.Option(None, "--ca", help="PEM CA certificates to trust."),
    insecure: bool = typer.Option(False, "--insecure", help="Do NOT verify the server certificate."),
    cert: Path | None = typer.Option(None, "--cert", help="Client certificate chain (mutual TLS)."),
    key: Path | None = typer.Option(None, "--key", help="Client private key."),
    key_log: str | None = typer.Option(None, "--key-log", help="Append key log lines here (0600)."),
    key_log_updates: bool = typer.Option(
        False, "--key-log-updates", help="Also log CLIENT_/SERVER_TRAFFIC_SECRET_N after KeyUpdates."
    ),
    trace: str | None = typer.Option(None, "--trace", help="Trace categories: handshake,messages,..."),
    alpn: list[str] = typer.Option([], "--alpn", help="Offered ALPN protocol (repeatable)."),
    suites: str | None = typer.Option(None, "--suites", help="Comma-separated IANA suite names."),
    groups: str | None = typer.Option(None, "--groups", help="Comma-separated groups (x25519,...)."),
    key_share: str | None = typer.Option(None, "--key-share", help="Groups to send key shares for."),
    ciphers: str | None = typer.Option(
        None, "--ciphers", help="Suites by OpenSSL name (ECDHE-RSA-AES128-GCM-SHA256:...) or IANA name."
    ),
    min_version: str | None = typer.Option(None, "--min-version", help="Lowest version: 1.2 or 1.3."),
    max_version: str | None = typer.Option(None, "--max-version", help="Highest version: 1.2 or 1.3."),
    no_ems: bool = typer.Option(False, "--no-ems", help="TLS 1.2: no extended master secret."),
    no_etm: bool = typer.Option(False, "--no-etm", help="TLS 1.2 CBC: no encrypt_then_mac."),
    fallback_scsv: bool = typer.Option(
        False, "--fallback-scsv", help="Send TLS_FALLBACK_SCSV (RFC 7507), as a fallback retry does."
    ),
    sess_out: Path | None = typer.Option(
        None, "--sess-out", help="Write the session (last ticket) here, 0600, to resume later."
    ),
    sess_in: Path | None = typer.Option(None, "--sess-in", help="Resume the session in this file."),
    early_data: str | None = typer.Option(
        None,
        "--early-data",
        help="With --sess-in: send this text as 0-RTT early data (then half-close, unless --send).",
    ),
    send: str | None = typer.Option(None, "--send", help="Send this text after the handshake."),
    key_update: bool = typer.Option(False, "--key-update", help="Send a KeyUpdate (update_requested)."),
    timeout: float = typer.Option(10.0, "--timeout", help="Socket timeout in seconds."),
    fault: list[str] = typer.Option([], "--fault", help=_FAULT_HELP),
) -> None:
    """A TLS 1.3 / 1.2 client on the capdebug engine (like openssl s_client)."""
    fault = _fault_spec(fault)
    from ..tls.config import TLSConfig
    from ..tls.connection import Connection
    from ..tls.io import TLSSocket

    host, port = _split_hostport(target)
    group_list = _groups(groups)
    config = TLSConfig(
        cipher_suites=_ciphers(suites, ciphers),
        min_version=_version(min_version, 0x0303, "--min-version"),
        max_version=_version(max_version, 0x0304, "--max-version"),
        extended_master_secret=not no_ems,
        encrypt_then_mac=not no_etm,
        send_fallback_scsv=fallback_scsv,
        groups=group_list,
        key_share_groups=_groups(key_share) if key_share else None,
        credential=_load_credential(cert, key),
        trust_roots=_roots(ca, system=not insecure),
        verify=not insecure,
        server_name=sni or host,
        alpn_protocols=tuple(alpn),
        key_log_callback=_key_logger(key_log),
        key_log_update_lines=key_log_updates,
        trace=_trace(trace),
        trace_callback=_trace_sink if trace else None,
    )
    config = _fault_config(config, fault, client=True, have_cert=cert is not None)
    faults = _make_faults(fault)
    session = None
    if sess_in is not None:
        from ..tls.session import Session

        try:
            session = Session.from_bytes(sess_in.read_bytes())
        except OSError as exc:
            raise UsageError(f"cannot read {sess_in}: {exc.strerror}") from None
    sock = socket.create_connection((host, port), timeout=timeout)
    early = early_data.encode() if early_data is not None else None
    conn = Connection(config, is_client=True, now=_clock, session=session, early_data=early, faults=faults)
    tls = TLSSocket(sock, conn, faults)
    try:
        hs = tls.negotiate()
        typer.echo(_summary(hs), err=True)
        if key_update:
            tls.key_update(request=True)
        if send is not None:
            tls.sendall(send.encode())
        if send is not None or early is not None:
            # The request is complete (early data alone is one too): half-close, so that a
            # server reading to the end answers instead of waiting for more.
            tls.shutdown_send()
        last = b"\n"
        while data := tls.recv():
            sys.stdout.buffer.write(data)
            sys.stdout.flush()
            last = data[-1:]
        if last != b"\n" and sys.stdout.isatty():
            sys.stdout.write("\n")  # status lines start on their own line
            sys.stdout.flush()
        typer.echo("peer sent close_notify", err=True)
    finally:
        tls.close()
        if sess_out is not None:
            _write_session(sess_out, tls)


def _write_session(path: Path, tls: object) -> None:
    """The last ticket's session, in a file created 0600 and never through a symlink."""
    from ..tls.io import TLSSocket

    assert isinstance(tls, TLSSocket)
    sessions = [t.session for t in tls.tickets if t.session is not None]
    if not sessions:
        typer.echo("no session ticket received: nothing written to --sess-out", err=True)
        return
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags, 0o600)
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror}") from None
    with os.fdopen(fd, "wb") as f:
        os.fchmod(f.fileno(), 0o600)
        f.write(sessions[-1].to_bytes())
    typer.echo(f"session written to {path}", err=True)


_ONLY_HELP = f"Only these ({', '.join(PKI_LAYOUT)})."


@certs_app.command("make")
def certs_make(
    directory: Path = typer.Argument(..., help="Folder to write the PEM files into."),
    only: list[str] = typer.Option([], "--only", help=_ONLY_HELP),
) -> None:
    """Test CA, server and client certificates (ECDSA, RSA, Ed25519), and broken ones:
    expired, not yet valid, wrong host name, self-signed."""
    from ..tls import certs

    for name in only:
        if name not in PKI_LAYOUT:
            raise UsageError(f"unknown certificate {name!r} (known: {', '.join(PKI_LAYOUT)})")
    paths = certs.make_pki_dir(directory, dt.datetime.now(dt.UTC), only=tuple(only) or None)
    for name, path in paths.items():
        typer.echo(f"{name:24} {path}")


def register(app: typer.Typer) -> None:
    """Add ``serve``, ``connect`` and ``certs make`` to the root app."""
    app.command("serve")(serve)
    app.command("connect")(connect)
    app.add_typer(certs_app, name="certs")


def main() -> None:
    """``python -m capdebug.cli.engine``: the three commands without the root app."""
    app = typer.Typer(no_args_is_help=True, pretty_exceptions_enable=False)
    register(app)
    print_stacktraces(os.environ.get("CAPDEBUG_PRINT_STACKTRACE") == "1")
    try:
        app(standalone_mode=False)
    except TLSError as exc:
        sys.stderr.write(f"capdebug: error: {exc}\n")
        sys.exit(exc.exit_code)
    except UsageError as exc:
        sys.stderr.write(f"capdebug: error: {exc}\n")
        sys.exit(exc.exit_code)


if __name__ == "__main__":
    main()
