// tierflow process designer: plain JavaScript over the v1 API (no build step, no CDN).
"use strict";

const $ = (id) => document.getElementById(id);
const KEY = "tierflow.token";
const MIN_TITLE_PX = 13; // state titles are never drawn smaller than this when fitting
const POLL_MS = 1000; // live load: a conditional GET (ETag, 304 when nothing moved) per second

// The token arrives in the fragment (#token=…), is kept for this tab only and leaves the address bar.
function takeToken() {
  const m = /(?:^#|&)token=([^&]*)/.exec(location.hash);
  if (m) {
    sessionStorage.setItem(KEY, decodeURIComponent(m[1]));
    history.replaceState(null, "", location.pathname + location.search);
  }
  localStorage.removeItem(KEY); // never there (older pages kept it)
  return sessionStorage.getItem(KEY) || "";
}

const state = { token: takeToken(), definition: null, ticket: null, view: null, etag: null, timer: null };

function showError(message) {
  const box = $("error");
  box.textContent = message;
  box.hidden = !message;
}

async function api(path, { as = "json", method = "GET", headers = {} } = {}) {
  const res = await fetch(path, { method, headers: { Authorization: `Bearer ${state.token}`, ...headers } });
  if (res.status === 304) return null;
  if (!res.ok) {
    let detail = `${res.status} ${res.statusText}`;
    try { const p = await res.json(); detail = `${p.title || p.type}: ${p.detail}`; } catch (e) { /* not JSON */ }
    throw new Error(detail);
  }
  if (as === "response") return res;
  return as === "text" ? res.text() : res.json();
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return node;
}

const account = () => $("account").value.trim();
const acctUrl = (path) => `/v1/accounts/${encodeURIComponent(account())}${path}`;

// --- workflow and versions ---------------------------------------------------------------------
async function loadWorkflows() {
  const list = await api("/v1/workflows");
  $("workflow").replaceChildren(...list.map((w) => el("option", { value: w.name }, `${w.name} — ${w.title || w.name}`)));
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
  const d = state.definition;
  $("f-state").replaceChildren(el("option", { value: "" }, "any state"),
    ...Object.entries(d.states).map(([k, s]) => el("option", { value: k }, s.title || k)));
  const levels = [...new Set(Object.values(d.states).map((s) => s.level).filter(Boolean))];
  $("f-level").replaceChildren(el("option", { value: "" }, "any level"), ...levels.map((l) => el("option", { value: l }, l)));
  await drawWorkflow();
}

function showParam() {
  const parts = [];
  if ($("show-guards").checked) parts.push("guards");
  if ($("show-roles").checked) parts.push("roles");
  return parts.join(",");
}

async function drawWorkflow() {
  stopPolling();
  state.ticket = null;
  $("ticket-details").hidden = true;
  $("state-details").hidden = false;
  $("ticket-close").hidden = true;
  if ($("live").checked) {
    if (!account()) throw new Error("Enter an account slug for the live load.");
    state.etag = null;
    await pollLive(true);
    return;
  }
  const name = encodeURIComponent($("workflow").value);
  const url = `/v1/workflows/${name}/diagram.svg?version=${encodeURIComponent($("version").value)}&show=${showParam()}`;
  setDiagram(await api(url, { as: "text" }), true);
}

// --- live load: conditional polling ------------------------------------------------------------
function stopPolling() {
  if (state.timer) clearTimeout(state.timer);
  state.timer = null;
  $("live-status").textContent = "";
}

async function pollLive(first = false) {
  const name = encodeURIComponent($("workflow").value);
  const headers = state.etag ? { "If-None-Match": state.etag } : {};
  try {
    const res = await api(acctUrl(`/workflows/${name}/diagram.svg`), { as: "response", headers });
    if (res) {
      state.etag = res.headers.get("ETag");
      setDiagram(await res.text(), first);
      $("live-status").textContent = `updated ${new Date().toLocaleTimeString()}`;
    }
  } catch (err) {
    showError(err.message);
  }
  if ($("live").checked && !state.ticket) state.timer = setTimeout(() => pollLive(false), POLL_MS);
}

// --- the inline SVG: fit, pan, zoom -------------------------------------------------------------
const view = { x: 0, y: 0, w: 1, h: 1, full: null };

function setDiagram(svgText, refit) {
  const box = $("diagram");
  box.innerHTML = svgText.replace(/^<\?xml[^>]*>\s*/, "").replace(/<!DOCTYPE[^>]*>\s*/, "");
  const svg = box.querySelector("svg");
  if (!svg) return;
  const [x, y, w, h] = svg.getAttribute("viewBox").split(/[\s,]+/).map(Number);
  svg.removeAttribute("width");
  svg.removeAttribute("height");
  const keep = view.full && !refit;
  view.full = { x, y, w, h };
  if (keep) applyView(); else fit();
  for (const g of box.querySelectorAll('g[id^="state."]')) {
    g.setAttribute("tabindex", "0");
    g.setAttribute("role", "button");
    const pick = () => selectState(g.id.slice("state.".length), g);
    g.addEventListener("click", pick);
    g.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); pick(); } });
  }
}

