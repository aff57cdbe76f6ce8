// Garo's portal: plain JavaScript on Garo's public REST API, with the
// user's token kept in this tab's sessionStorage only. It shows the pools
// the token may see, their runners and queues, the agents, and the usage
// and cost of each over a window; an admin also configures and deletes
// pools. Everything from the API is written as text, never as HTML.
"use strict";

const REFRESH_MS = 3000;
// Usage changes slowly and costs a query per repository: it is read less
// often, and at once when the window changes.
const USAGE_REFRESH_MS = 15000;
// At most this many repositories and agents get their own usage line.
const USAGE_LINES = 20;
let token = sessionStorage.getItem("garo-token") || "";
let status = null;
let timer = null;
let usage = { window: "", at: 0, all: null, repos: {}, agents: {} };
// drains are the progress of the agents that are leaving, by name.
let drains = {};

const $ = (id) => document.getElementById(id);

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v;
    else if (k === "text") e.textContent = v;
    else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c);
  return e;
}

// APIError is an answer of the API that is not a success, with a message
// a person can act on.
class APIError extends Error {
  constructor(status, detail) {
    const what = {
      401: "The token was refused: sign in again with a valid token.",
      403: "This token may not do that.",
      422: detail || "The API refused the values.",
      429: "Too many failed attempts: wait a few seconds.",
      503: "The server cannot reach Temporal right now; the page keeps trying.",
    }[status] || `The API answered ${status}${detail ? ": " + detail : ""}.`;
    super(status === 422 || status === 403 ? (detail || what) : what);
    this.status = status;
    this.detail = detail;
  }
}

async function api(method, path, body) {
  let resp;
  try {
    resp = await fetch(path, {
      method,
      headers: Object.assign({ Authorization: "Bearer " + token }, body ? { "Content-Type": "application/json" } : {}),
      body: body ? JSON.stringify(body) : undefined,
    });
  } catch (e) {
    throw new APIError(0, "the server did not answer (" + e.message + ")");
  }
  const text = await resp.text();
  let json = null;
  try { json = text ? JSON.parse(text) : null; } catch (e) { json = null; }
  if (!resp.ok) throw new APIError(resp.status, json && json.detail);
  return json;
}

function showAlert(msg) {
  $("alert").textContent = msg;
  $("alert").hidden = !msg;
}

function age(iso) {
  if (!iso || iso.startsWith("0001")) return "";
  const s = Math.max(0, Math.round((Date.now() - new Date(iso).getTime()) / 1000));
  if (s < 120) return s + " s";
  if (s < 7200) return Math.round(s / 60) + " min";
  return Math.round(s / 3600) + " h";
}

function uiLink(workflowId, label) {
  if (!status || !status.temporalUI) return document.createTextNode(label);
  const href = status.temporalUI.replace(/\/$/, "") + "/namespaces/" + encodeURIComponent(status.namespace || "default") +
    "/workflows/" + encodeURIComponent(workflowId);
  return el("a", { href, target: "_blank", rel: "noopener", text: label });
}

async function signIn(t) {
  token = t;
  try {
    status = await api("GET", "/api/v1/status");
  } catch (e) {
    token = "";
    sessionStorage.removeItem("garo-token");
    showAlert(e.message);
    return;
  }
  sessionStorage.setItem("garo-token", token);
  showAlert("");
  $("login").hidden = true;
  $("app").hidden = false;
  $("signout").hidden = false;
  $("who").textContent = "Signed in as " + status.role;
  $("editor").hidden = status.role !== "admin";
  refresh();
}

function signOut() {
  token = "";
  status = null;
  sessionStorage.removeItem("garo-token");
  clearTimeout(timer);
  $("app").hidden = true;
  $("login").hidden = false;
  $("signout").hidden = true;
  $("who").textContent = "";
  $("token").value = "";
  $("token").focus();
}

