"""Every tshark run of these tests uses a private configuration (see craft.wireshark_config)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.decode import craft


@pytest.fixture(autouse=True)
def _wireshark_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    manifest = json.loads((craft.FIXTURES / "manifest.json").read_text())["fixtures"]
    ports = {int(f["server_port"]) for f in manifest if f.get("server_port")} | {443}
    monkeypatch.setenv("WIRESHARK_CONFIG_DIR", str(craft.wireshark_config(tmp_path / "wireshark", ports)))
    yield
