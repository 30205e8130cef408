"""Live knobs and stats for the scheduler inside vLLM's engine process.

vLLM creates the scheduler in its engine-core process, out of reach of the API server, so knobs
come in on threads of their own: from the Redis control plane that every gateway's admin API
writes (`engine.control.KnobWatcher`), and, for an engine run alone, `GET/PUT /policy` and
`GET /stats` on a loopback control port. Stats go out the same two ways.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from engine.vllm.settings import EngineSettings
from wire.errors import error_body

log = logging.getLogger("skipjoin.engine.control")
MAX_BODY = 64 * 1024


class EngineControl:
    def __init__(self, settings: EngineSettings, apply: Callable[[dict], dict],
                 config: Callable[[], dict], stats: Callable[[], dict]):
        self.settings, self.apply, self.config, self.stats = settings, apply, config, stats
        self.http: ThreadingHTTPServer | None = None
        self.watcher = None
        self.publisher = None
        # The last stored knob set this engine refused ({"version", "error"}; None: none), on its
        # stats so an operator sees that the engine kept its last good knobs.
        self.rejected: dict | None = None
        self.applied = 0  # the stored version in force
        self._stop = threading.Event()

    def start(self) -> None:
        if self.settings.control_port:
            self.http = ThreadingHTTPServer((self.settings.control_host, self.settings.control_port),
                                            _handler(self))
            threading.Thread(target=self.http.serve_forever, name="skipjoin-control", daemon=True).start()
        if self.settings.redis_url:
            from engine.control import KnobWatcher, StatsPublisher

            base = self.settings.policy.to_dict()
            self.watcher = KnobWatcher(self.settings.redis_url, lambda knobs, version: self._from_redis(
                base, knobs, version))
            self.watcher.start()
            self.publisher = StatsPublisher(self.settings.redis_url, self.settings.replica_id)
            threading.Thread(target=self._publish_loop, name="skipjoin-stats", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()
        if self.http is not None:
            self.http.shutdown()
        if self.watcher is not None:
            self.watcher.stop()

    def snapshot(self) -> dict:
        return {**self.stats(), "policy": self.config(), "replica_id": self.settings.replica_id,
                "rejected": self._rejected()}

    def _rejected(self) -> dict | None:
        """The newest refused version later than the one applied (the watcher's: not even JSON)."""
        found = [r for r in (self.rejected, getattr(self.watcher, "rejected", None))
                 if r is not None and r["version"] > self.applied]
        return max(found, key=lambda r: r["version"], default=None)

    def _from_redis(self, base: dict, knobs: object, version: int) -> None:
        """Apply a stored knob set, or refuse it whole and keep the knobs that run: one bad value
        written past the admin API must not stop every engine that reads it."""
        try:
            if not isinstance(knobs, dict):
                raise ValueError("stored knobs are not a JSON object")
            self.apply({**base, **knobs})
            self.applied = version
            log.info("policy knobs version %s applied", version)
        except (ValueError, TypeError) as exc:
            self.rejected = {"version": version, "error": str(exc)}
            log.error("policy knobs version %s rejected, the last good ones kept: %s", version, exc)

    def _publish_loop(self) -> None:
        while not self._stop.wait(1.0):
            self.publisher.publish(self.snapshot())


def _handler(control: EngineControl) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:  # no access log
            pass

        def _send(self, status: int, body: dict) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            if self.path == "/policy":
                self._send(200, control.config())
            elif self.path == "/stats":
                self._send(200, control.snapshot())
            else:
                self._send(404, error_body(f"no route {self.path}", code="not_found"))

        def do_PUT(self) -> None:
            if self.path != "/policy":
                self._send(404, error_body(f"no route {self.path}", code="not_found"))
                return
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                self._send(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, error_body("body too large"))
                return
            try:
                changes = json.loads(self.rfile.read(length) or b"null")
                if not isinstance(changes, dict):
                    raise ValueError("body must be a JSON object of policy knobs")
                self._send(200, control.apply(changes))
            except (ValueError, UnicodeDecodeError) as exc:
                self._send(400, error_body(str(exc), code="invalid_policy"))

    return Handler
