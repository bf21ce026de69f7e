// Animus web UI: plain browser JavaScript modules, no build step, nothing from
// a CDN. Data comes from transport-http's REST routes (/api/...), live events
// from its server-sent events (/api/events). Authentication is the cookie the
// transport set when this page was opened with ?token=.
//
// Two views, each with its own URL: the overview (#/) and one workflow
// (#/workflow/<id>, linked from every workflow id).

import { initBoard, openTaskForm } from "./board.js";
import { refreshCharts } from "./charts.js";
import { initFilters, moveSelection, refreshDashboard } from "./dashboard.js";
import { $, openStream, setConn } from "./dom.js";
import { closeWorkflow, initWorkflowView, openWorkflow } from "./workflow.js";

// events that move the overview's charts (a restart, a disabled plugin, a run's end, a phase's cost)
const CHARTED = new Set(["child_exited", "child_restarting", "child_started", "plugin_disabled", "phase_completed", "workflow_completed",
  "workflow_failed", "workflow_blocked", "workflow_cancelled"]);
// the workflow view's buttons, by key
const ACTION_KEYS = { a: "#act-approve", x: "#act-reject", r: "#act-resume", c: "#act-cancel" };

// events that do not change what the overview shows (they would redraw it many times a second)
const QUIET = new Set(["phase_output", "agent_text", "agent_tool_call", "agent_tool_result", "agent_usage",
  "bus_watermark", "stream_sync"]);

function route() {
  const match = location.hash.match(/^#\/workflow\/([^/?#]+)/);
  $("#dashboard").hidden = Boolean(match);
  $("#workflow-view").hidden = !match;
  if (match) {
    const id = decodeURIComponent(match[1]);
    document.title = `${id} · Animus`;
    openWorkflow(id);
  } else {
    document.title = "Animus";
    closeWorkflow();
    refreshDashboard();
    refreshCharts();
  }
}

let refreshTimer = null;
let chartsTimer = null;
function refreshSoon(kind) {
  if (!$("#workflow-view").hidden) return;
  if (!refreshTimer) refreshTimer = setTimeout(() => { refreshTimer = null; refreshDashboard(); }, 300);
  if ((CHARTED.has(kind) || kind === "stream_ready") && !chartsTimer) {
    chartsTimer = setTimeout(() => { chartsTimer = null; refreshCharts(); }, 1500);
  }
}

function typing(event) {
  const tag = (event.target && event.target.tagName) || "";
  return ["INPUT", "TEXTAREA", "SELECT"].includes(tag) || document.querySelector("dialog[open]");
}

const overview = () => $("#workflow-view").hidden;

document.addEventListener("keydown", (event) => {
  if (event.ctrlKey || event.metaKey || event.altKey || typing(event)) return;
  const key = event.key;
  if (key === "n") openTaskForm();
  else if (key === "?") $("#keys-dialog").showModal();
  else if (key === "g" || (key === "Escape" && !overview())) location.hash = "#/";
  else if (key === "/" && overview()) $("#filter-task").focus();
  else if (["j", "k"].includes(key) && overview()) moveSelection(key);
  else if (key === "Enter" && overview() && !["A", "BUTTON"].includes(event.target.tagName)) {
    if (!moveSelection(key)) return; // Enter on nothing selected stays the browser's
  } else if (ACTION_KEYS[key] && !overview()) {
    const button = $(ACTION_KEYS[key]);
    if (!button.disabled) button.click();
  } else return;
  event.preventDefault();
});
$("#show-keys").addEventListener("click", () => $("#keys-dialog").showModal());

initBoard(() => refreshDashboard());
initFilters();
initWorkflowView();
window.addEventListener("hashchange", route);
openStream("/api/events?level=info", (ev) => {
  if (ev.kind === "stream_ready" || !QUIET.has(ev.kind)) refreshSoon(ev.kind);
}, (on, text) => setConn($("#conn"), on, text));
route();
setInterval(() => { if (overview()) refreshDashboard(); }, 5000);
setInterval(() => { if (overview()) refreshCharts(); }, 60000);
