"""Every gateway knob changed through the admin API reaches the running objects, and acts."""

import asyncio

import httpx
from admin_helpers import TOKEN, admin
from gw_helpers import control, gateway, upstream, wait_for

from predictor.heuristic import HeuristicPredictor


def test_each_knob_reaches_the_object_that_uses_it(redis_server, redis_client):
    with upstream() as up, gateway(redis_server.url, up.url, admin_token=TOKEN) as gw:
        r = admin(gw.url).patch("/admin/config/gateway", json={
            "class_weights": {"interactive": 1.0, "batch": 2.0, "bulk": 9.0}, "aging_rate": 3.0,
            "tenant_penalty": 0.2, "tenant_window_s": 30.0, "max_queue": 77, "window_min": 2,
            "window_max": 5, "window_headroom": 0, "predictor": "probe-text"})
        assert r.status_code == 200, r.text
        g = gw.app.state.gateway
        score = g.front.cfg.score
        assert (score.aging_rate, score.tenant_penalty) == (3.0, 0.2)
        assert score.class_weights == g.class_weights == {"interactive": 1.0, "batch": 2.0, "bulk": 9.0}
        assert g.front.usage.cfg.window_s == 30.0
        assert g.front.queue.cfg.max_queue == 77
        w = g.dispatcher.cfg.window
        assert (w.window_min, w.window_max, w.headroom) == (2, 5, 0)
        assert not isinstance(g.front.predictor, HeuristicPredictor)
        # The new class is accepted at once; an unknown one still is not.
        hdr = {"X-Skipjoin-Class": "bulk"}
        ok = httpx.post(gw.url + "/v1/completions", json={"prompt": "hi"}, headers=hdr)
        assert ok.status_code == 200
        bad = httpx.post(gw.url + "/v1/completions", json={"prompt": "hi"}, headers={"X-Skipjoin-Class": "x"})
        assert bad.status_code == 400


async def test_a_lower_max_queue_refuses_with_429(redis_server, redis_client):
    with upstream(max_batch=1) as up, gateway(redis_server.url, up.url, admin_token=TOKEN,
                                               window_max=1) as gw:
        admin(gw.url).patch("/admin/config/gateway", json={"max_queue": 1})
        async with httpx.AsyncClient(timeout=30) as client:
            held = asyncio.create_task(client.post(gw.url + "/v1/completions",
                                                   json={"prompt": "[hold]", "max_tokens": 1}))
            await asyncio.to_thread(wait_for, lambda: len(up.state.received) == 1)
            queued = asyncio.create_task(client.post(gw.url + "/v1/completions", json={"prompt": "a"}))
            depth = lambda: admin(gw.url).get("/admin/stats").json()["queue"]["depth"]  # noqa: E731
            await asyncio.to_thread(wait_for, lambda: depth() == 1)
            refused = await client.post(gw.url + "/v1/completions", json={"prompt": "b"})
            control(up.url, release=True)
            assert [r.status_code for r in await asyncio.gather(held, queued)] == [200, 200]
    assert refused.status_code == 429 and refused.json()["error"]["code"] == "queue_full"


def test_a_wider_window_lets_more_run_at_once(redis_server, redis_client):
    with upstream(token_delay=0.05, max_batch=16) as up, gateway(
        redis_server.url, up.url, admin_token=TOKEN, window_max=1
    ) as gw:

        async def burst() -> int:
            control(up.url, reset=True)
            async with httpx.AsyncClient(timeout=30) as client:
                rs = await asyncio.gather(*(client.post(gw.url + "/v1/completions",
                                                        json={"prompt": f"p{i}", "max_tokens": 10})
                                            for i in range(6)))
            assert all(r.status_code == 200 for r in rs)
            return up.state.max_running_seen

        assert asyncio.run(burst()) == 1
        admin(gw.url).patch("/admin/config/gateway", json={"window_max": 8})
        assert asyncio.run(burst()) > 1


async def test_an_aging_change_rescores_what_waits(redis_server, redis_client):
    """Stored scores embed the aging rate: after 0 -> 10 per second, a long request queued 10 s
    ago (live 500 - 100 = 400) must still run after a new short one (50)."""
    now = [1000.0]
    with upstream(max_batch=1) as up, gateway(redis_server.url, up.url, clock=lambda: now[0],
                                               admin_token=TOKEN, window_max=1, aging_rate=0.0) as gw:
        a = admin(gw.url)
        async with httpx.AsyncClient(timeout=30) as client:
            tasks = [asyncio.create_task(client.post(gw.url + "/v1/completions",
                                                     json={"prompt": "[hold]", "max_tokens": 1}))]
            await asyncio.to_thread(wait_for, lambda: len(up.state.received) == 1)
            tasks.append(asyncio.create_task(client.post(gw.url + "/v1/completions",
                                                         json={"prompt": "long Write 500 tokens"})))
            await asyncio.to_thread(wait_for, lambda: len(a.get("/admin/requests").json()["queued"]) == 1)
            now[0] = 1010.0
            assert a.patch("/admin/config/gateway", json={"aging_rate": 10.0}).status_code == 200
            tasks.append(asyncio.create_task(client.post(gw.url + "/v1/completions",
                                                         json={"prompt": "short Write 50 tokens"})))
            await asyncio.to_thread(wait_for, lambda: len(a.get("/admin/requests").json()["queued"]) == 2)
            queued = a.get("/admin/requests").json()["queued"]
            control(up.url, release=True)
            assert all(r.status_code == 200 for r in await asyncio.gather(*tasks))
    assert [q["predicted"] for q in queued] == [50.0, 400.0 + 100.0]
    assert [round(q["score"]) for q in queued] == [50, 400]
    assert [r["prompt"].split()[0] for r in up.state.received[1:]] == ["short", "long"]
