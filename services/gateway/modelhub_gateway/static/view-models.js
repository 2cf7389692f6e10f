// Models menu: the list of models and the "Create Model" button.
import { api, enc } from "./api.js";
import { clear, fmtDate, h } from "./dom.js";
import { sharingSummary, tagChips } from "./ui.js";
import { createModelDialog } from "./dialog-create-model.js";

export async function modelsView(view) {
  const { items } = await api("GET", `/models`);
  const rows = items.map((m) => h("tr", {},
    h("td", {}, h("a", { href: `#/models/${enc(m.name)}`, class: "strong" }, m.name),
      m.description ? h("div", { class: "muted clamp" }, m.description) : null),
    h("td", {}, m.owner),
    h("td", {}, tagChips(m.tags)),
    h("td", { class: "num" }, m.versions.length),
    h("td", {}, h("span", { class: `share ${m.sharing.everyone !== "none" ? "public" : ""}` }, sharingSummary(m.sharing))),
    h("td", {}, fmtDate(m.updated_at))));
  clear(view,
    h("div", { class: "page-head" }, h("h1", {}, "Models"),
      h("button", { type: "button", class: "primary", onclick: createModelDialog }, "Create Model")),
    items.length
      ? h("table", { class: "table" },
        h("thead", {}, h("tr", {}, ["Name", "Owner", "Tags", "Versions", "Sharing", "Updated"].map((c) =>
          h("th", { scope: "col", class: c === "Versions" ? "num" : "" }, c)))),
        h("tbody", {}, rows))
      : h("div", { class: "empty" }, h("p", {}, "No models yet. Click “Create Model” to register one.")));
}
