// tierflow process designer: plain JavaScript over the v1 API (no build step, no CDN).
"use strict";

const $ = (id) => document.getElementById(id);
const KEY = "tierflow.token";
const MIN_TITLE_PX = 13; // state titles are never drawn smaller than this when fitting
const POLL_MS = 1000; // live load without the stream: a conditional GET (ETag, 304 when nothing moved) per second
const RETRY_MS = [1000, 2000, 5000, 10000, 30000]; // the stream's reconnect backoff
const STALL_MS = 45000; // no byte (event or heartbeat) for this long: the stream is dead, reconnect

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

const state = { token: takeToken(), definition: null, sentences: [], ticket: null, focus: null, pathOnly: false, etag: null };

function showError(message) {
  const box = $("error");
  box.textContent = message;
  box.hidden = !message;
}

async function api(path, { as = "json", method = "GET", headers = {}, body = undefined } = {}) {
  const init = { method, headers: { Authorization: `Bearer ${state.token}`, ...headers } };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers["Content-Type"] = "application/json";
  }
  const res = await fetch(path, init);
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
  $("compare").replaceChildren(el("option", { value: "" }, "—"), ...detail.versions.map((v) =>
    el("option", { value: v.hash }, `${v.version} (#${v.hash.slice(0, 8)})`)));
  await loadDefinition();
}

async function loadDefinition() {
  const name = $("workflow").value;
  const version = $("version").value;
  const detail = await api(`/v1/workflows/${encodeURIComponent(name)}?version=${encodeURIComponent(version)}`);
  state.definition = detail.definition;
  state.sentences = detail.guard_sentences;
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
  stopLive();
  state.ticket = null;
  state.focus = null;
  $("ticket-details").hidden = true;
  $("whatif-details").hidden = true;
  $("state-details").hidden = false;
  $("ticket-close").hidden = true;
  if ($("compare").value) { // what changed since the version compared with, marked
    setDiagram(await api(diffSvg(), { as: "text" }), true);
    return;
  }
  if ($("live").checked) {
    if (!account()) throw new Error("Enter an account slug for the live load.");
    state.etag = null;
    await refreshLive(true);
    startLive();
    return;
  }
  setDiagram(await api(workflowSvg(), { as: "text" }), true);
}

function workflowSvg(focus = null) {
  const name = encodeURIComponent($("workflow").value);
  const url = `/v1/workflows/${name}/diagram.svg?version=${encodeURIComponent($("version").value)}&show=${showParam()}`;
  return focus ? `${url}&focus=${encodeURIComponent(focus)}` : url;
}

function diffSvg() {
  const name = encodeURIComponent($("workflow").value);
  const from = encodeURIComponent($("compare").value);
  return `/v1/workflows/${name}/diff.svg?from=${from}&to=${encodeURIComponent($("version").value)}&show=${showParam()}`;
}

