"""A file given as a key log that is not one is refused with one line naming what it is
(a PEM or DER key or certificate made by openssl, a pcap or pcapng capture, a compressed file),
with a non-zero exit and no traceback; a key log that is given but holds nothing usable is
never reported as "no key log was given"."""

from __future__ import annotations

import gzip
import subprocess
import sys
from pathlib import Path

import pytest

from tests.tools import require

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
CAPTURE = FIXTURES / "tls13-aes128gcm.pcap"


def _capdebug(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "import sys; from capdebug.cli.app import main; main(sys.argv[1:])", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="module")
def wrong_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    require("openssl", "editcap")
    d = tmp_path_factory.mktemp("wrong")

    def run(*argv: str) -> None:
        subprocess.run(argv, check=True, capture_output=True, timeout=60)

    run(
        "openssl",
        "genpkey",
        "-algorithm",
        "RSA",
        "-pkeyopt",
        "rsa_keygen_bits:2048",
        "-out",
        str(d / "key.pem"),
    )
    run("openssl", "req", "-new", "-x509", "-key", str(d / "key.pem"), "-subj", "/CN=x", "-days", "1",
        "-out", str(d / "cert.pem"))  # fmt: skip
    run("openssl", "x509", "-in", str(d / "cert.pem"), "-outform", "DER", "-out", str(d / "cert.der"))
    run("openssl", "pkey", "-in", str(d / "key.pem"), "-outform", "DER", "-out", str(d / "key.der"))
    run("editcap", "-F", "pcapng", str(CAPTURE), str(d / "capture.pcapng"))
    (d / "capture.pcap.gz").write_bytes(gzip.compress(CAPTURE.read_bytes()))
    (d / "keys.txt.gz").write_bytes(gzip.compress(CAPTURE.with_suffix(".keys").read_bytes()))
    return {
        "key.pem": d / "key.pem",
        "cert.pem": d / "cert.pem",
        "cert.der": d / "cert.der",
        "key.der": d / "key.der",
        "capture.pcap": CAPTURE,
        "capture.pcapng": d / "capture.pcapng",
        "capture.pcap.gz": d / "capture.pcap.gz",
        "keys.txt.gz": d / "keys.txt.gz",
    }


EXPECTED = {
    "key.pem": "it is a PEM private key (PRIVATE KEY), which goes to --rsa-key",
    "cert.pem": "it is a PEM certificate (CERTIFICATE), which holds no secret",
    "cert.der": "it is DER (ASN.1) data",
    "key.der": "it is DER (ASN.1) data",
    "capture.pcap": "it is a pcap capture",
    "capture.pcapng": "it is a pcapng capture",
    "capture.pcap.gz": "it is gzip-compressed data",
    "keys.txt.gz": "it is gzip-compressed data",
}


@pytest.mark.parametrize("command", ["decrypt", "triage"])
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_a_wrong_file_given_as_key_log_is_refused_by_name(
    wrong_files: dict[str, Path], name: str, command: str
) -> None:
    done = _capdebug(command, str(CAPTURE), "--keylog", str(wrong_files[name]))
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert "is not a key log" in lines[0] and EXPECTED[name] in lines[0], lines[0]
    assert str(wrong_files[name]) in lines[0]


def test_a_key_log_without_usable_lines_is_not_called_missing(tmp_path: Path) -> None:
    empty = tmp_path / "empty.keys"
    empty.write_text("")
    done = _capdebug("decrypt", str(CAPTURE), "--keylog", str(empty))
    assert done.returncode == 0, done.stderr
    assert "no key log was given" not in done.stdout + done.stderr
    assert f"the key sources given ({empty}) hold no usable session secret" in done.stdout
