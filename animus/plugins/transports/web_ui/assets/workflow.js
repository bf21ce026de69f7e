// One workflow on a page of its own (#/workflow/<id>): its phases with status,
// attempts, verdict and reason, duration, tokens and cost; what it waits on or
// why it is blocked, in plain words; the live output (replayed from the log
// when opened late); the operator's decisions (resume, cancel, approve,
// reject: the calls `animus workflow …` makes); and the run's diff.

import { diffBox, loadDiff } from "./diff.js";
import {
  $, api, badge, confirmAction, el, fmtCost, fmtDuration, fmtTokens, openStream, setConn, toast,
} from "./dom.js";
import { Output } from "./output.js";

export const IDEMPOTENCY_BLOCK = "Idempotency: phase requires explicit retry decision";
const TERMINAL = new Set(["completed", "cancelled"]);
const REPLAY = 2000; // events a page opened late gets from the log
const QUIET = new Set(["phase_output", "agent_text", "agent_tool_call", "agent_tool_result", "agent_usage"]);
const DIFF_EVENTS = new Set(["worktree_created", "phase_completed", "changes_committed", "branch_merged",
  "merge_blocked", "pr_opened", "worktree_removed", "workflow_completed"]);

let view = null; // {id, stream, output, wf, denials}
let reloadTimer = null;

export function initWorkflowView() {
  $("#act-approve").addEventListener("click", () => act("approve", note()));
  $("#act-reject").addEventListener("click", () => act("reject", note()));
  $("#act-resume").addEventListener("click", resume);
  $("#act-cancel").addEventListener("click", cancel);
}

export function openWorkflow(id) {
  if (view && view.id === id) return;
  closeWorkflow();
  $("#wf-id").textContent = id;
  for (const sel of ["#wf-notices", "#wf-phases tbody", "#wf-meta", "#wf-usage"]) $(sel).replaceChildren();
  diffBox().replaceChildren(el("p", { class: "muted" }, "loading…"));
  delete diffBox().dataset.loaded;
  view = { id, wf: null, diffStale: true, denials: new Map(), output: new Output($("#output"), addDenial) };
  view.output.clear();
  view.stream = openStream(`/api/events?workflow=${encodeURIComponent(id)}&tail=${REPLAY}`, onEvent,
    (on, text) => setConn($("#live-stream"), on, text));
  reload();
}

export function closeWorkflow() {
  if (view) view.stream.close();
  view = null;
}

function onEvent(ev) {
  if (!view) return;
  if (ev.kind === "stream_ready" && (ev.data || {}).replayed >= REPLAY) {
    $("#output").prepend(el("span", { class: "gap" }, `[earlier events not shown: the page replays the last ${REPLAY}; `
      + `animus daemon logs --search ${view.id} --limit 10000 has them all]\n`));
  }
  view.output.show(ev);
  if (DIFF_EVENTS.has(ev.kind)) view.diffStale = true;
  if (ev.kind !== "stream_ready" && !QUIET.has(ev.kind)) reloadSoon();
}

function reloadSoon() {
  if (reloadTimer) return;
  reloadTimer = setTimeout(() => { reloadTimer = null; reload(); }, 250);
}

export async function reload() {
  if (!view) return;
  const id = view.id;
  try {
    const wf = await api("GET", `/api/workflows/${encodeURIComponent(id)}`);
    if (!view || view.id !== id) return;
    view.wf = wf;
    render(wf);
    if (view.diffStale) showDiff(wf);
  } catch (err) {
    $("#wf-notices").replaceChildren(el("div", { class: "notice bad" }, err.message));
  }
}

function showDiff(wf) {
  view.diffStale = false;
  if ((wf.worktree || {}).branch) {
    loadDiff(diffBox(), wf.id);
  } else {
    diffBox().replaceChildren(el("p", { class: "muted" }, "This run has no branch of its own (it works in the "
      + "project root, or has not started yet), so there is no diff to show."));
  }
}

// ------------------------------------------------------------------ rendering

function render(wf) {
  $("#wf-status").replaceWith(Object.assign(badge(wf.status), { id: "wf-status" }));
  $("#wf-status").dataset.status = wf.status;
  const subject = wf.subject || {};
  $("#wf-meta").replaceChildren(el("span", {},
    `workflow ${wf.workflow_ref}`,
    wf.subject_id ? ` · ${wf.subject_id}${subject.title ? ` “${subject.title}”` : ""}` : null,
    ` · started by ${wf.trigger_source || "?"}`,
    wf.runs ? ` · ${wf.runs} run(s)` : null));
  const taskCost = wf.task_usage && wf.subject_id ? ` · task ${wf.subject_id} in all: ${fmtCost(wf.task_usage)}` : "";
  $("#wf-usage").textContent = `tokens in/out ${fmtTokens(wf.usage)} · cost ${fmtCost(wf.usage)}${taskCost}`;
  renderNotices(wf);
  $("#wf-phases tbody").replaceChildren(...wf.phases.map((p, i) => phaseRow(p, i, wf)));
  renderActions(wf);
}

function notice(cls, title, text) {
  return el("div", { class: `notice ${cls}` }, el("strong", {}, title), " ", text);
}

