"""The scheduler loop over many passes (`sgl_objects.Loop`: SGLang's pieces in the order of its
normal and overlap loops): long low-priority requests first, short high-priority ones behind them.
The plan's admission is the one that holds, preempted requests come back with what was kept, and
every request finishes."""

import pytest
import sgl_objects as sgl

from engine.policy import PolicyConfig

KNOBS = PolicyConfig(base_quantum=4, levels=6, prefill_weight=0.0, cost_guard=False)


def burst(loop: sgl.Loop, steps: int = 60, shorts_at: int = 4) -> None:
    """Three long requests (priority 300: a low level), then three short ones (priority 2)."""
    loop.waiting = [sgl.request(f"long{i}", 30, max_new=40, priority=300, first_token=1 + 100 * i)
                    for i in range(3)]
    for t in range(steps):
        if t == shorts_at:
            loop.waiting += [sgl.request(f"short{i}", 30, max_new=6, priority=2, first_token=1000 + 100 * i)
                             for i in range(3)]
        loop.step()
    loop.drain()


@pytest.mark.parametrize("overlap", [False, True], ids=["normal", "overlap"])
def test_preempted_requests_come_back_with_their_kv_and_everyone_finishes(driver, overlap):
    driver.configure(KNOBS)
    loop = sgl.Loop(sgl.Engine.build(kv_tokens=200), driver, overlap=overlap)
    burst(loop, steps=90)
    preempting = [e for e in loop.log if e.get("preempt")]
    assert preempting and all(r.startswith("short") for e in preempting for r in e["admit"])
    assert all(r.startswith("long") for e in preempting for r in e["preempt"])
    stats = driver.stats
    assert stats["preempted"] > 0 and stats["kept_kv_tokens"] >= 33 * stats["preempted"]
    # Each came back once, with all it had computed but the last sampled token a tree hit.
    assert stats["readmitted"] == stats["preempted"] and stats["readmit_short"] == 0
    assert stats["readmit_prefix_tokens"] == stats["readmit_kept_tokens"]
    assert sorted(r.rid for r in loop.done) == ["long0", "long1", "long2", "short0", "short1", "short2"]
    assert all(len(r.output_ids) == r.sampling_params.max_new_tokens for r in loop.done)
    first_long_done = min(i for i, r in enumerate(loop.done) if r.rid.startswith("long"))
    assert {r.rid for r in loop.done[:first_long_done]} == {"short0", "short1", "short2"}
    assert loop.eng.tree.protected_size() == 0 and not loop.running.reqs  # nothing left locked


def test_max_active_caps_the_batch(driver):
    """The plan's `admit` is enforced: SGLang would admit all four at once."""
    driver.configure(PolicyConfig(max_active=2))
    loop = sgl.Loop(sgl.Engine.build(kv_tokens=512), driver)
    loop.waiting = [sgl.request(f"r{i}", 20, max_new=8, priority=50, first_token=1 + 100 * i)
                    for i in range(4)]
    sizes = []
    for _ in range(30):
        loop.step()
        sizes.append(len([r for r in loop.running.reqs if not r.finished()]))
    assert max(sizes) == 2 and len(loop.done) == 4
    assert loop.log[0]["admit"] == ["r0", "r1"] and driver.stats["refused"] > 0


@pytest.mark.parametrize("reserve_steps, admitted", [(0, 2), (16, 1)])
def test_kv_reserve_steps_holds_room_for_growth(driver, reserve_steps, admitted):
    """128 KV tokens, two 56-token prompts: SGLang fits both (120 tokens with their output); the
    plan keeps 16 steps of growth free beyond each admission, and after the first only 71 are."""
    driver.configure(PolicyConfig(kv_reserve_steps=reserve_steps))
    eng = sgl.Engine.build(kv_tokens=128)
    waiting = [sgl.request(f"r{i}", 56, max_new=4, priority=50, first_token=1 + 100 * i) for i in range(2)]
    adder = eng.admit_pass(waiting, None)
    assert len(adder.can_run_list) == admitted
