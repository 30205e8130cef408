"""Live engine ordering: a short request behind eight long ones."""

import threading

import pytest

from engine.hf import GenerationRequest
from engine.policy import PolicyConfig


def finish_order(runner, prompts) -> list[str]:
    done: list[str] = []
    longs = [runner.submit(GenerationRequest(input_ids=p, max_new_tokens=160, ignore_eos=True, priority=400,
                                             rid=f"long{i}"))
             for i, p in enumerate(prompts(8, seed=3))]
    short = runner.submit(GenerationRequest(input_ids=prompts(1, seed=4)[0], max_new_tokens=8,
                                            ignore_eos=True, priority=8, rid="short"))

    lock = threading.Lock()

    def wait(rid):
        list(runner.events(rid))
        with lock:
            done.append(rid)

    threads = [threading.Thread(target=wait, args=(rid,)) for rid in [*longs, short]]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return done


@pytest.mark.parametrize("policy", ["mlfq", "fcfs"])
def test_short_request_behind_eight_long_ones(make_runner, prompts, policy):
    runner = make_runner(PolicyConfig(name=policy), max_batch=4, num_blocks=256, block_size=16)
    order = finish_order(runner, prompts)
    if policy == "mlfq":
        assert order[0] == "short"
    else:
        assert order[-1] == "short"  # it waits for the second wave of long ones
