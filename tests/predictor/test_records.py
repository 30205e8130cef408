"""The gateway's record of a served request, as the trainer reads it back from Redis."""

import numpy as np
import pytest

from predictor.config import PredictorConfig
from predictor.examples import example_from_record
from predictor.features import encode_hidden
from predictor.trainer import RECORDS_STREAM, Trainer
from router.job import Job
from router.records import Outcome, add_record


def _job(temperature: float | None, max_tokens: int) -> Job:
    body = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": max_tokens}
    if temperature is not None:
        body["temperature"] = temperature
    x = np.arange(4, dtype=float)
    return Job(
        id="j1",
        kind="chat",
        body=body,
        stream=False,
        include_usage=False,
        predicted=50.0,
        p90=90.0,
        predictor="auto:ridge",
        cls="interactive",
        tenant="t",
        prompt_hash="h",
        prefix_key="p",
        front="f",
        enqueued_at=0.0,
        enqueued_wall=100.0,
        score=1.0,
        bucket="all",
        features={"heuristic": 60.0, "hidden": encode_hidden({"layers": [3], "last": [x], "mean": [x]})},
    )


@pytest.mark.parametrize(
    ("temperature", "output", "finish", "capped"),
    [(1.0, 37, "stop", False), (None, 64, "length", True), (0.0, 12, "stop", False)],
)
async def test_a_served_record_reads_back_as_what_was_served(
    redis_client, temperature, output, finish, capped
):
    out = Outcome(20, output, finish, 100.1, 100.2, 101.0, "http://replica")
    async with redis_client.pipeline(transaction=False) as pipe:
        add_record(pipe, _job(temperature, max_tokens=64), out)
        await pipe.execute()
    trainer = Trainer(redis_client, PredictorConfig(use_seed_data=False), seed=[])
    [example] = await trainer.read_examples()
    assert example.output_tokens == output and example.capped is capped and example.temperature == temperature
    assert example.cap == 64 and example.heuristic == 60.0 and example.prompt_tokens == 20
    assert list(example.hidden["last"][0]) == [0.0, 1.0, 2.0, 3.0]


def test_records_without_a_temperature_field_still_read():
    fields = {"id": "r", "output_tokens": "5", "max_tokens": "", "finish_reason": "stop", "features": "{}"}
    example = example_from_record(fields)
    assert example.temperature is None and example.output_tokens == 5 and not example.capped
    assert RECORDS_STREAM == "skipjoin:records"
