// Small SVG charts on the overview, from GET /api/charts (counted in the
// transport from the event log and the runs): restarts and disabled children
// over time, runs per hour by outcome, cost per provider per hour, and the
// costliest tasks. Every number a person needs is written as text (totals,
// axis ends, legends), so nothing needs a hover; the <title>s add detail.
// Built with createElementNS: no markup strings, so the CSP and the
// no-innerHTML rule hold.

import { $, api, el } from "./dom.js";

const NS = "http://www.w3.org/2000/svg";
const W = 560; // viewBox width; the SVG scales to its box
const OUTCOMES = ["completed", "failed", "blocked", "cancelled"];

function svg(tag, attrs = {}, ...children) {
  const node = document.createElementNS(NS, tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, String(value));
  for (const child of children.flat()) {
    if (child !== null && child !== undefined) node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

const hourLabel = (ts) => `${String(new Date(ts * 1000).getHours()).padStart(2, "0")}:00`;
const money = (usd) => `$${usd < 10 ? usd.toFixed(4) : usd.toFixed(2)}`;
const sum = (values) => values.reduce((a, b) => a + b, 0);

function axis(hours, height, left) {
  const end = hours[hours.length - 1] + 3600;
  return [
    svg("line", { x1: left, x2: W, y1: height, y2: height, class: "axis" }),
    svg("text", { x: left, y: height + 12, class: "tick" }, hourLabel(hours[0])),
    svg("text", { x: W, y: height + 12, class: "tick", "text-anchor": "end" }, `${hourLabel(end)} (now)`),
  ];
}

function legend(entries) {
  return el("div", { class: "legend" }, entries.map(([cls, text]) =>
    el("span", { class: "key" }, el("i", { class: cls }), text)));
}

// Stacked bars, one per hour; series: {name: [value per hour]}.
function stacked(hours, series, colour, fmt) {
  const names = Object.keys(series).filter((n) => sum(series[n]) > 0);
  const totals = hours.map((_, i) => sum(names.map((n) => series[n][i])));
  const max = Math.max(...totals, 0);
  if (!max) return null;
  const height = 90;
  const left = 40;
  const step = (W - left) / hours.length;
  const bars = [];
  hours.forEach((ts, i) => {
    let y = height;
    for (const name of names) {
      const value = series[name][i];
      if (!value) continue;
      const h = Math.max(1, (value / max) * (height - 4));
      y -= h;
      bars.push(svg("rect", { x: left + i * step + 1, y, width: Math.max(1, step - 2), height: h, class: colour(name) },
        svg("title", {}, `${hourLabel(ts)}: ${name} ${fmt(value)}`)));
    }
  });
  return {
    picture: svg("svg", { viewBox: `0 0 ${W} ${height + 16}`, class: "chart", role: "img" },
      svg("text", { x: 0, y: 10, class: "tick" }, fmt(max)),
      svg("text", { x: 0, y: height, class: "tick" }, fmt(0)),
      ...bars, ...axis(hours, height, left)),
    keys: names.map((n) => [colour(n), `${n} ${fmt(sum(series[n]))}`]),
  };
}

function restartTimeline(data) {
  const rows = data.timeline;
  if (!rows.length) return null;
  const start = data.hours[0];
  const span = data.now - start;
  const left = 150;
  const x = (ts) => left + ((Math.max(ts, start) - start) / span) * (W - left);
  const rowH = 18;
  const height = rows.length * rowH + 4;
  const parts = rows.flatMap((row, i) => {
    const y = 4 + i * rowH;
    const crashes = row.marks.filter((m) => m.kind === "crashed").length;
    const restarts = row.marks.filter((m) => m.kind === "restarted").length;
    const off = row.disabled.some((s) => s[1] === null);
    const words = [crashes && `${crashes}✖`, restarts && `${restarts}↻`, off && "disabled"].filter(Boolean).join(" ");
    return [
      svg("text", { x: 0, y: y + 11, class: off ? "label bad" : "label" }, `${row.child} ${words}`),
      svg("line", { x1: left, x2: W, y1: y + 7, y2: y + 7, class: "lane" }),
      ...row.disabled.map(([from, to]) => svg("rect", {
        x: x(from), y: y + 2, width: Math.max(2, x(to ?? data.now) - x(from)), height: 10, class: "disabled" },
      svg("title", {}, `${row.child} disabled ${hourLabel(from)}${to ? `–${hourLabel(to)}` : ", still"}`))),
      ...row.marks.filter((m) => m.kind !== "disabled").map((m) => svg("circle", {
        cx: x(m.ts), cy: y + 7, r: 4, class: m.kind === "crashed" ? "crashed" : "restarted" },
      svg("title", {}, `${row.child} ${m.kind} at ${new Date(m.ts * 1000).toLocaleTimeString()}${m.reason ? `: ${m.reason}` : ""}`))),
    ];
  });
  return svg("svg", { viewBox: `0 0 ${W} ${height + 16}`, class: "chart", role: "img" },
    ...parts, ...axis(data.hours, height, left));
}

function costPerTask(rows) {
  if (!rows.length) return null;
  const max = rows[0].cost_usd;
  const left = 150;
  const rowH = 18;
  return svg("svg", { viewBox: `0 0 ${W} ${rows.length * rowH + 4}`, class: "chart", role: "img" },
    rows.flatMap((row, i) => {
      const width = Math.max(2, (row.cost_usd / max) * (W - left - 90));
      return [
        svg("text", { x: 0, y: i * rowH + 13, class: "label" }, row.task),
        svg("rect", { x: left, y: i * rowH + 3, width, height: 12, class: "c0" }),
        svg("text", { x: left + width + 4, y: i * rowH + 13, class: "tick" }, `${money(row.cost_usd)} · ${row.runs} run(s)`),
      ];
    }));
}

function figure(id, title, picture, empty, keys = []) {
  $(id).replaceChildren(el("h3", {}, title), picture || el("p", { class: "muted empty" }, empty),
    ...(keys.length ? [legend(keys)] : []));
}

export function renderCharts(data) {
  const hours = data.hours.length;
  figure("#chart-restarts", `Restarts and disabled plugins, last ${hours} h`, restartTimeline(data),
    "Nothing crashed, restarted or was disabled.", data.timeline.length
      ? [["crashed", "crashed"], ["restarted", "restarted"], ["disabled", "disabled"]] : []);
  const runs = stacked(data.hours, data.runs_per_hour, (n) => `o-${n}`, (v) => String(Math.round(v)));
  const runKeys = runs ? OUTCOMES.map((o) => [`o-${o}`, `${o} ${sum(data.runs_per_hour[o] || [])}`]) : [];
  figure("#chart-runs", `Runs per hour by outcome, last ${hours} h`, runs && runs.picture, "No run ended.", runKeys);
  const names = Object.keys(data.cost_per_provider);
  const cost = stacked(data.hours, data.cost_per_provider, (n) => `c${names.indexOf(n) % 6}`, money);
  figure("#chart-cost-provider", `Cost per provider per hour, last ${hours} h`, cost && cost.picture,
    "No agent cost recorded.", cost ? cost.keys : []);
  figure("#chart-cost-task", "Cost per task (costliest, all runs)", costPerTask(data.cost_per_task),
    "No task has cost anything yet.");
  $("#charts-note").textContent = data.truncated ? "The log was read only so far back: older events are not counted." : "";
}

export async function refreshCharts() {
  try {
    renderCharts(await api("GET", "/api/charts?hours=24"));
  } catch (err) {
    $("#charts-note").textContent = `charts unavailable: ${err.message}`;
  }
}
