// The task board: one column per status, a card per task with menus for its
// status and priority (or drag a card to another column), and the New task
// form. Every change goes through the subject backend (/api/subjects/...),
// the same calls `animus subject create|status|update` make.

import { $, api, el, toast } from "./dom.js";

export const STATUSES = ["backlog", "ready", "in-progress", "blocked", "done", "cancelled"];
const PRIORITIES = ["p0", "p1", "p2", "p3"];
const normalStatus = (status) => String(status || "").replace("_", "-");
const kindOf = (task) => String(task.kind || String(task.id).split(":")[0] || "task");
const subjectPath = (task) => `/api/subjects/${encodeURIComponent(kindOf(task))}/${encodeURIComponent(task.id)}`;

let shown = null; // what the board shows now, to leave it alone when nothing changed
let onChange = () => {};

export function initBoard(changed) {
  onChange = changed;
  $("#new-task").addEventListener("click", openTaskForm);
  $("#task-form").addEventListener("submit", (event) => { event.preventDefault(); submitTask(); });
  $("#task-description").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) { event.preventDefault(); submitTask(); }
  });
  $("#task-cancel").addEventListener("click", () => $("#task-dialog").close());
}

export function renderBoard(tasks, error) {
  const key = JSON.stringify([tasks, error || null]);
  if (key === shown) return;
  shown = key;
  const columns = STATUSES.map((status) => {
    const cards = tasks.filter((t) => normalStatus(t.status) === status).map(taskCard);
    return el("div", {
      class: "column", dataset: { status },
      ondragover: (event) => { event.preventDefault(); event.currentTarget.classList.add("drop"); },
      ondragleave: (event) => event.currentTarget.classList.remove("drop"),
      ondrop: (event) => dropCard(event, status),
    }, el("h3", {}, `${status} (${cards.length})`), cards);
  });
  $("#board").replaceChildren(...(error ? [el("p", { class: "err" }, error)] : []), ...columns);
}

function taskCard(task) {
  const status = normalStatus(task.status);
  const menu = (cls, label, values, current, change) => el("select", {
    class: cls, "aria-label": `${label} of ${task.id}`, onchange: (event) => change(task, event.target.value),
  }, values.map((v) => el("option", { value: v, selected: v === current }, v)));
  return el("div", {
    class: "card", draggable: "true", dataset: { task: task.id, priority: task.priority || "" },
    ondragstart: (event) => event.dataTransfer.setData("text/plain", JSON.stringify({ id: task.id, kind: kindOf(task) })),
  },
  el("div", { class: "id" }, task.id, " ", el("span", { class: `prio p-${task.priority || ""}` }, task.priority || "")),
  el("div", { class: "title" }, task.title || ""),
  (task.labels || []).length ? el("div", { class: "labels" }, task.labels.map((l) => el("span", { class: "label" }, l))) : null,
  task.blocked_reason ? el("div", { class: "err" }, task.blocked_reason) : null,
  el("div", { class: "menus" },
    menu("status-menu", "status", STATUSES, status, setStatus),
    menu("priority-menu", "priority", PRIORITIES, task.priority, setPriority)));
}

async function change(what, call) {
  try {
    const subject = await call();
    toast(`${subject.id}: ${what}`);
  } catch (err) {
    toast(`could not change it: ${err.message}`);
    shown = null; // put the card back where the backend says it is
  }
  onChange();
}

const setStatus = (task, status) =>
  change(`status ${status}`, () => api("POST", `${subjectPath(task)}/status`, { status }));

const setPriority = (task, priority) =>
  change(`priority ${priority}`, () => api("PATCH", subjectPath(task), { priority }));

function dropCard(event, status) {
  event.preventDefault();
  event.currentTarget.classList.remove("drop");
  try {
    const task = JSON.parse(event.dataTransfer.getData("text/plain"));
    if (task && task.id) setStatus(task, status);
  } catch { /* something else was dropped */ }
}

// ------------------------------------------------------------- the New task form

export function openTaskForm() {
  const dialog = $("#task-dialog");
  if (dialog.open) return;
  $("#task-error").textContent = "";
  dialog.showModal();
  $("#task-title").focus();
}

async function submitTask() {
  const title = $("#task-title").value.trim();
  if (!title) {
    $("#task-error").textContent = "A task needs a title.";
    $("#task-title").focus();
    return;
  }
  const kind = $("#task-kind").value.trim() || "task";
  const body = {
    title, status: $("#task-status").value, priority: $("#task-priority").value,
    description: $("#task-description").value,
    labels: $("#task-labels").value.split(",").map((l) => l.trim()).filter(Boolean),
  };
  const button = $("#task-submit");
  button.disabled = true;
  try {
    const created = await api("POST", `/api/subjects/${encodeURIComponent(kind)}`, body);
    $("#task-form").reset();
    $("#task-dialog").close();
    toast(`created ${created.id}`);
    onChange();
  } catch (err) {
    $("#task-error").textContent = err.message;
  } finally {
    button.disabled = false;
  }
}
