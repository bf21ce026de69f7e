// Animus web UI: plain browser JavaScript modules, no build step, nothing from
// a CDN. Data comes from transport-http's REST routes (/api/...), live events
// from its server-sent events (/api/events). Authentication is the cookie the
// transport set when this page was opened with ?token=.
//
// Two views, each with its own URL: the overview (#/) and one workflow
// (#/workflow/<id>, linked from every workflow id).

import { initBoard, openTaskForm } from "./board.js";
import { refreshDashboard } from "./dashboard.js";
import { $, openStream, setConn } from "./dom.js";
import { closeWorkflow, initWorkflowView, openWorkflow } from "./workflow.js";

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
  }
}

let refreshTimer = null;
function refreshSoon() {
  if (refreshTimer || !$("#workflow-view").hidden) return;
  refreshTimer = setTimeout(() => { refreshTimer = null; refreshDashboard(); }, 300);
}

function typing(event) {
  const tag = (event.target && event.target.tagName) || "";
  return ["INPUT", "TEXTAREA", "SELECT"].includes(tag) || document.querySelector("dialog[open]");
}

document.addEventListener("keydown", (event) => {
  if (event.ctrlKey || event.metaKey || event.altKey || typing(event)) return;
  if (event.key === "n") { event.preventDefault(); openTaskForm(); }
  if (event.key === "Escape" && !$("#workflow-view").hidden) location.hash = "#/";
});

initBoard(() => refreshDashboard());
initWorkflowView();
window.addEventListener("hashchange", route);
openStream("/api/events?level=info", (ev) => {
  if (ev.kind === "stream_ready" || !QUIET.has(ev.kind)) refreshSoon();
}, (on, text) => setConn($("#conn"), on, text));
route();
setInterval(() => { if ($("#workflow-view").hidden) refreshDashboard(); }, 5000);
