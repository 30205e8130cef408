"""Many replicas behind a gateway: the global queue (router.score), replica choice
(router.placement) and periodic load-pair rebalancing, over simulated engines.

One replica with no gateway queue is the single-engine simulation: every arrival goes straight
to the engine's own scheduler.
"""

from __future__ import annotations

import heapq
import itertools
import math
import time
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np

from bench.costmodel import CostModel
from bench.sim_engine import EngineSim, EngineStats, Job
from bench.workloads import Workload
from engine.policy import PolicyConfig, SeqState, make_policy
from router.placement import LONG, SHORT, ReplicaState, RequestInfo, choose_replica
from router.score import ScoreConfig, stored_score

PLACEMENTS = ("least-load", "prefix", "specialized", "round-robin")


@dataclass(frozen=True)
class ClusterConfig:
    replicas: int = 1
    placement: str = "least-load"
    gateway_queue: bool = False  # hold requests in one global queue scored by router.score
    headroom: int = 1  # in-flight window per replica = max_batch + headroom (gateway queue only)
    role_threshold: float = 256.0  # predicted tokens splitting short from long (specialized)
    short_replicas: int = 0  # specialized: how many replicas take only short requests (0: half)
    prefix_cache: int = 32  # shared prefixes a replica keeps cached (LRU)
    affinity_slack: float = 0.25
    rebalance_s: float | None = None  # move queued requests between the busiest/idlest pair
    migrate_running: bool = False  # rebalancing may also move running requests, paying a KV copy
    migrate_gbps: float = 25.0  # replica-to-replica KV bandwidth for that copy, GB/s
    score: ScoreConfig = field(default_factory=ScoreConfig)

    def __post_init__(self) -> None:
        if self.replicas < 1:
            raise ValueError("replicas must be >= 1")
        if self.placement not in PLACEMENTS:
            raise ValueError(f"placement must be one of {PLACEMENTS}")
        if self.headroom < 0 or self.prefix_cache < 0:
            raise ValueError("headroom and prefix_cache must be >= 0")
        if self.rebalance_s is not None and self.rebalance_s <= 0:
            raise ValueError("rebalance_s must be > 0 or None")


@dataclass
class SimResult:
    workload: Workload
    first: np.ndarray  # first-token time per request (NaN: rejected)
    done: np.ndarray  # completion time
    preemptions: np.ndarray
    engines: list[EngineStats]
    wall_s: float
    moved: int = 0

    @property
    def latency(self) -> np.ndarray:
        return self.done - self.workload.arrival

    @property
    def ttft(self) -> np.ndarray:
        return self.first - self.workload.arrival


