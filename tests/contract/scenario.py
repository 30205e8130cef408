"""The drivers' contract: the same scenario gives the same decisions, step by step, in every driver.

A scenario is arrivals (at which step), prompt and output lengths, predictions, the engine's batch
slots and the policy's knobs. A `Harness` wraps one driver over its real engine classes with a
clock that advances one unit per engine step, every step computing one token per running request
(prompts short enough to prefill in one step, KV ample); `trace` records, per step, which
requests the step computed. Drivers that keep the contract give equal traces.

Harnesses: the simulator (`SimHarness`, here), the vLLM adapter over vLLM's own scheduler classes
(`tests/contract/test_contract.py`). The SGLang driver plugs in the same way: a harness over its
scheduler objects (`tests/sglang_plugin/sgl_objects.py`), run in `.venv-sglang`, compared with
`SimHarness` by `trace` (this module imports neither engine).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from bench.costmodel import CostModel
from bench.sim_engine import EngineSim, Job
from engine.policy import CostEstimates, PolicyConfig, SeqState, make_policy

# Prices every harness's policy plans with (the engines' own measurement is off in a contract run).
COSTS = dict(step_s=1.0, swap_s_per_token=0.0, prefill_s_per_token=0.01, decode_s_per_token=0.25)


@dataclass(frozen=True)
class Arrival:
    step: int
    rid: str
    prompt: int
    output: int
    predicted: float | None = None


@dataclass(frozen=True)
class Scenario:
    name: str
    arrivals: tuple[Arrival, ...]
    slots: int  # the engine's batch size
    knobs: dict = field(default_factory=dict)  # PolicyConfig fields

    def config(self) -> PolicyConfig:
        return PolicyConfig(**self.knobs)


def _burst(n_long: int, long_out: int, short_at: int) -> tuple[Arrival, ...]:
    longs = tuple(Arrival(0, f"long{i}", 24 + 8 * i, long_out, float(long_out)) for i in range(n_long))
    return longs + (Arrival(short_at, "short0", 16, 4, 4.0), Arrival(short_at + 1, "short1", 20, 3, 3.0))


SCENARIOS = (
    Scenario("fcfs-cap2", _burst(4, 12, 3), slots=8, knobs={"name": "fcfs", "max_active": 2}),
    Scenario("mlfq-cap2", _burst(4, 40, 3), slots=8, knobs={"name": "mlfq", "max_active": 2}),
    Scenario("mlfq-slots3", _burst(5, 40, 2), slots=3, knobs={"name": "mlfq"}),
    Scenario("srpt-cap2", _burst(3, 20, 4), slots=8, knobs={"name": "srpt", "max_active": 2}),
    # Same level, the earlier with more work left: the policy's order and its victim order differ.
    Scenario("mlfq-mixed", (Arrival(0, "a", 16, 70, 70.0), Arrival(1, "b", 16, 45, 45.0),
                            Arrival(2, "c", 16, 50, 50.0), Arrival(5, "short0", 16, 4, 4.0)),
             slots=8, knobs={"name": "mlfq", "max_active": 2}),
    Scenario("fcfs-longest", _burst(3, 10, 2) + (Arrival(2, "huge", 16, 60, 60.0),), slots=8,
             knobs={"name": "fcfs", "max_active": 2, "keep_longest": True}),
)


Trace = list[tuple[str, ...]]  # per engine step, from step 0 to the last that computed anything


class Harness(Protocol):
    def __call__(self, scenario: Scenario) -> Trace:
        """Run the scenario in one driver; the sorted ids of the requests each step computed."""


def policy_for(scenario: Scenario):
    return make_policy(scenario.config(), costs=CostEstimates(**COSTS))


def trimmed(steps: list[tuple[str, ...]]) -> Trace:
    while steps and not steps[-1]:
        steps.pop()
    return steps


def sim_trace(scenario: Scenario) -> Trace:
    """The simulator as the cluster drives it (events, blocks of steps, plans only where
    `should_plan` holds), every step one time unit: no prefill or context cost, ample KV."""
    cost = CostModel(step_base_s=1.0, step_per_seq_s=0.0, step_per_ctx_s=0.0, prefill_base_s=0.0,
                     prefill_s_per_token=0.0, kv_tokens=1 << 20, max_batch=scenario.slots,
                     kv_bytes_per_token=0.0, swap_gbps=1.0)
    sim = EngineSim(policy_for(scenario), cost)
    laid: list[tuple[float, tuple[str, ...]]] = []  # (time, running) each time a block is laid out
    schedule = sim.schedule

    def recording() -> None:
        schedule()
        laid.append((sim.now, tuple(sorted(s.rid for s in sim.running))))

    sim.schedule = recording
    by_step: dict[int, list[Arrival]] = {}
    for a in scenario.arrivals:
        by_step.setdefault(a.step, []).append(a)
    for n, t in enumerate(sorted(by_step)):
        while sim.block is not None and sim.horizon <= t:
            sim.advance()
        wake = sim.interruptible()
        if wake:
            sim.run_to(t)
        for a in by_step[t]:
            sim.submit(Job(SeqState(a.rid, float(t), a.prompt, a.predicted, a.output), n, a.output), float(t))
        if wake:
            sim.schedule()
    while sim.block is not None:
        sim.advance()
    end = int(round(sim.now))
    steps, k = [], 0
    for i in range(end):
        while k + 1 < len(laid) and laid[k + 1][0] <= i + 1e-9:
            k += 1
        steps.append(laid[k][1] if laid and laid[k][0] <= i + 1e-9 else ())
    return trimmed(steps)
