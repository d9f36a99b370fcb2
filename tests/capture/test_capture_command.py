"""command.py and transport.py: filters, argv, quoting through a real shell, error classification."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from capdebug.capture.command import (
    TcpdumpOptions,
    build_filter,
    parse_interface_list,
    parse_tcpdump_stats,
    remote_command_line,
    tcpdump_argv,
    wrapper_argv,
)
from capdebug.capture.runner import host_output_path, split_keylog_spec
from capdebug.capture.transport import SshTransport, classify_failure, parse_remote
from capdebug.errors import UsageError
from tests.tools import require

EVIL = [
    "'; touch {p}; '",
    '"; touch {p}; "',
    "$(touch {p})",
    "`touch {p}`",
    "a\ntouch {p}",
    "x & touch {p} #",
]


def test_build_filter_combines_groups() -> None:
    assert build_filter([443], [], None) == "tcp port 443"
    assert (
        build_filter([443, 8443], ["10.0.0.1"], None) == "(tcp port 443 or tcp port 8443) and (host 10.0.0.1)"
    )
    assert build_filter([], [], "  udp  ") == "udp"
    assert build_filter([], [], None) == ""
    assert build_filter([1], [], "icmp") == "(tcp port 1) and (icmp)"


@pytest.mark.parametrize("host", ["1.2.3.4 or 1", "a)", "x; y", ""])
def test_build_filter_refuses_expressions_as_hosts(host: str) -> None:
    with pytest.raises(UsageError):
        build_filter([], [host], None)


@pytest.mark.parametrize("port", [0, 65536, -1])
def test_build_filter_refuses_bad_ports(port: int) -> None:
    with pytest.raises(UsageError):
        build_filter([port], [], None)


def test_tcpdump_argv_streams_pcap_to_stdout() -> None:
    argv = tcpdump_argv(
        TcpdumpOptions(interface="eth0", count=5, snaplen=100, buffer_kib=0, tcpdump_path="/x/td")
    )
    assert argv[0] == "/x/td"
    assert argv[argv.index("-i") + 1] == "eth0"
    assert argv[argv.index("-w") + 1] == "-"
    assert "-U" in argv and "-B" not in argv
    assert argv[argv.index("-c") + 1] == "5" and argv[argv.index("-s") + 1] == "100"
    with pytest.raises(UsageError):
        tcpdump_argv(TcpdumpOptions(count=0))


@pytest.mark.parametrize("template", EVIL)
def test_remote_command_line_survives_a_real_shell(template: str, tmp_path: Path) -> None:
    # ssh hands the joined line to the remote login shell: run it through sh the same way.
    target = tmp_path / "pwned"
    evil = template.format(p=target)
    line = remote_command_line(["printf", "%s|", evil, "-i", evil])
    out = subprocess.run(["sh", "-c", line], capture_output=True, text=True, check=True).stdout
    assert out == f"{evil}|-i|{evil}|"
    assert not target.exists()


def _run_wrapper(argv: list[str], env: dict[str, str]) -> tuple[str, int]:
    # Keep stdin open until the program is done: closing it is the wrapper's stop signal.
    proc = subprocess.Popen(
        argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env={"PATH": "/usr/bin:/bin", **env}
    )
    assert proc.stdout is not None and proc.stdin is not None
    with proc:
        out = proc.stdout.read()
        proc.stdin.close()
        return out, proc.wait()


@pytest.mark.parametrize("template", EVIL)
def test_wrapper_passes_values_as_words(template: str, tmp_path: Path) -> None:
    """The wrapper hands interface and filter to the program unchanged (printf stands in for
    tcpdump), through ssh's extra shell layer."""
    target = tmp_path / "pwned"
    evil = template.format(p=target)
    argv = wrapper_argv(
        TcpdumpOptions(interface=evil, filter=evil, buffer_kib=0, tcpdump_path="printf"), sudo=False
    )
    argv[argv.index("printf") + 1 : argv.index("printf") + 1] = ["%s|"]
    out, rc = _run_wrapper(
        ["sh", "-c", remote_command_line(argv)], {"SSH_CONNECTION": "127.0.0.1 40000 127.0.0.1 22"}
    )
    assert rc == 0
    words = out.split("|")[:-1]
    assert words[words.index("-i") + 1] == evil
    assert (
        words[-1]
        == f"({evil}) and not (host 127.0.0.1 and host 127.0.0.1 and tcp port 40000 and tcp port 22)"
    )
    assert not target.exists()


def test_wrapper_ignores_a_malformed_ssh_connection(tmp_path: Path) -> None:
    target = tmp_path / "pwned"
    argv = wrapper_argv(TcpdumpOptions(buffer_kib=0, tcpdump_path="printf", filter="tcp"), sudo=False)
    argv[argv.index("printf") + 1 : argv.index("printf") + 1] = ["%s|"]
    out, rc = _run_wrapper(argv, {"SSH_CONNECTION": f"1) or (touch {target} 1 2 3"})
    assert rc == 0
    assert out.split("|")[-2] == "tcp"
    assert not target.exists()


