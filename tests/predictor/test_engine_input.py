"""One feature path: the dataset tokenizes, and the live probe sends, the very input the engine runs
for the real request (chat templated, completions raw)."""

from pathlib import Path

import pytest

from predictor.dataset import encode
from predictor.engine_input import engine_input, row_request
from predictor.probes import prefill_body
from router.front import _predict_request
from router.schemas import ChatCompletionRequest, CompletionRequest

CHAT_ROW = {"id": "c", "prompt": "Name three rivers in Europe."}
TEXT_ROW = {"id": "t", "prompt": "Once upon a time, in a small village,", "endpoint": "completions"}


@pytest.fixture(scope="module")
def tokenizer():
    transformers = pytest.importorskip("transformers")
    folders = sorted(Path.home().glob(".cache/skipjoin/models/*/tokenizer.json"))
    if folders:  # the HF folder the vLLM engine loads (engine.model_folder), quick to read
        return transformers.AutoTokenizer.from_pretrained(folders[0].parent)
    from predictor.dataset import smollm2_gguf

    gguf = smollm2_gguf()
    return transformers.AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)


def test_a_chat_row_is_tokenized_as_the_probe_sends_it(tokenizer):
    path, body = prefill_body(row_request(CHAT_ROW), [19])
    assert path == "/v1/chat/completions" and body["messages"] == [
        {"role": "user", "content": CHAT_ROW["prompt"]}
    ]
    templated = tokenizer.apply_chat_template(body["messages"], add_generation_prompt=True, tokenize=False)
    assert encode(tokenizer, CHAT_ROW) == tokenizer(templated, add_special_tokens=False)["input_ids"]


def test_a_completions_row_is_the_raw_prompt_on_both_sides(tokenizer):
    path, body = prefill_body(row_request(TEXT_ROW), [19])
    assert path == "/v1/completions" and body["prompt"] == TEXT_ROW["prompt"] and "messages" not in body
    ids = encode(tokenizer, TEXT_ROW)
    assert ids == tokenizer(TEXT_ROW["prompt"])["input_ids"]
    assert ids != encode(tokenizer, {"id": "c2", "prompt": TEXT_ROW["prompt"]})  # not templated


def test_the_gateway_probes_with_the_clients_own_input():
    completion = CompletionRequest(model="m", prompt="Roses are red,", max_tokens=20)
    path, body = prefill_body(_predict_request(completion, completion.prompt_text(), ""), [19])
    assert path == "/v1/completions" and body["prompt"] == "Roses are red,"
    chat = ChatCompletionRequest(
        model="m", messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    )
    path, body = prefill_body(_predict_request(chat, chat.prompt_text(), ""), [19])
    sent = chat.model_dump(exclude_none=True)["messages"]
    assert path == "/v1/chat/completions" and body["messages"] == sent
    assert engine_input(_predict_request(chat, chat.prompt_text(), "")).kind == "chat"


def test_an_unknown_endpoint_in_a_row_is_an_error():
    with pytest.raises(ValueError, match="endpoint"):
        row_request({"id": "x", "prompt": "hi", "endpoint": "embeddings"})
