// The dataset page's samples: a paged table of samples with their fields, and the "Fields" tab
// that summarises which fields (model outputs) the page's samples carry.
import { api, enc } from "./api.js";
import { clear, h } from "./dom.js";

const isClassification = (v) => v && typeof v === "object" && !Array.isArray(v)
  && typeof v.label === "string" && typeof v.confidence === "number";
const isDetections = (v) => v && typeof v === "object" && !Array.isArray(v) && Array.isArray(v.detections);

function compactJson(value, max = 120) {
  const text = JSON.stringify(value);
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

function fieldValue(name, value) {
  let content;
  if (isClassification(value)) {
    content = h("span", { class: "chip cls", title: JSON.stringify(value) },
      `${value.label} (${Math.round(value.confidence * 100)}%)`);
  } else if (isDetections(value)) {
    const n = value.detections.length;
    content = h("span", { class: "chip det", title: compactJson(value, 2000) }, `${n} detection${n === 1 ? "" : "s"}`);
  } else {
    content = h("code", { class: "json", title: compactJson(value, 2000) }, compactJson(value));
  }
  return h("span", { class: "field-val" }, h("span", { class: "field-name" }, name), content);
}

// The file name in full, the directory shortened from the left when the column is narrow.
function filepathCell(sample) {
  // the slash goes with the file name: a trailing "/" in the right-to-left span would be reordered
  const cut = Math.max(sample.filepath.lastIndexOf("/"), 0);
  return h("code", { class: "path", title: `${sample.filepath}\nid ${sample.id}` },
    h("span", { class: "dir" }, h("bdi", { dir: "ltr" }, sample.filepath.slice(0, cut))),
    h("span", { class: "base" }, sample.filepath.slice(cut)));
}

function fieldKind(value) {
  if (isClassification(value)) return "classification";
  if (isDetections(value)) return "detections";
  if (Array.isArray(value)) return "list";
  return value === null ? "null" : typeof value;
}

/** The samples table, its pager and the Fields tab of dataset `name`; `load()` (re)reads the page. */
export function samplesPanel(name, dataset, params) {
  const state = { offset: Number(params.get("offset")) || 0, limit: Number(params.get("limit")) || 50, total: dataset.num_samples };
  let pageFields = new Map();
  const count = h("span", { class: "muted" });
  const samplesBox = h("div", { class: "samples" });
  const pager = h("div", { class: "pager" });
  const fieldsTab = h("div", { class: "panel-body" });

  const load = async () => {
    const page = await api("GET", `/datasets/${enc(name)}/samples?limit=${state.limit}&offset=${state.offset}`);
    state.total = page.total;
    count.textContent = `${page.total.toLocaleString()} sample${page.total === 1 ? "" : "s"}`;
    pageFields = fieldKinds(page.items);
    clear(samplesBox, page.items.length
      ? samplesTable(page.items, state.offset)
      : h("div", { class: "empty" }, h("p", {}, state.total
        ? "No samples on this page."
        : "No samples yet. Click “Add samples” and paste absolute file paths.")));
    renderPager();
    renderFields();
  };
  const reload = () => load().catch(() => {});

  const pageSize = h("select", { id: "page-size", "aria-label": "Samples per page" },
    [25, 50, 100, 200].map((n) => h("option", { value: String(n), selected: n === state.limit }, `${n} / page`)));
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
    pager.hidden = state.total === 0;
    prev.disabled = state.offset === 0;
    next.disabled = state.offset + state.limit >= state.total;
  };
  clear(pager, prev, rangeText, next, pageSize);

  const renderFields = () => {
    clear(fieldsTab,
      h("p", { class: "muted small" }, "Fields on this page of samples (model outputs appear here after a job)."),
      pageFields.size
        ? h("ul", { class: "plain field-list" }, [...pageFields].map(([k, kinds]) => h("li", {},
          h("code", {}, k), " ", h("span", { class: "muted small" },
            [...kinds].map(([kind, n]) => `${kind} ×${n}`).join(", ")))))
        : h("p", {}, "No fields yet."));
  };

  return { count, samplesBox, pager, fieldsTab, load };
}

function samplesTable(items, offset) {
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

/** field name -> Map(kind -> how many samples of the page have it). */
function fieldKinds(items) {
  const fields = new Map();
  for (const s of items) {
    for (const [k, v] of Object.entries(s.fields || {})) {
      const kinds = fields.get(k) || new Map();
      const kind = fieldKind(v);
      kinds.set(kind, (kinds.get(kind) || 0) + 1);
      fields.set(k, kinds);
    }
  }
  return fields;
}