// --- what-if: the account's last 30 days replayed through the selected version -------------
async function whatIf() {
  if (!account()) throw new Error("Enter an account slug for the what-if.");
  const body = { workflow: $("workflow").value, candidate: { version: $("version").value } };
  const a = await api(acctUrl("/what-if"), { method: "POST", body });
  const share = (x) => (x.share_met === null ? "—" : `${Math.round(1000 * x.share_met) / 10} %`);
  const hours = (s) => (s === null ? "—" : `${Math.round(s / 360) / 10} business h`);
  const byPrio = (m) => Object.entries(m).map(([k, v]) => `${k} ${v}`).join(", ") || "—";
  const sides = [a.current, a.candidate];
  const line = (label, f) => el("tr", {}, el("th", {}, label), ...sides.map((s) => el("td", {}, f(s))));
  const table = el("table", { id: "whatif-table" },
    el("tr", {}, el("th", {}, ""), el("th", {}, "as it happened"),
      el("th", {}, `candidate ${a.candidate.versions[0].split(" ")[0]}`)),
    line("tickets", (s) => s.tickets),
    line("first response met", (s) => share(s.first_response)),
    line("met / breached / open", (s) => `${s.first_response.met} / ${s.first_response.breached} / ${s.first_response.open}`),
    line("resolution met", (s) => share(s.resolution)),
    line("median to first response", (s) => hours(s.median_first_response_business_seconds)),
    line("breached by priority", (s) => byPrio(s.breaches_by_priority)));
  const refused = el("ul", { id: "whatif-refused" }, ...a.refused.slice(0, 20).map((r) =>
    el("li", {}, `ticket ${r.ticket} #${r.seq} ${r.event} (${r.guard}): ${r.message}`)));
  const box = $("whatif-details");
  box.replaceChildren(
    el("h2", {}, `What-if: ${account()}`),
    el("p", { class: "muted" },
      `tickets received ${new Date(a.window.from).toLocaleDateString()} – ${new Date(a.window.to).toLocaleDateString()}`),
    table,
    el("h3", {}, `Events it would have refused: ${a.refused_total}`),
    refused);
  $("state-details").hidden = true;
  $("ticket-details").hidden = true;
  box.hidden = false;
}

// One state's neighbourhood (?focus=): the state, what leads in, what leads out.
async function drawFocus(name) {
  stopLive();
  state.ticket = null;
  state.focus = name;
  setDiagram(await api(workflowSvg(name), { as: "text" }), true);
  $("ticket-close").hidden = false;
  selectState(name, $("diagram").querySelector(`g[id="state.${CSS.escape(name)}"]`));
}

// --- live load: the account's event stream, conditional polling while it is down ----------------
// Any event of the account (GET …/stream, server-sent events) triggers a conditional GET of the
// live diagram. EventSource cannot send the bearer token, so the stream is read with fetch(): the
// reader parses the SSE frames, resumes after the last id seen (Last-Event-ID) and reconnects with
// backoff. While it is not connected the page polls with If-None-Match (a 304 when nothing moved);
// #live-status's data-mode says which: "stream", "polling" or "off".
const live = { run: 0, abort: null, lastId: null, tries: 0, poll: null, retry: null, busy: null, again: false };

function setMode(mode, text) {
  $("live-status").dataset.mode = mode;
  $("live-status").textContent = text;
}

function stopLive() {
  live.run += 1; // every loop of an older run stops at its next step
  if (live.abort) live.abort.abort();
  clearTimeout(live.poll);
  clearTimeout(live.retry);
  Object.assign(live, { abort: null, lastId: null, tries: 0, poll: null, retry: null });
  setMode("off", "");
  $("live-updated").textContent = "";
}

function liveWanted(run) {
  return run === live.run && $("live").checked && !state.ticket && !state.focus;
}

// One conditional GET of the live diagram; calls that arrive while one runs make one more after it.
async function refreshLive(first = false) {
  if (live.busy) { live.again = true; return live.busy; }
  live.busy = (async () => {
    do {
      live.again = false;
      const name = encodeURIComponent($("workflow").value);
      const headers = state.etag ? { "If-None-Match": state.etag } : {};
      try {
        const res = await api(acctUrl(`/workflows/${name}/diagram.svg`), { as: "response", headers });
        if (res) {
          state.etag = res.headers.get("ETag");
          setDiagram(await res.text(), first);
          $("live-updated").textContent = `updated ${new Date().toLocaleTimeString()}`;
        }
      } catch (err) {
        showError(err.message);
      }
      first = false;
    } while (live.again);
  })();
  try { await live.busy; } finally { live.busy = null; }
}

function startLive() {
  const run = live.run;
  setMode("polling", "connecting…");
  poll(run);
  connect(run);
}

function poll(run) {
  clearTimeout(live.poll);
  if (!liveWanted(run) || $("live-status").dataset.mode === "stream") return;
  live.poll = setTimeout(async () => {
    if (!liveWanted(run) || $("live-status").dataset.mode === "stream") return;
    await refreshLive();
    poll(run);
  }, POLL_MS);
}

