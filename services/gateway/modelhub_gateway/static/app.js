// modelhub web UI: a hash-routed single-page app with no dependencies and no build step.
// This module is the router: it imports the views; nothing imports it.
import { api, ApiError, clearToken, configure, getToken, setToken } from "./api.js";
import { clear, h } from "./dom.js";
import { currentUser, setCurrentUser, stopTimers, toast } from "./ui.js";
import { signInView } from "./view-signin.js";
import { modelsView } from "./view-models.js";
import { modelView } from "./view-model.js";
import { deploymentsView } from "./view-deployments.js";
import { datasetsView } from "./view-datasets.js";
import { datasetView } from "./view-dataset.js";
import { usersView } from "./view-users.js";

const view = document.getElementById("view");

// Models that run outside their jail (`modelhub up --allow-unsealed`) are said on every page.
async function showUnsealed() {
  try {
    const health = await api("GET", `/health`, undefined, { quiet: true });
    const models = (health && health.models) || "";
    if (!models.startsWith("UNSEALED")) return;
    const banner = h("div", { class: "unsealed", role: "alert", id: "unsealed" }, `Models run ${models}`);
    document.body.insertBefore(banner, document.body.firstChild);
  } catch {
    /* health unreachable or degraded (503): the pages say so themselves */
  }
}
showUnsealed();

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
  if (!currentUser()) {
    try {
      setCurrentUser(await api("GET", `/users/me`));
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
    await render(section, name, params);
  } catch (exc) {
    if (exc instanceof ApiError && exc.status === 401) return;
    clear(view, h("div", { class: "empty" }, h("h1", {}, exc.status === 404 ? "Not found" : "Something went wrong"),
      h("p", {}, exc.detail || exc.message || String(exc)),
      h("p", {}, h("a", { href: `#/${section || "models"}` }, "Back"))));
  }
}

function render(section, name, params) {
  if (section === "models" && name) return modelView(view, name);
  if (section === "models") return modelsView(view);
  if (section === "deployments") return deploymentsView(view);
  if (section === "datasets" && name) return datasetView(view, name, params);
  if (section === "datasets") return datasetsView(view);
  if (section === "users" && currentUser().is_admin) return usersView(view);
  clear(view, h("div", { class: "empty" }, h("h1", {}, "Not found"),
    h("p", {}, h("a", { href: "#/models" }, "Go to Models"))));
}

function showUser() {
  const me = currentUser();
  document.getElementById("nav").hidden = false;
  document.getElementById("who").hidden = false;
  document.getElementById("nav-users").hidden = !me.is_admin;
  document.getElementById("who-name").textContent =
    `Signed in as ${me.username}${me.is_admin ? " (admin)" : ""}`;
}

function hideUser() {
  document.getElementById("nav").hidden = true;
  document.getElementById("who").hidden = true;
}

function signIn(message) {
  stopTimers();
  hideUser();
  signInView(view, message, (user) => {
    setCurrentUser(user);
    showUser();
    if (!location.hash || location.hash === "#/signin") location.hash = "#/models";
    else route();
  });
}

function signOut() {
  clearToken();
  setCurrentUser(null);
  signIn();
}

configure({
  onUnauthorized: () => {
    clearToken();
    setCurrentUser(null);
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
