"""Just enough of the W3C WebDriver protocol (over urllib) to drive chromedriver in tests.

selenium is not a dependency; chromedriver speaks plain JSON over HTTP on 127.0.0.1.
"""

from __future__ import annotations

import base64
import json
import re
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

ELEMENT = "element-6066-11e4-a52e-4f735466cecf"
"""The W3C web element identifier key."""

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1400,1000",
]


class WebDriverError(AssertionError):
    pass


class Browser:
    """A chromedriver process and one headless Chromium session."""

    def __init__(self) -> None:
        self._profile = tempfile.TemporaryDirectory(prefix="capdebug-chromium-")
        self._proc = subprocess.Popen(
            ["chromedriver", "--port=0"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.session = ""
        try:
            self.base = f"http://127.0.0.1:{self._port()}"
            args = [*CHROMIUM_ARGS, f"--user-data-dir={self._profile.name}"]
            caps = {
                "browserName": "chrome",
                "goog:chromeOptions": {"binary": "/usr/bin/chromium", "args": args},
                "goog:loggingPrefs": {"browser": "ALL"},
            }
            value = self._call("POST", "/session", {"capabilities": {"alwaysMatch": caps}})
            self.session = value["sessionId"]
        except BaseException:
            self.close()
            raise

    def _port(self) -> int:
        assert self._proc.stdout is not None
        deadline = time.monotonic() + 20
        seen = []
        while time.monotonic() < deadline:
            line = self._proc.stdout.readline()
            if not line:
                break
            seen.append(line)
            m = re.search(r"started successfully on port (\d+)", line)
            if m:
                return int(m.group(1))
        raise WebDriverError(f"chromedriver did not start: {''.join(seen)}")

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(
            self.base + path, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(req, timeout=60) as resp:
                return json.load(resp)["value"]
        except urllib.error.HTTPError as exc:
            raise WebDriverError(f"{method} {path}: {exc.code} {exc.read()[:500]!r}") from exc

    def cmd(self, method: str, path: str, body: Any = None) -> Any:
        return self._call(method, f"/session/{self.session}{path}", body)

    def open(self, path: Path, fragment: str = "") -> None:
        self.cmd("POST", "/url", {"url": path.resolve().as_uri() + fragment})

    def js(self, script: str, *args: Any) -> Any:
        return self.cmd("POST", "/execute/sync", {"script": script, "args": list(args)})

    def find(self, css: str) -> str:
        value = self.cmd("POST", "/element", {"using": "css selector", "value": css})
        return str(value[ELEMENT])

    def click(self, css: str) -> None:
        self.cmd("POST", f"/element/{self.find(css)}/click", {})

    def type(self, css: str, text: str) -> None:
        self.cmd("POST", f"/element/{self.find(css)}/value", {"text": text})

    def console(self) -> list[dict[str, Any]]:
        """Browser log entries since the last call (chromedriver's legacy log endpoint)."""
        entries: list[dict[str, Any]] = self.cmd("POST", "/se/log", {"type": "browser"})
        return entries

    def alert_text(self) -> str | None:
        try:
            return str(self.cmd("GET", "/alert/text"))
        except WebDriverError:
            return None

    def screenshot(self, *targets: Path) -> bytes:
        """A PNG of the whole page, beyond the window (DevTools' Page.captureScreenshot)."""
        w, h = self.js(
            "const e = document.documentElement;return [Math.ceil(e.scrollWidth), Math.ceil(e.scrollHeight)];"
        )
        clip = {"x": 0, "y": 0, "width": w, "height": min(h, 10000), "scale": 1}
        value = self.cmd(
            "POST",
            "/goog/cdp/execute",
            {"cmd": "Page.captureScreenshot", "params": {"captureBeyondViewport": True, "clip": clip}},
        )
        png = base64.b64decode(value["data"])
        for t in targets:
            t.parent.mkdir(parents=True, exist_ok=True)
            t.write_bytes(png)
        return png

    def close(self) -> None:
        try:
            if self.session:
                self._call("DELETE", f"/session/{self.session}")
        finally:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            if self._proc.stdout is not None:
                self._proc.stdout.close()
            self._profile.cleanup()
