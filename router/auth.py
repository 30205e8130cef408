"""Who is calling: tenant and priority class from the API key, or from headers when auth is off."""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from router.errors import ApiError


@dataclass(frozen=True)
class Caller:
    tenant: str
    cls: str


def parse_api_keys(text: str) -> dict[str, Caller]:
    """'key1:tenant1:interactive,key2:tenant2:batch' -> {key: Caller}."""
    out: dict[str, Caller] = {}
    for item in filter(None, (p.strip() for p in text.split(","))):
        parts = item.split(":")
        if len(parts) != 3 or not all(parts):
            raise ValueError(f"api key entry {item!r}: expected key:tenant:class")
        out[parts[0]] = Caller(parts[1], parts[2])
    return out


def _bearer(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def match_key(api_keys: dict[str, Caller], token: str) -> Caller | None:
    """The caller of `token`, comparing it with every key in constant time (a dict lookup would
    leak, through timing, how much of a guess matched a key's hash bucket)."""
    found = None
    given = token.encode()
    for key, caller in api_keys.items():
        if hmac.compare_digest(key.encode(), given):
            found = caller
    return found


def resolve_caller(
    api_keys: dict[str, Caller],
    weights: dict[str, float],
    default_class: str,
    authorization: str | None,
    class_header: str | None,
    tenant_header: str | None,
    user: str | None,
) -> Caller:
    """With keys configured the key decides the tenant, and its class may only be lowered by the
    header (a heavier weight), never raised. Without keys, headers (or `user`) decide."""
    if class_header is not None and class_header not in weights:
        raise ApiError(
            400, f"unknown class {class_header!r}; known: {', '.join(weights)}", param="X-Skipjoin-Class"
        )
    if api_keys:
        caller = match_key(api_keys, _bearer(authorization) or "")
        if caller is None:
            raise ApiError(
                401, "invalid or missing API key", type_="invalid_request_error", code="invalid_api_key"
            )
        if class_header and weights[class_header] > weights.get(caller.cls, 0.0):
            return Caller(caller.tenant, class_header)
        return caller
    return Caller(tenant_header or user or "anonymous", class_header or default_class)
