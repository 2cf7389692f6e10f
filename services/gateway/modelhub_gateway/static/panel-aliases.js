// A model's aliases (prod → v3) on its page: set or move one, remove one, and each one's history,
// oldest first. `changed()` re-reads the page after a change.
import { api, enc } from "./api.js";
import { clear, fmtDate, h } from "./dom.js";
import { toast } from "./ui.js";

const ALIAS_PATTERN = "[A-Za-z][A-Za-z0-9_\\-]{0,63}";

export function aliasesPanel(model, versions, canEdit, changed) {
  const noEdit = canEdit ? null : "You need edit rights on this model";
  const history = h("div", { class: "alias-history", hidden: true, "aria-live": "polite" });
  const showHistory = async (alias) => {
    history.hidden = false;
    clear(history, h("p", { class: "muted small" }, "Loading…"));
    try {
      const { items } = await api("GET", `/models/${enc(model.name)}/aliases/${enc(alias)}/history`, undefined, { quiet: true });
      clear(history, h("h3", {}, `History of @${alias}`, h("span", { class: "muted small" }, " (oldest first)")),
        h("ol", { class: "plain" }, items.map((c) => h("li", {},
          h("strong", {}, c.version === null ? "removed" : `v${c.version}`),
          h("span", { class: "muted small" }, ` by ${c.set_by}, ${fmtDate(c.set_at)}`)))));
    } catch (exc) {
      clear(history, h("p", { class: "error-text" }, exc.detail || String(exc)));
    }
  };
  const remove = async (alias, button) => {
    button.disabled = true;
    try {
      await api("DELETE", `/models/${enc(model.name)}/aliases/${enc(alias)}`);
      toast(`Removed @${alias}`, "ok");
      await changed();
    } catch {
      button.disabled = false;
    }
  };

  const entries = Object.entries(model.aliases || {}).sort(([a], [b]) => a.localeCompare(b));
  const table = entries.length
    ? h("table", { class: "table compact" },
      h("thead", {}, h("tr", {}, ["Alias", "Version", ""].map((c) => h("th", { scope: "col" }, c)))),
      h("tbody", {}, entries.map(([alias, version]) => {
        const removeBtn = h("button", { type: "button", class: "secondary small", disabled: !canEdit, title: noEdit,
          "aria-label": `Remove alias ${alias}` }, "Remove");
        removeBtn.addEventListener("click", () => remove(alias, removeBtn));
        return h("tr", {},
          h("td", { class: "strong" }, `@${alias}`),
          h("td", {}, `v${version}`),
          h("td", {}, h("button", { type: "button", class: "link small", onclick: () => showHistory(alias),
            "aria-label": `History of alias ${alias}` }, "History"), " ", removeBtn));
      })))
    : h("p", { class: "muted" }, "No aliases. Name a version (prod, staging, …) and deploy it as @name.");

  const name = h("input", { required: true, pattern: ALIAS_PATTERN, maxlength: 64, placeholder: "prod", autocomplete: "off",
    "aria-label": "Alias name", title: "A letter, then letters, digits, '_' or '-' (up to 64)", disabled: !canEdit });
  const version = h("select", { "aria-label": "Version the alias points to", disabled: !canEdit },
    versions.map((v) => h("option", { value: String(v.version) }, `v${v.version}`)));
  const setBtn = h("button", { type: "submit", class: "secondary", disabled: !canEdit || !versions.length, title: noEdit },
    "Set alias");
  const form = h("form", { class: "inline" }, name, version, setBtn);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const alias = name.value.trim();
    setBtn.disabled = true;
    try {
      await api("PUT", `/models/${enc(model.name)}/aliases/${enc(alias)}`, { version: Number(version.value) });
      toast(`@${alias} → v${version.value}`, "ok");
      await changed();
    } catch {
      setBtn.disabled = false;
    }
  });
  return h("section", { class: "card" }, h("h2", {}, "Aliases"), table, form,
    h("small", { class: "help" }, "Moving or removing an alias keeps its history; running deployments keep their version."),
    history);
}
