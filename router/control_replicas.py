"""Engine replicas as the admin API changes them: pure functions over plain data.

The control plane's replica document holds only what admins changed: `{url: {"role", "state"}}`.
The effective set is the settings' engines overlaid with it: `add` puts a new url in, `pause` and
`drain` stop new requests to one (running ones finish), `resume` undoes both, `remove` takes it out
once nothing runs there.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from router.placement import ROLES

ACTIVE, PAUSED, DRAINING, REMOVED = "active", "paused", "draining", "removed"
ACTIONS = {"resume": ACTIVE, "pause": PAUSED, "drain": DRAINING, "remove": REMOVED}


@dataclass(frozen=True)
class ReplicaSpec:
    url: str
    role: str = ""
    state: str = ACTIVE

    @property
    def takes_new(self) -> bool:
        return self.state == ACTIVE


STATES = (ACTIVE, PAUSED, DRAINING, REMOVED)
MAX_URL = 2048


def normalize_url(url: str) -> str:
    """An engine's base URL. Only plain http: the gateway's connection pool speaks no TLS (engines
    sit beside the gateway), and a replica it cannot reach must be refused here, not half-applied."""
    url = url.strip().rstrip("/")
    try:
        parts = urlsplit(url)
        ok = parts.scheme == "http" and bool(parts.hostname) and parts.port != 0
    except ValueError:  # a bad port
        ok = False
    if not ok or not 10 <= len(url) <= MAX_URL or parts.query or parts.fragment \
            or any(c.isspace() or not c.isprintable() for c in url):
        raise ValueError("url must be an http://host[:port] URL of an OpenAI-compatible engine "
                         "(the gateway has no TLS upstreams)")
    return url


def check_doc(doc: Any) -> None:
    """A stored replica document as the admin API writes it; ValueError for anything else."""
    if not isinstance(doc, dict):
        raise ValueError("the replica document must be a JSON object")
    for url, entry in doc.items():
        if normalize_url(url) != url:
            raise ValueError(f"replica url {url!r} is not normalized")
        if not isinstance(entry, dict) or entry.get("role", "") not in ROLES \
                or entry.get("state", ACTIVE) not in STATES:
            raise ValueError(f"replica {url}: entry must be {{'role': one of {ROLES}, "
                             f"'state': one of {STATES}}}")


def effective(configured: list[tuple[str, str]], doc: dict[str, Any]) -> list[ReplicaSpec]:
    """Settings' (url, role) pairs overlaid with the control plane's document; removed ones left out."""
    specs = {url: ReplicaSpec(url, role) for url, role in configured}
    for url, entry in doc.items():
        base = specs.get(url, ReplicaSpec(url))
        specs[url] = ReplicaSpec(url, entry.get("role", base.role), entry.get("state", base.state))
    return [s for s in specs.values() if s.state != REMOVED]


def changed(doc: dict[str, Any], configured: list[tuple[str, str]], url: str, action: str,
            role: str | None = None) -> dict[str, Any]:
    """The document after `action` ('add' or one of ACTIONS) on `url`; ValueError if it makes no sense."""
    known = {s.url for s in effective(configured, doc)}
    if role is not None and role not in ROLES:
        raise ValueError("role must be '', 'short' or 'long'")
    if action == "add":
        if url in known:
            raise ValueError(f"replica {url} is already in the set")
        return {**doc, url: {"role": role or "", "state": ACTIVE}}
    if action not in ACTIONS:
        raise ValueError(f"action must be add, {', '.join(ACTIONS)}")
    if url not in known:
        raise ValueError(f"no replica {url} in the set")
    entry = {**doc.get(url, {}), "state": ACTIONS[action]}
    if role is not None:
        entry["role"] = role
    return {**doc, url: entry}
