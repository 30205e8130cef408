// skipjoin dashboard: renders GET /admin/stats once a second. No build step, no dependencies.
// The admin token comes from the page's #token=... fragment (kept for the tab's session only).
"use strict";

const REFRESH_MS = 1000;
const HISTORY = 300; // samples kept for the charts: 5 minutes at one a second
const COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"];
const history = [];

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

// Line chart of `series` ({name: [[t, v], ...]}) on canvas `id`; the canvas's data-series says how
// many points each series drew (the test reads it).
function lineChart(id, series) {
  const c = document.getElementById(id);
  const g = c.getContext("2d");
  const W = c.width, H = c.height, L = 44, R = 8, T = 8, B = 40;
  g.clearRect(0, 0, W, H);
  const pts = Object.values(series).flat();
  const t0 = Math.min(...pts.map((p) => p[0]), Date.now() / 1000);
  const t1 = Math.max(...pts.map((p) => p[0]), t0 + 1);
  const top = Math.max(...pts.map((p) => p[1]), 1e-9) * 1.1 || 1;
  const x = (t) => L + ((t - t0) / (t1 - t0)) * (W - L - R);
  const y = (v) => H - B - (v / top) * (H - T - B);
  g.strokeStyle = "#999"; g.lineWidth = 1; g.fillStyle = "#555"; g.font = "11px sans-serif";
  g.beginPath(); g.moveTo(L, T); g.lineTo(L, H - B); g.lineTo(W - R, H - B); g.stroke();
  g.fillText(fmt(top), 2, T + 10); g.fillText("0", 2, H - B);
  g.fillText(`${Math.round(t1 - t0)} s`, W - R - 30, H - B + 14);
  const drawn = {};
  Object.entries(series).forEach(([name, points], i) => {
    const color = COLORS[i % COLORS.length];
    g.strokeStyle = color; g.fillStyle = color; g.lineWidth = 3;
    g.beginPath();
    points.forEach(([t, v], k) => (k ? g.lineTo(x(t), y(v)) : g.moveTo(x(t), y(v))));
    g.stroke();
    points.forEach(([t, v]) => g.fillRect(x(t) - 2, y(v) - 2, 5, 5));
    g.fillRect(L + (i % 4) * 130, H - 16, 10, 10);
    g.fillStyle = "#1d232b"; g.fillText(name, L + (i % 4) * 130 + 14, H - 7);
    drawn[name] = points.length;
  });
  c.dataset.series = JSON.stringify(drawn);
}

// Bars: one group per engine, one bar per MLFQ level.
function levelChart(id, engines) {
  const c = document.getElementById(id);
  const g = c.getContext("2d");
  const W = c.width, H = c.height, L = 44, B = 40, T = 8;
  g.clearRect(0, 0, W, H);
  const rows = engines.filter((e) => (e.levels || []).length);
  const top = Math.max(1, ...rows.flatMap((e) => e.levels));
  const group = (W - L - 8) / Math.max(1, rows.length);
  g.fillStyle = "#555"; g.font = "11px sans-serif"; g.fillText(String(top), 2, T + 10);
  const bars = {};
  rows.forEach((e, i) => {
    const w = Math.max(4, (group - 16) / e.levels.length);
    e.levels.forEach((n, lv) => {
      const h = (n / top) * (H - T - B);
      g.fillStyle = COLORS[lv % COLORS.length];
      g.fillRect(L + i * group + lv * w, H - B - h, w - 2, h);
    });
    g.fillStyle = "#1d232b"; g.fillText(`${e.id} (L0…L${e.levels.length - 1})`, L + i * group, H - B + 14);
    bars[e.id] = e.levels.length;
  });
  c.dataset.series = JSON.stringify(bars);
}

