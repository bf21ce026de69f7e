// Animus web UI: plain browser JavaScript, no build step, nothing from a CDN.
// Data comes from transport-http's REST routes (/api/...) and live events
// from its server-sent events (/api/events). Authentication is the cookie
// the transport set when this page was opened with ?token=.
"use strict";

const STATUSES = ["backlog", "ready", "in-progress", "blocked", "done", "cancelled"];
const TERMINAL = new Set(["completed", "failed", "cancelled"]);
const QUIET_KINDS = new Set(["phase_output", "agent_text", "agent_tool_call", "bus_watermark", "stream_sync"]);
// a run's worktree and its delivery (docs/worktrees.md): shown by their message
const GIT_KINDS = new Set(["worktree_created", "worktree_reused", "changes_committed", "branch_merged", "merge_blocked",
  "pr_opened", "worktree_kept", "worktree_removed"]);

const $ = (sel) => document.querySelector(sel);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

const badge = (state) => el("span", { class: `badge s-${String(state || "unknown").replace(/[^a-z-]/gi, "")}` }, state ?? "?");

async function api(method, path, body) {
  const init = { method, credentials: "same-origin", headers: {} };
  if (body !== undefined) {
    init.headers["content-type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  const type = response.headers.get("content-type") || "";
  const data = type.includes("json") ? await response.json() : null;
  if (response.status === 401) {
    showBanner("Not signed in: open the URL that `animus web open` prints (it carries the access token).");
  }
  if (!response.ok) {
    const err = data && data.error ? data.error : { message: response.statusText };
    throw new Error(err.message + (err.fix ? ` (fix: ${err.fix})` : ""));
  }
  return data;
}

function showBanner(text) {
  const banner = $("#banner");
  banner.textContent = text;
  banner.hidden = !text;
}

let toastTimer = null;
function toast(text) {
  const box = $("#toast");
  box.textContent = text;
  box.classList.add("show");
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => box.classList.remove("show"), 3000);
}

// ---------------------------------------------------------------- panels

function renderTree(status) {
  $("#project").textContent = status.project_root || "";
  const rows = [];
  for (const sup of status.tree || []) {
    rows.push(treeRow(sup, false));
    for (const child of sup.children || []) rows.push(treeRow(child, true));
  }
  $("#tree tbody").replaceChildren(...rows);
}

function treeRow(node, isChild) {
  return el("tr", { class: isChild ? "child" : "supervisor", dataset: { name: node.name } },
    el("td", {}, node.name),
    el("td", {}, badge(node.state)),
    el("td", {}, node.pid ?? "–"),
    el("td", { class: "restarts" }, node.restarts ?? 0),
    el("td", { class: "err" }, node.last_error || ""));
}

function renderPlugins(health) {
  const rows = (health.plugins || []).map((p) => el("tr", { dataset: { plugin: p.plugin } },
    el("td", {}, p.plugin),
    el("td", {}, p.role || ""),
    el("td", {}, badge(p.status)),
    el("td", {}, p.restarts ?? 0),
    el("td", { class: "err" }, p.last_error || "")));
  $("#plugins tbody").replaceChildren(...rows);
}

function renderBoard(tasks, error) {
  const columns = STATUSES.map((status) => {
    const cards = tasks.filter((t) => normalStatus(t.status) === status).map(taskCard);
    return el("div", { class: "column", dataset: { status } }, el("h3", {}, `${status} (${cards.length})`), cards);
  });
  $("#board").replaceChildren(...(error ? [el("p", { class: "err" }, error)] : []), ...columns);
}

const normalStatus = (status) => String(status || "").replace("_", "-");

function taskCard(task) {
  const status = normalStatus(task.status);
  const canReady = status !== "ready" && status !== "in-progress";
  return el("div", { class: "card", dataset: { task: task.id } },
    el("div", { class: "id" }, `${task.id} · ${task.priority || ""}`),
    el("div", {}, task.title || ""),
    task.blocked_reason ? el("div", { class: "err" }, task.blocked_reason) : null,
    canReady ? el("button", { type: "button", class: "set-ready", onclick: () => setReady(task.id) }, "Set ready") : null);
}

async function setReady(id) {
  try {
    await api("POST", `/api/subjects/task/${encodeURIComponent(id)}/status`, { status: "ready" });
    toast(`${id} is ready`);
  } catch (err) {
    toast(`could not set ${id} ready: ${err.message}`);
  }
  refresh();
}

function renderWorkflows(list) {
  const rows = list.map((wf) => el("tr", {
    class: `clickable${wf.id === selected ? " selected" : ""}`, dataset: { workflow: wf.id },
    onclick: () => { location.hash = `#/workflow/${wf.id}`; },
  },
  el("td", {}, el("a", { href: `#/workflow/${wf.id}` }, wf.id)),
  el("td", {}, wf.workflow_ref),
  el("td", {}, badge(wf.status)),
  el("td", {}, wf.current_phase || ""),
  el("td", {}, wf.waiting || wf.blocked_reason || wf.failure_reason || ""),
  el("td", {}, wf.trigger_source || "")));
  $("#workflows tbody").replaceChildren(...rows);
}

async function refresh() {
  const jobs = [
    api("GET", "/api/status").then(renderTree),
    api("GET", "/api/health").then(renderPlugins),
    api("GET", "/api/workflows?limit=50").then(renderWorkflows),
    api("GET", "/api/subjects/task").then((tasks) => renderBoard(tasks), (err) => renderBoard([], err.message)),
  ];
  if (selected) jobs.push(loadWorkflow(selected));
  const results = await Promise.allSettled(jobs);
  const failed = results.find((r) => r.status === "rejected");
  if (!failed) showBanner("");
}

let refreshTimer = null;
function refreshSoon() {
  if (refreshTimer) return;
  refreshTimer = setTimeout(() => { refreshTimer = null; refresh(); }, 300);
}

// ------------------------------------------------------------ live workflow

let selected = null;
let liveSource = null;
let lastChunk = null; // "agent" while tokens stream, so they join into one run of text

async function loadWorkflow(id) {
  const wf = await api("GET", `/api/workflows/${encodeURIComponent(id)}`);
  if (id !== selected) return;
  const status = $("#live-status");
  status.replaceWith(Object.assign(badge(wf.status), { id: "live-status" }));
  $("#live-status").dataset.status = wf.status;
  $("#phases").replaceChildren(...wf.phases.map((p) =>
    el("li", { dataset: { phase: p.phase } }, `${p.phase} `, badge(p.status))));
  const waitingApproval = wf.status === "pending" && String(wf.waiting || "").startsWith("approval of phase");
  $("#act-approve").disabled = !waitingApproval;
  $("#act-reject").disabled = !waitingApproval;
  $("#act-resume").disabled = !(wf.status === "blocked" || wf.status === "failed");
  $("#act-cancel").disabled = TERMINAL.has(wf.status);
  $("#act-approve").title = wf.waiting || "";
}

function select(id) {
  if (id === selected) return;
  selected = id;
  if (liveSource) liveSource.close();
  liveSource = null;
  $("#live-panel").hidden = !id;
  if (!id) return;
  $("#live-id").textContent = id;
  $("#output").replaceChildren();
  lastChunk = null;
  setStream("#live-stream", false, "connecting…");
  loadWorkflow(id).catch((err) => toast(err.message));
  liveSource = new EventSource(`/api/events?workflow=${encodeURIComponent(id)}&tail=2000`);
  liveSource.onmessage = (msg) => onLiveEvent(JSON.parse(msg.data));
  liveSource.onerror = () => setStream("#live-stream", false, "reconnecting…");
  document.querySelectorAll("#workflows tr").forEach((tr) => tr.classList.toggle("selected", tr.dataset.workflow === id));
}

function write(text, cls) {
  const out = $("#output");
  const stick = out.scrollTop + out.clientHeight >= out.scrollHeight - 4;
  if (cls === "agent" && lastChunk === "agent" && out.lastChild) {
    out.lastChild.append(text); // token by token into the same run
  } else {
    out.append(el("span", { class: cls || "" }, text));
  }
  lastChunk = cls === "agent" ? "agent" : null;
  if (stick) out.scrollTop = out.scrollHeight;
}

function lineBreak() {
  if (lastChunk === "agent") write("\n");
}

function onLiveEvent(ev) {
  const data = ev.data || {};
  switch (ev.kind) {
    case "stream_ready":
      setStream("#live-stream", true, "live");
      return;
    case "stream_gap":
      lineBreak();
      write(`[${ev.missing} event(s) missed from ${ev.src}]\n`, "gap");
      return;
    case "agent_text":
      write(String(data.text ?? ""), "agent");
      return;
    case "agent_permission_denied":
      lineBreak();
      write(`✖ denied ${data.tool ?? ""} ${data.input ?? ""}: ${data.message ?? ""}\n`, "stderr");
      return;
    case "phase_output":
      lineBreak();
      write(`${data.line ?? ""}\n`, data.stream === "stderr" ? "stderr" : "");
      return;
    case "phase_started":
      lineBreak();
      write(`▶ phase ${ev.phase || data.phase || ""}\n`, "phase-head");
      break;
    case "phase_completed":
      lineBreak();
      write(`■ phase ${ev.phase || data.phase || ""} ${data.status || ""}${data.verdict ? ` (${data.verdict})` : ""}\n`, "phase-head");
      break;
    default:
      if (GIT_KINDS.has(ev.kind)) {
        lineBreak();
        write(`◆ ${data.message || ev.kind}\n`, ev.level === "error" ? "stderr" : "phase-head");
      } else if (ev.kind && ev.kind.startsWith("workflow_")) {
        lineBreak();
        write(`● ${ev.kind.replace("workflow_", "")}${data.reason ? `: ${data.reason}` : ""}\n`, "phase-head");
      }
  }
  if (!QUIET_KINDS.has(ev.kind)) refreshSoon();
}

function setStream(sel, on, text) {
  const node = $(sel);
  node.className = `conn ${on ? "on" : "off"}`;
  node.textContent = text;
}

async function act(verb, body) {
  if (!selected) return;
  try {
    const wf = await api("POST", `/api/workflows/${encodeURIComponent(selected)}/${verb}`, body);
    toast(`${verb}: ${wf.id} is ${wf.status}`);
  } catch (err) {
    toast(`${verb} failed: ${err.message}`);
  }
  refresh();
}

const note = () => ($("#note").value.trim() ? { note: $("#note").value.trim() } : {});

// ------------------------------------------------------------------ wiring

function route() {
  const match = location.hash.match(/^#\/workflow\/([^/?#]+)/);
  select(match ? decodeURIComponent(match[1]) : null);
}

function connectGlobal() {
  const source = new EventSource("/api/events?level=info");
  source.onmessage = (msg) => {
    const ev = JSON.parse(msg.data);
    if (ev.kind === "stream_ready") {
      setStream("#conn", true, "live");
      refreshSoon();
    } else if (!QUIET_KINDS.has(ev.kind)) {
      refreshSoon();
    }
  };
  source.onerror = () => setStream("#conn", false, "reconnecting…");
}

$("#act-approve").addEventListener("click", () => act("approve", note()));
$("#act-reject").addEventListener("click", () => act("reject", note()));
$("#act-resume").addEventListener("click", () => act("resume", { force: true }));
$("#act-cancel").addEventListener("click", () => act("cancel", {}));
window.addEventListener("hashchange", route);

route();
refresh();
connectGlobal();
setInterval(refresh, 5000);
