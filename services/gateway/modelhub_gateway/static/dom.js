// DOM helpers. Server strings (names, tags, fields, errors) are user input: they only ever
// reach the page as text nodes / textContent / attribute values through h(), never as HTML.

/** The single escape helper, for the rare place that needs an HTML string. */
export function esc(value) {
  return String(value ?? "").replace(/[&<>"']/g, (c) =>
    ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}

/**
 * h("button", {class: "primary", onclick: fn, disabled: true}, "Save", child, [more])
 * Strings and numbers become text nodes; null/false/undefined children are skipped.
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value == null || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") {
      el.addEventListener(key.slice(2), value);
    } else if (key === "class") {
      el.className = value;
    } else if (key === "text") {
      el.textContent = value;
    } else if (key === "value") {
      el.value = value;
    } else if (key === "checked" || key === "selected") {
      el[key] = Boolean(value);
    } else if (key === "dataset") {
      Object.assign(el.dataset, value);
    } else {
      el.setAttribute(key, value === true ? "" : String(value));
    }
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child == null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export function clear(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

/** Our own static SVG markup (never server data) turned into an element. */
export function svg(markup) {
  const template = document.createElement("template");
  template.innerHTML = markup.trim();
  return template.content.firstElementChild;
}

export const ICONS = {
  suitcase: `<svg viewBox="0 0 24 24" width="18" height="18" aria-hidden="true" focusable="false"
    fill="none" stroke="currentColor" stroke-width="1.8" stroke-linecap="round" stroke-linejoin="round">
    <rect x="3" y="7" width="18" height="13" rx="2"/><path d="M9 7V5a2 2 0 0 1 2-2h2a2 2 0 0 1 2 2v2"/>
    <path d="M3 12h18"/><path d="M10 12v2h4v-2"/></svg>`,
  close: `<svg viewBox="0 0 24 24" width="16" height="16" aria-hidden="true" focusable="false"
    fill="none" stroke="currentColor" stroke-width="2" stroke-linecap="round"><path d="M6 6l12 12M18 6L6 18"/></svg>`,
};

/** Dates from the server are UTC; naive ISO strings get a Z so the browser shows local time. */
export function fmtDate(value) {
  if (!value) return "—";
  const iso = /[zZ]|[+-]\d\d:?\d\d$/.test(value) ? value : `${value}Z`;
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? String(value) : date.toLocaleString();
}

export function fmtBytes(n) {
  if (n == null) return "—";
  const units = ["B", "KiB", "MiB", "GiB"];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i += 1;
  }
  return `${i ? v.toFixed(1) : v} ${units[i]}`;
}

/** A <dialog> with a form: title, body nodes, and action buttons; returns {dialog, form, close}. */
export function modal({ title, body, submitLabel = "Save", onSubmit, wide = false, danger = false, noCancel = false }) {
  const error = h("p", { class: "form-error", role: "alert", hidden: true });
  const submit = h("button", { type: "submit", class: danger ? "danger" : "primary" }, submitLabel);
  const cancel = h("button", { type: "button", class: "secondary", onclick: () => close() }, "Cancel");
  const titleId = `dlg-${Math.random().toString(36).slice(2)}`;
  const form = h("form", { method: "dialog", novalidate: false },
    h("header", { class: "dialog-head" },
      h("h2", { id: titleId }, title),
      h("button", { type: "button", class: "icon", "aria-label": "Close", onclick: () => close() }, svg(ICONS.close))),
    h("div", { class: "dialog-body" }, body, error),
    h("footer", { class: "dialog-actions" }, noCancel ? null : cancel, submit));
  const dialog = h("dialog", { class: wide ? "wide" : "", "aria-labelledby": titleId }, form);
  const close = () => {
    dialog.close();
    dialog.remove();
  };
  dialog.addEventListener("close", () => dialog.remove());
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.hidden = true;
    submit.disabled = true;
    try {
      const keepOpen = await onSubmit(form);
      if (!keepOpen) close();
    } catch (exc) {
      error.textContent = exc.detail || exc.message || String(exc);
      error.hidden = false;
    } finally {
      submit.disabled = false;
    }
  });
  document.body.append(dialog);
  dialog.showModal();
  return { dialog, form, close, error };
}

/** A labelled form control: field("Deploy Name", input, "help text"). */
export function field(label, control, help) {
  const id = control.id || `f-${Math.random().toString(36).slice(2)}`;
  control.id = id;
  const helpEl = help ? h("small", { class: "help", id: `${id}-help` }, help) : null;
  if (helpEl) control.setAttribute("aria-describedby", helpEl.id);
  return h("div", { class: "field" }, h("label", { for: id }, label), control, helpEl);
}
