"""Waiting order: the policy's MLFQ levels (skip-join entry, aging), mirrored into `req.priority`."""

import sgl_objects as sgl

from engine.policy import PolicyConfig
from engine.sglang import seqmap
from wire.xargs import PREDICTED


def levels(reqs):
    return [seqmap.seq_of(r).level for r in reqs]


def test_queue_sorted_by_entry_level_and_priority_mirrors_it(driver):
    eng = sgl.Engine.build()
    # The gateway's `priority` is the predicted length; the prompt's prefill also counts (skip-join).
    long_answer = sgl.request("long", 16, priority=900)
    long_prompt = sgl.request("long-prompt", 3000, priority=10, first_token=100)
    short = sgl.request("short", 16, priority=50, first_token=5000)
    queue = [long_answer, long_prompt, short]
    eng.schedule_policy().calc_priority(queue)
    cfg = driver.policy.config
    assert [r.rid for r in queue] == ["short", "long-prompt", "long"]
    assert levels(queue) == [cfg.entry_level(50 + 1), cfg.entry_level(10 + 3000 / 16), cfg.entry_level(901)]
    assert levels(queue) == sorted(levels(queue)) and len(set(levels(queue))) == 3
    # SGLang's own sort, retraction and tree insert read `priority` (low first): it is the level.
    assert [r.priority for r in queue] == levels(queue)
    assert seqmap.seq_of(long_prompt).predicted_len == 10.0


def test_starved_request_is_promoted_and_served_first(driver):
    """Aging counts engine steps (what every tensor-parallel rank sees alike), not wall time."""
    driver.configure(PolicyConfig(promote_after_steps=100, promote_after_s=None))
    eng = sgl.Engine.build()
    long = sgl.request("long", 16, priority=900)
    first = sgl.request("first", 16, priority=20, first_token=500)
    queue = [long, first]
    eng.schedule_policy().calc_priority(queue)
    assert [r.rid for r in queue] == ["first", "long"] and long.priority > 0
    queue.remove(first)  # admitted; `long` keeps waiting
    batch = eng.prefill([first])
    for _ in range(99):
        driver.after_batch_result(None, None, batch)  # one engine step each
    late = sgl.request("late", 16, priority=20, first_token=900)
    queue.append(late)
    eng.schedule_policy().calc_priority(queue)
    assert [r.rid for r in queue] == ["late", "long"] and not seqmap.seq_of(long).aged
    driver.after_batch_result(None, None, batch)
    driver.after_batch_result(None, None, batch)
    eng.schedule_policy().calc_priority(queue)
    assert [r.rid for r in queue] == ["long", "late"]
    assert long.priority == 0 and seqmap.seq_of(long).aged
    assert driver.policy.promotions == 1 and driver.stats["steps"] == 101


def test_requests_without_priority_enter_by_prompt_alone(driver):
    eng = sgl.Engine.build()
    big = sgl.request("big", 2000)
    small = sgl.request("small", 8, first_token=3000)
    queue = [big, small]
    eng.schedule_policy().calc_priority(queue)
    cfg = driver.policy.config
    assert [r.rid for r in queue] == ["small", "big"]
    assert levels(queue) == [cfg.entry_level(8 / 16), cfg.entry_level(2000 / 16)]
    assert seqmap.seq_of(big).predicted_len is None


def test_a_malformed_prediction_falls_back_to_the_priority(driver):
    """`custom_params` come from clients: a bad value must not break the scheduling pass."""
    eng = sgl.Engine.build()
    reqs = [sgl.request(f"r{i}", 16, priority=50, first_token=100 * i + 1) for i in range(4)]
    for req, bad in zip(reqs, ["many", None, float("nan"), -3.0], strict=True):
        req.sampling_params.custom_params = {PREDICTED: bad}
    good = sgl.request("good", 16, priority=50, first_token=900)
    good.sampling_params.custom_params = {PREDICTED: "7"}
    eng.schedule_policy().calc_priority([*reqs, good])
    assert [seqmap.seq_of(r).predicted_len for r in reqs] == [50.0] * 4
    assert seqmap.seq_of(good).predicted_len == 7.0