def test_parse_tcpdump_stats() -> None:
    err = (
        "tcpdump: listening on lo\n12 packets captured\n30 packets received by filter\n"
        "3 packets dropped by kernel\n"
    )
    stats = parse_tcpdump_stats(err)
    assert (stats.captured, stats.received, stats.dropped_by_kernel) == (12, 30, 3)
    assert parse_tcpdump_stats("").dropped_by_kernel is None
    assert parse_tcpdump_stats("1 packet captured\n").captured == 1


def test_parse_interface_list_of_real_tcpdump() -> None:
    require("tcpdump")
    out = subprocess.run(["tcpdump", "-D"], capture_output=True, text=True, check=True).stdout
    ifaces = parse_interface_list(out)
    assert len(ifaces) == len([ln for ln in out.splitlines() if ln.strip()])
    lo = next(i for i in ifaces if i.name == "lo")
    assert "Loopback" in lo.flags
    assert [i.index for i in ifaces] == sorted(i.index for i in ifaces)


def test_parse_remote() -> None:
    t = parse_remote("alice@web1:2222", config_file="/c", options=["A=b"], env={"CAPDEBUG_SSH_OPTS": "-i /k"})
    assert (t.destination, t.port, t.label) == ("alice@web1", 2222, "alice@web1:2222")
    argv = t.argv(["tcpdump", "-D"])
    assert argv[:3] == ["ssh", "-T", "-F"] and "-i" in argv and "BatchMode=yes" in argv
    # The user's -o comes before the defaults: ssh keeps the first value of an option.
    assert argv.index("A=b") < argv.index("BatchMode=yes")
    assert argv[-3:] == ["--", "alice@web1", "tcpdump -D"]
    assert parse_remote("[::1]:22", env={}).destination == "::1"
    assert parse_remote("host", env={}).port is None
    for bad in ["-oProxyCommand=touch", "a b", "x@-y", "h:99999", ""]:
        with pytest.raises(UsageError):
            parse_remote(bad, env={})


def test_ssh_transport_is_batch_mode() -> None:
    assert "BatchMode=yes" in SshTransport("h").ssh_argv()


def test_split_keylog_spec(tmp_path: Path) -> None:
    assert split_keylog_spec("web1:/var/log/keys") == ("web1", "/var/log/keys")
    assert split_keylog_spec("u@[::1]:k.log") == ("u@[::1]", "k.log")
    assert split_keylog_spec("/tmp/a:b") == (None, "/tmp/a:b")
    local = tmp_path / "x:y"
    local.write_text("")
    assert split_keylog_spec(str(local)) == (None, str(local))


def test_host_output_path() -> None:
    assert host_output_path("/d/out.pcapng", "root@web1:2222") == "/d/out.root_web1_2222.pcapng"
    assert host_output_path("out", "a/../b") == "out.a_.._b.pcapng"


@pytest.mark.parametrize(
    ("rc", "stderr", "expect"),
    [
        (255, "Permission denied (publickey).\r\n", "authentication to h was refused"),
        (
            255,
            "@@@ WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED! @@@\nHost key verification failed.",
            "does not match",
        ),
        (255, "Host key verification failed.\n", "is not known"),
        (255, "ssh: connect to host h port 22: Connection refused\n", "unreachable"),
        (255, "ssh: Could not resolve hostname h: Name or service not known\n", "cannot resolve"),
        (255, "Connection to h closed by remote host.\n", "dropped"),
        (1, "sudo: a password is required\n", "sudo needs a password"),
        (127, "sh: 1: /x/tcpdump: not found\n", "tcpdump is not installed"),
        (1, "sudo: /x/tcpdump: command not found\n", "tcpdump is not installed"),
        (
            1,
            "tcpdump: any: You don't have permission to perform this capture on that device\n",
            "not permitted",
        ),
        (
            1,
            "tcpdump: eth9: No such device exists\n(SIOCGIFHWADDR: No such device)\n",
            "cannot open the interface",
        ),
        (1, "tcpdump: syntax error in filter expression\n", "rejected the filter"),
        (3, "weird\n", "failed (exit status 3): weird"),
    ],
)
def test_classify_failure(rc: int, stderr: str, expect: str) -> None:
    msg = classify_failure("h", rc, stderr)
    assert expect in msg
    assert "\n" not in msg


def test_wrapper_ends_options_before_the_filter(tmp_path: Path) -> None:
    target = tmp_path / "x"
    argv = wrapper_argv(TcpdumpOptions(buffer_kib=0, tcpdump_path="printf", filter=f"-w{target}"), sudo=False)
    argv[argv.index("printf") + 1 : argv.index("printf") + 1] = ["%s|"]
    out, rc = _run_wrapper(argv, {})
    assert rc == 0
    assert out.split("|")[-3:-1] == ["--", f"-w{target}"]


def test_classify_a_killed_process() -> None:
    assert classify_failure("h", -9, "", over_ssh=True) == (
        "the ssh connection to h dropped (the local ssh process was killed by SIGKILL)"
    )
    assert classify_failure("local", -15, "") == "tcpdump on local was killed by SIGTERM"
