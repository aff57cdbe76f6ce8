// Garo's portal: plain JavaScript on Garo's public REST API, with the
// user's token kept in this tab's sessionStorage only. It shows the pools
// the token may see, their runners and queues, and the agents; an admin
// also configures and deletes pools. Everything from the API is written
// as text, never as HTML.
"use strict";

const REFRESH_MS = 3000;
let token = sessionStorage.getItem("garo-token") || "";
let status = null;
let timer = null;

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
    el("tr", {}, el("th", { text: "Agent" }), el("th", { text: "Status" }), el("th", { text: "Last heartbeat" }), el("th", { text: "Version" })));
  for (const a of agents) {
    const st = a.status === "unregistering" ? "draining its pools" : a.status;
    t.append(el("tr", { class: "agent" }, el("td", {}, uiLink("garo/agent/" + a.name, a.name)),
      el("td", { class: a.status === "online" ? "online" : "offline", text: st }),
      el("td", { text: a.lastHeartbeat ? age(a.lastHeartbeat) + " ago" : "" }),
      el("td", { text: (a.capabilities && a.capabilities.version) || "" })));
  }
  box.append(t);
}

const FIELDS = ["repository", "pool", "agent", "labels", "minIdle", "maxRunners"];

function fillForm(p) {
  $("f-repository").value = p.repository;
  $("f-pool").value = p.pool;
  $("f-agent").value = (p.config || {}).agent || "";
  $("f-labels").value = ((p.config || {}).labels || []).join(",");
  $("f-minIdle").value = (p.config || {}).minIdle || 0;
  $("f-maxRunners").value = (p.config || {}).maxRunners || 1;
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
    minIdle: Number(v("minIdle")), maxRunners: Number(v("maxRunners")) };
  try {
    await api("PUT", `/api/v1/repositories/${owner}/${repo}/pools/${encodeURIComponent(v("pool") || "default")}`, body);
    $("e-form").textContent = "Saved.";
    $("e-form").className = "ok";
    refresh();
  } catch (e) {
    // The API's message names the field it refuses; it goes beside it.
    const named = ["maxRunners", "minIdle", "labels", "agent", "repository", "pool"];
    const field = named.find((f) => new RegExp("\\b" + f + "\\b").test(e.detail || "")) || "form";
    $("e-" + field).textContent = e.message;
    if (field !== "form") $("f-" + field).setAttribute("aria-invalid", "true");
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("login-form").addEventListener("submit", (ev) => { ev.preventDefault(); signIn($("token").value.trim()); });
  $("signout").addEventListener("click", signOut);
  $("pool-form").addEventListener("submit", savePool);
  if (token) signIn(token); else $("token").focus();
});
