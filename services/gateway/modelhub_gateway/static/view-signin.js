// The sign-in form: a token, checked against GET /users/me before it is kept.
import { api, clearToken, setToken } from "./api.js";
import { clear, field, h } from "./dom.js";

/** Show the form in `view`; `onSignedIn(user)` runs once a token is accepted. */
export function signInView(view, message, onSignedIn) {
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
    let user;
    try {
      user = await api("GET", `/users/me`, undefined, { quiet: true });
    } catch (exc) {
      if (exc.status !== 401) {
        clearToken();
        error.textContent = exc.detail || String(exc);
        error.hidden = false;
        submit.disabled = false;
      }
      return;
    }
    onSignedIn(user);
  });
  clear(view, h("div", { class: "signin-wrap" }, form));
  input.focus();
}
