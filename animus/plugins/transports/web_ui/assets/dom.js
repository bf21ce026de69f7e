// Small helpers every view uses: building elements (text only: data never
// goes through innerHTML), calling the REST API, toasts, confirmations,
// event streams that reconnect, and number formats.

export const $ = (sel, root = document) => root.querySelector(sel);
export const $$ = (sel, root = document) => [...root.querySelectorAll(sel)];

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key === "value") node.value = value;
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export const badge = (state) =>
  el("span", { class: `badge s-${String(state || "unknown").replace(/[^a-z-]/gi, "")}` }, state ?? "?");

export function showBanner(text) {
  const banner = $("#banner");
  banner.textContent = text;
  banner.hidden = !text;
}

export async function api(method, path, body) {
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

let toastTimer = null;
export function toast(text) {
  const box = $("#toast");
  box.textContent = text;
  box.classList.add("show");
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => box.classList.remove("show"), 4000);
}

// A modal question with the risk spelled out; resolves true only on the named action.
export function confirmAction(title, text, action) {
  const dialog = $("#confirm-dialog");
  $("#confirm-title").textContent = title;
  $("#confirm-text").textContent = text;
  $("#confirm-ok").textContent = action;
  dialog.returnValue = "";
  dialog.showModal();
  $("#confirm-cancel").focus();
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
  });
}

// Server-sent events that come back after the server went away (a daemon
// restart): the browser retries a dropped stream by itself, but gives up on
// an error answer, so this opens a fresh one. A publisher's seq only grows,
// so an event at or below the last seq seen from its src was shown already:
// what a reconnect replays from the log is not shown twice.
export function openStream(url, onEvent, onState) {
  const lastSeq = new Map(); // src -> highest seq delivered
  let source = null;
  let closed = false;
  const connect = () => {
    source = new EventSource(url);
    onState(false, "connecting…");
    source.onmessage = (msg) => {
      const ev = JSON.parse(msg.data);
      if (typeof ev.src === "string" && Number.isInteger(ev.seq)) {
        if (ev.seq <= (lastSeq.get(ev.src) ?? -1)) return;
        lastSeq.set(ev.src, ev.seq);
      }
      if (ev.kind === "stream_ready") onState(true, "live");
      onEvent(ev);
    };
    source.onerror = () => {
      onState(false, "reconnecting…");
      if (source.readyState === EventSource.CLOSED && !closed) setTimeout(connect, 2000);
    };
  };
  connect();
  return { close() { closed = true; if (source) source.close(); } };
}

export function setConn(node, on, text) {
  node.className = `conn ${on ? "on" : "off"}`;
  node.textContent = text;
}

export function fmtDuration(seconds) {
  if (seconds === null || seconds === undefined || Number.isNaN(seconds)) return "–";
  if (seconds < 1) return `${Math.round(seconds * 1000)} ms`;
  if (seconds < 60) return `${seconds.toFixed(1)} s`;
  const m = Math.floor(seconds / 60);
  return m < 60 ? `${m} min ${Math.round(seconds % 60)} s` : `${Math.floor(m / 60)} h ${m % 60} min`;
}

export const fmtTokens = (usage) =>
  usage && (usage.input_tokens || usage.output_tokens) ? `${usage.input_tokens || 0} / ${usage.output_tokens || 0}` : "–";

export const fmtCost = (usage) =>
  usage && typeof usage.cost_usd === "number" ? `$${usage.cost_usd.toFixed(4)}` : "–";

export const shortSha = (sha) => (sha ? String(sha).slice(0, 10) : "");
