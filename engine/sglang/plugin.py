"""The `sglang.srt.plugins` entry point: check the version, then hook the scheduler.

SGLang runs every installed plugin at the start of each of its processes, the scheduler's included
(`load_plugins()`), then applies the registered hooks. Hooks cannot be removed once applied.

SGLang logs a plugin's exception and serves on without it (stock scheduling, maybe half the hooks),
so the entry point fails loudly instead: any reason the plugin is not whole ends the process
(`SystemExit`, which `load_plugins` does not catch) with that reason in one line. A scheduler that
dies before it is ready makes SGLang's launcher stop the server.
"""

from __future__ import annotations

import json
import logging
import os

from engine.policy import PolicyConfig
from engine.sglang.driver import Driver
from engine.sglang.version import check_version, installed_version

log = logging.getLogger(__name__)

POLICY_ENV = "SKIPJOIN_ENGINE_POLICY_JSON"  # PolicyConfig knob changes (JSON), as for the vLLM backend
NAME = "skipjoin"  # the entry point's name (pyproject.toml), as `SGLANG_PLUGINS` lists it
GROUP = "sglang.srt.plugins"
_SP = "sglang.srt.managers.schedule_policy"
_SB = "sglang.srt.managers.schedule_batch"
_RR = "sglang.srt.managers.scheduler_components.request_receiver"

# (dotted target, Driver method, hook type): every SGLang function the plugin touches.
TARGETS = [
    (f"{_SP}.SchedulePolicy.calc_priority", "order_waiting", "AROUND"),
    (f"{_SP}.PrefillAdder.preempt_to_schedule", "preempt_for", "REPLACE"),
    (f"{_SP}.PrefillAdder.add_one_req", "add_one_req", "AROUND"),
    (f"{_SB}.release_req", "release_req", "AROUND"),
    (f"{_SB}.ScheduleBatch._get_decode_retraction_order", "retraction_order", "REPLACE"),
    (f"{_SB}.ScheduleBatch.retract_decode", "after_retract", "AFTER"),
    ("sglang.srt.managers.scheduler.Scheduler.process_batch_result", "after_batch_result", "AFTER"),
    (f"{_RR}.SchedulerRequestReceiver._broadcast_reqs_across_ranks", "share_knobs", "AROUND"),
]


class _Active:
    """The driver this process's hooks call (one per scheduler; tests put in their own)."""

    driver: Driver | None = None
    registered = False


def active() -> Driver | None:
    return _Active.driver


def _forward(method: str):
    def hook(*args, **kwargs):
        return getattr(_Active.driver, method)(*args, **kwargs)

    hook.__name__ = hook.__qualname__ = f"skipjoin_{method}"
    return hook


def policy_config(environ: dict[str, str]) -> PolicyConfig:
    raw = environ.get(POLICY_ENV, "").strip()
    try:
        changes = json.loads(raw) if raw else {}
    except json.JSONDecodeError as exc:
        raise ValueError(f"{POLICY_ENV} must be a JSON object of policy knobs: {exc}") from exc
    if not isinstance(changes, dict):
        raise ValueError(f"{POLICY_ENV} must be a JSON object of policy knobs")
    return PolicyConfig().updated(changes)


def install(driver: Driver) -> Driver:
    """Make `driver` the one the hooks call; register and apply the hooks on the first call."""
    check_version(installed_version())
    from sglang.srt.plugins.hook_registry import HookRegistry, HookType

    _Active.driver = driver
    if not _Active.registered:
        for target, method, kind in TARGETS:
            HookRegistry.register(target, _forward(method), HookType[kind])
        _Active.registered = True
    HookRegistry.apply_hooks()
    missing = [t for t, _, _ in TARGETS if t not in HookRegistry._patched]
    if missing:  # apply_hooks logs and carries on: a half-hooked scheduler must not serve
        raise RuntimeError(f"could not hook SGLang at {', '.join(missing)}")
    return driver


def register() -> None:
    """Entry point: one driver for this process, configured from the environment; with a control
    plane (`SKIPJOIN_ENGINE_REDIS_URL`) its threads start on the scheduler's first pass. Any
    failure ends the process: SGLang must not serve without the policy."""
    from engine.sglang.control import Control

    try:
        environ = dict(os.environ)
        driver = install(Driver(policy_config(environ)))
        control = Control.from_env(driver, environ)
    except Exception as exc:  # noqa: BLE001 - every reason is fatal, and said in one line
        reason = " ".join(f"{type(exc).__name__}: {exc}".split())
        log.critical("skipjoin plugin not loaded, refusing to serve: %s", reason)
        raise SystemExit(f"skipjoin plugin not loaded, refusing to serve: {reason}") from exc
    driver.on_first_pass = control.start if control is not None else None
    log.info("skipjoin policy %s hooked into SGLang %s (pid %d)", driver.policy.config.name,
             installed_version(), os.getpid())


def entry_point_problem(environ: dict[str, str]) -> str | None:
    """Why SGLang started with `environ` would not run the plugin at all (None: it would)."""
    from importlib.metadata import entry_points

    found = [ep for ep in entry_points(group=GROUP) if ep.name == NAME]
    if not found:
        return f"the {GROUP} entry point {NAME!r} is not installed (pip install -e .)"
    allowed = environ.get("SGLANG_PLUGINS", "")
    if allowed.strip() and NAME not in {x.strip() for x in allowed.split(",")}:
        return f"SGLANG_PLUGINS={allowed!r} leaves out {NAME!r}"
    try:
        found[0].load()
    except Exception as exc:  # noqa: BLE001 - SGLang would log this and serve without the plugin
        return f"the plugin does not import: {type(exc).__name__}: {exc}"
    return None
