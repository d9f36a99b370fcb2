"""Run a scenario: the engine's server and client on loopback, captured by a real tcpdump.

Theory of operation. A listener on 127.0.0.1 gets a port from the kernel; tcpdump (through
:func:`capdebug.capture.runner.run_capture`, on ``lo``, filter ``tcp port P``) is started and
the run waits until its pcap stream has begun (the stream header is written once the capture is
active, so no packet of the conversation can be missed). The server runs in a thread, the client
in the calling thread; each side negotiates, then plays its role (:mod:`.catalog`), with the
scenario's faults armed. Errors a side meets are the point of most scenarios: they are recorded
as the side's outcome, never raised. A side that must *hold* its socket (so that its own FIN or
RST does not blur the verdict) closes it only once the capture has stopped.

The secrets come from the engine's ``key_log_callback``. The capture is then rewritten with one
Decryption Secrets Block (the NSS key log) before the first packet, 0600 from the first byte:
the pcapng decrypts with nothing else.

The clock is read here, at the edge: certificates are made and verified at ``now``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import socket
import tempfile
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from .._files import atomic_output
from ..capture.command import TcpdumpOptions
from ..capture.runner import CaptureResult, run_capture
from ..capture.transport import LocalTransport
from ..crypto import x509_engine
from ..crypto.testpki import Issued, LeafOptions, make_ca, make_leaf
from ..errors import CaptureError, TLSError, UsageError
from ..pcap.model import SECRETS_TYPE_TLS_KEYLOG, Interface, Packet, SecretsBlock
from ..pcap.open import open_capture
from ..pcap.pcapng import PcapngWriter
from ..tls.config import Credential, TLSConfig
from ..tls.connection import Connection
from ..tls.faults import fault_credential, parse_faults
from ..tls.io import TLSSocket
from ..tls.session import Session
from .catalog import SCENARIOS, Scenario

__all__ = ["CAPTURE_PERMISSION_HELP", "ScenarioRun", "run_scenario"]

_TIMEOUT_S = 15.0
_SETTLE_S = 1.2
"""After the conversation, before stopping tcpdump: the last FIN/RST/ACKs must be captured.
Through the capture wrapper, tcpdump hands packets over only when the kernel ring block
times out (about 1 s) even with --immediate-mode (measured: 0.6 s after the last packet
nothing was written, 1.1 s all of it), so wait longer than that."""

CAPTURE_PERMISSION_HELP = (
    "Capturing on the loopback needs root or CAP_NET_RAW for tcpdump: run `sudo capdebug scenario "
    "run ...`, or once: `sudo setcap cap_net_raw,cap_net_admin=eip $(command -v tcpdump)`"
)


@dataclass(slots=True)
class ScenarioRun:
    """What one run of a scenario produced."""

    scenario: Scenario
    pcapng: Path
    port: int
    outcomes: list[str] = field(default_factory=list)
    """What each side saw, in order ("client 1: ERR_PREMATURE_CLOSE ..."), for display."""
    secrets_lines: int = 0
    """Key-log lines embedded in the capture."""


class _Ready:
    """A :class:`PacketFilter` that only says that tcpdump's stream has begun."""

    def __init__(self, ready: threading.Event) -> None:
        ready.set()

    def feed(self, packets: list[Packet], now: float) -> Iterable[Packet | SecretsBlock]:
        return packets

    def finish(self, now: float) -> Iterable[Packet | SecretsBlock]:
        return []


class _Capture:
    """tcpdump on ``lo`` for one port, in a thread, until :meth:`stop`."""

    def __init__(self, port: int, path: Path, tcpdump_path: str) -> None:
        self.stop_event = threading.Event()
        self.ready = threading.Event()
        self.result: CaptureResult | None = None
        self.error: BaseException | None = None
        opts = TcpdumpOptions(
            interface="lo", ports=(port,), snaplen=0, buffer_kib=4096, tcpdump_path=tcpdump_path
        )

        def target() -> None:
            try:
                self.result = run_capture(
                    [LocalTransport()],
                    opts,
                    str(path),
                    stop=self.stop_event,
                    grace_s=5.0,
                    filter_for=lambda label, iface: _Ready(self.ready),
                )
            except BaseException as exc:  # re-raised by the caller's thread
                self.error = exc
            finally:
                self.ready.set()

        self.thread = threading.Thread(target=target, name="scenario-capture", daemon=True)
        self.thread.start()
        if not self.ready.wait(_TIMEOUT_S) or self.result is not None or self.error is not None:
            self.stop()
            raise CaptureError(self._failure("tcpdump did not start"))

    def _failure(self, what: str) -> str:
        detail = ""
        if self.error is not None:
            detail = str(self.error)
        elif self.result is not None and self.result.errors:
            detail = "; ".join(self.result.errors)
        low = detail.lower()
        if "permission" in low or "not permitted" in low or "you don't have" in low:
            return f"{what}: {detail}. {CAPTURE_PERMISSION_HELP}"
        return f"{what}: {detail}" if detail else what

    def stop(self) -> CaptureResult:
        self.stop_event.set()
        self.thread.join(_TIMEOUT_S + 10)
        if self.error is not None:
            raise CaptureError(self._failure("the capture failed"))
        if self.result is None:
            raise CaptureError("the capture did not stop")
        if self.result.errors:
            raise CaptureError(self._failure("the capture failed"))
        for host in self.result.hosts:
            if host.stats.dropped_by_kernel:
                raise CaptureError(f"tcpdump dropped {host.stats.dropped_by_kernel} packets: run again")
        return self.result