async function refresh() {
  clearTimeout(timer);
  if (!token) return;
  try {
    const [pools, agents] = await Promise.all([api("GET", "/api/v1/repositories?limit=100"), api("GET", "/api/v1/agents?limit=100")]);
    const details = await Promise.all(pools.repositories.slice(0, 50).map((p) => {
      const [owner, repo] = p.repository.split("/");
      return api("GET", `/api/v1/repositories/${owner}/${repo}/pools/${encodeURIComponent(p.pool)}`).catch(() => p);
    }));
    await refreshUsage(details, agents.agents);
    drains = await drainsOf(agents.agents);
    renderUsage();
    renderPools(details);
    renderAgents(agents.agents);
    $("updated").textContent = "Updated " + new Date().toLocaleTimeString() + "; the page refreshes every few seconds.";
    showAlert("");
  } catch (e) {
    showAlert(e.message);
    if (e.status === 401) { signOut(); return; }
  }
  timer = setTimeout(refresh, REFRESH_MS);
}

// drainsOf reads how much of its pools each leaving agent has left.
async function drainsOf(agents) {
  const leaving = agents.filter((a) => a.status === "unregistering").map((a) => a.name);
  const got = await Promise.all(leaving.map((n) => api("GET", `/api/v1/agents/${encodeURIComponent(n)}`).catch(() => null)));
  const out = {};
  leaving.forEach((n, i) => { if (got[i] && got[i].drain) out[n] = got[i].drain; });
  return out;
}

// refreshUsage reads the usage of everything, of each repository and of
// each agent shown, when the last reading is old or the window changed.
async function refreshUsage(pools, agents) {
  const win = $("window").value;
  if (usage.window === win && Date.now() - usage.at < USAGE_REFRESH_MS) return;
  const q = "?window=" + encodeURIComponent(win);
  const repos = [...new Set(pools.map((p) => p.repository))].slice(0, USAGE_LINES);
  const names = agents.map((a) => a.name).slice(0, USAGE_LINES);
  const [all, repoUsage, agentUsage] = await Promise.all([
    api("GET", "/api/v1/usage" + q),
    Promise.all(repos.map((r) => api("GET", `/api/v1/repositories/${r}/usage${q}`).catch(() => null))),
    Promise.all(names.map((n) => api("GET", `/api/v1/agents/${encodeURIComponent(n)}/usage${q}`).catch(() => null))),
  ]);
  usage = { window: win, at: Date.now(), all, repos: {}, agents: {} };
  repos.forEach((r, i) => { if (repoUsage[i]) usage.repos[r] = repoUsage[i]; });
  names.forEach((n, i) => { if (agentUsage[i]) usage.agents[n] = agentUsage[i]; });
}

function seconds(s) {
  if (s < 120) return (Math.round(s * 10) / 10) + " s";
  if (s < 7200) return (Math.round(s / 6) / 10) + " min";
  return (Math.round(s / 360) / 10) + " h";
}

function count(n, one, many) { return n + " " + (n === 1 ? one : (many || one + "s")); }

// money shows a cost to the cent, or to 1/10000 below a cent (a
// runner-minute of a small machine).
function money(x) { return x > 0 && x < 0.005 ? x.toFixed(4) : (Math.round(x * 100) / 100).toFixed(2); }

function minutes(m) { return m < 1 ? seconds(m * 60) : m < 120 ? (Math.round(m * 10) / 10) + " min" : (Math.round(m / 6) / 10) + " h"; }

// summary is one line of a span's figures.
function summary(f) {
  const w = f.queueWait, rm = f.runnerMinutes, j = f.jobs;
  return `${j.served} jobs served (${j.failed} failed), ${j.lost} lost; ` +
    (w.count ? `queue wait p50 ${seconds(w.p50Seconds)}, p95 ${seconds(w.p95Seconds)}, max ${seconds(w.maxSeconds)}; ` : "no job started; ") +
    `runners busy ${minutes(rm.busy)}, idle ${minutes(rm.idle)}, booting ${minutes(rm.booting)}; ` +
    `${f.bootstrapFailures} bootstrap failures; cost ${money(f.cost.total)} (${money(f.cost.waste)} waste).`;
}

