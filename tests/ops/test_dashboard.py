"""The dashboard in headless Chromium against a live gateway with traffic: every number the page
shows equals the JSON endpoint's, its charts have points and show in a screenshot (kept under
results/), and its buttons act through the admin API."""

import asyncio
import html
import json
import re
from html.parser import HTMLParser

import cdp
import chromium
import httpx
import pytest
from admin_helpers import TOKEN, admin
from gw_helpers import REPO, control, gateway, upstream, wait_for

from engine.control import StatsPublisher

pytestmark = pytest.mark.skipif(chromium.binary() is None, reason="needs Debian's chromium")
SCREENSHOT = REPO / "results" / "dashboard.png"


class Cells(HTMLParser):
    """Collects the text of every element carrying `data-k` (a path into the stats JSON)."""

    def __init__(self):
        super().__init__()
        self.cells: dict[str, str] = {}
        self._open: list[str | None] = []
        self.status = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self._open.append(a.get("data-k"))
        if a.get("id") == "status":
            self.status = a.get("data-state")
        if a.get("data-k"):
            self.cells[a["data-k"]] = ""

    def handle_endtag(self, tag):
        if self._open:
            self._open.pop()

    def handle_data(self, data):
        key = next((k for k in reversed(self._open) if k), None)
        if key:
            self.cells[key] += data


def lookup(doc, path: str):
    for part in path.split("."):
        doc = doc[int(part)] if isinstance(doc, list) else doc[part]
    return doc


async def _traffic(client: httpx.AsyncClient, gw, up) -> list[asyncio.Task]:
    """Some finished requests (latency), one running and held, four queued behind it."""
    for cls in ("interactive", "batch"):
        r = await client.post(gw.url + "/v1/completions", json={"prompt": "Write 10 tokens"},
                              headers={"X-Skipjoin-Class": cls})
        assert r.status_code == 200
    tasks = [asyncio.create_task(client.post(gw.url + "/v1/completions",
                                             json={"prompt": "[hold]", "max_tokens": 1}))]
    await asyncio.to_thread(wait_for, lambda: any("[hold]" in x["prompt"] for x in up.state.received))
    for cls, n in (("interactive", 40), ("interactive", 500), ("batch", 100), ("batch", 2000)):
        tasks.append(asyncio.create_task(client.post(
            gw.url + "/v1/completions", json={"prompt": f"Write {n} tokens"},
            headers={"X-Skipjoin-Class": cls})))
    a = admin(gw.url)
    await asyncio.to_thread(wait_for, lambda: a.get("/admin/stats").json()["queue"]["depth"] == 4)
    return tasks


async def test_dashboard_numbers_match_the_json_endpoint(redis_server, redis_client):
    engine = StatsPublisher(redis_server.url, "engine-0", every_s=0, ttl_s=120)
    engine.publish({"running": 1, "waiting": 3, "levels": [2, 1, 0, 1]})
    # lease_s 10: Chromium's start-up starves the box; a 1 s lease could lapse and move the queue.
    # request_timeout_s 300: the held request must outlast the page loads on a loaded box.
    with upstream(max_batch=1) as up, gateway(redis_server.url, up.url, admin_token=TOKEN,
                                               window_max=1, lease_s=10.0, request_timeout_s=300.0) as gw:
        admin(gw.url).patch("/admin/config/gateway", json={"aging_rate": 2.5})
        client = httpx.AsyncClient(timeout=60)
        tasks = await _traffic(client, gw, up)
        try:
            url = f"{gw.url}/dashboard/#token={TOKEN}"
            # A starved box can fail one of the page's fetches; the page shows the next one.
            for _ in range(3):
                dom = await asyncio.to_thread(chromium.dump_dom, url)
                if 'data-state="live"' in dom:
                    break
            stats = admin(gw.url).get("/admin/stats").json()
            await asyncio.to_thread(chromium.screenshot, url, SCREENSHOT)
        finally:
            control(up.url, release=True)
            answers = await asyncio.gather(*tasks)
            await client.aclose()
            engine.close()
    page = Cells()
    page.feed(dom)
    assert page.status == "live", dom[:2000]
    must = {"queue.depth": 4, "inflight.total": 1, "queue.by_class.interactive": 2,
            "queue.by_class.batch": 2, "engines.0.running": 1, "engines.0.waiting": 3,
            "knobs.gateway.aging_rate": 2.5, "latency.interactive.ttft.n": 1}
    for key, value in must.items():
        assert lookup(stats, key) == value, key
        assert float(page.cells[key]) == value, (key, page.cells.get(key))
    assert len(page.cells) > len(must)
    for key, shown in page.cells.items():
        expected = lookup(stats, key)
        if expected is None:
            assert shown == "–", key
        else:
            assert float(shown) == pytest.approx(float(expected), abs=1e-4), (key, shown, expected)
    assert "2 · 1 · 0 · 1" in dom  # MLFQ level occupancy as the engine published it
    assert all(a.status_code == 200 for a in answers), [(a.status_code, a.text[:300]) for a in answers]
    assert SCREENSHOT.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and SCREENSHOT.stat().st_size > 10_000
    check_charts(dom, SCREENSHOT, "engine-0", 4)


