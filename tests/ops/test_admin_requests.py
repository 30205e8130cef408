"""Admin: list queued and running requests, cancel one, and change the replica set live."""

import asyncio

import httpx
import pytest
from admin_helpers import TOKEN, admin
from gw_helpers import control, gateway, upstream, wait_for


async def _post(client: httpx.AsyncClient, url: str, prompt: str, cls: str = "interactive", **extra):
    return await client.post(url + "/v1/completions", json={"prompt": prompt, **extra},
                             headers={"X-Skipjoin-Class": cls, "X-Skipjoin-Tenant": "acme"})


@pytest.fixture
def held(redis_server, redis_client):
    """A gateway with window 1 whose engine holds the first request: the rest queue in Redis."""
    with upstream(max_batch=1) as up, gateway(redis_server.url, up.url, admin_token=TOKEN,
                                               window_max=1) as gw:
        gw.upstream = up
        yield gw


async def test_lists_queued_and_running_with_prediction_score_class_tenant_age(held):
    a = admin(held.url)
    async with httpx.AsyncClient(timeout=30) as client:
        tasks = [asyncio.create_task(_post(client, held.url, "[hold]", max_tokens=1))]
        await asyncio.to_thread(wait_for, lambda: len(held.upstream.state.received) == 1)
        tasks += [asyncio.create_task(_post(client, held.url, "Write 300 tokens", "batch")),
                  asyncio.create_task(_post(client, held.url, "Write 50 tokens"))]
        await asyncio.to_thread(wait_for, lambda: len(a.get("/admin/requests").json()["queued"]) == 2)
        listing = a.get("/admin/requests").json()
        control(held.upstream.url, release=True)
        assert all(r.status_code == 200 for r in await asyncio.gather(*tasks))
    queued, running = listing["queued"], listing["inflight"]
    assert [(q["class"], q["predicted"], q["tenant"]) for q in queued] == [
        ("interactive", 50.0, "acme"), ("batch", 300.0, "acme")]  # next to run first
    assert queued[0]["score"] < queued[1]["score"]
    assert all(q["age_s"] >= 0 for q in queued)
    assert len(running) == 1 and running[0]["replica"] == held.upstream.url
    assert running[0]["owner"]


async def test_cancel_a_queued_request_answers_its_client_and_never_runs_it(held):
    a = admin(held.url)
    async with httpx.AsyncClient(timeout=30) as client:
        blocker = asyncio.create_task(_post(client, held.url, "[hold]", max_tokens=1))
        await asyncio.to_thread(wait_for, lambda: len(held.upstream.state.received) == 1)
        victim = asyncio.create_task(_post(client, held.url, "victim Write 20 tokens"))
        await asyncio.to_thread(wait_for, lambda: len(a.get("/admin/requests").json()["queued"]) == 1)
        job_id = a.get("/admin/requests").json()["queued"][0]["id"]
        r = a.delete(f"/admin/requests/{job_id}")
        assert r.status_code == 200 and r.json() == {"id": job_id, "cancelled": True}
        answer = await victim
        assert answer.status_code == 503
        assert answer.json()["error"]["code"] == "cancelled_by_operator"
        control(held.upstream.url, release=True)
        assert (await blocker).status_code == 200
    assert a.delete(f"/admin/requests/{job_id}").status_code == 404  # gone
    assert [x["prompt"] for x in held.upstream.state.received] == ["[hold]"]
    [entry] = a.get("/admin/audit").json()["entries"]  # the cancel is audited (the 404 is not)
    assert (entry["target"], entry["new"], entry["who"].split("@")[0]) == (
        "request", {"id": job_id, "cancelled": True}, "admin")


async def test_cancel_a_running_request_stops_it_upstream(held):
    a = admin(held.url)
    async with httpx.AsyncClient(timeout=30) as client:
        # Streamed: the fake engine notices a closed connection only on a stream.
        running = asyncio.create_task(_post(client, held.url, "[hold]", max_tokens=1, stream=True))
        await asyncio.to_thread(wait_for, lambda: len(held.upstream.state.received) == 1)
        job_id = a.get("/admin/requests").json()["inflight"][0]["id"]
        assert a.delete(f"/admin/requests/{job_id}").status_code == 200
        answer = await running
    assert answer.status_code == 503 and answer.json()["error"]["code"] == "cancelled_by_operator"
    await asyncio.to_thread(wait_for, lambda: held.upstream.state.cancelled == ["up-0"])
    await asyncio.to_thread(wait_for, lambda: a.get("/admin/requests").json()["inflight"] == [])


def test_unknown_request_is_404(held):
    r = admin(held.url).delete("/admin/requests/nope")
    assert r.status_code == 404 and "error" in r.json()


def test_add_pause_resume_drain_remove_a_replica_without_restart(redis_server, redis_client):
    with (
        upstream() as one,
        upstream() as two,
        gateway(redis_server.url, one.url, admin_token=TOKEN) as gw,
    ):
        a = admin(gw.url)

        def served_by(n: int) -> tuple[int, int]:
            control(one.url, reset=True)
            control(two.url, reset=True)
            for i in range(n):
                assert httpx.post(gw.url + "/v1/completions", json={"prompt": f"p{i}"}).status_code == 200
            return len(one.state.received), len(two.state.received)

        assert a.post("/admin/replicas/add", json={"url": two.url}).status_code == 200
        assert [r["url"] for r in a.get("/admin/replicas").json()["replicas"]] == [one.url, two.url]
        assert a.post("/admin/replicas/pause", json={"url": one.url}).json()["state"] == "paused"
        assert served_by(4) == (0, 4)
        assert a.post("/admin/replicas/resume", json={"url": one.url}).json()["state"] == "active"
        assert a.post("/admin/replicas/drain", json={"url": two.url}).json()["state"] == "draining"
        assert served_by(4) == (4, 0)
        assert a.post("/admin/replicas/remove", json={"url": two.url}).json()["state"] == "removed"
        assert [r["url"] for r in a.get("/admin/replicas").json()["replicas"]] == [one.url]
        wait_for(lambda: [r.url for r in gw.app.state.gateway.dispatcher.replicas] == [one.url])
        assert a.post("/admin/replicas/pause", json={"url": two.url}).status_code == 404
        assert a.post("/admin/replicas/add", json={"url": one.url}).status_code == 400
        assert a.post("/admin/replicas/add", json={"url": "not a url"}).status_code == 400
        assert a.post("/admin/replicas/explode", json={"url": one.url}).status_code == 400
        targets = [e["target"] for e in a.get("/admin/audit").json()["entries"]]
        assert targets == ["replicas"] * 5