async function connect(run) {
  if (!liveWanted(run)) return;
  live.abort = new AbortController();
  const headers = { Authorization: `Bearer ${state.token}`, Accept: "text/event-stream" };
  if (live.lastId !== null) headers["Last-Event-ID"] = live.lastId;
  let permanent = false;
  let stall = null;
  try {
    const res = await fetch(acctUrl("/stream"), { headers, signal: live.abort.signal, cache: "no-store" });
    if (!res.ok || !res.body) {
      permanent = res.status >= 400 && res.status < 500 && res.status !== 429;
      throw new Error(`stream: ${res.status} ${res.statusText}`);
    }
    live.tries = 0;
    setMode("stream", "live (event stream)");
    clearTimeout(live.poll);
    refreshLive(); // what moved between the last drawing and this connection
    const reader = res.body.getReader();
    const decoder = new TextDecoder();
    const onStall = () => { stall = null; if (live.abort) live.abort.abort(); };
    let buffer = "";
    for (;;) {
      clearTimeout(stall);
      stall = setTimeout(onStall, STALL_MS);
      const { value, done } = await reader.read();
      if (done || !liveWanted(run)) break;
      buffer += decoder.decode(value, { stream: true }).replace(/\r\n?/g, "\n");
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        onFrame(buffer.slice(0, end));
        buffer = buffer.slice(end + 2);
      }
    }
  } catch (err) {
    if (!liveWanted(run)) return;
    if (permanent) showError(`${err.message}: following the account by polling`);
  } finally {
    clearTimeout(stall);
  }
  if (!liveWanted(run)) return;
  setMode("polling", permanent ? "live (polling)" : "live (polling; the event stream reconnects)");
  poll(run);
  if (permanent) return;
  const wait = RETRY_MS[Math.min(live.tries, RETRY_MS.length - 1)];
  live.tries += 1;
  live.retry = setTimeout(() => connect(run), wait);
}

