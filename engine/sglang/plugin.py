"""The `sglang.srt.plugins` entry point: check the version, then hook the scheduler.

SGLang runs every installed plugin at the start of each of its processes, the scheduler's included
(`load_plugins()`), then applies the registered hooks. Hooks cannot be removed once applied.
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
_SP = "sglang.srt.managers.schedule_policy"
_SB = "sglang.srt.managers.schedule_batch"


def targets(driver: Driver) -> list[tuple[str, object, str]]:
    """(dotted target, hook, hook type): every SGLang function the plugin touches."""
    return [
        (f"{_SP}.SchedulePolicy.calc_priority", driver.order_waiting, "AROUND"),
        (f"{_SP}.PrefillAdder.preempt_to_schedule", driver.preempt_for, "REPLACE"),
        (f"{_SP}.PrefillAdder.add_one_req", driver.add_one_req, "AROUND"),
        (f"{_SB}.release_req", driver.release_req, "AROUND"),
        (f"{_SB}.ScheduleBatch._get_decode_retraction_order", driver.retraction_order, "REPLACE"),
        (f"{_SB}.ScheduleBatch.retract_decode", driver.after_retract, "AFTER"),
        ("sglang.srt.managers.scheduler.Scheduler.process_batch_result", driver.after_batch_result,
         "AFTER"),
    ]


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
    """Register the driver's hooks and apply them (idempotent per target)."""
    check_version(installed_version())
    from sglang.srt.plugins.hook_registry import HookRegistry, HookType

    for target, hook, kind in targets(driver):
        HookRegistry.register(target, hook, HookType[kind])
    HookRegistry.apply_hooks()
    missing = [t for t, _, _ in targets(driver) if t not in HookRegistry._patched]
    if missing:  # apply_hooks logs and carries on: a half-hooked scheduler must not serve
        raise RuntimeError(f"skipjoin could not hook SGLang at {missing}")
    return driver


def register() -> None:
    """Entry point: one driver for this process, configured from the environment; with a control
    plane (`SKIPJOIN_ENGINE_REDIS_URL`) its threads start on the scheduler's first pass."""
    from engine.sglang.control import Control

    environ = dict(os.environ)
    driver = install(Driver(policy_config(environ)))
    control = Control.from_env(driver, environ)
    if control is not None:
        driver.on_first_pass = control.start
    log.info("skipjoin policy %s hooked into SGLang %s", driver.policy.config.name, installed_version())
