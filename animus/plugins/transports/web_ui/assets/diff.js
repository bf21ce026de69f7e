// A run's changes: its branch against its base, file by file, with what
// delivery did (commit, merge, pull request). From GET /api/workflows/{id}/diff.

import { $, api, el, shortSha } from "./dom.js";

const LETTER = { added: "A", modified: "M", deleted: "D", "type-changed": "T", unmerged: "U" };
const OPEN_UP_TO = 20; // files shown opened when there are this few

function patchLine(line) {
  let cls = "ctx";
  if (line.startsWith("+++") || line.startsWith("---") || line.startsWith("diff --git") || line.startsWith("index ")
      || line.startsWith("new file") || line.startsWith("deleted file")) cls = "meta";
  else if (line.startsWith("@@")) cls = "hunk";
  else if (line.startsWith("+")) cls = "add";
  else if (line.startsWith("-")) cls = "del";
  return el("span", { class: cls }, `${line}\n`);
}

function counts(file) {
  if (file.binary) return el("span", { class: "muted" }, "binary");
  return el("span", {}, el("span", { class: "plus" }, `+${file.added ?? "?"}`), " ",
    el("span", { class: "minus" }, `−${file.deleted ?? "?"}`));
}

function fileBlock(file, open) {
  const lines = file.patch ? file.patch.replace(/\n$/, "").split("\n") : [];
  return el("details", { class: "file", dataset: { path: file.path, status: file.status }, open },
    el("summary", {}, el("span", { class: `letter st-${file.status}` }, LETTER[file.status] || "?"), " ",
      el("code", {}, file.path), " ", counts(file)),
    file.patch ? el("pre", { class: "patch" }, lines.map(patchLine))
      : el("p", { class: "muted omitted" }, `patch not shown: ${file.omitted || "nothing to show"}`));
}

const safeUrl = (url) => (/^https?:\/\//.test(String(url || "")) ? String(url) : null);

function delivery(diff) {
  const out = diff.delivery || {};
  const parts = [];
  if (out.commit) parts.push(el("div", {}, "commit ", el("code", {}, shortSha(out.commit))));
  const merge = out.merge || {};
  if (merge.target) {
    parts.push(el("div", { class: "merged" }, `${merge.strategy || "merge"} into ${merge.target}: `,
      merge.already_merged ? "already merged" : el("code", {}, shortSha(merge.merged))));
  }
  if (out.state === "blocked") {
    parts.push(el("div", { class: "err" }, `delivery blocked (${out.reason || "?"})${out.message ? `: ${out.message}` : ""}`));
  }
  const pr = out.pr || {};
  if (pr.number) {
    const url = safeUrl(pr.url);
    parts.push(el("div", {}, "pull request ",
      url ? el("a", { href: url, target: "_blank", rel: "noreferrer noopener" }, `#${pr.number}`) : `#${pr.number}`));
  }
  if (!parts.length) {
    parts.push(el("div", { class: "muted" }, diff.source === "worktree"
      ? "not delivered: the work is in the run's worktree" : "no delivery recorded"));
  }
  return el("div", { class: "delivery" }, parts);
}

export function renderDiff(box, diff) {
  const openPaths = new Set([...box.querySelectorAll("details.file[open]")].map((d) => d.dataset.path));
  const firstTime = !box.dataset.loaded;
  box.dataset.loaded = "1";
  const added = diff.files.reduce((n, f) => n + (f.added || 0), 0);
  const deleted = diff.files.reduce((n, f) => n + (f.deleted || 0), 0);
  const where = diff.source === "worktree"
    ? `the worktree ${diff.worktree.path} (uncommitted work included)` : `commit ${shortSha(diff.head)}`;
  box.replaceChildren(
    el("div", { class: "diff-head" },
      el("div", {}, "branch ", el("code", { id: "diff-branch" }, diff.branch), ` from ${shortSha(diff.base)}: `, where),
      delivery(diff),
      el("div", { id: "diff-summary" }, `${diff.total_files} file(s) changed, +${added} −${deleted}`),
      diff.truncated ? el("div", { class: "err" }, `only the first ${diff.files.length} files are listed`) : null),
    ...diff.files.map((f) => fileBlock(f, openPaths.has(f.path) || (firstTime && diff.files.length <= OPEN_UP_TO))));
}

export async function loadDiff(box, id) {
  try {
    renderDiff(box, await api("GET", `/api/workflows/${encodeURIComponent(id)}/diff`));
  } catch (err) {
    box.replaceChildren(el("p", { class: "muted" }, `no changes to show: ${err.message}`));
    delete box.dataset.loaded;
  }
}

export const diffBox = () => $("#diff");
