"""Request ids, the access log and the gateway's log format.

Every request gets an id: the client's `X-Request-Id` when it sent a usable one, else a new one. It
comes back on every answer (errors and streams included), travels with the job to the engine as
`X-Request-Id`, and is in every log line written while that request is served.
"""

from __future__ import annotations

import contextvars
import json
import logging
import os
import re
import sys
import time
import uuid

from router.errors import ApiError

HEADER = "x-request-id"
_VALID = re.compile(r"[\x21-\x7e]{1,128}")  # printable ASCII, no spaces: safe in a header and a log
request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")
access = logging.getLogger("skipjoin.access")
log = logging.getLogger("skipjoin.api")


def new_request_id(offered: str | None) -> str:
    return offered if offered and _VALID.fullmatch(offered) else uuid.uuid4().hex


class RequestIdMiddleware:
    """Pure ASGI (streams pass through unbuffered): sets the id, adds it to the answer's headers and,
    when `access_log`, writes one line per request once its answer is complete."""

    def __init__(self, app, access_log: bool = False):
        self.app, self.access_log = app, access_log

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        offered = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"x-request-id"), None)
        rid = new_request_id(offered)
        token = request_id.set(rid)
        start, status, sent = time.monotonic(), 0, 0

        async def send_with_id(message):
            nonlocal status, sent
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [h for h in message.get("headers", []) if h[0].lower() != b"x-request-id"]
                message = {**message, "headers": [*headers, (b"x-request-id", rid.encode())]}
            elif message["type"] == "http.response.body":
                sent += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception as exc:  # noqa: BLE001 - answered here so the 500 carries the id too
            if status:
                raise
            log.exception("unhandled error", exc_info=exc)
            resp = ApiError(500, "internal error").response()
            await resp(scope, receive, send_with_id)
        finally:
            if self.access_log:
                client = scope.get("client") or ("", 0)
                access.info(
                    "%s %s %s", scope["method"], scope["path"], status,
                    extra={"http": {"method": scope["method"], "path": scope["path"], "status": status,
                                    "ms": round((time.monotonic() - start) * 1000, 2), "bytes": sent,
                                    "client": client[0]}},
                )
            request_id.reset(token)


class _RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request id, and the access fields."""

    def format(self, record: logging.LogRecord) -> str:
        out = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if getattr(record, "request_id", ""):
            out["request_id"] = record.request_id
        if isinstance(getattr(record, "http", None), dict):
            out.update(record.http)
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, separators=(",", ":"))


class _TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        rid = getattr(record, "request_id", "")
        return f"{line} request_id={rid}" if rid else line


def setup_logging(level: str = "warning", fmt: str = "text", access_log: bool = False) -> None:
    """The root handler every gateway log line goes through; `fmt` "json" writes JSON lines. The
    start line and (when on) the access log are written whatever `level` is."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_RequestIdFilter())
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(_TextFormatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("skipjoin.start").setLevel(logging.INFO)
    access.setLevel(logging.INFO if access_log else logging.WARNING)


def unknown_env(environ: dict[str, str] | None = None) -> list[str]:
    """SKIPJOIN_* variables nothing reads (a misspelt setting is otherwise silently ignored)."""
    from router.settings import Settings

    known = {f"SKIPJOIN_{n.upper()}" for n in Settings.model_fields} | {"SKIPJOIN_MODELS"}
    try:
        from engine.vllm.settings import EngineSettings

        known |= {f"SKIPJOIN_ENGINE_{n.upper()}" for n in EngineSettings.model_fields}
    except ImportError:  # pragma: no cover - the engine package is part of every install
        pass
    env = os.environ if environ is None else environ
    return sorted(k for k in env if k.startswith("SKIPJOIN_") and k not in known
                  and not k.startswith("SKIPJOIN_TEST_"))
