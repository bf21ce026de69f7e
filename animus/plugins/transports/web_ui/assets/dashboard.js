// The overview: the supervisor tree, plugin health, the task board and the
// workflow list, each refreshed from the REST API when the event stream says
// something happened (and every few seconds, should an event be missed).

import { renderBoard } from "./board.js";
import { $, api, badge, el, fmtCost, showBanner } from "./dom.js";

const last = {}; // panel -> what it shows, so an unchanged panel is not rebuilt

function unchanged(panel, data) {
  const key = JSON.stringify(data);
  if (last[panel] === key) return true;
  last[panel] = key;
  return false;
}

function renderTree(status) {
  $("#project").textContent = status.project_root || "";
  const rows = [];
  for (const sup of status.tree || []) {
    rows.push(treeRow(sup, false));
    for (const child of sup.children || []) rows.push(treeRow(child, true));
  }
  if (!unchanged("tree", rows.map((r) => r.textContent))) $("#tree tbody").replaceChildren(...rows);
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
  if (unchanged("plugins", health.plugins)) return;
  const rows = (health.plugins || []).map((p) => el("tr", { dataset: { plugin: p.plugin } },
    el("td", {}, p.plugin),
    el("td", {}, p.role || ""),
    el("td", {}, badge(p.status)),
    el("td", {}, p.restarts ?? 0),
    el("td", { class: "err" }, p.last_error || "")));
  $("#plugins tbody").replaceChildren(...rows);
}

export const workflowLink = (id) => el("a", { href: `#/workflow/${encodeURIComponent(id)}`, class: "wf-link" }, id);

function renderWorkflows(list) {
  if (unchanged("workflows", list)) return;
  const rows = list.map((wf) => el("tr", { dataset: { workflow: wf.id } },
    el("td", {}, workflowLink(wf.id)),
    el("td", {}, wf.workflow_ref),
    el("td", {}, wf.subject_id || ""),
    el("td", {}, badge(wf.status)),
    el("td", {}, wf.current_phase || ""),
    el("td", { class: wf.blocked_reason || wf.failure_reason ? "err" : "" },
      el("div", { class: "clip", title: wf.waiting || wf.blocked_reason || wf.failure_reason || "" },
        wf.waiting || wf.blocked_reason || wf.failure_reason || "")),
    el("td", { class: "num" }, fmtCost(wf.usage))));
  $("#workflows tbody").replaceChildren(...rows);
}

export async function refreshDashboard() {
  const results = await Promise.allSettled([
    api("GET", "/api/status").then(renderTree),
    api("GET", "/api/health").then(renderPlugins),
    api("GET", "/api/workflows?limit=50").then(renderWorkflows),
    api("GET", "/api/subjects/task").then((tasks) => renderBoard(tasks), (err) => renderBoard([], err.message)),
  ]);
  if (!results.some((r) => r.status === "rejected")) showBanner("");
}