@dataclass(slots=True)
class _Pki:
    ca: Issued
    server: Credential
    client: Credential


def _pki(now: dt.datetime) -> _Pki:
    ca = make_ca(now)
    server = make_leaf(ca, now, LeafOptions())
    client = make_leaf(ca, now, LeafOptions(client=True, hostnames=("client.example",)))
    return _Pki(
        ca,
        Credential((server.cert_der, ca.cert_der), x509_engine.load_private_key(server.key_pem)),
        Credential((client.cert_der, ca.cert_der), x509_engine.load_private_key(client.key_pem)),
    )


class _KeyLog:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self._lock = threading.Lock()

    def __call__(self, line: str) -> None:
        with self._lock:
            self.lines.append(line)

    def for_randoms(self, randoms: set[str] | None) -> bytes:
        with self._lock:
            lines = [ln for ln in self.lines if randoms is None or ln.split(" ")[1].lower() in randoms]
        # A client and a server of one connection log the same lines: keep each once.
        return "".join(f"{ln}\n" for ln in dict.fromkeys(lines)).encode()


def _configs(sc: Scenario, now: dt.datetime, keylog: _KeyLog) -> tuple[TLSConfig, TLSConfig]:
    pki = _pki(now)
    server_faults = parse_faults(sc.server_faults)
    client_faults = parse_faults(sc.client_faults)
    server_cred = pki.server
    if server_faults.certificate is not None:
        server_cred, _ = fault_credential(server_faults.certificate, now, ca=pki.ca)
    client_cred: Credential | None = pki.client if sc.client_certificate else None
    if client_faults.certificate is not None:
        client_cred, _ = fault_credential(client_faults.certificate, now, client=True, ca=pki.ca)
    # No tickets unless the scenario resumes: a ticket is one more record the story does not need.
    server_options: dict[str, object] = {"session_tickets": 0, **sc.server_options}
    server = TLSConfig(
        credential=server_cred,
        trust_roots=(pki.ca.cert_der,),
        key_log_callback=keylog,
        **server_options,  # type: ignore[arg-type]
    )
    client = TLSConfig(
        credential=client_cred,
        trust_roots=(pki.ca.cert_der,),
        server_name="localhost",
        key_log_callback=keylog,
        **sc.client_options,  # type: ignore[arg-type]
    )
    return server_faults.configure(server), client_faults.configure(client)


def _listen() -> socket.socket:
    """A listener on a free port below the kernel's ephemeral range (32768 and up), as servers'
    ports usually are: a capture without the SYN (started mid-connection) tells client from
    server by the ports, so the server's port must look like one."""
    for _ in range(200):
        port = int.from_bytes(os.urandom(2), "big") % 10000 + 20000
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            listener.bind(("127.0.0.1", port))
        except OSError:
            listener.close()
            continue
        listener.listen(8)
        return listener
    raise CaptureError("no free port in 20000-29999 on 127.0.0.1 for the scenario's server")


def _describe(who: str, exc: BaseException) -> str:
    if isinstance(exc, TLSError):
        return f"{who}: {exc.name}: {exc}"
    return f"{who}: {type(exc).__name__}: {exc}"