function applyView() {
  const svg = $("diagram").querySelector("svg");
  if (svg) svg.setAttribute("viewBox", `${view.x} ${view.y} ${view.w} ${view.h}`);
}

function titleHeights() {
  return [...$("diagram").querySelectorAll('g[id^="state."] text[font-weight="bold"]')]
    .map((t) => t.getBoundingClientRect().height).filter((h) => h > 0);
}

// The whole drawing in the window, unless its titles would be smaller than MIN_TITLE_PX: then
// the largest scale that keeps them legible, from the drawing's left edge (pan for the rest).
function fit() {
  const box = $("diagram");
  const f = view.full;
  if (!f) return;
  const ratio = box.clientWidth / Math.max(1, box.clientHeight);
  Object.assign(view, { x: f.x, y: f.y, w: Math.max(f.w, f.h * ratio), h: Math.max(f.h, f.w / ratio) });
  view.x = f.x - (view.w - f.w) / 2;
  view.y = f.y - (view.h - f.h) / 2;
  applyView();
  const smallest = Math.min(...titleHeights());
  if (Number.isFinite(smallest) && smallest < MIN_TITLE_PX) {
    const k = MIN_TITLE_PX / smallest;
    view.w /= k;
    view.h /= k;
    view.x = f.x;
    view.y = f.y + (f.h - view.h) / 2;
    applyView();
  }
}

// Pan so that ``g`` (the ticket's current state) sits in the middle of the window.
function centerOn(g) {
  if (!g) return;
  const box = $("diagram").getBoundingClientRect();
  const r = g.getBoundingClientRect();
  panBy(box.left + box.width / 2 - (r.left + r.width / 2), box.top + box.height / 2 - (r.top + r.height / 2));
}

function zoom(k, cx = 0.5, cy = 0.5) {
  const nw = view.w / k;
  const nh = view.h / k;
  view.x += (view.w - nw) * cx;
  view.y += (view.h - nh) * cy;
  view.w = nw;
  view.h = nh;
  applyView();
}

function panBy(dxPx, dyPx) {
  const box = $("diagram");
  const s = Math.max(view.w / box.clientWidth, view.h / box.clientHeight);
  view.x -= dxPx * s;
  view.y -= dyPx * s;
  applyView();
}

