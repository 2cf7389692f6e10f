// Datasets menu: the list of datasets and the "Create Dataset" button.
import { api, enc } from "./api.js";
import { clear, fmtDate, h } from "./dom.js";
import { createDatasetDialog } from "./dialog-create-dataset.js";

export async function datasetsView(view) {
  const { items } = await api("GET", `/datasets`);
  items.sort((a, b) => a.name.localeCompare(b.name));
  clear(view,
    h("div", { class: "page-head" }, h("h1", {}, "Datasets"),
      h("button", { type: "button", class: "primary", onclick: createDatasetDialog }, "Create Dataset")),
    items.length
      ? h("table", { class: "table" },
        h("thead", {}, h("tr", {}, ["Name", "Owner", "Samples", "Created"].map((c) =>
          h("th", { scope: "col", class: c === "Samples" ? "num" : "" }, c)))),
        h("tbody", {}, items.map((d) => h("tr", {},
          h("td", {}, h("a", { href: `#/datasets/${enc(d.name)}`, class: "strong" }, d.name),
            d.description ? h("div", { class: "muted clamp" }, d.description) : null),
          h("td", {}, d.owner),
          h("td", { class: "num" }, d.num_samples.toLocaleString()),
          h("td", {}, fmtDate(d.created_at))))))
      : h("div", { class: "empty" }, h("p", {}, "No datasets yet. Click “Create Dataset”, then add file paths.")));
}