def run_scenario(
    name: str,
    out_dir: str | os.PathLike[str],
    *,
    now: dt.datetime,
    tcpdump_path: str = "tcpdump",
) -> ScenarioRun:
    """Run scenario ``name`` and write ``out_dir/NAME.pcapng`` with its secrets embedded.

    ``now`` is the time the certificates are made and verified at (read by the caller).
    Raises :class:`~capdebug.errors.CaptureError` when tcpdump cannot capture (the message
    says what to do) and :class:`~capdebug.errors.UsageError` for an unknown scenario."""
    sc = SCENARIOS.get(name)
    if sc is None:
        raise UsageError(f"unknown scenario {name!r} (see `capdebug scenario list`)")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    keylog = _KeyLog()
    server_cfg, client_cfg = _configs(sc, now, keylog)
    listener = _listen()
    listener.settimeout(_TIMEOUT_S)
    if sc.server_rcvbuf:
        # On the listener, before any SYN: the accepted socket inherits it and the window scale
        # it announces matches the small buffer (set after accept, the kernel drops segments
        # that fit the announced window but not the buffer: retransmissions the story lacks).
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, sc.server_rcvbuf)
    port = listener.getsockname()[1]
    run = ScenarioRun(sc, out / f"{sc.name}.pcapng", port)
    held: list[TLSSocket] = []
    randoms: list[str] = []
    lock = threading.Lock()

    def note(line: str) -> None:
        with lock:
            run.outcomes.append(line)

    # Connections after the first may meet a server configured otherwise (same ticket key and
    # single-use store: a ticket it issued still resumes), e.g. one that stopped taking 0-RTT.
    later_cfg = (
        dataclasses.replace(server_cfg, **sc.later_server_options)  # type: ignore[arg-type]
        if sc.later_server_options
        else server_cfg
    )

    def serve() -> None:
        for i in range(sc.connections):
            try:
                raw, _ = listener.accept()
            except OSError as exc:
                note(_describe(f"server {i + 1}", exc))
                return
            raw.settimeout(_TIMEOUT_S)
            faults = parse_faults(sc.server_faults)
            cfg = server_cfg if i == 0 else later_cfg
            tls = TLSSocket(raw, Connection(cfg, is_client=False, now=now, faults=faults), faults)
            try:
                tls.negotiate()
                sc.server_role(tls)
                note(f"server {i + 1}: done")
            except (TLSError, OSError) as exc:
                note(_describe(f"server {i + 1}", exc))
            if sc.hold_server:
                with lock:
                    held.append(tls)
            else:
                tls.close()

    capture: _Capture | None = None
    tmp = Path(tempfile.mkdtemp(prefix="capdebug-scenario-", dir=out))
    raw_path = tmp / "raw.pcapng"
    try:
        if not sc.capture_after_handshake:
            capture = _Capture(port, raw_path, tcpdump_path)
        server = threading.Thread(target=serve, name="scenario-server", daemon=True)
        server.start()
        session: Session | None = None
        for i in range(sc.connections):
            faults = parse_faults(sc.client_faults)
            raw = socket.create_connection(("127.0.0.1", port), timeout=_TIMEOUT_S)
            if sc.client_sndbuf:
                raw.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sc.client_sndbuf)
            if sc.resume and i > 0 and session is None:
                note(f"client {i + 1}: no session ticket from connection {i} to resume")
            resuming = sc.resume and session is not None
            conn = Connection(
                client_cfg,
                is_client=True,
                now=now,
                faults=faults,
                session=session if resuming else None,
                early_data=sc.early_data if resuming else None,
            )
            tls = TLSSocket(raw, conn, faults)
            try:
                tls.negotiate()
                if sc.capture_after_handshake and capture is None:
                    # Let the last handshake packets (and the server's processing of them) pass
                    # before the capture starts, and let the capture settle before the first
                    # record after the handshake: a capture that holds half of a flight or
                    # misses the first record would tell another story.
                    time.sleep(0.2)
                    capture = _Capture(port, raw_path, tcpdump_path)
                    time.sleep(0.2)
                sc.client_role(tls)
                note(f"client {i + 1}: done")
            except (TLSError, OSError) as exc:
                note(_describe(f"client {i + 1}", exc))
            randoms.append(conn.client_random.hex())
            tickets = [t.session for t in tls.tickets if t.session is not None]
            if tickets:
                session = tickets[-1]
            if sc.hold_client:
                held.append(tls)
            else:
                tls.close()
        server.join(_TIMEOUT_S * 2)
        if server.is_alive():
            note("server: did not finish in time")
        time.sleep(_SETTLE_S)
        if capture is None:
            raise CaptureError("the capture never started (the handshake failed before it)")
        result = capture.stop()
        capture = None
        keep = set(randoms[: sc.keylog_connections]) if sc.keylog_connections is not None else None
        secrets = keylog.for_randoms(keep)
        run.secrets_lines = secrets.count(b"\n")
        _embed_secrets(Path(result.output or raw_path), run.pcapng, secrets)
    finally:
        if capture is not None:
            try:
                capture.stop()
            except CaptureError:
                pass  # the error that stopped the run is the one to report
        for tls in held:
            tls.close()
        listener.close()
        for p in tmp.iterdir():
            p.unlink()
        tmp.rmdir()
    return run


def _embed_secrets(raw: Path, dest: Path, secrets: bytes) -> None:
    """``raw`` rewritten to ``dest`` with one Decryption Secrets Block before the first packet."""
    with open_capture(raw) as reader, atomic_output(dest, private=True) as f:
        writer = PcapngWriter(f, shb_comment="capdebug scenario")
        interfaces: dict[int, int] = {}
        wrote_secrets = False
        for item in reader:
            if not isinstance(item, Packet):
                continue
            index = interfaces.get(item.interface)
            if index is None:
                iface: Interface = reader.interfaces[item.interface]
                index = interfaces[item.interface] = writer.add_interface(iface)
            if not wrote_secrets:
                if secrets:
                    writer.write_secrets(SECRETS_TYPE_TLS_KEYLOG, secrets)
                wrote_secrets = True
            writer.write_packet(item, index)
        if not wrote_secrets and secrets:
            writer.write_secrets(SECRETS_TYPE_TLS_KEYLOG, secrets)
