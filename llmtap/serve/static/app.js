// llmtap dashboard: plain JavaScript, no dependencies. Every number comes from /api/v1 (the
// read tools); each page has a skeleton (mount) and a data part refreshed every 5 s (update).
"use strict";

const REFRESH_MS = 5000;
const COLORS = ["#1f6feb", "#cf222e", "#1a7f37", "#9a6700", "#8250df", "#bf3989", "#0a7ea4", "#57606a"];
const state = {
  page: "overview",
  hours: Number(localStorage.getItem("llmtap.hours")) || 24,
  live: localStorage.getItem("llmtap.live") !== "off",
  token: sessionStorage.getItem("llmtap.token") || "",
  timer: null,
  busy: false,
  again: false,
  session: "",
};

// --- helpers -------------------------------------------------------------------------------

function esc(value) {
  return String(value ?? "").replace(/[&<>"']/g, (c) =>
    ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}
function usd(v) {
  if (v === null || v === undefined) return "–";
  const a = Math.abs(v);
  const digits = a >= 100 ? 2 : a >= 1 ? 3 : a >= 0.01 ? 4 : 6;
  return "$" + Number(v).toFixed(digits);
}
function num(v, digits = 2) {
  if (v === null || v === undefined || Number.isNaN(v)) return "–";
  return Number(v).toLocaleString("en-US", { maximumFractionDigits: digits });
}
function secs(v) {
  if (v === null || v === undefined) return "–";
  return v < 1 ? (v * 1000).toFixed(0) + " ms" : v.toFixed(2) + " s";
}
// JSON rates and shares are fractions; *_pct fields are already percentages (docs/reports-and-tools.md#units).
function pct(v) { return v === null || v === undefined ? "–" : (100 * Number(v)).toFixed(2) + "%"; }
function pctOf(v) { return v === null || v === undefined ? "–" : Number(v).toFixed(1) + "%"; }
function when(ts) {
  if (ts === null || ts === undefined || ts === "") return "–";
  // Unix seconds (Redis may hold them as "1.79e+9") or an ISO string
  const t = Number.isFinite(Number(ts)) ? new Date(Number(ts) * 1000) : new Date(ts);
  return Number.isNaN(t.getTime()) ? String(ts) : t.toISOString().replace("T", " ").slice(0, 19) + "Z";
}
function metric(name, value, text, sub) {
  return `<div class="card"><div class="label">${esc(name)}</div>` +
    `<div class="value" data-metric="${esc(metricId(name))}" data-value="${esc(value ?? "")}">${esc(text)}</div>` +
    (sub ? `<div class="sub">${sub}</div>` : "") + "</div>";
}
function metricId(name) { return name.toLowerCase().replace(/[^a-z0-9]+/g, "_").replace(/^_|_$/g, ""); }
function table(id, header, rows, numeric = []) {
  if (!rows.length) return `<div class="empty" data-empty="${esc(id)}">nothing in this range</div>`;
  const head = header.map((h, i) => `<th class="${numeric.includes(i) ? "num" : ""}">${esc(h)}</th>`).join("");
  const body = rows.map((r) => "<tr>" + r.map((c, i) =>
    `<td class="${numeric.includes(i) ? "num" : ""}">${c}</td>`).join("") + "</tr>").join("");
  return `<table data-table="${esc(id)}"><thead><tr>${head}</tr></thead><tbody>${body}</tbody></table>`;
}
function byId(id) { return document.getElementById(id); }
function set(id, html) { const el = byId(id); if (el) el.innerHTML = html; }
function showError(message) {
  const el = byId("error");
  el.hidden = !message;
  el.textContent = message || "";
}

async function api(path, params = {}, options = {}) {
  const url = new URL(path, location.origin);
  for (const [k, v] of Object.entries(params)) if (v !== null && v !== undefined && v !== "") url.searchParams.set(k, v);
  const headers = Object.assign({}, options.headers || {});
  if (state.token) headers.Authorization = "Bearer " + state.token;
  const response = await fetch(url, Object.assign({}, options, { headers }));
  if (response.status === 401) {
    byId("token-form").hidden = false;
    throw new Error("this server needs its API token");
  }
  if (!response.ok) {
    let message = response.statusText;
    try { message = (await response.json()).error || message; } catch (e) { /* not JSON */ }
    throw new Error(message);
  }
  return options.raw ? response : response.json();
}
function post(path, body) {
  return api(path, {}, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
}

// --- charts (SVG, drawn here) -----------------------------------------------------------------

// series: [{name, values: [number|null]}], xs: [unix seconds]; one circle per data point.
function lineChart(id, xs, series, format = num) {
  const drawn = series.filter((s) => s.values.some((v) => v !== null && v !== undefined));
  if (!drawn.length || !xs.length) return `<div class="empty" data-empty="${esc(id)}">no data points in this range</div>`;
  const W = 640, H = 220, L = 64, R = 12, T = 12, B = 28;
  const all = drawn.flatMap((s) => s.values.filter((v) => v !== null && v !== undefined));
  const top = Math.max(...all) || 1;
  const x0 = xs[0], x1 = xs[xs.length - 1] === x0 ? x0 + 1 : xs[xs.length - 1];
  const px = (x) => L + ((x - x0) / (x1 - x0)) * (W - L - R);
  const py = (y) => T + (1 - y / top) * (H - T - B);
  let out = `<svg class="chart" data-chart="${esc(id)}" viewBox="0 0 ${W} ${H}" preserveAspectRatio="none" role="img">`;
  out += `<line class="axis" x1="${L}" y1="${H - B}" x2="${W - R}" y2="${H - B}"/><line class="axis" x1="${L}" y1="${T}" x2="${L}" y2="${H - B}"/>`;
  out += `<text x="${L - 6}" y="${T + 10}" text-anchor="end">${esc(format(top))}</text><text x="${L - 6}" y="${H - B}" text-anchor="end">0</text>`;
  out += `<text x="${L}" y="${H - 8}">${esc(when(x0).slice(5, 16))}</text><text x="${W - R}" y="${H - 8}" text-anchor="end">${esc(when(xs[xs.length - 1]).slice(5, 16))}</text>`;
  drawn.forEach((s, i) => {
    const color = COLORS[i % COLORS.length];
    const pts = s.values.map((v, j) => (v === null || v === undefined ? null : [px(xs[j]), py(v), v, xs[j]])).filter(Boolean);
    out += `<polyline fill="none" stroke="${color}" stroke-width="2" points="${pts.map((p) => p[0].toFixed(1) + "," + p[1].toFixed(1)).join(" ")}"/>`;
    for (const p of pts) {
      out += `<circle class="pt" data-series="${esc(s.name)}" data-value="${p[2]}" cx="${p[0].toFixed(1)}" cy="${p[1].toFixed(1)}" r="3" fill="${color}"><title>${esc(s.name)} ${esc(when(p[3]))}: ${esc(format(p[2]))}</title></circle>`;
    }
  });
  out += "</svg>";
  const legend = drawn.map((s, i) => `<span><i style="background:${COLORS[i % COLORS.length]}"></i>${esc(s.name)}</span>`).join("");
  return out + `<div class="legend">${legend}</div>`;
}
function bars(id, rows, format = usd) { // rows: [[label, value]]
  if (!rows.length) return `<div class="empty" data-empty="${esc(id)}">nothing in this range</div>`;
  const W = 640, rowH = 22, L = 200, H = rows.length * rowH + 6;
  const top = Math.max(...rows.map((r) => r[1])) || 1;
  let out = `<svg class="chart" data-chart="${esc(id)}" viewBox="0 0 ${W} ${H}" style="height:${H}px" role="img">`;
  rows.forEach(([label, v], i) => {
    const w = (v / top) * (W - L - 90);
    out += `<text x="${L - 6}" y="${i * rowH + 15}" text-anchor="end">${esc(label)}</text>`;
    out += `<rect class="pt" data-value="${v}" x="${L}" y="${i * rowH + 4}" width="${w.toFixed(1)}" height="14" fill="${COLORS[i % COLORS.length]}"><title>${esc(label)}: ${esc(format(v))}</title></rect>`;
    out += `<text x="${L + w + 6}" y="${i * rowH + 15}">${esc(format(v))}</text>`;
  });
  return out + "</svg>";
}
function latencyLines(ts, group, quantile) {
  const lines = (ts.latency[group] || {});
  return Object.entries(lines).map(([name, values]) => ({ name: group === "all" ? quantile : name, values: values.map((v) => (v ? v[quantile] : null)) }));
}
function starts(ts) { return ts.points.map((p) => p.start); }

function emptyState(overview) {
  if (overview.window.calls > 0) return "";
  const why = overview.workers_seen === 0
    ? "no data yet: start a worker (<code>llmtap up</code>) and profile some calls"
    : "no calls in this range yet: the workers are running, send some traffic";
  return `<div class="empty" data-empty="overview">${why}</div>`;
}

// --- pages ---------------------------------------------------------------------------------

const pages = {};

pages.overview = {
  mount: () => `<div id="ov-empty"></div><div class="cards" id="ov-cards"></div>
    <div class="grid2"><div class="panel"><h2>Latency p50 / p95 / p99</h2><div id="ov-latency"></div></div>
    <div class="panel"><h2>Calls per slice</h2><div id="ov-calls"></div></div></div>
    <h2>Firing alerts</h2><div class="panel" id="ov-alerts"></div>`,
  async update() {
    const [ov, ts] = await Promise.all([api("/api/v1/overview", { hours_back: state.hours }), api("/api/v1/timeseries", { hours_back: state.hours })]);
    const m = ov.month, w = ov.window;
    set("ov-empty", emptyState(ov));
    set("ov-cards", [
      metric("Cost today", ov.today_cost_usd, usd(ov.today_cost_usd)),
      metric("Cost this month", m.month_to_date_usd, usd(m.month_to_date_usd)),
      metric("Projected month end", m.projected_month_end_usd, usd(m.projected_month_end_usd),
        `95% band <span data-metric="projection_low" data-value="${m.projection_low_usd}">${usd(m.projection_low_usd)}</span> – <span data-metric="projection_high" data-value="${m.projection_high_usd}">${usd(m.projection_high_usd)}</span>`),
      metric("Burn rate /h", w.burn_rate.hourly_usd, usd(w.burn_rate.hourly_usd), `${usd(w.burn_rate.daily_usd)} a day over the range`),
      metric("Budget used", m.budget_used_pct, m.budget_used_pct === null ? "no budget" : pctOf(m.budget_used_pct),
        m.budget_usd ? `of ${usd(m.budget_usd)}` : "set one with llmtap serve --budget"),
      metric("Cost in range", w.cost_usd, usd(w.cost_usd)),
      metric("Calls", w.calls, num(w.calls, 0)),
      metric("Calls / min", w.calls_per_min, num(w.calls_per_min, 2)),
      metric("Error rate", w.error_rate, pct(w.error_rate)),
      metric("p50", w.p50_latency, secs(w.p50_latency)),
      metric("p95", w.p95_latency, secs(w.p95_latency)),
      metric("p99", w.p99_latency, secs(w.p99_latency)),
    ].join(""));
    set("ov-latency", lineChart("latency-overall", starts(ts), ["p50", "p95", "p99"].map((q) => latencyLines(ts, "all", q)[0] || { name: q, values: [] }), secs));
    set("ov-calls", lineChart("calls", starts(ts), [{ name: "calls", values: ts.points.map((p) => p.calls) }, { name: "errors", values: ts.points.map((p) => p.errors) }], (v) => num(v, 0)));
    set("ov-alerts", alertTable("firing", ov.alerts_firing));
  },
};

pages.cost = {
  mount: () => `<div class="cards" id="cost-cards"></div>
    <div class="panel"><h2>Cost over time by model</h2><div id="cost-chart"></div></div>
    <div class="grid2"><div class="panel"><h2>By backend</h2><div id="cost-backend"></div></div>
    <div class="panel"><h2>By model (with cost per 1k tokens)</h2><div id="cost-model"></div></div>
    <div class="panel"><h2>By tenant</h2><div id="cost-tenant"></div></div>
    <div class="panel"><h2>By session</h2><div id="cost-session"></div></div></div>
    <div class="panel"><h2>Most expensive calls</h2><div id="cost-top"></div></div>`,
  async update() {
    const [c, ts] = await Promise.all([api("/api/v1/cost", { hours_back: state.hours, top_n: 10 }), api("/api/v1/timeseries", { hours_back: state.hours })]);
    set("cost-cards", [
      metric("Total cost", c.total_cost_usd, usd(c.total_cost_usd)),
      metric("Calls", c.total_calls, num(c.total_calls, 0)),
      metric("Avg cost / call", c.avg_cost_per_call_usd, usd(c.avg_cost_per_call_usd)),
      metric("Unpriced calls", c.unpriced_calls, num(c.unpriced_calls, 0)),
    ].join(""));
    const cs = ts.cost;
    set("cost-chart", lineChart("cost-by-model", cs.starts, Object.entries(cs.by_model).map(([name, values]) => ({ name, values })), usd));
    const rows = (obj, extra = () => []) => Object.entries(obj).map(([name, r]) => [esc(name), usd(r.cost_usd), num(r.calls, 0), num(r.errors, 0), ...extra(name, r)]);
    set("cost-backend", bars("cost-backend", Object.entries(c.cost_by_backend).map(([n, r]) => [n, r.cost_usd])) + table("cost-backend", ["backend", "cost", "calls", "errors"], rows(c.cost_by_backend), [1, 2, 3]));
    set("cost-model", table("cost-model", ["model", "cost", "calls", "errors", "per 1k tokens"], rows(c.cost_by_model, (n) => [usd(c.cost_per_1k_tokens_by_model[n])]), [1, 2, 3, 4]));
    set("cost-tenant", table("cost-tenant", ["tenant", "cost", "calls", "errors"], rows(c.cost_by_tenant), [1, 2, 3]));
    set("cost-session", table("cost-session", ["session", "cost", "calls", "errors"], Object.entries(c.cost_by_session).map(([name, r]) =>
      [`<a class="link" href="#sessions/${encodeURIComponent(name)}">${esc(name)}</a>`, usd(r.cost_usd), num(r.calls, 0), num(r.errors, 0)]), [1, 2, 3]));
    set("cost-top", table("cost-top", ["call", "model", "session", "started", "cost"], c.most_expensive_operations.map((o) =>
      [esc(o.call_id), esc((o.backend || "") + "/" + (o.model || o.model_name || "")), esc(o.session_id || "–"), when(o.start_time), usd(o.cost_usd)]), [4]));
  },
};

pages.latency = {
  mount: () => `<div class="cards" id="lat-cards"></div>
    <div class="grid2"><div class="panel"><h2>p95 per backend over time</h2><div id="lat-backend-chart"></div></div>
    <div class="panel"><h2>p95 per model over time</h2><div id="lat-model-chart"></div></div></div>
    <div class="panel"><h2>Percentiles per backend and model</h2><div id="lat-models"></div></div>
    <div class="grid2"><div class="panel"><h2>Backends, fastest p95 first</h2><div id="lat-backends"></div></div>
    <div class="panel"><h2>Network vs processing</h2><div id="lat-network"></div></div>
    <div class="panel"><h2>Time to first token</h2><div id="lat-ttft"></div></div>
    <div class="panel"><h2>Error rates per model</h2><div id="lat-errors"></div></div></div>`,
  async update() {
    const [p, ts] = await Promise.all([api("/api/v1/performance", { hours_back: state.hours }), api("/api/v1/timeseries", { hours_back: state.hours })]);
    const o = p.overall || {};
    set("lat-cards", [
      metric("p50", o.p50 ?? null, secs(o.p50)), metric("p95", o.p95 ?? null, secs(o.p95)), metric("p99", o.p99 ?? null, secs(o.p99)),
      metric("Calls / min", p.throughput.calls_per_min, num(p.throughput.calls_per_min)),
      metric("Tokens / s", p.throughput.tokens_per_s, num(p.throughput.tokens_per_s)),
      metric("Generation tokens / s", p.throughput.generation_tokens_per_s, num(p.throughput.generation_tokens_per_s)),
      metric("Error rate", p.error_rates.error_rate ?? null, pct(p.error_rates.error_rate)),
    ].join(""));
    set("lat-backend-chart", lineChart("p95-backend", starts(ts), latencyLines(ts, "backend", "p95"), secs));
    set("lat-model-chart", lineChart("p95-model", starts(ts), latencyLines(ts, "model", "p95"), secs));
    set("lat-models", table("latency-models", ["backend", "model", "calls", "p50", "p95", "p99", "mean", "max", "tokens/s"], p.latency.map((r) =>
      [esc(r.backend), esc(r.model), num(r.count, 0), secs(r.p50), secs(r.p95), secs(r.p99), secs(r.mean), secs(r.max), num(r.generation_tokens_per_s)]), [2, 3, 4, 5, 6, 7, 8]));
    set("lat-backends", table("latency-backends", ["backend", "p50", "p95", "p99", "p95 vs fastest"], p.backend_comparison.map((r) =>
      [esc(r.backend), secs(r.p50), secs(r.p95), secs(r.p99), num(r.p95_vs_fastest) + "×"]), [1, 2, 3, 4]));
    set("lat-network", table("latency-network", ["backend", "model", "network", "processing", "network share"], p.network_vs_processing.map((r) =>
      [esc(r.backend), esc(r.model), secs(r.network_mean_s), secs(r.processing_mean_s), r.network_share === null ? "–" : pct(r.network_share)]), [2, 3, 4]));
    set("lat-ttft", table("latency-ttft", ["backend", "model", "p50", "p95", "p99"], p.time_to_first_token.map((r) =>
      [esc(r.backend), esc(r.model), secs(r.p50), secs(r.p95), secs(r.p99)]), [2, 3, 4]));
    set("lat-errors", table("latency-errors", ["model", "calls", "errors", "error rate"], Object.entries(p.error_rates.by_model || {}).map(([m, r]) =>
      [esc(m), num(r.calls, 0), num(r.errors, 0), pct(r.error_rate)]), [1, 2, 3]));
  },
};

pages.sessions = {
  mount: () => `<form class="inline" id="session-form"><label>Session id <input id="session-id" placeholder="e.g. s-1"></label>
    <button type="submit">Find</button></form>
    <div class="grid2"><div><h2>Sessions in range</h2><div class="panel" id="session-list"></div></div>
    <div><h2 id="session-title">Session</h2><div id="session-detail"><div class="empty">pick a session</div></div></div></div>`,
  bind() {
    byId("session-id").value = state.session;
    byId("session-form").addEventListener("submit", (e) => {
      e.preventDefault();
      location.hash = "#sessions/" + encodeURIComponent(byId("session-id").value.trim());
    });
  },
  async update() {
    const c = await api("/api/v1/cost", { hours_back: state.hours, top_n: 1 });
    set("session-list", table("session-list", ["session", "cost", "calls"], Object.entries(c.cost_by_session).map(([n, r]) =>
      [`<a class="link" href="#sessions/${encodeURIComponent(n)}">${esc(n)}</a>`, usd(r.cost_usd), num(r.calls, 0)]), [1, 2]));
    if (!state.session) return;
    const s = await api("/api/v1/sessions/" + encodeURIComponent(state.session), { limit: 200 });
    set("session-title", "Session " + esc(state.session));
    if (!s.found) { set("session-detail", `<div class="empty" data-empty="session">no session ${esc(state.session)} (unknown or expired)</div>`); return; }
    const sum = s.summary;
    const tl = s.timeline || [];
    set("session-detail", `<div class="cards">` + [
      metric("Session calls", sum.total_calls, num(sum.total_calls, 0)),
      metric("Session cost", sum.total_cost_usd, usd(sum.total_cost_usd)),
      metric("Success rate", sum.success_rate, pct(sum.success_rate)),
      metric("Avg latency", sum.avg_latency, secs(sum.avg_latency)),
    ].join("") + `</div><div class="panel"><h2>Latency of each call</h2>` +
      lineChart("session-timeline", tl.map((e) => e.timestamp), [{ name: "latency", values: tl.map((e) => e.latency) }], secs) +
      `</div><div class="panel"><h2>Timeline</h2>` + table("session-timeline", ["time", "backend", "model", "thread", "latency", "cost", "ok"], tl.slice().reverse().map((e) =>
        [when(e.timestamp), esc(e.backend), esc(e.model), esc(e.thread_name || "–"), secs(e.latency), usd(e.cost), e.success ? "yes" : "<b>no</b>"]), [4, 5]) + "</div>");
  },
};

function alertTable(id, alerts, silence = false) {
  return table("alerts-" + id, ["status", "rule", "labels", "since", ...(silence ? ["silence"] : [])], alerts.map((a) => [
    `<span class="badge ${esc(a.status)}">${esc(a.status)}</span>`, esc(a.rule) + (a.summary ? `<div class="muted">${esc(a.summary)}</div>` : ""),
    esc(Object.entries(a.labels || {}).map(([k, v]) => k + "=" + v).join(", ") || "–"), when(a.starts_at),
    ...(silence ? [`<form class="inline silence" data-fingerprint="${esc(a.fingerprint)}"><select name="duration"><option>1h</option><option selected>2h</option><option>1d</option><option>7d</option></select>
       <input name="comment" placeholder="comment" value=""><button type="submit">Silence</button></form>`] : []),
  ]));
}

pages.alerts = {
  mount: () => `<h2>Firing</h2><div class="panel" id="al-firing"></div><h2>Pending</h2><div class="panel" id="al-pending"></div>
    <h2>Active silences</h2><div class="panel" id="al-silences"></div><h2>History (fired or resolved in range)</h2><div class="panel" id="al-history"></div>`,
  bind() {
    byId("page").addEventListener("submit", async (e) => {
      const form = e.target.closest("form.silence");
      if (!form) return;
      e.preventDefault();
      const alert = (pages.alerts.firing || []).find((a) => a.fingerprint === form.dataset.fingerprint);
      if (!alert) return;
      const matchers = Object.assign({ rule: alert.rule }, alert.labels || {});
      try {
        await post("/api/v1/silences", { matchers, duration: form.duration.value, comment: form.comment.value || "silenced from the dashboard", created_by: "dashboard" });
        await refresh();
      } catch (err) { showError("silence: " + err.message); }
    });
    byId("page").addEventListener("click", async (e) => {
      const button = e.target.closest("button[data-expire]");
      if (!button) return;
      try { await post("/api/v1/silences/" + encodeURIComponent(button.dataset.expire) + "/expire", {}); await refresh(); }
      catch (err) { showError("expire: " + err.message); }
    });
  },
  async update() {
    const [a, h] = await Promise.all([api("/api/v1/alerts", { hours_back: state.hours }), api("/api/v1/alerts/history", { hours_back: state.hours })]);
    pages.alerts.firing = a.firing;
    const typing = document.activeElement && document.activeElement.closest && document.activeElement.closest("form.silence");
    if (!typing) set("al-firing", alertTable("firing", a.firing, true));
    set("al-pending", alertTable("pending", a.pending));
    set("al-silences", table("silences", ["matchers", "comment", "by", "ends", ""], a.silences.map((s) => [
      esc(Object.entries(s.matchers).map(([k, v]) => k + "=" + v).join(", ")), esc(s.comment), esc(s.created_by || "–"), when(s.ends_at),
      `<button type="button" data-expire="${esc(s.id)}">Expire</button>`])));
    set("al-history", alertTable("history", h.alerts));
  },
};

pages.insights = {
  mount: () => `<h2>Recommendations</h2><div class="panel" id="in-recs"></div><h2>Anomalies (last complete hour vs the 24 before)</h2><div class="panel" id="in-anomalies"></div>`,
  async update() {
    const i = await api("/api/v1/insights", { hours_back: Math.max(state.hours, 1) });
    set("in-recs", table("insights", ["priority", "category", "recommendation", "saving"], i.recommendations.map((r) => [
      `<span class="badge ${r.priority === "high" ? "critical" : r.priority === "medium" ? "warning" : "info"}">${esc(r.priority)}</span>`,
      esc(r.category), esc(r.recommendation) + `<div class="muted">${esc(r.potential_improvement || "")}</div>`,
      r.estimated_saving_usd ? usd(r.estimated_saving_usd) : r.estimated_saving_s ? secs(r.estimated_saving_s) : "–"])));
    set("in-anomalies", table("anomalies", ["what", "detail"], (i.anomalies || []).map((a) => [esc(a.metric || a.kind || "anomaly"), esc(JSON.stringify(a))])));
  },
};

pages.reports = {
  mount: () => `<form class="inline" id="report-form"><label>Format <select id="report-format">
      <option value="html">HTML</option><option value="md">Markdown</option><option value="json">JSON</option><option value="csv">CSV</option></select></label>
    <button type="submit">View</button>
    <span class="muted">Download:</span>
    ${["md", "html", "json", "csv"].map((f) => `<button type="button" data-download="${f}">${f}</button>`).join("")}</form>
    <div id="report-view"><div class="empty">choose a format and View</div></div>`,
  bind() {
    byId("report-form").addEventListener("submit", (e) => { e.preventDefault(); pages.reports.show(); });
    byId("report-form").addEventListener("click", async (e) => {
      const fmt = e.target.dataset && e.target.dataset.download;
      if (!fmt) return;
      try {
        const response = await api("/api/v1/report", { hours_back: state.hours, format: fmt, download: "true" }, { raw: true });
        const link = document.createElement("a");
        link.href = URL.createObjectURL(await response.blob());
        link.download = `llmtap-report-${state.hours}h.${fmt}`;
        link.click();
        setTimeout(() => URL.revokeObjectURL(link.href), 10000);
      } catch (err) { showError("download: " + err.message); }
    });
  },
  async show() {
    const fmt = byId("report-format").value;
    set("report-view", `<p class="loading">Loading…</p>`);
    const response = await api("/api/v1/report", { hours_back: state.hours, format: fmt }, { raw: true });
    const text = await response.text();
    if (fmt === "html") {
      const frame = document.createElement("iframe");
      frame.className = "report";
      frame.setAttribute("sandbox", "");
      frame.dataset.report = fmt;
      frame.srcdoc = text;
      byId("report-view").replaceChildren(frame);
    } else {
      set("report-view", `<pre class="report" data-report="${fmt}">${esc(text)}</pre>`);
    }
  },
  async update() { /* a report is made on request, not on every refresh */ },
};

// --- shell: routing, range, live refresh ------------------------------------------------------

async function refresh() {
  if (state.busy) { state.again = true; return; } // one at a time; a page change queues one
  state.busy = true;
  const page = state.page;
  try {
    await pages[page].update();
    if (page === state.page) {
      showError("");
      byId("updated").textContent = "updated " + new Date().toLocaleTimeString();
      document.body.dataset.updated = String(Date.now());
    }
  } catch (err) {
    showError(err.message);
  } finally {
    state.busy = false;
    if (state.again) { state.again = false; refresh(); }
  }
}

function route() {
  const [page, arg] = location.hash.replace(/^#/, "").split("/");
  state.page = pages[page] ? page : "overview";
  if (state.page === "sessions") state.session = arg ? decodeURIComponent(arg) : state.session;
  for (const a of document.querySelectorAll("#nav a")) a.classList.toggle("active", a.dataset.page === state.page);
  const main = byId("page");
  main.dataset.page = state.page;
  main.innerHTML = pages[state.page].mount();
  const fresh = main.cloneNode(true); // drop listeners of the previous page
  main.replaceWith(fresh);
  if (pages[state.page].bind) pages[state.page].bind();
  refresh();
}

function setRange(hours) {
  state.hours = hours;
  localStorage.setItem("llmtap.hours", String(hours));
  for (const b of document.querySelectorAll("#range button")) b.classList.toggle("on", Number(b.dataset.hours) === hours);
  refresh();
}

function setLive(live) {
  state.live = live;
  localStorage.setItem("llmtap.live", live ? "on" : "off");
  const button = byId("live");
  button.textContent = live ? "Pause" : "Resume";
  button.setAttribute("aria-pressed", String(live));
  button.classList.toggle("on", !live);
  clearInterval(state.timer);
  if (live) state.timer = setInterval(refresh, REFRESH_MS);
}

document.addEventListener("DOMContentLoaded", () => {
  for (const b of document.querySelectorAll("#range button")) b.addEventListener("click", () => setRange(Number(b.dataset.hours)));
  byId("live").addEventListener("click", () => setLive(!state.live));
  byId("token-form").addEventListener("submit", (e) => {
    e.preventDefault();
    state.token = byId("token").value;
    sessionStorage.setItem("llmtap.token", state.token);
    byId("token-form").hidden = true;
    refresh();
  });
  window.addEventListener("hashchange", route);
  for (const b of document.querySelectorAll("#range button")) b.classList.toggle("on", Number(b.dataset.hours) === state.hours);
  setLive(state.live);
  route();
});
