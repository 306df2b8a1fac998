// tierflow process designer: plain JavaScript over the v1 API (no build step).
"use strict";

const $ = (id) => document.getElementById(id);
const state = { token: localStorage.getItem("tierflow.token") || "", definition: null, ticket: null };

function showError(message) {
  const box = $("error");
  box.textContent = message;
  box.hidden = !message;
}

async function api(path, { as = "json" } = {}) {
  const res = await fetch(path, { headers: { Authorization: `Bearer ${state.token}` } });
  if (!res.ok) {
    let detail = `${res.status} ${res.statusText}`;
    try { const p = await res.json(); detail = `${p.title || p.type}: ${p.detail}`; } catch (e) { /* not JSON */ }
    throw new Error(detail);
  }
  return as === "text" ? res.text() : res.json();
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return node;
}

async function loadWorkflows() {
  const list = await api("/v1/workflows");
  const select = $("workflow");
  select.replaceChildren(...list.map((w) => el("option", { value: w.name }, `${w.name} — ${w.title || w.name}`)));
  await loadVersions();
}

async function loadVersions() {
  const name = $("workflow").value;
  const detail = await api(`/v1/workflows/${encodeURIComponent(name)}`);
  $("version").replaceChildren(...detail.versions.map((v) =>
    el("option", { value: v.hash }, `${v.version} (#${v.hash.slice(0, 8)})`)));
  $("version").value = detail.hash;
  await loadDefinition();
}

async function loadDefinition() {
  const name = $("workflow").value;
  const version = $("version").value;
  state.definition = (await api(`/v1/workflows/${encodeURIComponent(name)}?version=${encodeURIComponent(version)}`)).definition;
  await drawWorkflow();
}

function showParam() {
  const parts = [];
  if ($("show-guards").checked) parts.push("guards");
  if ($("show-roles").checked) parts.push("roles");
  return parts.join(",");
}

async function drawWorkflow() {
  const name = encodeURIComponent($("workflow").value);
  const account = $("account").value.trim();
  let url;
  if ($("live").checked) {
    if (!account) throw new Error("Enter an account slug for the live overlay.");
    url = `/v1/accounts/${encodeURIComponent(account)}/workflows/${name}/diagram.svg?overlay=live`;
  } else {
    url = `/v1/workflows/${name}/diagram.svg?version=${encodeURIComponent($("version").value)}&show=${showParam()}`;
  }
  setDiagram(await api(url, { as: "text" }));
  state.ticket = null;
  $("ticket-details").hidden = true;
  $("state-details").hidden = false;
  $("ticket-close").hidden = true;
}

function setDiagram(svgText) {
  const box = $("diagram");
  box.innerHTML = svgText.replace(/^<\?xml[^>]*>\s*/, "").replace(/<!DOCTYPE[^>]*>\s*/, "");
  for (const g of box.querySelectorAll('g[id^="state."]')) {
    g.addEventListener("click", () => selectState(g.id.slice("state.".length), g));
  }
}

function roles(list) {
  const groups = state.definition.role_groups || {};
  return list.flatMap((r) => groups[r] || [r]);
}

function selectState(name, group) {
  for (const g of document.querySelectorAll("#diagram g.selected")) g.classList.remove("selected");
  if (group) group.classList.add("selected");
  const d = state.definition;
  const spec = d.states[name];
  const out = d.transitions.filter((t) => t.source.includes(name));
  const pauses = Object.entries(d.sla || {}).filter(([, c]) => (c.pause_in || []).includes(name)).map(([k]) => k);
  const rows = out.map((t) => el("tr", {},
    el("td", {}, el("b", {}, t.trigger)),
    el("td", {}, t.dest === "@return" ? "where it came from" : t.dest),
    el("td", {}, ...roles(t.roles).map((r) => el("span", { class: "tag" }, r))),
    el("td", {}, ...(t.guards || []).map((g) => el("div", { class: "guard" },
      g.name + (Object.keys(g.args || {}).length ? ` ${JSON.stringify(g.args)}` : ""))))));
  $("state-details").replaceChildren(
    el("h2", { id: "state-title" }, `${spec.title || name} (${name})`),
    el("p", {}, `group: ${spec.group}`, spec.level ? ` · level: ${spec.level}` : "", spec.final ? " · final" : ""),
    el("p", { id: "state-pauses" }, pauses.length ? `SLA clocks paused here: ${pauses.join(", ")}` : "No SLA clock pauses here."),
    out.length
      ? el("table", { id: "transitions" }, el("tr", {}, el("th", {}, "trigger"), el("th", {}, "to"), el("th", {}, "roles"), el("th", {}, "guards")), ...rows)
      : el("p", {}, "No transition leaves this state."));
}

async function openTicket(id) {
  const account = $("account").value.trim();
  if (!account) throw new Error("Enter the ticket's account slug first.");
  const base = `/v1/accounts/${encodeURIComponent(account)}/tickets/${encodeURIComponent(id)}`;
  const [ticket, events, svg] = await Promise.all([api(base), api(`${base}/events`), api(`${base}/diagram.svg`, { as: "text" })]);
  state.ticket = ticket;
  setDiagram(svg);
  const items = events.map((e) => el("li", {},
    el("div", { class: "at" }, `#${e.seq} · ${new Date(e.at).toISOString().replace(".000Z", "Z")} · ${e.actor || "—"} (${e.role || "—"})`),
    el("div", {}, e.kind === "transition" ? `${e.trigger}: ${e.from_state} → ${e.to_state}` : e.kind.replace("_", " ")),
    e.note ? el("div", { class: "muted" }, e.note) : ""));
  $("ticket-details").replaceChildren(
    el("h2", { id: "ticket-title" }, `Ticket ${ticket.id}: ${ticket.subject}`),
    el("p", {}, `state: `, el("b", { id: "ticket-state" }, ticket.state), ` · priority: ${ticket.priority || "—"} · version ${ticket.version}`),
    el("ol", { class: "timeline", id: "timeline" }, ...items));
  $("ticket-details").hidden = false;
  $("state-details").hidden = true;
  $("ticket-close").hidden = false;
}

function guarded(fn) {
  return async (event) => {
    if (event && event.preventDefault) event.preventDefault();
    showError("");
    try { await fn(event); } catch (err) { showError(err.message); }
  };
}

$("token-form").addEventListener("submit", guarded(async () => {
  state.token = $("token").value.trim();
  localStorage.setItem("tierflow.token", state.token);
  await loadWorkflows();
  $("whoami").textContent = "token accepted";
}));
$("workflow").addEventListener("change", guarded(loadVersions));
$("version").addEventListener("change", guarded(loadDefinition));
for (const id of ["show-guards", "show-roles", "live"]) $(id).addEventListener("change", guarded(drawWorkflow));
$("ticket-form").addEventListener("submit", guarded(() => openTicket($("ticket").value)));
$("ticket-close").addEventListener("click", guarded(drawWorkflow));

if (state.token) {
  $("token").value = state.token;
  guarded(loadWorkflows)();
}