function charts(s) {
  history.push(s);
  if (history.length > HISTORY) history.shift();
  const load = { queued: [], running: [] };
  const lat = { ttft: {}, e2e: {} };
  history.forEach((h) => {
    load.queued.push([h.at, h.queue.depth]);
    load.running.push([h.at, h.inflight.total]);
    Object.entries(h.latency).forEach(([cls, l]) => ["ttft", "e2e"].forEach((what) => ["p50", "p99"].forEach((q) => {
      const v = (l[what] || {})[q];
      if (v === null || v === undefined) return;
      (lat[what][`${cls} ${q}`] = lat[what][`${cls} ${q}`] || []).push([h.at, v]);
    })));
  });
  lineChart("chart-load", load);
  lineChart("chart-ttft", lat.ttft);
  lineChart("chart-e2e", lat.e2e);
  levelChart("chart-levels", s.engines);
  document.getElementById("span").textContent = String(Math.round(history[history.length - 1].at - history[0].at));
}

// --- actions (each one an admin API call with the tab's token; the audit log names "dashboard") ---
async function act(method, path, body) {
  const note = document.getElementById("action");
  const res = await fetch(path, {
    method,
    headers: { Authorization: `Bearer ${token()}`, "Content-Type": "application/json", "X-Skipjoin-Admin": "dashboard" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  note.textContent = `${method} ${path}: ${res.status} ${(await res.text()).slice(0, 200)}`;
  note.dataset.state = res.ok ? "ok" : "error";
  refresh();
}

function button(label, onclick, data) {
  const b = document.createElement("button");
  b.textContent = label;
  Object.assign(b.dataset, data);
  b.addEventListener("click", onclick);
  return b;
}

function actionTable(id, head, rows) {
  // rows: [[cells...], [buttons...]]
  const t = document.getElementById(id);
  t.replaceChildren();
  const tr = document.createElement("tr");
  head.forEach((h) => tr.appendChild(cell("th", h)));
  t.appendChild(tr);
  rows.forEach(([cols, buttons]) => {
    const r = document.createElement("tr");
    cols.forEach((text) => r.appendChild(cell("td", text)));
    const td = document.createElement("td");
    buttons.forEach((b) => td.appendChild(b));
    r.appendChild(td);
    t.appendChild(r);
  });
}

function renderRequests(list) {
  const rows = [];
  [["queued", list.queued], ["running", list.inflight]].forEach(([state, items]) => items.slice(0, 20).forEach((q) => {
    rows.push([[q.id.slice(0, 8), q.request_id || "", state, q.class, q.tenant, fmt(q.predicted), fmt(q.age_s)],
      [button("Cancel", () => act("DELETE", `/admin/requests/${q.id}`), { cancel: q.id })]]);
  }));
  actionTable("requests", ["id", "request id", "state", "class", "tenant", "predicted", "age s", ""], rows);
}

function renderReplicas(list) {
  actionTable("replicas", ["replica", "state", "in flight", ""], list.replicas.map((r) => [
    [r.url, r.state, fmt(r.inflight)],
    [button("Drain", () => act("POST", "/admin/replicas/drain", { url: r.url }), { drain: r.url }),
     button("Resume", () => act("POST", "/admin/replicas/resume", { url: r.url }), { resume: r.url })]]));
}

function renderKnobForm(s) {
  const select = document.getElementById("knob-name");
  const names = Object.keys(s.knobs.gateway);
  if (select.options.length !== names.length) {
    select.replaceChildren(...names.map((n) => new Option(n, n)));
  }
}

document.getElementById("knob-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const name = document.getElementById("knob-name").value;
  const raw = document.getElementById("knob-value").value;
  let value;
  try { value = JSON.parse(raw); } catch (_) { value = raw; } // a bare word is a string (predictor)
  act("PATCH", "/admin/config/gateway", { [name]: value });
});

async function refresh() {
  const status = document.getElementById("status");
  try {
    const res = await fetch("/admin/stats", { headers: { Authorization: `Bearer ${token()}` } });
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    const stats = await res.json();
    render(stats);
    charts(stats);
    renderKnobForm(stats);
    const auth = { headers: { Authorization: `Bearer ${token()}` } };
    const [reqs, reps] = await Promise.all([fetch("/admin/requests", auth), fetch("/admin/replicas", auth)]);
    if (reqs.ok) renderRequests(await reqs.json());
    if (reps.ok) renderReplicas(await reps.json());
    status.textContent = "live";
    status.dataset.state = "live";
  } catch (err) {
    status.textContent = `error: ${err.message}`;
    status.dataset.state = "error";
  }
}

refresh();
setInterval(refresh, REFRESH_MS);
