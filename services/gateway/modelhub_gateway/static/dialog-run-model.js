// The suitcase's "Run model" dialog: a running deployment, outputs mapped to sample fields, which
// samples run (all, missing, stale), optional input mapping.
import { api, enc } from "./api.js";
import { clear, field, h, modal } from "./dom.js";
import { toast } from "./ui.js";

export async function runModelDialog(dataset, submitted) {
  const { items } = await api("GET", `/deployments`);
  const running = items.filter((d) => d.status === "running");
  const deployment = h("select", { required: true },
    h("option", { value: "" }, running.length ? "Choose a running deployment…" : "No running deployment"),
    running.map((d) => h("option", { value: d.name }, `${d.name} — ${d.model} v${d.version}`)));
  const schemaBox = h("div", { class: "schema-box muted small" }, "Choose a deployment to see its model's outputs.");
  const outputRows = h("tbody", {});
  const inputsBox = h("div", {});
  const only = h("select", { name: "only" },
    h("option", { value: "all", selected: true }, "All samples"),
    h("option", { value: "missing" }, "Missing: samples lacking an output field"),
    h("option", { value: "stale" }, "Stale: missing, or written by another model or version"));
  let outputs = []; // [[name, type]]
  let inputs = [];
  let rowCount = 0;

  const addRow = (outputName, fieldName) => {
    rowCount += 1;
    const select = h("select", { "aria-label": `Model output ${rowCount}` },
      outputs.map(([o, t]) => h("option", { value: o, selected: o === outputName }, `${o} (${t})`)));
    const target = h("input", { value: fieldName || outputName || "", required: true, placeholder: "field name",
      "aria-label": `Sample field name ${rowCount}`, pattern: "[^.$][^.]*", autocomplete: "off",
      title: "A field name may not contain '.' or start with '$'" });
    select.addEventListener("change", () => {
      if (!target.dataset.edited) target.value = select.value;
    });
    target.addEventListener("input", () => { target.dataset.edited = "1"; });
    const tr = h("tr", {}, h("td", {}, select), h("td", { class: "arrow", "aria-hidden": "true" }, "→"), h("td", {}, target),
      h("td", {}, h("button", { type: "button", class: "secondary small", onclick: () => tr.remove(),
        "aria-label": `Remove mapping ${rowCount}` }, "Remove")));
    outputRows.append(tr);
    return select;
  };
  const addBtn = h("button", { type: "button", class: "secondary small", disabled: true, onclick: () => {
    const used = new Set([...outputRows.querySelectorAll("select")].map((s) => s.value));
    const nextOutput = (outputs.find(([o]) => !used.has(o)) || outputs[0] || [""])[0];
    addRow(nextOutput).focus();
  } }, "Add");

  let choice = 0; // a newer choice while an older one's schema loads wins (no rows from both)
  deployment.addEventListener("change", async () => {
    const mine = ++choice;
    clear(outputRows);
    clear(inputsBox);
    outputs = [];
    inputs = [];
    addBtn.disabled = true;
    const chosen = running.find((d) => d.name === deployment.value);
    if (!chosen) {
      clear(schemaBox, "Choose a deployment to see its model's outputs.");
      return;
    }
    clear(schemaBox, "Loading schema…");
    try {
      const version = await api("GET", `/models/${enc(chosen.model)}/versions/${chosen.version}`);
      const props = (part) => Object.entries((version.schema[part] && version.schema[part].properties) || {})
        .map(([n, s]) => [n, s && s.type]);
      if (mine !== choice) return;
      outputs = props("outputs");
      inputs = props("inputs");
    } catch (exc) {
      if (mine === choice) clear(schemaBox, h("span", { class: "error-text" }, exc.detail || String(exc)));
      return;
    }
    clear(schemaBox, h("strong", {}, `${chosen.model} v${chosen.version}`), " outputs: ",
      outputs.map(([o, t], i) => [i ? ", " : "", h("code", {}, o), ` (${t})`]));
    addBtn.disabled = false;
    if (outputs.length) addRow(outputs[0][0]);
    clear(inputsBox, h("details", {}, h("summary", {}, "Input mapping (optional)"),
      h("p", { class: "muted small" }, "By default a 'local' input reads the sample's filepath and any other input reads the sample field of the same name."),
      inputs.map(([n, t]) => field(`${n} (${t}) ← sample field`, h("input", { dataset: { input: n }, autocomplete: "off",
        placeholder: t === "local" ? "filepath (default)" : `${n} (default)` })))));
  });

  const noneHint = running.length ? null : h("p", { class: "form-hint" },
    "There is no running deployment. Open a model and click “Deploy” first. ", h("a", { href: "#/models" }, "Models →"));
  modal({
    title: `Run model on ${dataset}`,
    submitLabel: "Submit job",
    wide: true,
    body: [
      noneHint,
      field("Deployment", deployment, "Only running deployments can take jobs."),
      schemaBox,
      h("div", { class: "field" }, h("span", { class: "label" }, "Map model outputs to sample fields"),
        h("table", { class: "table compact mapping" },
          h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Model output"), h("th", {}, ""),
            h("th", { scope: "col" }, "Field name"), h("th", {}, ""))),
          outputRows),
        addBtn),
      field("Only", only, "Run every sample, or only those whose output fields are missing (or stale)."),
      inputsBox,
    ],
    onSubmit: async () => {
      if (!deployment.value) throw new Error("Choose a deployment.");
      const mapping = {};
      for (const tr of outputRows.querySelectorAll("tr")) {
        const output = tr.querySelector("select").value;
        const target = tr.querySelector("input").value.trim();
        if (output && target) mapping[output] = target;
      }
      if (!Object.keys(mapping).length) throw new Error("Map at least one model output to a field name (click “Add”).");
      const body = { deployment: deployment.value, outputs: mapping };
      if (only.value !== "all") body.only = only.value;
      const inputMap = {};
      inputsBox.querySelectorAll("input[data-input]").forEach((input) => {
        if (input.value.trim()) inputMap[input.dataset.input] = input.value.trim();
      });
      if (Object.keys(inputMap).length) body.inputs = inputMap;
      const job = await api("POST", `/datasets/${enc(dataset)}/jobs`, body);
      toast(job.total ? `Job submitted: ${job.total} samples` : "Nothing to run: every sample is up to date", "ok");
      submitted(job);
    },
  });
  if (running.length === 1) {
    deployment.value = running[0].name;
    deployment.dispatchEvent(new Event("change"));
  }
}