function wireViewport() {
  const box = $("diagram");
  box.addEventListener("wheel", (e) => {
    e.preventDefault();
    const r = box.getBoundingClientRect();
    zoom(e.deltaY < 0 ? 1.15 : 1 / 1.15, (e.clientX - r.left) / r.width, (e.clientY - r.top) / r.height);
  }, { passive: false });
  let drag = null;
  box.addEventListener("pointerdown", (e) => {
    if (e.target.closest('g[id^="state."]')) return;
    drag = { x: e.clientX, y: e.clientY };
    box.setPointerCapture(e.pointerId);
    box.classList.add("dragging");
  });
  box.addEventListener("pointermove", (e) => {
    if (!drag) return;
    panBy(e.clientX - drag.x, e.clientY - drag.y);
    drag = { x: e.clientX, y: e.clientY };
  });
  const end = () => { drag = null; box.classList.remove("dragging"); };
  box.addEventListener("pointerup", end);
  box.addEventListener("pointercancel", end);
  box.addEventListener("keydown", (e) => {
    const step = 60;
    const keys = {
      "+": () => zoom(1.25), "=": () => zoom(1.25), "-": () => zoom(0.8), "0": fit,
      ArrowLeft: () => panBy(step, 0), ArrowRight: () => panBy(-step, 0),
      ArrowUp: () => panBy(0, step), ArrowDown: () => panBy(0, -step),
    };
    if (keys[e.key] && e.target === box) { e.preventDefault(); keys[e.key](); }
  });
  $("zoom-in").addEventListener("click", () => zoom(1.25));
  $("zoom-out").addEventListener("click", () => zoom(0.8));
  $("zoom-fit").addEventListener("click", fit);
  window.addEventListener("resize", fit);
}

// --- a state's transitions ---------------------------------------------------------------------
function roles(list) {
  const groups = state.definition.role_groups || {};
  return list.flatMap((r) => groups[r] || [r]);
}

function guardText(g) {
  const args = Object.entries(g.args || {}).map(([k, v]) => `${k.replace(/_/g, " ")}: ${Array.isArray(v) ? v.join(" or ") : v}`);
  return `${g.name.replace(/_/g, " ")}${args.length ? ` (${args.join("; ")})` : ""}${g.hint ? ` — ${g.hint}` : ""}`;
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
    el("td", {}, t.dest === "@return" ? "back where it came from" : t.dest),
    el("td", {}, ...roles(t.roles).map((r) => el("span", { class: "tag" }, r))),
    el("td", {}, ...(t.guards || []).map((g) => el("div", { class: "guard" }, guardText(g))))));
  $("state-details").replaceChildren(
    el("h2", { id: "state-title" }, `${spec.title || name} (${name})`),
    el("p", {}, `group: ${spec.group}`, spec.level ? ` · level: ${spec.level}` : "", spec.final ? " · final" : ""),
    el("p", { id: "state-pauses" }, pauses.length ? `SLA clocks paused here: ${pauses.join(", ")}` : "No SLA clock pauses here."),
    out.length
      ? el("table", { id: "transitions" }, el("tr", {}, el("th", {}, "trigger"), el("th", {}, "to"), el("th", {}, "roles"), el("th", {}, "guards")), ...rows)
      : el("p", {}, "No transition leaves this state."));
  $("state-details").hidden = false;
  $("ticket-details").hidden = true;
}

// --- the ticket list ---------------------------------------------------------------------------
async function findTickets() {
  if (!account()) throw new Error("Enter an account slug to list its tickets.");
  const params = new URLSearchParams();
  const fields = { q: "q", state: "f-state", level: "f-level", priority: "f-priority", sla: "f-sla" };
  for (const [param, id] of Object.entries(fields)) if ($(id).value.trim()) params.set(param, $(id).value.trim());
  params.set("limit", "100");
  const page = await api(acctUrl(`/tickets?${params}`));
  $("ticket-list").replaceChildren(...(page.items.length ? page.items.map((t) => el("li", {},
    ticketButton(t))) : [el("li", { class: "muted" }, "No ticket matches.")]));
}

function ticketButton(t) {
  const b = el("button", { type: "button", class: "ticket", "data-id": String(t.id) },
    el("span", { class: "subject" }, `#${t.id} ${t.subject}`),
    el("span", { class: "muted" }, `${t.state} · ${t.priority || "—"}`));
  b.addEventListener("click", guarded(() => openTicket(t.id)));
  return b;
}

// --- the ticket inspector ----------------------------------------------------------------------
function seconds(s) {
  if (s === null || s === undefined) return "—";
  const neg = s < 0;
  let v = Math.abs(Math.round(s));
  const d = Math.floor(v / 86400); v %= 86400;
  const h = Math.floor(v / 3600); v %= 3600;
  const m = Math.floor(v / 60);
  const text = d ? `${d}d ${h}h` : h ? `${h}h ${String(m).padStart(2, "0")}m` : `${m}m`;
  return neg ? `${text} overdue` : text;
}

