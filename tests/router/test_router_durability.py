"""Two gateway processes on one Redis; SIGKILL the one dispatching while requests are queued and
leased. Clients of the survivor get full answers (or an explicit error if their stream had begun);
the dead gateway's queued requests are dropped, never run."""

import asyncio
import json

import httpx
from gw_helpers import GatewayProcess, upstream

from router import keys

N_TOKENS = 10


async def collect(
    client: httpx.AsyncClient, url: str, tag: str, out: dict, first_chunk: asyncio.Event | None = None
):
    lines: list[str] = []
    out[tag] = lines
    try:
        body = {"prompt": f"{tag} hello", "max_tokens": N_TOKENS, "stream": True}
        async with client.stream("POST", url + "/v1/completions", json=body) as resp:
            async for line in resp.aiter_lines():
                if line:
                    lines.append(line)
                    if first_chunk is not None:
                        first_chunk.set()
    except httpx.HTTPError as exc:
        lines.append(f"transport error: {exc!r}")


def text_of(lines: list[str]) -> str:
    chunks = [json.loads(x[6:]) for x in lines if x.startswith("data: {")]
    return "".join(c["choices"][0]["text"] for c in chunks if c.get("choices"))


async def until(predicate, timeout=15.0):
    for _ in range(int(timeout / 0.02)):
        if await predicate():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not met in time")


async def test_sigkill_dispatching_gateway(redis_server, redis_client):
    common = {
        "SKIPJOIN_REDIS_URL": redis_server.url,
        "SKIPJOIN_LEASE_S": "1.0",
        "SKIPJOIN_WINDOW_MAX": "2",
        "SKIPJOIN_LOAD_POLL_S": "0.05",
    }
    with upstream(token_delay=0.1, max_batch=1) as up:
        common["SKIPJOIN_ENGINES"] = up.url
        received = up.state.received
        with (
            GatewayProcess(**common, SKIPJOIN_DISPATCH="true") as a,
            GatewayProcess(**common, SKIPJOIN_DISPATCH="false") as b,
        ):
            out: dict[str, list[str]] = {}
            async with httpx.AsyncClient(timeout=30) as client:
                b0_started = asyncio.Event()
                tasks = [asyncio.create_task(collect(client, b.url, "b0", out, b0_started))]
                await b0_started.wait()  # b0 streams: running upstream, first chunk delivered
                tasks.append(asyncio.create_task(collect(client, b.url, "b1", out)))
                await until(lambda: asyncio.sleep(0, len(received) == 2))  # b1: leased, waiting upstream
                for tag in ("b2", "b3"):
                    tasks.append(asyncio.create_task(collect(client, b.url, tag, out)))
                await until(lambda: redis_client.zcard(keys.queue("all")), timeout=5)
                await until(lambda: _eq(redis_client.zcard(keys.queue("all")), 2))
                for tag in ("a0", "a1"):
                    tasks.append(asyncio.create_task(collect(client, a.url, tag, out)))
                await until(lambda: _eq(redis_client.zcard(keys.queue("all")), 4))

                a.kill()
                # A's front heartbeat lapses; then a new dispatching gateway joins.
                await until(lambda: _eq(_count(redis_client, keys.FRONT_PREFIX + "*"), 1))
                with GatewayProcess(**common, SKIPJOIN_DISPATCH="true"):
                    await asyncio.wait_for(asyncio.gather(*tasks[:4]), 30)
                    # Fronts delete a request's result stream once its answer is through.
                    await until(lambda: _eq(_count(redis_client, keys.RESULT_PREFIX + "*"), 0), timeout=5)
            await asyncio.gather(*tasks, return_exceptions=True)

    full = "".join(f"t{i} " for i in range(N_TOKENS))
    # b0 had begun streaming when its dispatcher died: an explicit error, no duplicated text.
    assert "dispatcher_lost" in out["b0"][-1] and "[DONE]" not in "".join(out["b0"])
    assert full.startswith(text_of(out["b0"])) and text_of(out["b0"])
    # b1 (leased, no token sent) was re-dispatched; b2, b3 (queued) ran: full answers, once.
    for tag in ("b1", "b2", "b3"):
        assert text_of(out[tag]) == full and out[tag][-1] == "data: [DONE]", out[tag]
    prompts = [r["prompt"].split()[0] for r in received]
    assert prompts[:2] == ["b0", "b1"] and sorted(prompts[2:]) == ["b1", "b2", "b3"]
    # The dead gateway's clients were cut off, and their queued requests never ran.
    assert "a0" not in prompts and "a1" not in prompts


async def _eq(awaitable, value) -> bool:
    return await awaitable == value


async def _count(client, pattern: str) -> int:
    return len([k async for k in client.scan_iter(match=pattern)])
