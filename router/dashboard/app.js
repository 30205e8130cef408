// skipjoin dashboard: renders GET /admin/stats once a second. No build step, no dependencies.
// The admin token comes from the page's #token=... fragment (kept for the tab's session only).
"use strict";

const REFRESH_MS = 1000;

function token() {
  const m = location.hash.match(/token=([^&]+)/);
  if (m) sessionStorage.setItem("skipjoin-admin-token", decodeURIComponent(m[1]));
  return sessionStorage.getItem("skipjoin-admin-token") || "";
}

function fmt(v) {
  if (v === null || v === undefined) return "–";
  if (typeof v === "number") return String(Math.round(v * 10000) / 10000);
  if (typeof v === "object") return JSON.stringify(v);
  return String(v);
}

// One table row per entry; `key` (a path into the stats JSON) marks cells the test checks.
function cell(tag, text, key) {
  const el = document.createElement(tag);
  el.textContent = text;
  if (key !== undefined) el.dataset.k = key;
  return el;
}

function table(id, head, rows) {
  const t = document.getElementById(id);
  t.replaceChildren();
  const tr = document.createElement("tr");
  head.forEach((h) => tr.appendChild(cell("th", h)));
  t.appendChild(tr);
  rows.forEach((cols) => {
    const r = document.createElement("tr");
    cols.forEach(([text, key]) => r.appendChild(cell("td", text, key)));
    t.appendChild(r);
  });
}

function counts(id, obj, path) {
  table(id, ["", "requests"], Object.entries(obj).map(([k, v]) => [[k], [fmt(v), `${path}.${k}`]]));
}

function render(s) {
  document.querySelectorAll("p [data-k]").forEach((el) => {
    el.textContent = fmt(el.dataset.k.split(".").reduce((o, k) => (o == null ? o : o[k]), s));
  });
  counts("queue-class", s.queue.by_class, "queue.by_class");
  counts("queue-predicted", s.queue.by_predicted, "queue.by_predicted");
  counts("inflight-predicted", s.inflight.by_predicted, "inflight.by_predicted");
  table("latency", ["class", "wait p50 s", "wait p90 s", "TTFT p50 s", "TTFT p90 s", "n"],
    Object.entries(s.latency).map(([c, l]) => [[c],
      [fmt(l.queue_wait.p50), `latency.${c}.queue_wait.p50`], [fmt(l.queue_wait.p90), `latency.${c}.queue_wait.p90`],
      [fmt(l.ttft.p50), `latency.${c}.ttft.p50`], [fmt(l.ttft.p90), `latency.${c}.ttft.p90`],
      [fmt(l.ttft.n), `latency.${c}.ttft.n`]]));
  table("engines", ["replica", "running", "waiting", "MLFQ level occupancy"],
    s.engines.map((e, i) => [[e.id], [fmt(e.running), `engines.${i}.running`],
      [fmt(e.waiting), `engines.${i}.waiting`], [(e.levels || []).join(" · ")]]));
  const views = [];
  s.gateways.forEach((g) => Object.entries(g.replicas || {}).forEach(([url, r]) => views.push([[g.id],
    [url], [r.paused ? "paused" : r.healthy ? "ok" : "down"], [fmt(r.inflight)], [fmt(r.window)],
    [fmt(r.running)], [fmt(r.waiting)]])));
  table("gateways", ["gateway", "replica", "state", "ours", "window", "running", "waiting"], views);
  const knobs = Object.entries(s.knobs.gateway).map(([k, v]) => [["gateway"], [k],
    typeof v === "number" ? [fmt(v), `knobs.gateway.${k}`] : [fmt(v)]]);
  Object.entries(s.knobs.engine).forEach(([k, v]) => knobs.push([["engine"], [k],
    typeof v === "number" ? [fmt(v), `knobs.engine.${k}`] : [fmt(v)]]));
  table("knobs", ["where", "knob", "value"], knobs);
  document.getElementById("at").textContent = new Date(s.at * 1000).toLocaleTimeString();
  document.getElementById("at").dataset.at = String(s.at);
}

async function refresh() {
  const status = document.getElementById("status");
  try {
    const res = await fetch("/admin/stats", { headers: { Authorization: `Bearer ${token()}` } });
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    render(await res.json());
    status.textContent = "live";
    status.dataset.state = "live";
  } catch (err) {
    status.textContent = `error: ${err.message}`;
    status.dataset.state = "error";
  }
}

refresh();
setInterval(refresh, REFRESH_MS);