const when = (iso) => (iso ? new Date(iso).toISOString().replace(":00.000Z", "Z").replace("T", " ") : "—");

function eventText(e) {
  if (e.kind === "transition") return `${e.trigger}: ${e.from_state} → ${e.to_state}`;
  if (e.kind === "created") return `created in ${e.to_state}`;
  if (e.kind === "playbook_step") return `playbook step ${e.data.step || ""}: ${e.data.outcome || ""}`;
  return e.kind.replace(/_/g, " ");
}

async function openTicket(id) {
  if (!account()) throw new Error("Enter the ticket's account slug first.");
  stopPolling();
  const base = acctUrl(`/tickets/${encodeURIComponent(id)}`);
  const [ticket, events, triggers, svg] = await Promise.all([
    api(base), api(`${base}/events`), api(`${base}/triggers`), api(`${base}/diagram.svg`, { as: "text" })]);
  state.ticket = ticket;
  setDiagram(svg, true);
  centerOn($("diagram").querySelector("g.current"));
  const clocks = Object.entries(ticket.sla || {}).map(([name, c]) => el("tr", { class: `clock ${c.status}` },
    el("th", {}, name.replace(/_/g, " ")),
    el("td", {}, el("span", { class: `status ${c.status}` }, c.status)),
    el("td", {}, `due ${when(c.due_at)}`),
    el("td", {}, c.remaining_business_seconds === null ? "no target"
      : ["running", "paused", "breached"].includes(c.status) ? `${seconds(c.remaining_business_seconds)} left`
        : `stopped ${when(c.stopped_at)}`)));
  const allowed = triggers.filter((t) => t.allowed);
  const blocked = triggers.filter((t) => !t.allowed);
  const items = events.map((e) => el("li", {},
    el("div", { class: "at" }, `#${e.seq} · ${when(e.at)} · ${e.actor || "—"} (${e.role || "—"})`),
    el("div", {}, eventText(e)),
    Object.keys(e.changes || {}).length
      ? el("div", { class: "changes" }, "changed: " + Object.entries(e.changes).map(([k, v]) => `${k} = ${v === null ? "—" : v}`).join(", "))
      : "",
    e.note ? el("div", { class: "note" }, `note: ${e.note}`) : ""));
  $("ticket-details").replaceChildren(
    el("h2", { id: "ticket-title" }, `Ticket ${ticket.id}: ${ticket.subject}`),
    el("p", {}, "state: ", el("b", { id: "ticket-state" }, ticket.state), ` · priority: ${ticket.priority || "—"} · level: ${ticket.level || "—"}`),
    el("h3", {}, "SLA clocks"),
    el("table", { id: "sla-clocks" }, ...clocks),
    el("h3", {}, "Allowed now (your role)"),
    el("ul", { id: "allowed" }, ...(allowed.length ? allowed.map((t) => el("li", {}, el("b", {}, t.trigger), ` → ${t.dest}`)) : [el("li", { class: "muted" }, "none")])),
    el("h3", {}, "Blocked"),
    el("ul", { id: "blocked" }, ...blocked.map((t) => el("li", {}, el("b", {}, t.trigger), ` → ${t.dest}: `,
      t.reasons.map((r) => r.message).join("; ")))),
    el("h3", {}, "History"),
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
  sessionStorage.setItem(KEY, state.token);
  $("token").value = "";
  await loadWorkflows();
  $("whoami").textContent = "token accepted";
}));
$("workflow").addEventListener("change", guarded(loadVersions));
$("version").addEventListener("change", guarded(loadDefinition));
for (const id of ["show-guards", "show-roles", "live"]) $(id).addEventListener("change", guarded(drawWorkflow));
$("ticket-filters").addEventListener("submit", guarded(findTickets));
$("ticket-close").addEventListener("click", guarded(drawWorkflow));
wireViewport();

if (state.token) {
  $("whoami").textContent = "token from the link (this tab only)";
  guarded(loadWorkflows)();
}