// One SSE frame: "id:", "event:" and "data:" lines; comments (heartbeats) start with ":".
function onFrame(frame) {
  let type = "message";
  let hasData = false;
  for (const line of frame.split("\n")) {
    if (!line || line.startsWith(":")) continue;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
    if (field === "id") live.lastId = value;
    else if (field === "event") type = value;
    else if (field === "data") hasData = true;
  }
  if (hasData && (type.startsWith("ticket.") || type === "resync")) refreshLive();
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

function selectState(name, group) {
  for (const g of document.querySelectorAll("#diagram g.selected")) g.classList.remove("selected");
  if (group) group.classList.add("selected");
  const d = state.definition;
  const spec = d.states[name];
  // each guard as the API words it (GET /v1/workflows/{name}: guard_sentences, one list per transition)
  const out = d.transitions.map((t, i) => [t, state.sentences[i] || []]).filter(([t]) => t.source.includes(name));
  const pauses = Object.entries(d.sla || {}).filter(([, c]) => (c.pause_in || []).includes(name)).map(([k]) => k);
  const rows = out.map(([t, sentences]) => el("li", {},
    el("div", { class: "head" }, el("b", {}, t.trigger), " → ",
      t.dest === "@return" ? "back where it came from" : (d.states[t.dest] || {}).title || t.dest),
    el("div", { class: "roles" }, "by ", ...roles(t.roles).map((r) => el("span", { class: "tag" }, r))),
    sentences.length
      ? el("ul", { class: "guards" }, ...sentences.map((text, k) => el("li", { class: "guard", title: `guard: ${t.guards[k].name}` }, text)))
      : el("div", { class: "muted" }, "no guard")));
  const focus = el("button", { type: "button", id: "focus-state" }, "Only this state and its neighbours");
  focus.addEventListener("click", guarded(() => drawFocus(name)));
  $("state-details").replaceChildren(
    el("h2", { id: "state-title" }, `${spec.title || name} (${name})`),
    state.focus === name ? "" : el("p", {}, focus),
    el("p", {}, `group: ${spec.group}`, spec.level ? ` · level: ${spec.level}` : "", spec.final ? " · final" : ""),
    el("p", { id: "state-pauses" }, pauses.length ? `SLA clocks paused here: ${pauses.join(", ")}` : "No SLA clock pauses here."),
    out.length
      ? el("ul", { id: "transitions" }, ...rows)
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

const when = (iso) => (iso ? new Date(iso).toISOString().replace(/(:00)?\.\d+Z$/, "Z").replace("T", " ") : "—");

function eventText(e) {
  if (e.kind === "transition") return `${e.trigger}: ${e.from_state} → ${e.to_state}`;
  if (e.kind === "created") return `created in ${e.to_state}`;
  if (e.kind === "playbook_step") return `playbook step ${e.data.step || ""}: ${e.data.outcome || ""}`;
  return e.kind.replace(/_/g, " ");
}

async function openTicket(id) {
  if (!account()) throw new Error("Enter the ticket's account slug first.");
  stopLive();
  const base = acctUrl(`/tickets/${encodeURIComponent(id)}`);
  const story = () => `${base}/diagram.svg${state.pathOnly ? "?view=path" : ""}`;
  const [ticket, events, triggers, svg] = await Promise.all([
    api(base), api(`${base}/events`), api(`${base}/triggers`), api(story(), { as: "text" })]);
  state.ticket = ticket;
  state.focus = null;
  const draw = (text) => { setDiagram(text, true); centerOn($("diagram").querySelector("g.current")); };
  draw(svg);
  // its path on the faded workflow, or (?view=path) only the states it visited
  const pathOnly = el("input", { type: "checkbox", id: "path-only" });
  pathOnly.checked = state.pathOnly;
  pathOnly.addEventListener("change", guarded(async () => {
    state.pathOnly = pathOnly.checked;
    draw(await api(story(), { as: "text" }));
  }));
  const clocks = Object.entries(ticket.sla || {}).map(([name, c]) => el("tr", { class: `clock ${c.status}` },
    el("th", {}, name.replace(/_/g, " ")),
    el("td", {}, el("span", { class: `status ${c.status}` }, c.status)),
    el("td", {}, c.due_at ? `due ${when(c.due_at)}` : ""),
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
    el("p", {}, el("label", {}, pathOnly, " its path only (the states it visited)")),
    el("p", {}, "state: ", el("b", { id: "ticket-state" }, ticket.state), ` · priority: ${ticket.priority || "—"} · level: ${ticket.level || "—"}`),
    el("h3", {}, "SLA clocks"),
    el("table", { id: "sla-clocks" }, ...clocks),
    el("h3", {}, "Allowed now (your role)"),
    el("ul", { id: "allowed" }, ...(allowed.length ? allowed.map((t) => el("li", {}, el("b", {}, t.trigger), ` → ${t.dest}`)) : [el("li", { class: "muted" }, "none")])),
    el("h3", {}, "Blocked"),
    el("ul", { id: "blocked" }, ...(blocked.length ? blocked.map((t) => el("li", {}, el("b", {}, t.trigger), ` → ${t.dest}: `,
      t.reasons.map((r) => r.message).join("; "))) : [el("li", { class: "muted" }, "none")])),
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
$("compare").addEventListener("change", guarded(drawWorkflow));
$("what-if").addEventListener("click", guarded(whatIf));
for (const id of ["show-guards", "show-roles", "live"]) $(id).addEventListener("change", guarded(drawWorkflow));
$("ticket-filters").addEventListener("submit", guarded(findTickets));
$("ticket-close").addEventListener("click", guarded(drawWorkflow));
$("account").addEventListener("change", guarded(async () => { if ($("live").checked && !state.ticket) await drawWorkflow(); }));
wireViewport();

if (state.token) {
  $("whoami").textContent = "token from the link (this tab only)";
  guarded(loadWorkflows)();
}
