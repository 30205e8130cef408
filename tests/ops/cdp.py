"""Headless Chromium driven over the DevTools protocol (Debian's chromium, the `websockets` client
uvicorn already brings): open a page, evaluate JavaScript in it, e.g. to click its buttons."""

from __future__ import annotations

import itertools
import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import chromium
import httpx
from websockets.sync.client import connect


class Page:
    def __init__(self, url: str, start_timeout_s: float = 90.0):
        exe = chromium.binary()
        if exe is None:
            raise RuntimeError("chromium is not installed (scripts/system_deps.sh installs it)")
        self.profile = Path(tempfile.mkdtemp(prefix="skipjoin-cdp-"))
        self.proc = subprocess.Popen(
            [exe, *chromium.FLAGS, f"--user-data-dir={self.profile}", "--remote-debugging-port=0",
             "--window-size=1280,1000", url],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self._ids = itertools.count(1)
        try:
            port = self._port(start_timeout_s)
            page = self._target(port, start_timeout_s)
            self.ws = connect(page["webSocketDebuggerUrl"], max_size=None, open_timeout=30)
        except BaseException:
            self.close()
            raise

    def _port(self, timeout_s: float) -> int:
        active = self.profile / "DevToolsActivePort"  # Chromium writes its port here
        deadline = time.monotonic() + timeout_s
        while not (active.exists() and active.read_text().strip()):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("chromium did not open its DevTools port")
            time.sleep(0.1)
        return int(active.read_text().split()[0])

    def _target(self, port: int, timeout_s: float) -> dict:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                pages = [t for t in httpx.get(f"http://127.0.0.1:{port}/json/list", timeout=10).json()
                         if t.get("type") == "page"]
                if pages:
                    return pages[0]
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("chromium opened no page")
            time.sleep(0.1)

    def eval(self, expression: str, timeout_s: float = 60.0):
        """The value of `expression` (awaited when it is a promise)."""
        msg_id = next(self._ids)
        self.ws.send(json.dumps({"id": msg_id, "method": "Runtime.evaluate", "params": {
            "expression": expression, "awaitPromise": True, "returnByValue": True}}))
        deadline = time.monotonic() + timeout_s
        while True:
            reply = json.loads(self.ws.recv(timeout=max(0.1, deadline - time.monotonic())))
            if reply.get("id") == msg_id:
                result = reply.get("result", {})
                if "exceptionDetails" in result:
                    raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
                return result.get("result", {}).get("value")

    def wait(self, expression: str, timeout_s: float = 60.0):
        deadline = time.monotonic() + timeout_s
        while not (value := self.eval(expression)):
            if time.monotonic() > deadline:
                raise AssertionError(f"never true in the page: {expression}")
            time.sleep(0.2)
        return value

    def close(self) -> None:
        if getattr(self, "ws", None) is not None:
            self.ws.close()
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(15)
        shutil.rmtree(self.profile, ignore_errors=True)

    def __enter__(self) -> Page:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
