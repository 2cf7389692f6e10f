// A dataset's page: samples on the left, the "Fields", "Execution" and "Evaluation" tabs on the
// right, and the toolbar with "Add samples" and the suitcase ("Run model").
import { api, enc } from "./api.js";
import { clear, h, ICONS, svg } from "./dom.js";
import { tabSet } from "./ui.js";
import { samplesPanel } from "./panel-samples.js";
import { executionPanel } from "./panel-execution.js";
import { evaluationPanel } from "./panel-evaluation.js";
import { addSamplesDialog } from "./dialog-add-samples.js";
import { runModelDialog } from "./dialog-run-model.js";
import { deleteDatasetDialog } from "./dialog-delete-dataset.js";

export async function datasetView(view, name, params) {
  const dataset = await api("GET", `/datasets/${enc(name)}`);
  const samples = samplesPanel(name, dataset, params);
  const execution = executionPanel(name, () => samples.load().catch(() => {}), (jobId) => samples.filterFailed(jobId));
  const evaluation = evaluationPanel(name, (evaluationName, truth, predicted) => samples.filterCell(evaluationName, truth, predicted));
  const tabs = tabSet([
    { id: "fields", label: "Fields", body: samples.fieldsTab },
    { id: "execution", label: "Execution", body: execution.element },
    { id: "evaluation", label: "Evaluation", body: evaluation.element },
  ], { label: "Dataset panel", initial: params.get("tab"), storageKey: "modelhub.panelTab" });

  const suitcase = h("button", { type: "button", class: "primary icon-btn", title: "Run model on this dataset (submit job)",
    "aria-label": "Run model (submit job)", onclick: () => runModelDialog(name, () => {
      tabs.select("execution");
      execution.load().catch(() => {});
    }) }, svg(ICONS.suitcase), h("span", {}, "Run model"));
  const exportMenu = h("select", { "aria-label": "Export the dataset", class: "secondary" },
    h("option", { value: "" }, "Export…"), h("option", { value: "jsonl" }, "JSON Lines"), h("option", { value: "csv" }, "CSV"));
  exportMenu.addEventListener("change", async () => {
    const format = exportMenu.value;
    exportMenu.value = "";
    if (format) await download(name, format).catch(() => {});
  });
  const addBtn = h("button", { type: "button", class: "secondary", onclick: () => addSamplesDialog(name, samples.load) },
    "Add samples");

  clear(view,
    h("nav", { class: "crumbs", "aria-label": "Breadcrumb" }, h("a", { href: "#/datasets" }, "Datasets"), " / ", dataset.name),
    h("div", { class: "dataset-layout" },
      h("section", { class: "dataset-main", "aria-label": "Samples" },
        h("div", { class: "page-head" },
          h("div", {}, h("h1", {}, dataset.name), h("p", { class: "muted" }, samples.count, ` · owner ${dataset.owner}`,
            dataset.description ? ` · ${dataset.description}` : "")),
          h("div", { class: "toolbar" }, exportMenu, addBtn, suitcase,
            h("button", { type: "button", class: "danger-outline", onclick: () => deleteDatasetDialog(dataset) }, "Delete"))),
        samples.filterBar, samples.samplesBox, samples.pager),
      h("aside", { class: "side-panel card", "aria-label": "Fields, execution and evaluation" }, tabs.list, tabs.panels)));
  await Promise.all([samples.load(), execution.load(), evaluation.load()]);
}

/** Save the dataset's export through the browser (the token goes in a header, so no plain link). */
async function download(name, format) {
  const blob = await api("GET", `/datasets/${enc(name)}/export?format=${format}`, undefined, { blob: true });
  const url = URL.createObjectURL(blob);
  const link = h("a", { href: url, download: `${name}.${format}` });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}
