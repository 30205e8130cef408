"""Stopping asyncio tasks for sure.

On Python 3.11 a cancel that races a timeout inside a client library (redis-py wraps reads in
`asyncio.timeout`) can be swallowed, leaving a loop running forever; so cancel again until done.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable


async def cancel_and_wait(tasks: Iterable[asyncio.Task], every_s: float = 0.1) -> None:
    pending = {t for t in tasks if not t.done()}
    while pending:
        for t in pending:
            t.cancel()
        _, pending = await asyncio.wait(pending, timeout=every_s)
