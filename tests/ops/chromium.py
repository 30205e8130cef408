"""Debian's headless chromium, driven from the command line (no browser download, no driver)."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--hide-scrollbars",
)


def binary() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def run(url: str, *extra: str, budget_ms: int = 4000, timeout_s: float = 90.0) -> str:
    """Load `url` in a fresh profile, let its scripts run `budget_ms` of virtual time, return stdout."""
    exe = binary()
    if exe is None:
        raise RuntimeError("chromium is not installed (scripts/system_deps.sh installs it)")
    with tempfile.TemporaryDirectory(prefix="skipjoin-chromium-") as profile:
        cmd = [exe, *FLAGS, f"--user-data-dir={profile}", f"--virtual-time-budget={budget_ms}",
               *extra, url]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, check=True)
    return out.stdout


def dump_dom(url: str, budget_ms: int = 4000) -> str:
    return run(url, "--dump-dom", budget_ms=budget_ms)


def screenshot(url: str, path: Path, size: str = "1280,1000", budget_ms: int = 4000) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    run(url, f"--screenshot={path}", f"--window-size={size}", budget_ms=budget_ms)
    return path
