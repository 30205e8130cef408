"""EngineRunner: transformers' continuous batching driven by the skipjoin policy, behind a small API.

    runner = EngineRunner(EngineConfig(model="tiny"), PolicyConfig(name="mlfq")); runner.start()
    rid = runner.submit(GenerationRequest(input_ids=ids, max_new_tokens=64, priority=40))
    async for event in runner.stream(rid): ...
    runner.stop()

The generation thread's step is schedule → run → postprocess: transformers' batch processor does
the first two (with our scheduler and host pool plugged in); postprocess turns its outputs into
`TokenEvent`s, feeds the policy's cost estimates, and hands events over through `Channel`s.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator

import torch
from transformers import ContinuousBatchingConfig, GenerationConfig

from engine.hf import device_blocks
from engine.hf.channel import Channel
from engine.hf.config import EngineConfig
from engine.hf.hidden import HiddenTap
from engine.hf.host_pool import HostSwap
from engine.hf.logits import RequestLogits, digit_token_ids
from engine.hf.messages import GenerationRequest, TokenEvent
from engine.hf.scheduler import Admission, SkipJoinScheduler
from engine.loader import load
from engine.policy import CostEstimates, PolicyConfig, make_policy

log = logging.getLogger(__name__)


class EngineRunner:
    def __init__(self, config: EngineConfig, policy_config: PolicyConfig | None = None):
        self.config = config
        name = config.scheduler if config.scheduler != "fifo" else "fcfs"
        self.costs = CostEstimates()
        self.policy = make_policy(policy_config or PolicyConfig(name=name), self.costs)
        loaded = load(config.model, config.device)
        self.model, self._tokenizer = loaded.model, loaded.tokenizer
        self.num_layers = self.model.config.num_hidden_layers
        self.eos_ids = self._eos_ids()
        self.channels: dict[str, Channel] = {}  # requests in flight
        self.finished: OrderedDict[str, Channel] = OrderedDict()  # done, final event not yet read
        self.requests: dict[str, GenerationRequest] = {}
        self.sent: dict[str, int] = {}
        self.counters = {"prompt_tokens": 0, "generated_tokens": 0, "steps": 0, "requests": 0}
        self._lock = threading.RLock()  # held by the generation thread for each step
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pending_policy = None
        self._build()

    # --- construction --------------------------------------------------------------------------------
    def _eos_ids(self) -> list[int]:
        eos = self.model.generation_config.eos_token_id
        return [eos] if isinstance(eos, int) else list(eos or [])

    def _build(self) -> None:
        cfg = self.config
        gen = GenerationConfig(do_sample=False, max_new_tokens=cfg.max_tokens_default,
                               eos_token_id=self.eos_ids)
        cb = ContinuousBatchingConfig(
            page_size=cfg.block_size, num_blocks=cfg.device_blocks, max_batch_tokens=cfg.max_batch_tokens,
            max_requests_per_batch=cfg.max_batch,
            scheduler_type="fifo" if cfg.scheduler == "fifo" else "skipjoin",
            # Synchronous steps, no graphs: the policy sees each step's outcome before the next is planned.
            use_async_batching=False, use_cuda_graph=False, cpu_offload_space=0.0, allow_block_sharing=True)
        self.manager = self.model.init_continuous_batching(generation_config=gen,
                                                           continuous_batching_config=cb)
        digits = digit_token_ids(self._tokenizer)
        self.logits = RequestLogits(self.model.config.vocab_size, digits, self.eos_ids)
        lp = self.manager.logit_processor
        lp.logits_processor.append(self.logits)
        lp.tensors_required += 1
        lp._retrieve_processors_kwargs()
        lp.do_processing = True
        self.bp = self.manager._create_batch_processor()
        self.manager.batch_processor = self.bp
        self.scheduler = self.bp.scheduler
        self.cache = self.bp.cache
        host_blocks = cfg.host_pool_blocks if cfg.host_pool_blocks is not None else self.cache.num_blocks
        stream = self.bp.inputs_and_outputs.compute_stream
        self.host = HostSwap(self.cache, self.scheduler, host_blocks, stream, self.manager.distributed_helper,
                             self._on_preempted)
        self.bp.offloading_manager = self.host
        if isinstance(self.scheduler, SkipJoinScheduler):
            self.scheduler.attach(self.policy, self.host)
        self.tap = HiddenTap(self.model.model.layers)

    def _on_preempted(self, state, swapped: bool) -> None:
        if isinstance(self.scheduler, SkipJoinScheduler):
            self.scheduler.on_preempted(state, swapped)
        if not swapped:
            self.tap.reset(state.request_id)

    # --- public API ------------------------------------------------------------------------------------
    @property
    def tokenizer(self):
        return self._tokenizer

    @property
    def model_name(self) -> str:
        return self.config.model

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="skipjoin-engine", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._thread is None:
            return
        self._stop.set()
        self._wake.set()
        self._thread.join()
        self._thread = None

    def submit(self, req: GenerationRequest) -> str:
        req.validate(self.num_layers)
        rid = req.rid or uuid.uuid4().hex
        if rid in self.channels:
            raise ValueError(f"request id {rid!r} is already in flight")
        req.rid = rid
        self.channels[rid] = Channel()
        self.requests[rid] = req
        self.sent[rid] = 0
        if req.return_hidden_states:
            self.tap.want(rid, req.hidden_layers or [self.num_layers // 2], len(req.input_ids))
        if isinstance(self.scheduler, SkipJoinScheduler):
            self.scheduler.admissions[rid] = Admission(time.monotonic(), len(req.input_ids), req.priority,
                                                       req.max_new_tokens, req.return_hidden_states)
        self.manager.add_request(req.input_ids, request_id=rid, max_new_tokens=req.max_new_tokens,
                                 streaming=True, eos_token_id=-1 if req.ignore_eos else self.eos_ids,
                                 **self._sampling(req))
        self._wake.set()
        return rid

    @staticmethod
    def _sampling(req: GenerationRequest) -> dict:
        kwargs: dict = {}
        if req.temperature > 0:
            kwargs.update(temperature=float(req.temperature), top_p=float(req.top_p))
            if req.seed is not None:
                kwargs["seed"] = int(req.seed)
        if req.digits_only:
            kwargs["digits_only"] = True
        return kwargs

    def _channel(self, rid: str) -> Channel:
        channel = self.channels.get(rid) or self.finished.get(rid)
        if channel is None:
            raise KeyError(rid)
        return channel

    async def stream(self, rid: str) -> AsyncIterator[TokenEvent]:
        channel = self._channel(rid)
        while True:
            event = await channel.aget()
            if event.finished:
                self.finished.pop(rid, None)
            yield event
            if event.finished:
                return

    def events(self, rid: str, timeout: float = 300.0):
        """Blocking twin of `stream`, for threads and tests."""
        channel = self._channel(rid)
        while True:
            event = channel.get(timeout)
            if event.finished:
                self.finished.pop(rid, None)
            yield event
            if event.finished:
                return

    def generate(self, requests: list[GenerationRequest], timeout: float = 600.0) -> list[list[int]]:
        """Submit all, wait for all; the generated tokens of each, in order (the engine must be started)."""
        rids = [self.submit(r) for r in requests]
        return [[t for e in self.events(rid, timeout) for t in e.token_ids] for rid in rids]

    def cancel(self, rid: str) -> None:
        req = self.requests.get(rid)
        if req is None:
            return
        self.manager.cancel_request(rid)
        self._wake.set()
        # The engine thread retires it from the policy when it drains the cancellation.
        self._finish(rid, TokenEvent(rid, [], True, "cancelled", len(req.input_ids), 0), in_engine=False)

    def load(self) -> dict:
        waiting = list(self.scheduler.waiting_requests.values())
        swapped = sum(1 for s in waiting if s.is_cpu_offloaded)
        return {"running": len(self.scheduler.active_requests), "waiting": len(waiting) - swapped,
                "swapped": swapped, "max_batch": self.config.max_batch}

    def stats(self) -> dict:
        c = self.host.counters
        sched = self.scheduler if isinstance(self.scheduler, SkipJoinScheduler) else None
        return {
            "requests": self.counters["requests"],
            "requests_by_level": dict(sched.entries_by_level) if sched else {},
            "preemptions": c.preemptions, "swap_outs": c.swap_outs, "swap_ins": c.swap_ins,
            "swap_out_bytes": c.swap_out_bytes, "swap_in_bytes": c.swap_in_bytes,
            "swap_seconds": c.swap_seconds, "recomputes": c.recomputes,
            "prefix_hit_tokens": sched.prefix_hit_tokens if sched else 0,
            "prompt_tokens": self.counters["prompt_tokens"],
            "generated_tokens": self.counters["generated_tokens"],
            "steps": self.counters["steps"],
            "step_s": self.costs.step_s, "swap_s_per_token": self.costs.swap_s_per_token,
        }

    def get_policy(self) -> dict:
        return self.policy.config.to_dict()

    def set_policy(self, changes: dict) -> dict:
        """Apply validated changes live (ValueError on bad input); takes effect at the next step."""
        new = self.policy.config.updated(changes)
        with self._lock:
            self._apply_policy(new)
        return new.to_dict()

    def check_integrity(self) -> None:
        """Raise unless device and host blocks add up and only live requests hold them."""
        with self._lock:
            device_blocks.check_integrity(self.cache, set(self.scheduler.active_requests))
            offloaded = {rid for rid, s in self.scheduler.waiting_requests.items() if s.is_cpu_offloaded}
            self.host.check_integrity(offloaded)

    def block_usage(self) -> dict:
        """Device blocks referenced / cached / total and host blocks held (for leak checks)."""
        with self._lock:
            held = sum(len(ids) for t in self.host._request_id_to_cpu_blocks.values() for ids in t.values())
            return {"device_used": device_blocks.used_blocks(self.cache),
                    "device_cached": device_blocks.cached_blocks(self.cache),
                    "device_total": device_blocks.total_blocks(self.cache), "host_used": held}

    # --- the generation thread -------------------------------------------------------------------------
    def _apply_policy(self, new: PolicyConfig) -> None:
        if new.name != self.policy.config.name:
            old = self.policy
            self.policy = make_policy(new, self.costs, old.lengths)
            if isinstance(self.scheduler, SkipJoinScheduler):
                self.scheduler.policy = self.policy
                now = time.monotonic()
                for seq in self.scheduler.seqs.values():
                    phase = seq.phase
                    self.policy.on_arrival(seq, now)
                    seq.phase = phase
        else:
            self.policy.config = new
            self.policy.budget.fraction = new.max_swap_fraction
            self.policy.budget.capacity = new.max_swap_fraction * 10.0

    def _run(self) -> None:
        torch.set_num_threads(min(torch.get_num_threads(), 2) if self.config.device == "cpu" else
                              torch.get_num_threads())
        with torch.inference_mode():
            while not self._stop.is_set():
                try:
                    with self._lock:
                        ran = self._step()
                except Exception as exc:  # a failed step fails its requests, not the engine
                    log.exception("generation step failed")
                    with self._lock:
                        self.bp.fail_all_requests(exc)
                        self._deliver()
                    ran = True
                if not ran:
                    self._wake.wait(0.05)
                    self._wake.clear()

    def _step(self) -> bool:
        swap_before = self.host.counters.swap_seconds, self.host.counters.swap_out_bytes
        if not self.bp.prepare_next_batch():
            self._deliver()
            return False
        io = self.bp.inputs_and_outputs
        rows = [(fs.state.request_id, fs.query_length, fs.has_new_token) for fs in io.requests_in_batch]
        self.tap.set_batch(rows)
        start = time.perf_counter()
        self.bp._generation_step(self.model)
        self.bp.update_batch()
        elapsed = time.perf_counter() - start
        self.tap.after_forward()
        self.counters["steps"] += 1
        self._observe_costs(elapsed, rows, swap_before)
        self._deliver()
        return True

    def _observe_costs(self, elapsed: float, rows: list, swap_before: tuple) -> None:
        prefill = sum(n for _, n, _ in rows) - len(rows)
        if prefill == 0:
            self.costs.observe_step(elapsed)
        elif prefill > 64:
            per = max(elapsed - self.costs.step_s, 0.0) / prefill
            self.costs.prefill_s_per_token += 0.1 * (per - self.costs.prefill_s_per_token)
        c = self.host.counters
        moved = c.swap_out_bytes - swap_before[1]
        if moved:
            block_bytes = sum(a.bytes_per_block for a in self.cache.cache_allocators.values())
            per_token = block_bytes / self.config.block_size
            self.costs.observe_swap(2 * (c.swap_seconds - swap_before[0]), int(moved / per_token))

    def _deliver(self) -> None:
        queue = self.manager.output_router.output_queue
        while not queue.empty():
            out = queue.get_nowait()
            if out.request_id in self.channels:
                self._emit(out)

    def _emit(self, out) -> None:
        rid, req = out.request_id, self.requests[out.request_id]
        tokens = out.generated_tokens
        finished = out.is_finished()
        stopped = finished and bool(tokens) and tokens[-1] in self.eos_ids and not req.ignore_eos
        visible = tokens[:-1] if stopped else tokens
        new = visible[self.sent[rid]:]
        self.sent[rid] = len(visible)
        hidden = self.tap.pop(rid) if req.return_hidden_states else None
        if not new and not finished and hidden is None:
            return
        reason = None
        if out.error is not None:
            reason = "error"
        elif finished:
            reason = "stop" if stopped else "length"
        sched = self.scheduler
        cached = sched.cached_by_rid.get(rid, 0) if isinstance(sched, SkipJoinScheduler) else 0
        event = TokenEvent(rid, list(new), finished, reason, len(out.prompt_ids), cached, hidden, out.error)
        self.counters["generated_tokens"] += len(new)
        if finished:
            self._finish(rid, event)
        else:
            self.channels[rid].put(event)

    def _finish(self, rid: str, event: TokenEvent, in_engine: bool = True) -> None:
        channel = self.channels.pop(rid, None)
        req = self.requests.pop(rid, None)
        self.sent.pop(rid, None)
        if channel is None or req is None:
            return
        self.counters["requests"] += 1
        self.counters["prompt_tokens"] += len(req.input_ids)
        self.logits.forget(rid)
        self.tap.accs.pop(rid, None)
        if in_engine and isinstance(self.scheduler, SkipJoinScheduler):
            self.scheduler.retire(rid, time.monotonic())
        self.finished[rid] = channel
        while len(self.finished) > 10_000:  # nobody read these: drop the oldest
            self.finished.popitem(last=False)
        channel.put(event)
