"""Prefix reuse, prefill-only probes with hidden states, digits only, live policy knobs, streaming."""

import pytest

from engine.hf import GenerationRequest


def test_shared_prefix_prefills_only_new_tokens(make_runner, prompts):
    runner = make_runner(block_size=16)
    prefix = prompts(1, 200, 201, seed=11)[0]
    first = runner.submit(GenerationRequest(input_ids=prefix + [5, 6, 7], max_new_tokens=4))
    assert list(runner.events(first))[-1].cached_tokens == 0
    second = runner.submit(GenerationRequest(input_ids=prefix + [9, 10, 11, 12], max_new_tokens=4))
    events = list(runner.events(second))
    assert events[-1].cached_tokens >= 192
    assert runner.stats()["prefix_hit_tokens"] >= 192


def test_prefill_only_probe_returns_hidden_states_and_warms_the_prefix(make_runner, prompts):
    runner = make_runner(block_size=16, max_batch_tokens=64)  # the 150-token prompt is prefilled in chunks
    prompt = prompts(1, 150, 151, seed=12)[0]
    probe = GenerationRequest(input_ids=prompt, max_new_tokens=0, return_hidden_states=True,
                              hidden_layers=[0, 1])
    events = list(runner.events(runner.submit(probe)))
    assert len(events) == 1 and events[0].finish_reason == "length" and events[0].token_ids == []
    hidden = events[0].hidden_states
    assert hidden["layers"] == [0, 1]
    size = runner.model.config.hidden_size
    assert [len(v) for v in hidden["last"]] == [size, size]
    assert [len(v) for v in hidden["mean"]] == [size, size]
    assert hidden["last"] != hidden["mean"]
    real = list(runner.events(runner.submit(GenerationRequest(input_ids=prompt, max_new_tokens=3))))
    assert real[-1].cached_tokens >= 144

    # The mean over chunks equals the mean of one unchunked pass (default layer: the middle one).
    whole = make_runner(block_size=16, max_batch_tokens=512)
    probe = GenerationRequest(input_ids=prompt, max_new_tokens=0, return_hidden_states=True,
                              hidden_layers=[1])
    again = list(whole.events(whole.submit(probe)))
    assert again[0].hidden_states["mean"][0] == pytest.approx(hidden["mean"][1], abs=1e-4)


def test_digits_only_decodes_digits(make_runner, prompts):
    runner = make_runner()
    tokens = runner.generate([GenerationRequest(input_ids=prompts(1, seed=13)[0], max_new_tokens=12,
                                                digits_only=True)])[0]
    text = runner.tokenizer.decode(tokens).strip()
    assert tokens and text.isdigit()


def test_sampling_with_a_seed_is_repeatable(make_runner, prompts):
    runner = make_runner()
    req = dict(input_ids=prompts(1, seed=14)[0], max_new_tokens=10, temperature=1.0, top_p=0.9,
               ignore_eos=True)
    a, b = runner.generate([GenerationRequest(seed=3, **req), GenerationRequest(seed=3, **req)])
    greedy = runner.generate([GenerationRequest(**{**req, "temperature": 0.0})])[0]
    assert a == b and a != greedy


def test_policy_knobs_change_live_and_are_validated(make_runner):
    runner = make_runner()
    assert runner.set_policy({"base_quantum": 8})["base_quantum"] == 8
    assert runner.get_policy()["base_quantum"] == 8
    assert runner.set_policy({"name": "fcfs"})["name"] == "fcfs"
    for bad in ({"base_quantum": 0}, {"nope": 1}, {"preempt": "yes"}, {"name": "lifo"}):
        with pytest.raises(ValueError):
            runner.set_policy(bad)
    assert runner.get_policy()["name"] == "fcfs"
    runner.generate([GenerationRequest(input_ids=[1, 2, 3], max_new_tokens=2)])  # still serving


async def test_stream_from_an_event_loop(make_runner, prompts):
    runner = make_runner()
    req = GenerationRequest(input_ids=prompts(1, seed=15)[0], max_new_tokens=6, ignore_eos=True)
    rid = runner.submit(req)
    events = [e async for e in runner.stream(rid)]
    assert sum(len(e.token_ids) for e in events) == 6 and events[-1].finished
    assert events[-1].finish_reason == "length" and events[-1].prompt_tokens > 0
