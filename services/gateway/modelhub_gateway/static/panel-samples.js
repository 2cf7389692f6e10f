// The dataset page's samples: a grid of pictures with the model's labels (detections drawn on
// them) or a table, paged and filtered by a field's label and confidence, a missing field, a
// job's failures or an evaluation's confusion cell; and the "Fields" tab: each field's sample
// count, top labels (click to filter) and the jobs that wrote it.
import { api, enc } from "./api.js";
import { clear, fmtDate, h } from "./dom.js";
import { detectionOverlay, fieldValue, filepathCell, labelChips, loadPicture } from "./fields.js";
import { sampleDialog } from "./dialog-sample.js";
import { removeFieldDialog } from "./dialog-remove-field.js";

const LAYOUT_KEY = "modelhub.samplesLayout";

/** The samples of dataset `name` with their pager, filter bar and Fields tab; `load()` re-reads them. */
export function samplesPanel(name, dataset, params) {
  const state = {
    offset: Number(params.get("offset")) || 0, limit: Number(params.get("limit")) || 50, total: dataset.num_samples,
    layout: localStorage.getItem(LAYOUT_KEY) || "grid", filter: {}, items: [], fields: [],
  };
  const count = h("span", { class: "muted" });
  const samplesBox = h("div", { class: "samples" });
  const pager = h("div", { class: "pager" });
  const fieldsTab = h("div", { class: "panel-body" });
  const filterBar = h("div", { class: "filter-bar", role: "search", "aria-label": "Filter samples" });

  const query = () => {
    const q = new URLSearchParams({ limit: state.limit, offset: state.offset });
    for (const [k, v] of Object.entries(state.filter)) if (v !== undefined && v !== "") q.set(k, v);
    return q.toString();
  };
  const load = async () => {
    const [page, summary] = await Promise.all([
      api("GET", `/datasets/${enc(name)}/samples?${query()}`),
      api("GET", `/datasets/${enc(name)}/fields`),
    ]);
    state.total = page.total;
    state.items = page.items;
    state.fields = summary.items;
    const filtered = Object.values(state.filter).some((v) => v !== undefined && v !== "");
    count.textContent = `${page.total.toLocaleString()} sample${page.total === 1 ? "" : "s"}${filtered ? " match" : ""}`;
    renderSamples();
    renderPager();
    renderFilters();
    renderFields();
  };
  const reload = () => load().catch(() => {});
  const setFilter = (changes) => {
    state.filter = { ...state.filter, ...changes };
    state.offset = 0;
    reload();
  };

  const renderSamples = () => {
    const empty = h("div", { class: "empty" }, h("p", {}, state.total || Object.keys(state.filter).length
      ? "No samples match." : "No samples yet. Click “Add samples” and paste absolute file paths."));
    if (!state.items.length) return clear(samplesBox, empty);
    clear(samplesBox, state.layout === "grid" ? grid(name, state.items) : table(state.items, state.offset));
  };

  // ---- layout toggle and pager
  const layoutButtons = ["grid", "table"].map((layout) => h("button", { type: "button", class: "secondary small",
    "aria-pressed": String(state.layout === layout), onclick: () => {
      state.layout = layout;
      localStorage.setItem(LAYOUT_KEY, layout);
      layoutButtons.forEach((b) => b.setAttribute("aria-pressed", String(b.dataset.layout === layout)));
      renderSamples();
    }, dataset: { layout } }, layout === "grid" ? "Grid" : "Table"));
  const pageSize = h("select", { id: "page-size", "aria-label": "Samples per page" },
    [24, 48, 96, 200].map((n) => h("option", { value: String(n), selected: n === state.limit }, `${n} / page`)));
  if (![24, 48, 96, 200].includes(state.limit)) state.limit = 48;
  pageSize.value = String(state.limit);
  pageSize.addEventListener("change", () => {
    state.limit = Number(pageSize.value);
    state.offset = 0;
    reload();
  });
  const prev = h("button", { type: "button", class: "secondary small", onclick: () => {
    state.offset = Math.max(0, state.offset - state.limit);
    reload();
  } }, "‹ Previous");
  const next = h("button", { type: "button", class: "secondary small", onclick: () => {
    state.offset += state.limit;
    reload();
  } }, "Next ›");
  const rangeText = h("span", { class: "muted" });
  const renderPager = () => {
    const from = state.total ? state.offset + 1 : 0;
    const to = Math.min(state.offset + state.limit, state.total);
    rangeText.textContent = `${from.toLocaleString()}–${to.toLocaleString()} of ${state.total.toLocaleString()}`;
    prev.disabled = state.offset === 0;
    next.disabled = state.offset + state.limit >= state.total;
  };
  clear(pager, h("span", { class: "layout-toggle", role: "group", "aria-label": "Layout" }, layoutButtons),
    prev, rangeText, next, pageSize);

  // ---- filters
  const renderFilters = () => {
    const f = state.filter;
    const fieldSelect = h("select", { "aria-label": "Filter field" }, h("option", { value: "" }, "Any field"),
      state.fields.map((x) => h("option", { value: x.name, selected: x.name === f.field }, x.name)));
    fieldSelect.addEventListener("change", () => setFilter({ field: fieldSelect.value || undefined, label: undefined }));
    const chosen = state.fields.find((x) => x.name === f.field);
    const labelSelect = h("select", { "aria-label": "Filter label", disabled: !chosen || !chosen.labels.length },
      h("option", { value: "" }, "Any label"),
      (chosen ? chosen.labels : []).map((l) => h("option", { value: l.label, selected: l.label === f.label }, `${l.label} (${l.count})`)));
    labelSelect.addEventListener("change", () => setFilter({ label: labelSelect.value || undefined }));
    const minConf = h("input", { type: "number", min: 0, max: 1, step: 0.05, value: f.min_confidence ?? "",
      placeholder: "0", "aria-label": "Minimum confidence", class: "narrow", disabled: !chosen });
    minConf.addEventListener("change", () => setFilter({ min_confidence: minConf.value || undefined }));
    const missing = h("select", { "aria-label": "Only samples without field" }, h("option", { value: "" }, "—"),
      state.fields.map((x) => h("option", { value: x.name, selected: x.name === f.missing }, x.name)));
    missing.addEventListener("change", () => setFilter({ missing: missing.value || undefined }));
    const failed = f.failed_job ? h("span", { class: "chip" }, `failed in job ${f.failed_job.slice(0, 8)}…`,
      h("button", { type: "button", class: "chip-x", "aria-label": "Stop showing only failed samples",
        onclick: () => setFilter({ failed_job: undefined }) }, "×")) : null;
    const cell = f.evaluation ? h("span", { class: "chip" }, evaluationCell(f),
      h("button", { type: "button", class: "chip-x", "aria-label": "Stop showing the evaluation's samples",
        onclick: () => setFilter({ evaluation: undefined, ground_truth_label: undefined, prediction_label: undefined }) }, "×")) : null;
    const any = Object.values(f).some((v) => v !== undefined && v !== "");
    clear(filterBar,
      h("label", {}, "Field ", fieldSelect), h("label", {}, "Label ", labelSelect),
      h("label", {}, "Confidence ≥ ", minConf), h("label", {}, "Without ", missing), failed, cell,
      any ? h("button", { type: "button", class: "link small", onclick: () => {
        state.filter = {};
        state.offset = 0;
        reload();
      } }, "Clear filters") : null);
  };

  // ---- the Fields tab
  const renderFields = () => {
    clear(fieldsTab,
      h("p", { class: "muted small" }, "Fields on this dataset's samples; click a label to show its samples."),
      state.fields.length
        ? h("ul", { class: "plain field-list" }, state.fields.map((f) => h("li", {},
          h("div", { class: "field-head" }, h("code", {}, f.name), " ", h("span", { class: "muted small" }, `${f.samples.toLocaleString()} samples`),
            h("button", { type: "button", class: "link small danger-link", "aria-label": `Remove field ${f.name}`,
              onclick: () => removeFieldDialog(name, f, load) }, "Remove")),
          f.labels.length ? h("div", { class: "chips" }, f.labels.map((l) => h("button", { type: "button",
            class: "chip cls", "aria-label": `Show samples where ${f.name} is ${l.label}`,
            onclick: () => setFilter({ field: f.name, label: l.label, missing: undefined }) }, `${l.label} ${l.count}`))) : null,
          f.jobs.length ? h("div", { class: "muted tiny" }, "written by ",
            f.jobs.slice(0, 3).map((j, i) => [i ? "; " : "", `${j.model} v${j.version} (${j.deployment}) ${fmtDate(j.at)}`])) : null)))
        : h("p", {}, "No fields yet."));
  };

  const filterFailed = (jobId) => setFilter({ failed_job: jobId });
  // a confusion row (truth), column (predicted) or cell (both) of an evaluation
  const filterCell = (evaluation, truth, predicted) =>
    setFilter({ evaluation, ground_truth_label: truth, prediction_label: predicted });
  return { count, samplesBox, pager, filterBar, fieldsTab, load, filterFailed, filterCell };
}