// chart draws a small bar chart of points, one bar a bucket, the series
// stacked; its label says what it shows and its largest value.
function chart(caption, points, series) {
  const NS = "http://www.w3.org/2000/svg";
  const W = 240, H = 60, n = Math.max(points.length, 1), bw = W / n;
  const totals = points.map((p) => series.reduce((s, x) => s + x.value(p), 0));
  const top = Math.max(...totals, 0);
  const svg = document.createElementNS(NS, "svg");
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  svg.setAttribute("preserveAspectRatio", "none");
  svg.setAttribute("class", "chart");
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", `${caption}: ${points.length} bars, the largest ${series[0].format(top)}`);
  points.forEach((p, i) => {
    let y = H;
    for (const s of series) {
      const h = top > 0 ? (s.value(p) / top) * (H - 2) : 0;
      if (h <= 0) continue;
      const r = document.createElementNS(NS, "rect");
      r.setAttribute("x", String(i * bw + bw * 0.1));
      r.setAttribute("width", String(bw * 0.8));
      r.setAttribute("y", String(y - h));
      r.setAttribute("height", String(h));
      r.setAttribute("class", s.cls);
      const t = document.createElementNS(NS, "title");
      t.textContent = new Date(p.start).toLocaleString() + ": " + s.name + " " + s.format(s.value(p));
      r.append(t);
      svg.append(r);
      y -= h;
    }
  });
  return el("figure", {}, svg, el("figcaption", { text: caption + " (largest " + series[0].format(top) + ")" }));
}

function renderUsage() {
  const box = $("usage");
  box.replaceChildren();
  const u = usage.all;
  if (!u) return;
  const f = u.figures, w = f.queueWait, rm = f.runnerMinutes;
  const item = (key, label, value) => el("li", { "data-figure": key }, el("b", { text: value }), label);
  box.append(el("ul", { class: "figures", "aria-label": "usage of all repositories" },
    item("jobs.served", "jobs served", String(f.jobs.served)),
    item("jobs.failed", "of them failed", String(f.jobs.failed)),
    item("jobs.lost", "lost with their runner", String(f.jobs.lost)),
    item("queueWait.p50", "queue wait, median", w.count ? seconds(w.p50Seconds) : "–"),
    item("queueWait.p95", "queue wait, p95", w.count ? seconds(w.p95Seconds) : "–"),
    item("queueWait.max", "queue wait, longest", w.count ? seconds(w.maxSeconds) : "–"),
    item("runnerMinutes.busy", "runners busy", minutes(rm.busy)),
    item("runnerMinutes.idle", "runners idle", minutes(rm.idle)),
    item("runnerMinutes.booting", "runners booting", minutes(rm.booting)),
    item("bootstrapFailures", "bootstrap failures", String(f.bootstrapFailures)),
    item("cost.useful", "cost, useful", money(f.cost.useful)),
    item("cost.waste", "cost, waste", money(f.cost.waste))));
  box.append(el("div", { class: "charts" },
    chart("Jobs served per step", u.series, [{ name: "served", cls: "served", value: (p) => p.figures.jobs.served, format: String }]),
    chart("Cost per step", u.series, [
      { name: "useful", cls: "useful", value: (p) => p.figures.cost.useful, format: money },
      { name: "waste", cls: "waste", value: (p) => p.figures.cost.waste, format: money }]),
    chart("Queue wait p95 per step", u.series, [{ name: "p95", cls: "wait", value: (p) => p.figures.queueWait.p95Seconds, format: seconds }])));
  box.append(el("p", { class: "hint" }, "Cost: ", el("span", { class: "key-useful", text: "useful (busy)" }), " and ",
    el("span", { class: "key-waste", text: "waste (idle and booting)" }), ", at each pool's price of a runner-hour."));
  const top = (label, rows) => {
    if (!rows.length) return;
    const t = el("table", { "aria-label": label }, el("caption", { text: label }),
      el("tr", {}, el("th", { text: "Repository" }), el("th", { text: "Jobs" }), el("th", { text: "Wait p95" }), el("th", { text: "Cost" })));
    for (const r of rows) t.append(el("tr", {}, el("td", { text: r.repository }), el("td", { text: String(r.figures.jobs.served) }),
      el("td", { text: r.figures.queueWait.count ? seconds(r.figures.queueWait.p95Seconds) : "–" }), el("td", { text: money(r.figures.cost.total) })));
    box.append(t);
  };
  top("Costliest repositories", u.topByCost);
  top("Longest waits", u.topByWait);
  if (u.unavailable && u.unavailable.length) box.append(el("p", { class: "hint", text: "Usage not readable now: " + u.unavailable.join(", ") }));
}

