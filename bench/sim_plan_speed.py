"""How long one `Policy.plan` takes with a full engine: the policy runs every engine step.

    python -m bench.sim_plan_speed [--running 256] [--waiting 256]

A full batch (slots taken, KV nearly full, so blocked candidates look for victims), waiting
requests at every level, a few paused; reports the median and p99 over repeated plans.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from engine.policy import Capacity, CostEstimates, Phase, PolicyConfig, SeqState, make_policy


def scene(name: str, n_run: int, n_wait: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    policy = make_policy(PolicyConfig(name=name), costs=CostEstimates(step_s=0.03, swap_s_per_token=1e-6))
    for n in rng.lognormal(5, 1, 500):
        policy.lengths.observe(int(n))
    running, waiting = [], []
    for i in range(n_run + n_wait):
        s = SeqState(f"r{i}", float(i) * 0.01, int(rng.integers(16, 2000)), float(rng.lognormal(5, 1)))
        policy.on_arrival(s, s.arrival)
        if i < n_run:
            s.phase = Phase.RUNNING
            policy.on_tokens(s, int(rng.integers(0, 600)), 10.0)
            running.append(s)
        else:
            waiting.append(s)
    for s in running[:8]:  # a few paused: they hold KV and wait
        running.remove(s)
        policy.on_preempted(s, "paused", 10.0)
        waiting.append(s)
    return policy, running, waiting


def measure(name: str, n_run: int, n_wait: int, reps: int = 200) -> tuple[float, float, float]:
    """(median wall ms, median CPU ms, p99 CPU ms). CPU time leaves out the moments a busy box
    takes the core away, which otherwise make the wall-clock p99 the box's, not the policy's."""
    policy, running, waiting = scene(name, n_run, n_wait)
    cap = Capacity(max_seqs=len(running), free_kv_tokens=len(running) + 64)
    wall, cpu = [], []
    for r in range(reps):
        t, c = time.perf_counter(), time.thread_time()
        policy.plan(running, waiting, cap, now=11.0 + r * 0.03)
        wall.append(time.perf_counter() - t)
        cpu.append(time.thread_time() - c)
    cpu.sort()
    return statistics.median(wall) * 1e3, statistics.median(cpu) * 1e3, cpu[int(0.99 * (reps - 1))] * 1e3


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.sim_plan_speed")
    p.add_argument("--running", type=int, default=256)
    p.add_argument("--waiting", type=int, default=256)
    args = p.parse_args(argv)
    for name in ("fcfs", "sjf", "srpt", "mlfq"):
        wall, cpu, p99 = measure(name, args.running, args.waiting)
        print(f"{name:5s} plan() with {args.running} running, {args.waiting} waiting: median {wall:.3f} ms "
              f"wall, CPU time median {cpu:.3f} ms, p99 {p99:.3f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
