// modelhub web UI: a hash-routed single-page app with no dependencies and no build step.
import { api, ApiError, clearToken, configure, getToken, setToken } from "./api.js";
import { clear, field, h } from "./dom.js";
import { modelsView, modelView } from "./models.js";
import { deploymentsView } from "./deployments.js";
import { datasetsView, datasetView } from "./datasets.js";

const view = document.getElementById("view");
const toasts = document.getElementById("toasts");
let me = null;

// ------------------------------------------------------------------ toasts

export function toast(message, kind = "error") {
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
function stopTimers() {
  viewTimers.forEach(clearInterval);
  viewTimers = [];
}

// ------------------------------------------------------------------ routing

export function go(hash) {
  if (location.hash === hash) route();
  else location.hash = hash;
}

export function currentUser() {
  return me;
}

function parseRoute() {
  const raw = location.hash.replace(/^#/, "") || "/models";
  const [pathPart, query = ""] = raw.split("?");
  const parts = pathPart.split("/").filter(Boolean).map(decodeURIComponent);
  return { parts, params: new URLSearchParams(query) };
}

// `#token=...` (optionally `&next=/datasets/x`) signs in from a link, then clears the fragment.
function takeTokenFromFragment() {
  if (!location.hash.startsWith("#token=")) return;
  const params = new URLSearchParams(location.hash.slice(1));
  setToken(params.get("token") || "");
  const next = params.get("next") || "/models";
  history.replaceState(null, "", `${location.pathname}${location.search}#${next}`);
}

async function route() {
  stopTimers();
  document.querySelectorAll("dialog").forEach((d) => d.remove());
  if (!getToken()) return signIn();
  if (!me) {
    try {
      me = await api("GET", `/users/me`);
    } catch (exc) {
      if (exc instanceof ApiError && exc.status === 401) return; // onUnauthorized already showed sign-in
      clear(view, h("div", { class: "empty" }, h("h1", {}, "Cannot load modelhub"),
        h("p", {}, exc.detail || String(exc)), h("button", { type: "button", onclick: route }, "Try again")));
      return;
    }
    showUser();
  }
  const { parts, params } = parseRoute();
  const [section, name] = parts;
  document.querySelectorAll("#nav a").forEach((a) => {
    if (a.dataset.section === section) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  });
  clear(view, h("p", { class: "muted loading" }, "Loading…"));
  try {
    if (section === "models" && name) await modelView(view, name);
    else if (section === "models") await modelsView(view);
    else if (section === "deployments") await deploymentsView(view);
    else if (section === "datasets" && name) await datasetView(view, name, params);
    else if (section === "datasets") await datasetsView(view);
    else clear(view, h("div", { class: "empty" }, h("h1", {}, "Not found"),
      h("p", {}, h("a", { href: "#/models" }, "Go to Models"))));
  } catch (exc) {
    if (exc instanceof ApiError && exc.status === 401) return;
    clear(view, h("div", { class: "empty" }, h("h1", {}, exc.status === 404 ? "Not found" : "Something went wrong"),
      h("p", {}, exc.detail || exc.message || String(exc)),
      h("p", {}, h("a", { href: `#/${section || "models"}` }, "Back"))));
  }
}

function showUser() {
  document.getElementById("nav").hidden = false;
  document.getElementById("who").hidden = false;
  document.getElementById("who-name").textContent =
    `Signed in as ${me.username}${me.is_admin ? " (admin)" : ""}`;
}

function signOut() {
  clearToken();
  me = null;
  document.getElementById("nav").hidden = true;
  document.getElementById("who").hidden = true;
  signIn();
}

function signIn(message) {
  stopTimers();
  document.getElementById("nav").hidden = true;
  document.getElementById("who").hidden = true;
  const input = h("input", { type: "password", name: "token", required: true, autocomplete: "current-password",
    placeholder: "Paste your token (admin: the data dir's admin-token file)", spellcheck: "false" });
  const error = h("p", { class: "form-error", role: "alert", hidden: !message }, message || "");
  const submit = h("button", { type: "submit", class: "primary" }, "Sign in");
  const form = h("form", { class: "card signin" },
    h("h1", {}, "Sign in to modelhub"),
    field("Access token", input,
      "The admin's token is in the file admin-token in the stack's data dir (e.g. ~/.modelhub/admin-token). " +
      "Other users get theirs when the admin runs `modelhub users create NAME`."),
    error, h("div", { class: "actions" }, submit));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    submit.disabled = true;
    setToken(input.value);
    try {
      me = await api("GET", `/users/me`, undefined, { quiet: true });
    } catch (exc) {
      if (exc.status !== 401) {
        clearToken();
        error.textContent = exc.detail || String(exc);
        error.hidden = false;
        submit.disabled = false;
      }
      return;
    } 
    showUser();
    if (!location.hash || location.hash === "#/signin") location.hash = "#/models";
    else route();
  });
  clear(view, h("div", { class: "signin-wrap" }, form));
  input.focus();
}

configure({
  onUnauthorized: () => {
    clearToken();
    me = null;
    signIn("That token was not accepted (401). Sign in again.");
  },
  onError: (exc) => toast(exc.detail || exc.message || String(exc)),
});

window.addEventListener("unhandledrejection", (event) => {
  // ApiErrors were already reported by api(); anything else is a bug worth showing
  if (!(event.reason instanceof ApiError)) toast(String(event.reason && event.reason.message || event.reason));
});
document.getElementById("signout").addEventListener("click", signOut);
window.addEventListener("hashchange", route);
takeTokenFromFragment();
route();