class Cluster:
    def __init__(self, w: Workload, policy: PolicyConfig, cost: CostModel, cfg: ClusterConfig):
        self.w, self.cfg, self.cost = w, cfg, cost
        self.engines = [EngineSim(make_policy(policy, costs=cost.estimates()), cost)
                        for _ in range(cfg.replicas)]
        self.inflight = [0] * cfg.replicas
        self.window = cost.max_batch + cfg.headroom if cfg.gateway_queue else math.inf
        self.queue: list = []  # (stored score, idx, job)
        self.prefixes = [OrderedDict() for _ in range(cfg.replicas)]
        n_short = cfg.short_replicas or cfg.replicas // 2
        self.roles = [(SHORT if r < n_short else LONG) if cfg.placement == "specialized" else ""
                      for r in range(cfg.replicas)]
        self.rr = 0
        self.deferred: set[int] = set()  # engines owed a plan once same-instant arrivals are in
        self.moved = 0
        self.first = np.full(len(w), np.nan)
        self.done = np.full(len(w), np.nan)
        self.preempt = np.zeros(len(w), dtype=np.int64)

    # --- the request's way in -----------------------------------------------------------------
    def make_job(self, i: int) -> Job:
        w = self.w
        pred = w.predicted[i]
        seq = SeqState(str(i), float(w.arrival[i]), int(w.prompt_len[i]),
                       None if pred != pred else float(pred))
        return Job(seq, i, int(w.output_len[i]), int(w.prefix_id[i]), int(w.prefix_len[i]))

    def arrive(self, job: Job, t: float, more_now: bool = False) -> None:
        """`more_now`: another request arrives at this same instant; engines plan once for all."""
        if not self.cfg.gateway_queue:
            self.deliver(self.choose(job, t), job, t, defer=more_now)
            return
        p = job.seq.predicted_len
        score = stored_score(p if p is not None else job.seq.prompt_len, 1.0, 0.0, t, self.cfg.score)
        heapq.heappush(self.queue, (score, job.idx, job))
        self.pump(t)

    def pump(self, t: float) -> None:
        """Dispatch from the global queue while the head request has a replica with room."""
        while self.queue:
            job = self.queue[0][2]
            r = self.choose(job, t)
            if r is None:
                return
            heapq.heappop(self.queue)
            self.deliver(r, job, t)

    def choose(self, job: Job, t: float) -> int | None:
        if self.cfg.replicas == 1:
            return 0 if self.inflight[0] < self.window else None
        if self.cfg.placement == "round-robin":
            r = self.rr % self.cfg.replicas
            if self.inflight[r] >= self.window:
                return None
            self.rr += 1
            return r
        pred = job.seq.predicted_len
        info = RequestInfo(pred if pred is not None else self.cfg.role_threshold, self.cfg.role_threshold,
                           self.cfg.affinity_slack)
        aware = self.cfg.placement == "prefix"
        states = [ReplicaState(self.inflight[r], int(min(self.window, 1 << 30)),
                               e.load() / self.cost.max_batch, self.roles[r],
                               aware and job.prefix_id in self.prefixes[r])
                  for r, e in enumerate(self.engines)]
        return choose_replica(states, info)

    def deliver(self, r: int, job: Job, t: float, defer: bool = False) -> None:
        e = self.engines[r]
        wake = e.interruptible()
        if wake:
            self.finished(r, e.run_to(t))
        job.replica = r
        self.inflight[r] += 1
        self._prefix_hit(r, job)
        e.submit(job, t)
        if wake and defer:
            self.deferred.add(r)
        elif wake or r in self.deferred:
            self.deferred.discard(r)
            e.schedule()
        if not defer:
            for d in sorted(self.deferred):
                self.engines[d].schedule()
            self.deferred.clear()

    def _prefix_hit(self, r: int, job: Job) -> None:
        if job.prefix_id < 0 or not self.cfg.prefix_cache:
            return
        cache = self.prefixes[r]
        if job.prefix_id in cache:
            job.seq.cached_len = job.prefix_len
            cache.move_to_end(job.prefix_id)
        else:
            cache[job.prefix_id] = True
            if len(cache) > self.cfg.prefix_cache:
                cache.popitem(last=False)

    # --- the way out ----------------------------------------------------------------------------
    def finished(self, r: int, jobs: list[Job]) -> None:
        if not jobs:
            return
        for job in jobs:
            self.inflight[r] -= 1
            self.first[job.idx] = job.first if job.first is not None else np.nan
            self.done[job.idx] = job.done
            self.preempt[job.idx] = job.seq.preemptions
        if self.queue:
            self.pump(self.engines[r].now)

    # --- rebalancing ----------------------------------------------------------------------------
    def rebalance(self, t: float) -> None:
        """Pair the replica with the longest queue with the one with the shortest; move queued,
        never-started requests until their queues are even (a queued request carries no KV)."""
        for r, e in enumerate(self.engines):
            self.finished(r, e.run_to(t))
        order = sorted(range(len(self.engines)), key=lambda r: self.engines[r].n_waiting())
        for k in range(len(order) // 2):
            lo, hi = order[k], order[-1 - k]
            src, dst = self.engines[hi], self.engines[lo]
            n = (src.n_waiting() - dst.n_waiting()) // 2
            if n <= 0:
                break
            moved = src.take_waiting(n)
            for seq in moved:
                job = src.jobs.pop(seq)
                self.inflight[hi] -= 1
                self.inflight[lo] += 1
                job.replica = lo
                dst.submit(job, t)
            self.moved += len(moved)
            if self.cfg.migrate_running:
                self._migrate(hi, lo)
            src.schedule()
            dst.schedule()

    def _migrate(self, hi: int, lo: int) -> None:
        """The busier replica still has a queue and the other has idle slots: move running requests
        (the policy's victims first); the receiver pays the network copy in its next iteration,
        the sender the device-to-host copy, and the receiver the host-to-device copy on resume."""
        src, dst = self.engines[hi], self.engines[lo]
        idle = self.cost.max_batch - len(dst.running) - dst.n_waiting()
        n = min(idle, src.n_waiting(), len(src.running))
        if n <= 0:
            return
        per_token = self.cost.kv_bytes_per_token / (self.cfg.migrate_gbps * 1e9)
        for job in src.give_running(n):
            self.inflight[hi] -= 1
            self.inflight[lo] += 1
            job.replica = lo
            dst.adopt(job, job.seq.context_len * per_token)
            self.moved += 1


class BudgetExceeded(RuntimeError):
    """A run took more wall time than its budget (a collapsing policy can take hours)."""


def simulate(w: Workload, policy: PolicyConfig, cost: CostModel,
             cluster: ClusterConfig | None = None, budget_s: float | None = None) -> SimResult:
    """Run `w` through the cluster; raise BudgetExceeded after `budget_s` wall seconds."""
    cfg = cluster or ClusterConfig()
    sim = Cluster(w, policy, cost, cfg)
    t0 = time.perf_counter()
    _loop(sim, t0 + budget_s if budget_s is not None else math.inf)
    return SimResult(w, sim.first, sim.done, sim.preempt, [e.stats for e in sim.engines],
                     time.perf_counter() - t0, sim.moved)


def _loop(sim: Cluster, deadline: float) -> None:
    arrival = sim.w.arrival.tolist()
    n, i = len(arrival), 0
    engines = sim.engines
    single = len(engines) == 1
    every = sim.cfg.rebalance_s
    t_reb = every if every else math.inf
    for events in itertools.count():
        if events % 4096 == 0 and time.perf_counter() > deadline:
            done = int(np.count_nonzero(~np.isnan(sim.done)))
            raise BudgetExceeded(f"stopped at simulated t={engines[0].now:.0f} s with {done:,} of {n:,} "
                                 f"requests done, {i - done:,} in flight: over the wall-clock budget")
        t_arr = arrival[i] if i < n else math.inf
        e = engines[0] if single else min(engines, key=lambda x: x.horizon)
        t_next = min(t_arr, e.horizon, t_reb)
        if t_next == math.inf:
            return
        if t_next == t_reb:
            sim.rebalance(t_reb)
            t_reb = t_reb + every if i < n else math.inf
        elif t_arr <= e.horizon:
            i += 1
            sim.arrive(sim.make_job(i - 1), t_arr, more_now=i < n and arrival[i] == t_arr)
        else:
            sim.finished(engines.index(e) if not single else 0, e.advance())