function renderPools(pools) {
  const box = $("repos");
  box.replaceChildren();
  if (pools.length === 0) {
    box.append(el("p", { text: "No pool yet." }));
    return;
  }
  for (const p of pools) {
    const [owner, repo] = p.repository.split("/");
    const c = p.counts || {};
    const div = el("div", { class: "pool", "data-pool": p.repository + "/" + p.pool });
    const title = el("h3", {}, uiLink("garo/repo/" + p.repository.toLowerCase(), p.repository + " — pool " + p.pool));
    div.append(title);
    const cfg = p.config || {};
    div.append(el("p", { text: `Agent ${cfg.agent}, labels ${(cfg.labels || []).join(", ")}, ` +
      `${cfg.minIdle || 0} warm, at most ${cfg.maxRunners} runners. ` +
      `Runners: ${c.provisioning || 0} provisioning, ${c.idle || 0} idle, ${c.busy || 0} busy, ${c.deleting || 0} deleting. ` +
      `Queued: ${c.queued || 0}. Jobs done: ${c.jobsDone || 0}.` }));
    if (p.degraded) div.append(el("p", { class: "degraded", text: "Degraded: " + (p.lastError || "runners fail to come up") }));
    else if (p.lastError) div.append(el("p", { class: "hint", text: "Last error: " + p.lastError }));
    if (p.agentOffline) div.append(el("p", { class: "degraded", text: "Its agent is offline: provisioning waits." }));
    if (p.draining) div.append(el("p", { class: "hint", text: "Draining." }));
    const ru = usage.repos[p.repository];
    const pu = ru && ru.pools.find((x) => x.pool === p.pool && x.agent === cfg.agent);
    if (pu) div.append(el("p", { class: "usage", text: "Usage, " + usage.window + ": " + summary(pu.figures) }));
    if ((p.runners || []).length) {
      const t = el("table", { "aria-label": "runners of " + p.repository + " " + p.pool },
        el("tr", {}, el("th", { text: "Runner" }), el("th", { text: "State" }), el("th", { text: "Job" }), el("th", { text: "Age" })));
      for (const r of p.runners) {
        t.append(el("tr", { class: "runner" }, el("td", {}, uiLink(`garo/runner/${owner.toLowerCase()}/${repo.toLowerCase()}/${r.name}`, r.name)),
          el("td", { text: r.state }), el("td", { text: r.jobId ? String(r.jobId) : "" }), el("td", { text: age(r.createdAt) })));
      }
      div.append(t);
    }
    if ((p.queue || []).length) {
      const t = el("table", { "aria-label": "queue of " + p.repository + " " + p.pool },
        el("tr", {}, el("th", { text: "Queued job" }), el("th", { text: "Name" }), el("th", { text: "Waiting" })));
      for (const j of p.queue) t.append(el("tr", { class: "queued" }, el("td", { text: String(j.jobId) }),
        el("td", { text: j.name || "" }), el("td", { text: age(j.queuedAt) })));
      div.append(t);
    }
    if (status.role === "admin") {
      const del = el("button", { type: "button", class: "secondary", text: "Delete pool " + p.pool + " of " + p.repository });
      del.addEventListener("click", async () => {
        if (!confirm(`Delete pool ${p.pool} of ${p.repository}? Its runners finish their jobs first.`)) return;
        try { await api("DELETE", `/api/v1/repositories/${owner}/${repo}/pools/${encodeURIComponent(p.pool)}`); refresh(); }
        catch (e) { showAlert(e.message); }
      });
      const edit = el("button", { type: "button", class: "secondary", text: "Edit" });
      edit.addEventListener("click", () => fillForm(p));
      div.append(edit, " ", del);
    }
    box.append(div);
  }
}

