// What every view and dialog shares: toasts, per-view timers, navigation, the signed-in user,
// status badges and name rules. It imports no view, so views may import it freely.
import { h } from "./dom.js";

export const NAME_PATTERN = "[A-Za-z0-9_.\\-]{1,64}";
export const NAME_HELP = "1–64 letters, digits, '-', '_' or '.'; unique (case-insensitively).";

// ------------------------------------------------------------------ toasts

export function toast(message, kind = "error") {
  const toasts = document.getElementById("toasts");
  // the same message already showing (e.g. from a poll) is not stacked again
  for (const existing of toasts.children) {
    if (existing.dataset.message === message) return;
  }
  const close = h("button", { type: "button", class: "icon", "aria-label": "Dismiss" }, "×");
  const el = h("div", { class: `toast ${kind}`, role: kind === "error" ? "alert" : "status",
    dataset: { message } }, h("span", {}, message), close);
  const remove = () => el.remove();
  close.addEventListener("click", remove);
  toasts.append(el);
  while (toasts.children.length > 3) toasts.firstElementChild.remove(); // the newest few, not a pile
  setTimeout(remove, kind === "error" ? 10000 : 4000);
}

// ------------------------------------------------------------------ per-view timers

// Every poll belongs to the view that started it; navigating away stops them all.
let viewTimers = [];
export function every(ms, fn) {
  const id = setInterval(fn, ms);
  viewTimers.push(id);
  return () => {
    clearInterval(id);
    viewTimers = viewTimers.filter((t) => t !== id);
  };
}

// Streams (job events) belong to the view too: leaving it aborts them.
let viewStreams = [];
export function viewSignal() {
  const controller = new AbortController();
  viewStreams.push(controller);
  return controller.signal;
}

export function stopTimers() {
  viewTimers.forEach(clearInterval);
  viewTimers = [];
  viewStreams.forEach((c) => c.abort());
  viewStreams = [];
}

// ------------------------------------------------------------------ navigation and the user

/** Show `hash`; the router listens to hashchange, so the same hash is re-rendered by a synthetic one. */
export function go(hash) {
  if (location.hash === hash) window.dispatchEvent(new HashChangeEvent("hashchange"));
  else location.hash = hash;
}

let me = null;
export const currentUser = () => me;
export const setCurrentUser = (user) => { me = user; };

// ------------------------------------------------------------------ small shared renderings

export function statusBadge(status) {
  return h("span", { class: `badge status-${status}` }, status);
}

// A deployment's replicas: ready of its target ("2/3"; autoscaled: ready of min-max), and "scaled
// to zero" while a min_replicas-0 deployment is running idle with none (a call wakes it).
export function scaledToZero(d) {
  return d.status === "running" && d.max_replicas != null && d.min_replicas === 0 && d.ready_replicas === 0;
}

export function replicasText(d) {
  if (scaledToZero(d)) return "scaled to zero";
  return d.max_replicas != null
    ? `${d.ready_replicas}/${d.min_replicas}–${d.max_replicas}`
    : `${d.ready_replicas}/${d.num_replicas}`;
}

export function sharingSummary(sharing) {
  const users = Object.keys((sharing && sharing.users) || {}).length;
  const everyone = (sharing && sharing.everyone) || "none";
  const parts = [];
  if (everyone !== "none") parts.push(`everyone: ${everyone}`);
  if (users) parts.push(`${users} user${users === 1 ? "" : "s"}`);
  return parts.length ? parts.join(", ") : "private";
}

export const tagChips = (tags) => h("span", { class: "chips" }, (tags || []).map((t) => h("span", { class: "chip tag" }, t)));

/** An ARIA tablist over `tabs` [{id, label, body}]; the chosen tab is remembered under `storageKey`. */
export function tabSet(tabs, { label, initial, storageKey }) {
  let active = initial || localStorage.getItem(storageKey) || tabs[tabs.length - 1].id;
  const buttons = tabs.map((t) => h("button", { type: "button", role: "tab", id: `tab-${t.id}`,
    "aria-controls": `tabpanel-${t.id}`, onclick: () => select(t.id) }, t.label));
  const panels = tabs.map((t) => h("div", { role: "tabpanel", id: `tabpanel-${t.id}`, "aria-labelledby": `tab-${t.id}` }, t.body));
  const select = (id) => {
    active = id;
    localStorage.setItem(storageKey, id);
    tabs.forEach((t, i) => {
      buttons[i].setAttribute("aria-selected", String(t.id === id));
      buttons[i].tabIndex = t.id === id ? 0 : -1;
      panels[i].hidden = t.id !== id;
    });
  };
  const list = h("div", { role: "tablist", "aria-label": label, class: "tabs" }, buttons);
  list.addEventListener("keydown", (e) => {
    if (e.key !== "ArrowLeft" && e.key !== "ArrowRight") return;
    const i = tabs.findIndex((t) => t.id === active);
    const j = (i + (e.key === "ArrowRight" ? 1 : tabs.length - 1)) % tabs.length;
    select(tabs[j].id);
    buttons[j].focus();
  });
  select(tabs.some((t) => t.id === active) ? active : tabs[tabs.length - 1].id);
  return { list, panels, select };
}
