"""Preemption on KV shortage (`NO_TOKEN`, where stock SGLang preempts nobody) by the policy's plan,
with the victim's KV checkpointed into the radix tree so that re-admission is a prefix hit."""

import pytest
import sgl_objects as sgl
from sglang.srt.environ import envs
from sglang.srt.managers.schedule_batch import ScheduleBatch
from sglang.srt.managers.schedule_policy import AddReqResult
from sglang.srt.mem_cache.common import evict_from_tree_cache
from sglang.srt.mem_cache.unified_radix_cache import UnifiedRadixCache
from sglang.srt.speculative.spec_info import SpeculativeAlgorithm

from engine.policy import Phase, PolicyConfig
from engine.sglang import release, seqmap

# Small quanta so that predictions put requests on distinct levels; the cost guard weighs measured
# step and copy times, which a CPU test does not have.
KNOBS = PolicyConfig(base_quantum=4, levels=6, prefill_weight=0.0, cost_guard=False)


def crowded_engine(driver, victim_priority: int, tree: str = "unified"):
    """128 KV tokens: two running requests (30-token prompts, 4 decode steps) and a 40-token
    newcomer that does not fit beside what they hold and may still generate."""
    eng = sgl.Engine.build(kv_tokens=128, tree=tree)
    long = sgl.request("long", 30, max_new=20, priority=victim_priority)
    short = sgl.request("short", 30, max_new=20, priority=2, first_token=1000)
    batch = eng.prefill([long, short])
    for _ in range(4):
        sgl.decode(batch, 1)
        driver.after_batch_result(None, None, batch)  # what the scheduler runs after each step
    # Level 1 (6 predicted tokens, quantum 4): beside `short`, demoted to 1 by its 4 tokens.
    newcomer = sgl.request("new", 40, max_new=20, priority=6, first_token=2000)
    return eng, batch, long, short, newcomer


@pytest.mark.parametrize("tree", ["unified", "radix"])
def test_kv_shortage_preempts_the_policys_victim_and_keeps_its_kv(driver, tree):
    driver.configure(KNOBS)
    eng, batch, long, short, newcomer = crowded_engine(driver, victim_priority=200, tree=tree)
    assert long.priority > short.priority  # levels: `long` sits lowest, `short` beside `new`
    adder = eng.admit_pass([newcomer], batch)
    seqs = [seqmap.seq_of(r) for r in (long, short)]
    assert driver.policy.victim_order(seqs, 0.0)[0] is seqmap.seq_of(long)
    assert adder.can_run_list == [newcomer] and adder.preempt_list == [long]
    assert batch.reqs == [short]
    # No host tier here (HiCache off): the checkpoint is a device prefix the policy counts as cached.
    state = seqmap.seq_of(long)
    assert state.phase is Phase.WAITING and state.cached_len == 34 and state.preemptions == 1
    assert driver.stats["kept_kv_tokens"] == 34  # prompt 30 + 4 decoded tokens' KV
    # The next pass still sees what was kept (SGLang's fcfs sort matches no prefix on this tree).
    eng.schedule_policy().calc_priority([long], batch)
    assert state.cached_len == 34 and driver.policy.key(state, driver.now)[2] is False  # not cold
    # Re-admission: the whole context but the last sampled token is a radix-tree hit.
    adder = eng.admit_pass([long], batch)
    assert adder.can_run_list == [long] and long.prefix_len == 34
    assert len(long.full_untruncated_fill_ids) - long.prefix_len == 1
    assert driver.stats["readmitted"] == 1 and driver.stats["readmit_prefix_tokens"] == 34
    assert driver.stats["readmit_short"] == 0 and driver.stats["readmit_host_tokens"] == 0


def test_no_preemption_when_the_policy_refuses(driver):
    driver.configure(KNOBS)  # min_level_gap=1: no victim at the newcomer's own level
    eng, batch, long, short, newcomer = crowded_engine(driver, victim_priority=2)
    used = eng.kv_used()
    adder = eng.admit_pass([newcomer], batch)
    assert adder.can_run_list == [] and adder.preempt_list == []
    assert set(batch.reqs) == {long, short} and eng.kv_used() == used
    assert driver.stats["preempted"] == 0


def test_checkpoint_survives_tight_memory(driver, monkeypatch):
    """Stock `release_req` evicts right after freeing (for decode retraction's instant reuse): with
    a checkpoint that would drop it. The preemption path leaves eviction to allocation."""
    monkeypatch.setenv("SGLANG_RETRACT_DECODE_STEPS", "1000")
    driver.configure(KNOBS)
    eng, batch, long, short, newcomer = crowded_engine(driver, victim_priority=200)
    adder = eng.admit_pass([newcomer], batch)
    assert adder.preempt_list == [long]
    assert eng.tree.evictable_size() >= 34
    long.init_next_round_input(eng.tree)
    assert long.prefix_len == 34
    # What stock `release_req` would have run next: it drops the checkpoint.
    assert envs.SGLANG_RETRACT_DECODE_STEPS.get() == 1000
    evict_from_tree_cache(eng.tree, 1 * 1000)
    long.init_next_round_input(eng.tree)
    assert long.prefix_len == 0