def _near(pixel, rgb, tol=40) -> bool:
    return all(abs(a - b) <= tol for a, b in zip(pixel[:3], rgb, strict=True))


def check_charts(dom: str, shot, engine_id: str, levels: int) -> None:
    """Queue/running, TTFT and end-to-end lines over the samples the page has taken, and the MLFQ
    level bars: every series has points (the canvases say how many) and the screenshot shows their
    colours."""
    series = {cid: json.loads(html.unescape(data)) for cid, data in
              re.findall(r'<canvas id="(chart-[a-z0-9]+)"[^>]*data-series="([^"]*)"', dom)}
    assert set(series) == {"chart-load", "chart-ttft", "chart-e2e", "chart-levels"}, dom[:3000]
    assert series["chart-load"]["queued"] >= 2 and series["chart-load"]["running"] >= 2
    assert series["chart-ttft"]["interactive p50"] >= 2 and series["chart-ttft"]["batch p99"] >= 2
    assert series["chart-e2e"]["interactive p99"] >= 2 and series["chart-e2e"]["batch p50"] >= 2
    assert series["chart-levels"][engine_id] == levels
    image = pytest.importorskip("PIL.Image").open(shot).convert("RGB")
    pixels = list(image.getdata())
    blue, red = (0x1F, 0x77, 0xB4), (0xD6, 0x27, 0x28)  # the first two series' colours (app.js)
    assert sum(_near(p, blue) for p in pixels) > 300
    assert sum(_near(p, red) for p in pixels) > 300


def _button(kind: str, value: str) -> str:
    return f"document.querySelector('button[data-{kind}=\"{value}\"]')"


async def test_dashboard_cancels_a_request_drains_a_replica_and_sets_a_knob(redis_server, redis_client):
    """Its buttons, clicked in a real browser (DevTools protocol), do what the admin API does."""
    with upstream(max_batch=1) as up, gateway(redis_server.url, up.url, admin_token=TOKEN, window_max=1,
                                               lease_s=10.0) as gw:
        a = admin(gw.url)
        client = httpx.AsyncClient(timeout=120)
        url = gw.url + "/v1/completions"
        held = asyncio.create_task(client.post(url, json={"prompt": "[hold]"}))
        await asyncio.to_thread(wait_for, lambda: any("[hold]" in x["prompt"] for x in up.state.received))
        queued = asyncio.create_task(client.post(url, json={"prompt": "Write 40 tokens"},
                                                 headers={"X-Request-Id": "to-cancel"}))
        await asyncio.to_thread(wait_for, lambda: len(a.get("/admin/requests").json()["queued"]) == 1)
        job = a.get("/admin/requests").json()["queued"][0]
        assert job["request_id"] == "to-cancel"
        page = await asyncio.to_thread(cdp.Page, f"{gw.url}/dashboard/#token={TOKEN}")

        async def click(kind: str, value: str) -> None:
            await asyncio.to_thread(page.wait, f"!!{_button(kind, value)}")
            await asyncio.to_thread(page.eval, f"{_button(kind, value)}.click(); true")

        def state() -> str:
            return a.get("/admin/replicas").json()["replicas"][0]["state"]

        def aging_rate() -> float:
            return a.get("/admin/config").json()["gateway"]["aging_rate"]["value"]

        try:
            await click("cancel", job["id"])
            answer = await queued
            assert answer.status_code == 503 and answer.json()["error"]["code"] == "cancelled_by_operator"
            await click("drain", up.url)
            await asyncio.to_thread(wait_for, lambda: state() == "draining", 30)
            await click("resume", up.url)
            await asyncio.to_thread(wait_for, lambda: state() == "active", 30)
            await asyncio.to_thread(page.wait, "document.getElementById('knob-name').options.length > 0")
            await asyncio.to_thread(page.eval, "document.getElementById('knob-name').value = 'aging_rate';"
                                               "document.getElementById('knob-value').value = '7.5';"
                                               "document.getElementById('knob-set').click(); true")
            await asyncio.to_thread(wait_for, lambda: aging_rate() == 7.5, 30)
            shown = "document.getElementById('action').textContent"
            note = await asyncio.to_thread(page.wait, f"{shown}.startsWith('PATCH') && {shown}")
            assert "PATCH /admin/config/gateway: 200" in note
            whos = {e.get("who") for e in a.get("/admin/audit").json()["entries"]}
            # The audit log names the token's operator, then the page's own label.
            assert any(w.startswith("admin@") and w.endswith("(dashboard)") for w in whos), whos
        finally:
            await asyncio.to_thread(page.close)
            control(up.url, release=True)
            assert (await held).status_code == 200
            await client.aclose()
