"""Pure pieces of the engine server: incremental detokenization, stop strings, response shapes."""

import pytest

from engine import openai_format as fmt
from engine.metrics import TokenRate
from engine.openai_format import Envelope, Outcome
from engine.textstream import StopMatcher, TextStream

TEXT = "Hello wörld — ünïcode 你好 emoji 🎉 done. STOP here and more"


@pytest.fixture(scope="module")
def tokenizer():
    from engine.loader import smollm2_tokenizer

    return smollm2_tokenizer()


def stream_all(stream: TextStream, ids: list[int]) -> str:
    parts = []
    for i in ids:
        parts.append(stream.push([i]))
        if stream.stopped:
            return "".join(parts)
    return "".join(parts) + stream.flush()


def test_token_by_token_decoding_rebuilds_multibyte_text(tokenizer):
    ids = tokenizer.encode(TEXT, add_special_tokens=False)
    prompt = tokenizer.encode("A prompt", add_special_tokens=False)
    assert stream_all(TextStream(tokenizer, [], prompt), ids) == TEXT


def test_no_partial_character_is_ever_emitted(tokenizer):
    ids = tokenizer.encode("🎉🎉你好", add_special_tokens=False)
    stream = TextStream(tokenizer, [])
    assert all("\ufffd" not in stream.push([i]) for i in ids)


def test_stop_string_cuts_text_before_it(tokenizer):
    ids = tokenizer.encode(TEXT, add_special_tokens=False)
    stream = TextStream(tokenizer, ["STOP"])
    assert stream_all(stream, ids) == TEXT[:TEXT.index("STOP")]
    assert stream.stopped


def test_stop_matcher_holds_back_a_possible_prefix_then_releases_it():
    m = StopMatcher(["</end>"])
    assert m.feed("abc</e") == "abc"
    assert m.feed("x") == "</ex"
    assert m.feed("</en") == ""
    assert m.flush() == "</en"
    assert not m.stopped


def test_stop_matcher_picks_the_earliest_of_several_stops():
    m = StopMatcher(["world", "lo w"])
    assert m.feed("hello world") == "hel"
    assert m.stopped and m.feed("more") == "" and m.flush() == ""


def test_chat_response_has_openai_shape_and_usage():
    env = Envelope("chat", "m")
    body = fmt.full_response(env, "hi", Outcome(5, 3, 2, "stop"))
    assert body["object"] == "chat.completion" and body["id"] == "chatcmpl-" + env.id
    assert body["choices"][0]["message"] == {"role": "assistant", "content": "hi", "refusal": None}
    assert body["usage"] == {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7,
                             "prompt_tokens_details": {"cached_tokens": 3}}
    assert "hidden_states" not in body


def test_text_chunks_and_usage_chunk():
    env = Envelope("text", "m")
    c = fmt.chunk(env, "x", "length", with_usage_field=True)
    assert c["id"] == "cmpl-" + env.id
    assert c["object"] == "text_completion" and c["choices"][0]["text"] == "x" and c["usage"] is None
    u = fmt.usage_chunk(env, Outcome(1, 0, 4, "length", {"layers": [1]}))
    assert u["choices"] == [] and u["usage"]["total_tokens"] == 5 and u["hidden_states"] == {"layers": [1]}
    assert fmt.sse(c).startswith("data: {") and fmt.sse("[DONE]") == "data: [DONE]\n\n"


def test_token_rate_over_samples():
    rate = TokenRate(window_s=10)
    assert rate.observe(0, 100.0) == 0.0
    assert rate.observe(50, 105.0) == pytest.approx(10.0)
    assert rate.observe(250, 125.0) == pytest.approx(10.0)  # (250 - 50) / 20: oldest sample dropped