function renderAgents(agents) {
  const box = $("agents");
  box.replaceChildren();
  if (!agents.length) {
    box.append(el("p", { text: "No agent registered." }));
    return;
  }
  const t = el("table", { "aria-label": "agents" },
    el("tr", {}, el("th", { text: "Agent" }), el("th", { text: "Status" }), el("th", { text: "Last heartbeat" }), el("th", { text: "Version" }),
      el("th", { text: "Usage, " + usage.window })));
  for (const a of agents) {
    let st = a.status;
    if (a.status === "unregistering") {
      const d = drains[a.name];
      st = d ? `draining: ${count(d.runners, "runner")} left in ${count(d.pools, "pool")} of ${count(d.repositories, "repository", "repositories")}`
        : "draining its pools";
    }
    const au = usage.agents[a.name];
    t.append(el("tr", { class: "agent" }, el("td", {}, uiLink("garo/agent/" + a.name, a.name)),
      el("td", { class: a.status === "online" ? "online" : "offline", text: st }),
      el("td", { text: a.lastHeartbeat ? age(a.lastHeartbeat) + " ago" : "" }),
      el("td", { text: (a.capabilities && a.capabilities.version) || "" }),
      el("td", { text: au ? `${au.figures.jobs.served} jobs, cost ${money(au.figures.cost.total)}` : "" })));
  }
  box.append(t);
}

const FIELDS = ["repository", "pool", "agent", "labels", "minIdle", "maxRunners", "hourlyPrice"];

function fillForm(p) {
  $("f-repository").value = p.repository;
  $("f-pool").value = p.pool;
  $("f-agent").value = (p.config || {}).agent || "";
  $("f-labels").value = ((p.config || {}).labels || []).join(",");
  $("f-minIdle").value = (p.config || {}).minIdle || 0;
  $("f-maxRunners").value = (p.config || {}).maxRunners || 1;
  $("f-hourlyPrice").value = (p.config || {}).hourlyPrice || 0;
  $("f-repository").focus();
}

async function savePool(ev) {
  ev.preventDefault();
  for (const f of FIELDS.concat(["form"])) {
    $("e-" + f).textContent = "";
    $("e-" + f).className = "error";
    if (f !== "form") $("f-" + f).removeAttribute("aria-invalid");
  }
  const v = (f) => $("f-" + f).value.trim();
  const [owner, repo, extra] = v("repository").split("/");
  if (!owner || !repo || extra !== undefined) {
    $("e-repository").textContent = "Write it as owner/name.";
    $("f-repository").focus();
    return;
  }
  const body = { agent: v("agent"), labels: v("labels").split(",").map((s) => s.trim()).filter(Boolean),
    minIdle: Number(v("minIdle")), maxRunners: Number(v("maxRunners")), hourlyPrice: Number(v("hourlyPrice") || 0) };
  try {
    await api("PUT", `/api/v1/repositories/${owner}/${repo}/pools/${encodeURIComponent(v("pool") || "default")}`, body);
    $("e-form").textContent = "Saved.";
    $("e-form").className = "ok";
    refresh();
  } catch (e) {
    // The API's message names the field it refuses; it goes beside it.
    const named = ["maxRunners", "minIdle", "hourlyPrice", "labels", "agent", "repository", "pool"];
    const field = named.find((f) => new RegExp("\\b" + f + "\\b").test(e.detail || "")) || "form";
    $("e-" + field).textContent = e.message;
    if (field !== "form") $("f-" + field).setAttribute("aria-invalid", "true");
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("login-form").addEventListener("submit", (ev) => { ev.preventDefault(); signIn($("token").value.trim()); });
  $("signout").addEventListener("click", signOut);
  $("pool-form").addEventListener("submit", savePool);
  $("window").addEventListener("change", () => { usage.at = 0; refresh(); });
  if (token) signIn(token); else $("token").focus();
});
