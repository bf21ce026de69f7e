// The overview: the supervisor tree, plugin health, the task board and the
// workflow list, each refreshed from the REST API when the event stream says
// something happened (and every few seconds, should an event be missed).

import { renderBoard } from "./board.js";
import { $, $$, api, badge, el, fmtCost, showBanner } from "./dom.js";

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

let workflows = []; // the last list fetched; the filter narrows it without a fetch
let selected = -1; // the row j / k moved to

function filtered() {
  const status = $("#filter-status").value;
  const ref = $("#filter-workflow").value;
  const text = $("#filter-task").value.trim().toLowerCase();
  return workflows.filter((wf) => (!status || wf.status === status) && (!ref || wf.workflow_ref === ref)
    && (!text || String(wf.subject_id || "").toLowerCase().includes(text) || wf.id.toLowerCase().includes(text)));
}

function workflowOptions() {
  const select = $("#filter-workflow");
  const refs = [...new Set(workflows.map((wf) => wf.workflow_ref))].sort();
  const have = [...select.options].slice(1).map((o) => o.value);
  if (JSON.stringify(have) === JSON.stringify(refs)) return;
  const keep = select.value;
  select.replaceChildren(el("option", { value: "" }, "any"), ...refs.map((r) => el("option", { value: r }, r)));
  select.value = refs.includes(keep) ? keep : "";
}

function renderWorkflows(list) {
  if (list !== undefined) {
    if (unchanged("workflows", list)) return;
    workflows = list;
    workflowOptions();
  }
  const shown = filtered();
  const rows = shown.map((wf) => el("tr", { dataset: { workflow: wf.id } },
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
  $("#filter-count").textContent = shown.length === workflows.length ? `${workflows.length} run(s)`
    : `${shown.length} of ${workflows.length} run(s)`;
  select(Math.min(selected, rows.length - 1));
}

export function initFilters() {
  for (const id of ["#filter-status", "#filter-workflow", "#filter-task"]) {
    for (const type of ["input", "change"]) $(id).addEventListener(type, () => { selected = -1; renderWorkflows(); });
  }
  $("#filter-task").addEventListener("keydown", (event) => {
    if (event.key === "Escape" || event.key === "Enter") event.target.blur();
  });
}

function select(index) {
  const rows = $$("#workflows tbody tr");
  rows.forEach((row, i) => row.classList.toggle("selected", i === index));
  selected = index;
  if (rows[index]) rows[index].scrollIntoView({ block: "nearest" });
}

// j / k / Enter on the list (the keyboard handler in app.js calls this); true when it did something
export function moveSelection(key) {
  const rows = $$("#workflows tbody tr");
  if (!rows.length) return false;
  if (key === "j") select(Math.min(rows.length - 1, selected + 1));
  else if (key === "k") select(Math.max(0, selected - 1));
  else if (key === "Enter" && rows[selected]) location.hash = `#/workflow/${encodeURIComponent(rows[selected].dataset.workflow)}`;
  else return false;
  return true;
}

export async function refreshDashboard() {
  const results = await Promise.allSettled([
    api("GET", "/api/status").then(renderTree),
    api("GET", "/api/health").then(renderPlugins),
    api("GET", "/api/workflows?limit=200").then((list) => renderWorkflows(list)),
    api("GET", "/api/subjects/task").then((tasks) => renderBoard(tasks), (err) => renderBoard([], err.message)),
  ]);
  if (!results.some((r) => r.status === "rejected")) showBanner("");
}
