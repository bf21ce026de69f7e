// A run's output as it happens: command lines, agent text token by token,
// tool calls and their results, permission denials, usage-limit waits, phase
// boundaries and git steps, one event at a time into a <pre>. The same
// function renders the events replayed from the log for a page opened late.

import { el, fmtDuration } from "./dom.js";

const GIT_KINDS = new Set(["worktree_created", "worktree_reused", "worktree_skipped", "worktree_provisioned",
  "changes_committed", "branch_merged", "merge_blocked", "pr_opened", "worktree_kept", "worktree_removed",
  "task_fields_not_stored"]);
const MAX_RESULT_LINES = 12;

function summarize(value, limit = 300) {
  let text = typeof value === "string" ? value : JSON.stringify(value ?? "");
  if (value && typeof value === "object") {
    const main = value.command ?? value.cmd ?? value.file_path ?? value.path ?? value.pattern ?? value.url;
    if (typeof main === "string" || Array.isArray(main)) text = Array.isArray(main) ? main.join(" ") : main;
  }
  return text.length > limit ? `${text.slice(0, limit)}…` : text;
}

function clipLines(text) {
  const lines = String(text ?? "").split("\n");
  const kept = lines.slice(0, MAX_RESULT_LINES).join("\n");
  return lines.length > MAX_RESULT_LINES ? `${kept}\n… ${lines.length - MAX_RESULT_LINES} more line(s)` : kept;
}

export class Output {
  constructor(pre, onDenied) {
    this.pre = pre;
    this.onDenied = onDenied;
    this.agentRun = false; // true while agent tokens stream into the same span
  }

  clear() {
    this.pre.replaceChildren();
    this.agentRun = false;
  }

  write(text, cls = "") {
    const out = this.pre;
    const stick = out.scrollTop + out.clientHeight >= out.scrollHeight - 4;
    if (cls === "agent" && this.agentRun && out.lastChild) out.lastChild.append(text);
    else out.append(el("span", { class: cls }, text));
    this.agentRun = cls === "agent";
    if (stick) out.scrollTop = out.scrollHeight;
  }

  line(text, cls = "") {
    if (this.agentRun) this.write("\n");
    this.write(`${text}\n`, cls);
  }

  // One bus event (or a log entry replayed in its shape).
  show(ev) {
    const data = ev.data || {};
    const phase = ev.phase || data.phase || "";
    switch (ev.kind) {
      case "stream_gap":
        return this.line(`[${ev.missing ?? "some"} event(s) missed from ${ev.src}]`, "gap");
      case "phase_output":
        return this.line(String(data.line ?? ""), data.stream === "stderr" ? "stderr" : "");
      case "phase_started":
        return this.line(`▶ phase ${phase} started (attempt ${data.attempt ?? 1}, ${data.mode || "?"})`, "head");
      case "phase_completed":
        return this.line(`■ phase ${phase} ${data.status || ""} (${data.verdict || "?"})`
          + `${data.duration_ms !== undefined ? ` in ${fmtDuration(data.duration_ms / 1000)}` : ""}`
          + `${data.reason ? `: ${data.reason}` : ""}`, data.status === "completed" ? "head" : "stderr");
      case "agent_run_started":
        return this.line(`◇ ${data.provider || "agent"} ${data.model || ""} started`, "head");
      case "agent_text":
        return this.write(String(data.text ?? ""), "agent");
      case "agent_tool_call":
        return this.line(`⚙ ${data.name || "tool"}: ${summarize(data.input)}`, "tool");
      case "agent_tool_result":
        return this.line(`  ↳ ${clipLines(summarize(data.output, 2000))}`, data.is_error ? "stderr" : "result");
      case "agent_permission_denied":
        this.onDenied(ev);
        return this.line(`✖ permission denied: ${data.tool || "tool"} ${summarize(data.input)}`
          + `${data.message ? ` — ${data.message}` : ""}`, "denied");
      case "agent_rate_limited":
        return this.line(`⏸ usage limit${data.reset_at ? ` until ${new Date(data.reset_at * 1000).toISOString()}` : ""}`
          + `${data.message ? `: ${data.message}` : ""}`, "wait");
      case "agent_run_finished":
        return this.line(`◇ ${data.provider || "agent"} finished: ${data.verdict || "?"}${data.error ? ` (${data.error})` : ""}`,
          data.error ? "stderr" : "head");
      case "subject_created":
        return this.line(`◆ created ${data.subject_id}${data.title ? ` “${data.title}”` : ""}`, "head");
      case "subject_status_changed":
        return this.line(`◆ ${data.subject_id}: ${data.from_status || "?"} → ${data.to_status}`, "head");
      case "subject_updated":
        return this.line(`◆ ${data.subject_id} updated: ${(data.fields || []).join(", ")}`, "head");
      case "workflow_waiting":
        return this.line(`⏸ waiting: ${data.waiting || ""}`, "wait");
      default:
        if (GIT_KINDS.has(ev.kind)) return this.line(`◆ ${data.message || ev.kind}`, ev.level === "error" ? "stderr" : "head");
        if (ev.kind && ev.kind.startsWith("workflow_")) {
          const why = data.reason || data.message || "";
          return this.line(`● ${ev.kind.replace("workflow_", "").replaceAll("_", " ")}${why ? `: ${why}` : ""}`,
            ev.level === "error" ? "stderr" : "head");
        }
        if (ev.kind === "phase_approved") return this.line(`✔ phase ${phase} approved${data.note ? `: ${data.note}` : ""}`, "head");
    }
    return undefined;
  }
}