def test_decode_oom_retracts_in_the_policys_victim_order(driver):
    driver.configure(KNOBS)
    eng = sgl.Engine.build(kv_tokens=256)
    # Stock "length" order would retract `long-prompt` (fewest outputs, then longest prompt).
    demoted = sgl.request("demoted", 20, max_new=20, priority=200)
    long_prompt = sgl.request("long-prompt", 60, max_new=20, priority=2, first_token=1000)
    batch = eng.prefill([demoted, long_prompt])
    keep_first = ScheduleBatch._get_decode_retraction_order(batch.reqs)
    assert [batch.reqs[i] for i in keep_first] == [long_prompt, demoted]
    retracted, _, aborted = batch.retract_decode()
    assert retracted == [demoted] and aborted == [] and batch.reqs == [long_prompt]
    assert seqmap.seq_of(demoted).preemptions == 1 and seqmap.seq_of(demoted).cached_len == 0
    assert driver.stats["retracted"] == 1


def test_slot_limit_preempts_the_policys_victim(driver):
    """All request rows taken: SGLang asks `preempt_to_schedule` (stock: priority gap > threshold;
    here: the plan's victims only)."""
    driver.configure(KNOBS)
    eng = sgl.Engine.build(kv_tokens=256, rows=2)
    long = sgl.request("long", 20, max_new=20, priority=200)
    short = sgl.request("short", 20, max_new=20, priority=2, first_token=1000)
    batch = eng.prefill([long, short])
    newcomer = sgl.request("new", 20, max_new=20, priority=1, first_token=2000)
    eng.schedule_policy().calc_priority([newcomer], batch)
    adder = eng.adder(batch)
    assert eng.req_to_token.available_size() == 0
    assert adder.preempt_to_schedule(newcomer)  # what the scheduler calls on a full batch
    assert adder.preempt_list == [long] and batch.reqs == [short]
    assert eng.req_to_token.available_size() == 1
    newcomer.init_next_round_input(eng.tree)
    assert adder.add_one_req(newcomer, False, None) == AddReqResult.CONTINUE


def test_unified_tree_checkpoint_keeps_the_victims_kv_slots(driver, monkeypatch):
    """The GPU server's tree: `UnifiedRadixCache.checkpoint_into_tree` inserts the victim's
    context (prompt-boundary split, its `req_to_token` row, the lock moved) and re-admission
    reads the very KV slots it wrote: nothing recomputed, nothing copied."""
    calls = []
    into_tree = UnifiedRadixCache.checkpoint_into_tree

    def spy(tree, req, *, up_to, **kwargs):
        calls.append((req.rid, up_to, req.finished()))
        return into_tree(tree, req, up_to=up_to, **kwargs)

    monkeypatch.setattr(UnifiedRadixCache, "checkpoint_into_tree", spy)
    driver.configure(KNOBS)
    eng, batch, long, short, newcomer = crowded_engine(driver, victim_priority=200)
    assert isinstance(eng.tree, UnifiedRadixCache)
    slots = eng.req_to_token.req_to_token[long.kv.req_pool_idx, :34].clone()
    calls.clear()
    adder = eng.admit_pass([newcomer], batch)
    assert adder.preempt_list == [long] and calls == [("long", 34, False)]
    # The victim's 34 tokens are evictable; `short` still locks its prompt (its decoded tokens are
    # its own, outside the tree).
    assert eng.tree.evictable_size() == 34 and eng.tree.protected_size() == 30
    # Re-admitted at the next pass (the newcomer's prefill is not run here, so there is room).
    readmit = eng.admit_pass([long], batch)
    assert readmit.can_run_list == [long] and long.prefix_len == 34
    again = ScheduleBatch.init_new([long], eng.req_to_token, eng.allocator, eng.tree, sgl.MODEL, False,
                                   SpeculativeAlgorithm.NONE)
    again.prepare_for_extend()
    assert bool((eng.req_to_token.req_to_token[long.kv.req_pool_idx, :34] == slots).all())
    assert again.extend_lens == [1]  # only the last sampled token is computed again


@pytest.mark.parametrize("newcomer_len, preempts", [(60, True), (80, False)])
def test_victims_are_credited_only_the_kv_their_release_frees(driver, newcomer_len, preempts):
    """A victim whose prompt shares 30 tokens with a request that stays: those stay locked in the
    tree, so releasing it frees 10 tokens, not 40. Where 10 do not make room, nobody is released
    (crediting 40 released it and the newcomer still got NO_TOKEN)."""
    from array import array

    driver.configure(KNOBS)
    eng = sgl.Engine.build(kv_tokens=128)
    stay = sgl.request("stay", 40, max_new=8, priority=2)
    batch = eng.prefill([stay])
    victim = sgl.request("victim", 40, max_new=8, priority=200)
    victim.origin_input_ids = array("q", [*range(1, 31), *range(500, 510)])
    batch = eng.prefill([victim], batch)
    assert victim.kv.kv_committed_len == 40 and release.releasable_kv(victim, [stay], []) == 10
    assert release.releasable_kv(victim, [], []) == 40
    used = eng.kv_used()
    newcomer = sgl.request("new", newcomer_len, max_new=8, priority=6, first_token=2000)
    adder = eng.admit_pass([newcomer], batch)
    if preempts:
        assert adder.preempt_list == [victim] and adder.can_run_list == [newcomer]
        assert eng.tree.evictable_size() == 10  # the victim's own 10; the shared 30 stay locked
    else:
        assert adder.preempt_list == [] and adder.can_run_list == []
        assert set(batch.reqs) == {stay, victim} and eng.kv_used() == used
        assert driver.stats["preempted"] == 0
