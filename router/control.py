"""The control plane's store: versioned JSON documents in Redis hashes, and the audit stream.

A change is one Lua call: compare the stored document, write the new one, bump the version and
append the audit entry together, so two admins racing on two gateways never lose a change or log
one that did not happen. Readers poll the version (`wire.control.POLL_S`) and reload on a move.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import redis.asyncio as redis

from wire import control

# KEYS: the document's hash, the audit stream. ARGV: field, expected old JSON, new JSON,
# audit maxlen, who, target, wall time. Returns the new version, or -1 when the old one moved.
_WRITE = """
local cur = redis.call('HGET', KEYS[1], ARGV[1]) or '{}'
if cur ~= ARGV[2] then return -1 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
local v = redis.call('HINCRBY', KEYS[1], 'version', 1)
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[4], '*', 'who', ARGV[5], 'target', ARGV[6],
           'at', ARGV[7], 'old', ARGV[2], 'new', ARGV[3], 'version', v)
return v
"""


@dataclass(frozen=True)
class Doc:
    """One control-plane document: `key` is its hash, `field` the JSON's field in it."""

    key: str
    field: str
    target: str  # its name in the audit log


ENGINE = Doc(control.POLICY, "knobs", "engine")
GATEWAY = Doc(control.GATEWAY, "knobs", "gateway")
REPLICAS = Doc(control.REPLICAS, "replicas", "replicas")


@dataclass(frozen=True)
class Snapshot:
    doc: dict[str, Any]
    version: int
    raw: str  # as stored: the compare-and-set compares this string


class Conflict(Exception):
    """The document changed between read and write (another admin won): retry."""


class ControlStore:
    def __init__(self, client: redis.Redis):
        self.r = client
        self._write = client.register_script(_WRITE)

    async def version(self, doc: Doc) -> int:
        return int(await self.r.hget(doc.key, "version") or 0)

    async def read(self, doc: Doc, strict: bool = False) -> Snapshot:
        """The stored document. One that is not a JSON object (written past the admin API) raises
        ValueError when `strict` (readers keep their last good one), else reads as {} so that an
        admin's next change replaces it (the compare-and-set still compares the stored text)."""
        raw, version = await self.r.hmget(doc.key, [doc.field, "version"])
        text = raw.decode(errors="replace") if raw else "{}"
        try:
            parsed = json.loads(text)
        except ValueError:
            parsed = None
        if not isinstance(parsed, dict):
            if strict:
                raise ValueError(f"stored {doc.target} document is not a JSON object: {text[:80]!r}")
            parsed = {}
        return Snapshot(parsed, int(version or 0), text)

    async def update(self, doc: Doc, old: Snapshot, new: dict[str, Any], who: str) -> int:
        """Store `new` if the stored document is still `old`; returns the new version."""
        version = await self._write(
            keys=[doc.key, control.AUDIT],
            args=[doc.field, old.raw, _dumps(new), control.AUDIT_MAXLEN, who, doc.target,
                  repr(time.time())],
        )
        if int(version) < 0:
            raise Conflict(doc.target)
        return int(version)

    async def audit(self, limit: int = 100) -> list[dict[str, Any]]:
        """The latest `limit` changes, newest first."""
        entries = await self.r.xrevrange(control.AUDIT, count=limit)
        return [_entry(entry_id, fields) for entry_id, fields in entries]


def _dumps(doc: dict[str, Any]) -> str:
    return json.dumps(doc, sort_keys=True, separators=(",", ":"))


def _entry(entry_id: bytes, fields: dict[bytes, bytes]) -> dict[str, Any]:
    text = {k.decode(): v.decode() for k, v in fields.items()}
    return {
        "id": entry_id.decode(),
        "at": float(text["at"]),
        "who": text["who"],
        "target": text["target"],
        "version": int(text["version"]),
        "old": json.loads(text["old"]),
        "new": json.loads(text["new"]),
    }