function renderNotices(wf) {
  const items = [];
  const waiting = String(wf.waiting || "");
  if (wf.status === "pending" && waiting.startsWith("approval of phase")) {
    items.push(notice("wait", "Waiting for your approval:", `phase ${wf.current_phase}. Approve or reject it below.`));
  } else if (waiting.includes("usage limit until")) {
    items.push(notice("wait", "Waiting:", `${waiting}. The run goes on by itself then (or resume it earlier).`));
  } else if (waiting && !waiting.startsWith("approved:")) {
    items.push(notice("wait", "Waiting:", waiting));
  }
  if (wf.status === "blocked" && wf.blocked_reason) {
    const extra = wf.blocked_reason === IDEMPOTENCY_BLOCK
      ? ` — phase ${wf.current_phase} was cut off mid-run and may have done part of its work; only you can say whether running it again is safe.` : "";
    items.push(notice("bad", "Blocked:", wf.blocked_reason + extra));
  }
  if (wf.status === "failed" && wf.failure_reason) items.push(notice("bad", "Failed:", wf.failure_reason));
  for (const ev of view.denials.values()) {
    const d = ev.data || {};
    items.push(notice("bad denied", "Permission denied:",
      `${ev.phase || d.phase || ""} ${d.tool || "tool"} ${typeof d.input === "string" ? d.input : JSON.stringify(d.input ?? "")}`
      + `${d.message ? ` — ${d.message}` : ""}`));
  }
  $("#wf-notices").replaceChildren(...items);
}

function addDenial(ev) {
  const d = ev.data || {};
  view.denials.set(d.id || `${ev.src}#${ev.seq}`, ev);
  if (view.wf) renderNotices(view.wf);
}

function phaseRow(phase, index, wf) {
  const attempts = phase.attempt_list || [];
  const lastAttempt = attempts[attempts.length - 1] || {};
  const decision = lastAttempt.decision || {};
  const reason = decision.reason || lastAttempt.error || "";
  let duration = null;
  if (lastAttempt.started_at) {
    const end = lastAttempt.ended_at || (lastAttempt.status === "running" ? Date.now() / 1000 : null);
    duration = end ? end - lastAttempt.started_at : null;
  }
  const current = phase.phase === wf.current_phase && !TERMINAL.has(wf.status);
  // a phase with no attempt of its own (a manual gate) that the run stopped at: the run's record says why
  const stoppedHere = phase.phase === wf.current_phase && phase.status === "not started"
    && (wf.status === "failed" || (wf.status === "pending" && wf.waiting));
  const status = stoppedHere ? (wf.status === "failed" ? "failed" : "waiting") : phase.status;
  return el("tr", { dataset: { phase: phase.phase }, class: current ? "current" : "" },
    el("td", { class: "num" }, index + 1),
    el("td", {}, phase.phase, el("div", { class: "muted small" }, `${phase.mode || "?"} · ${phase.idempotency || "unknown"}`)),
    el("td", {}, badge(status)),
    el("td", { class: "num" }, phase.attempts ?? 0),
    el("td", {}, phase.verdict || ""),
    el("td", { class: "reason" }, reason || (stoppedHere ? wf.failure_reason || wf.waiting : "")),
    el("td", { class: "num" }, fmtDuration(duration)),
    el("td", { class: "num" }, fmtTokens(phase.usage)),
    el("td", { class: "num" }, fmtCost(phase.usage)));
}

function renderActions(wf) {
  const waitingApproval = wf.status === "pending" && String(wf.waiting || "").startsWith("approval of phase");
  const parked = wf.status === "pending" && wf.waiting && !waitingApproval && !String(wf.waiting).startsWith("approved:");
  const forced = wf.status === "blocked" && wf.blocked_reason === IDEMPOTENCY_BLOCK;
  $("#act-approve").disabled = !waitingApproval;
  $("#act-reject").disabled = !waitingApproval;
  $("#act-resume").disabled = !(wf.status === "blocked" || wf.status === "failed" || parked);
  $("#act-resume").textContent = forced ? "Resume --force…" : "Resume";
  $("#act-resume").dataset.force = forced ? "1" : "";
  $("#act-cancel").disabled = TERMINAL.has(wf.status) || wf.status === "failed";
}

// -------------------------------------------------------------------- actions

const note = () => ($("#note").value.trim() ? { note: $("#note").value.trim() } : {});

async function act(verb, body) {
  if (!view) return;
  const id = view.id;
  try {
    const wf = await api("POST", `/api/workflows/${encodeURIComponent(id)}/${verb}`, body);
    toast(`${verb}: ${wf.id} is ${wf.status}`);
    $("#note").value = "";
  } catch (err) {
    toast(`${verb} failed: ${err.message}`);
  }
  reload();
}

async function resume() {
  if (!view || !view.wf) return;
  const wf = view.wf;
  if (!$("#act-resume").dataset.force) return act("resume", { force: false });
  const phase = wf.phases.find((p) => p.phase === wf.current_phase) || {};
  const ok = await confirmAction("Resume with --force?",
    `Phase ${wf.current_phase} (idempotency: ${phase.idempotency || "unknown"}) was cut off mid-run, and nobody `
    + "knows how far it got. --force runs it again from the start: whatever it already did outside its "
    + "worktree — pushed a branch, posted a comment, called an API, sent a message — may happen a second time. "
    + `Check first what it did (animus workflow get ${wf.id}).`, "Resume --force");
  if (ok) act("resume", { force: true });
}

async function cancel() {
  if (!view) return;
  const ok = await confirmAction("Cancel this workflow?",
    `${view.id} stops now: its runner is stopped and the phase is not finished. A cancelled run cannot be `
    + "resumed (a new run starts over); its worktree is kept for inspection until the next daemon start.",
    "Cancel workflow");
  if (ok) act("cancel", {});
}
