"""Demotion per quantum after each batch result, with SGLang's `req.priority` following the level."""

import sgl_objects as sgl
from sglang.srt.managers.scheduler import Scheduler

from engine.policy import PolicyConfig
from engine.sglang import seqmap


def test_batch_result_hook_is_applied_to_the_scheduler(driver):
    hook = Scheduler.process_batch_result
    assert hook.__wrapped__ is not None and hook.__name__ == "process_batch_result"


def test_demoted_after_each_quantum(driver):
    driver.configure(PolicyConfig(base_quantum=4, quantum_growth=2.0, levels=4, prefill_weight=0.0))
    eng = sgl.Engine.build()
    req = sgl.request("r", 8, max_new=64)
    batch = eng.prefill([req])  # prefill's result: 1 token
    seen = []
    for _ in range(13):
        driver.after_batch_result(None, None, batch)  # what Scheduler.process_batch_result runs after
        seen.append((len(req.output_ids), req.priority))
        sgl.decode(batch, 1)
    # Quanta 4, 8, 16: level 1 at 4 generated tokens, level 2 at 12.
    assert seen[2] == (3, 0) and seen[3] == (4, 1) and seen[10] == (11, 1) and seen[11] == (12, 2)
    assert seqmap.seq_of(req).level == 2 and seqmap.seq_of(req).generated == 13


def test_finished_request_leaves_the_policy(driver):
    eng = sgl.Engine.build()
    req = sgl.request("r", 8, max_new=2)
    batch = eng.prefill([req])
    sgl.decode(batch, 1)
    req.update_finish_state()  # what the result processor runs per token
    assert req.finished()
    observed = sum(driver.policy.lengths.counts)
    driver.after_batch_result(None, None, batch)
    assert seqmap.seq_of(req).phase.value == "finished"
    assert sum(driver.policy.lengths.counts) == observed + 1