function evaluationCell(f) {
  const parts = [f.ground_truth_label !== undefined ? `truth ${f.ground_truth_label}` : "",
    f.prediction_label !== undefined ? `predicted ${f.prediction_label}` : ""].filter(Boolean);
  return `${f.evaluation}: ${parts.length ? parts.join(", ") : "evaluated samples"}`;
}

function grid(dataset, items) {
  return h("ul", { class: "sample-grid", "aria-label": "Samples" }, items.map((sample, i) => {
    const img = h("img", { alt: "", loading: "lazy" });
    const pic = h("div", { class: "pic" }, h("span", { class: "frame" }, img, detectionOverlay(sample.fields)));
    const base = sample.filepath.slice(sample.filepath.lastIndexOf("/") + 1);
    loadPicture(() => api("GET", `/datasets/${enc(dataset)}/samples/${enc(sample.id)}/thumbnail?size=256`, undefined,
      { quiet: true, blob: true }), img, () => pic.classList.add("no-picture"));
    return h("li", {}, h("button", { type: "button", class: "sample-card", title: sample.filepath,
      "aria-label": `Open sample ${base}`, onclick: () => sampleDialog(dataset, items, i) },
    pic, h("span", { class: "name" }, base), labelChips(sample.fields)));
  }));
}

function table(items, offset) {
  return h("table", { class: "table samples-table" },
    h("thead", {}, h("tr", {}, h("th", { scope: "col", class: "num" }, "#"), h("th", { scope: "col" }, "Filepath"),
      h("th", { scope: "col" }, "Fields"))),
    h("tbody", {}, items.map((s, i) => h("tr", {},
      h("td", { class: "num muted" }, offset + i + 1),
      h("td", { class: "filepath" }, filepathCell(s)),
      h("td", { class: "fields" }, Object.keys(s.fields || {}).length
        ? Object.entries(s.fields).map(([k, v]) => fieldValue(k, v))
        : h("span", { class: "muted" }, "—"))))));
}
