// Datasets: list + create; dataset view with samples, "Add samples", the suitcase "Run model"
// dialog, and the right-hand panel with the "Fields" and "Execution" tabs.
import { api, enc } from "./api.js";
import { clear, field, fmtDate, h, ICONS, modal, svg } from "./dom.js";
import { every, go, toast } from "./app.js";
import { statusBadge } from "./deployments.js";

const NAME_PATTERN = "[A-Za-z0-9_.\\-]{1,64}";
const CHUNK = 10000; // the API takes up to 10,000 samples per request
const JOB_ACTIVE = new Set(["queued", "running"]);
const JOB_TERMINAL = new Set(["completed", "failed", "cancelled"]);
const PANEL_KEY = "modelhub.panelTab";

// ------------------------------------------------------------------ list

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

function createDatasetDialog() {
  const name = h("input", { required: true, pattern: NAME_PATTERN, maxlength: 64, autocomplete: "off" });
  const description = h("textarea", { rows: 3, maxlength: 10000 });
  modal({
    title: "Create Dataset",
    submitLabel: "Create",
    body: [field("Name", name, "1–64 letters, digits, '-', '_' or '.'."), field("Description (optional)", description)],
    onSubmit: async () => {
      const dataset = await api("POST", `/datasets`, { name: name.value.trim(), description: description.value });
      toast(`Dataset ${dataset.name} created`, "ok");
      go(`#/datasets/${enc(dataset.name)}`);
    },
  });
  name.focus();
}

// ------------------------------------------------------------------ field rendering

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

// ------------------------------------------------------------------ dataset view

export async function datasetView(view, name, params) {
  const dataset = await api("GET", `/datasets/${enc(name)}`);
  const state = { offset: Number(params.get("offset")) || 0, limit: Number(params.get("limit")) || 50, total: dataset.num_samples };
  let pageFields = new Map();

  const count = h("span", { class: "muted" });
  const samplesBox = h("div", { class: "samples" });
  const pager = h("div", { class: "pager" });
  const fieldsTab = h("div", { class: "panel-body" });
  const execTab = h("div", { class: "panel-body" });

  // ---- samples
  const loadSamples = async () => {
    const page = await api("GET", `/datasets/${enc(name)}/samples?limit=${state.limit}&offset=${state.offset}`);
    state.total = page.total;
    count.textContent = `${page.total.toLocaleString()} sample${page.total === 1 ? "" : "s"}`;
    pageFields = new Map();
    for (const s of page.items) {
      for (const [k, v] of Object.entries(s.fields || {})) {
        const kinds = pageFields.get(k) || new Map();
        const kind = fieldKind(v);
        kinds.set(kind, (kinds.get(kind) || 0) + 1);
        pageFields.set(k, kinds);
      }
    }
    clear(samplesBox, page.items.length
      ? h("table", { class: "table samples-table" },
        h("thead", {}, h("tr", {}, h("th", { scope: "col", class: "num" }, "#"), h("th", { scope: "col" }, "Filepath"),
          h("th", { scope: "col" }, "Fields"))),
        h("tbody", {}, page.items.map((s, i) => h("tr", {},
          h("td", { class: "num muted" }, state.offset + i + 1),
          h("td", { class: "filepath" }, filepathCell(s)),
          h("td", { class: "fields" }, Object.keys(s.fields || {}).length
            ? Object.entries(s.fields).map(([k, v]) => fieldValue(k, v))
            : h("span", { class: "muted" }, "—"))))))
      : h("div", { class: "empty" }, h("p", {}, state.total
        ? "No samples on this page."
        : "No samples yet. Click “Add samples” and paste absolute file paths.")));
    renderPager();
    renderFields();
  };

  const pageSize = h("select", { id: "page-size", "aria-label": "Samples per page" },
    [25, 50, 100, 200].map((n) => h("option", { value: String(n), selected: n === state.limit }, `${n} / page`)));
  pageSize.addEventListener("change", () => {
    state.limit = Number(pageSize.value);
    state.offset = 0;
    loadSamples().catch(() => {});
  });
  const prev = h("button", { type: "button", class: "secondary small", onclick: () => {
    state.offset = Math.max(0, state.offset - state.limit);
    loadSamples().catch(() => {});
  } }, "‹ Previous");
  const next = h("button", { type: "button", class: "secondary small", onclick: () => {
    state.offset += state.limit;
    loadSamples().catch(() => {});
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

  // ---- execution panel
  const jobs = new Map(); // id -> {job, card, update}
  const jobList = h("div", { class: "job-list" });
  let stopPolling = null;

  const loadJobs = async () => {
    const { items } = await api("GET", `/datasets/${enc(name)}/jobs`);
    const seen = new Set();
    for (const job of items) {
      seen.add(job.id);
      if (jobs.has(job.id)) jobs.get(job.id).update(job);
      else jobs.set(job.id, jobCard(job));
    }
    for (const id of [...jobs.keys()]) if (!seen.has(id)) jobs.delete(id);
    clear(jobList, items.length
      ? items.map((j) => jobs.get(j.id).card)
      : h("p", { class: "muted" }, "No jobs yet. Click the suitcase button to run a model on this dataset."));
    ensurePolling();
  };

  // Live progress: the API has GET /jobs/{id}/events (Server-Sent Events), but the browser's
  // EventSource cannot send an Authorization header and tokens never go into URLs, so we poll
  // GET /jobs/{id} every second while any job is queued or running instead.
  const ensurePolling = () => {
    const active = [...jobs.values()].some((j) => JOB_ACTIVE.has(j.job.status));
    if (active && !stopPolling) stopPolling = every(1000, pollActive);
    if (!active && stopPolling) {
      stopPolling();
      stopPolling = null;
    }
  };
  let polling = false;
  const pollActive = async () => {
    if (polling) return; // a slow answer must not pile up requests
    polling = true;
    let ended = false;
    try {
      for (const entry of [...jobs.values()]) {
        if (!JOB_ACTIVE.has(entry.job.status)) continue;
        const job = await api("GET", `/jobs/${enc(entry.job.id)}`);
        entry.update(job);
        if (JOB_TERMINAL.has(job.status)) ended = true;
      }
    } catch {
      // reported by api(); keep polling
    } finally {
      polling = false;
    }
    if (ended) await loadSamples().catch(() => {}); // the new fields are in
    ensurePolling();
  };

  function jobCard(initial) {
    const entry = { job: initial };
    const badge = h("span", {});
    const bar = h("div", { class: "bar-fill" });
    const progress = h("div", { class: "progress", role: "progressbar", "aria-valuemin": "0", "aria-valuemax": "100" }, bar);
    const counts = h("div", { class: "counts small" });
    const times = h("div", { class: "muted small" });
    const failuresBox = h("div", { class: "failures", hidden: true });
    const cancel = h("button", { type: "button", class: "secondary small", onclick: async () => {
      cancel.disabled = true;
      try {
        entry.update(await api("POST", `/jobs/${enc(entry.job.id)}/cancel`));
      } catch {
        cancel.disabled = false;
      }
    } }, "Cancel");
    const retry = h("button", { type: "button", class: "secondary small", onclick: async () => {
      retry.disabled = true;
      try {
        entry.update(await api("POST", `/jobs/${enc(entry.job.id)}/retry`));
        failuresBox.hidden = true;
        failuresToggle.setAttribute("aria-expanded", "false");
        ensurePolling();
      } catch {
        retry.disabled = false;
      }
    } }, "Retry failed");
    const failuresToggle = h("button", { type: "button", class: "link small", "aria-expanded": "false", onclick: async () => {
      const open = failuresBox.hidden;
      failuresToggle.setAttribute("aria-expanded", String(open));
      failuresBox.hidden = !open;
      if (!open) return;
      clear(failuresBox, h("p", { class: "muted small" }, "Loading…"));
      try {
        const { items } = await api("GET", `/jobs/${enc(entry.job.id)}/failures`);
        clear(failuresBox, items.length
          ? h("ul", { class: "plain" }, items.map((f) => h("li", {}, h("code", {}, f.sample_id), h("div", { class: "error-text" }, f.error))))
          : h("p", { class: "muted small" }, "No failures recorded."));
      } catch (exc) {
        clear(failuresBox, h("p", { class: "error-text" }, exc.detail || String(exc)));
      }
    } }, "Failures");
    const mapping = Object.entries(initial.outputs || {}).map(([o, f]) => `${o} → ${f}`).join(", ");
    const card = h("article", { class: "job" },
      h("div", { class: "job-head" }, badge, h("span", { class: "strong" }, initial.deployment),
        h("span", { class: "muted small" }, `${initial.model} v${initial.version}`)),
      h("div", { class: "muted small" }, `outputs: ${mapping}`),
      progress, counts, times,
      h("div", { class: "job-actions" }, cancel, retry, failuresToggle),
      failuresBox,
      h("div", { class: "muted tiny" }, `job ${initial.id}`));
    entry.card = card;
    entry.update = (job) => {
      entry.job = job;
      const pct = Math.round((job.progress || 0) * 100);
      clear(badge, statusBadge(job.status));
      bar.style.width = `${pct}%`;
      bar.className = `bar-fill ${job.failed ? "has-failures" : ""} ${job.status}`;
      progress.setAttribute("aria-valuenow", String(pct));
      progress.setAttribute("aria-label", `Job progress ${pct}%`);
      clear(counts, h("strong", {}, `${pct}%`), ` · ${job.succeeded} succeeded · `,
        h("span", { class: job.failed ? "error-text" : "" }, `${job.failed} failed`), ` · ${job.total} total`);
      clear(times, h("div", {}, `Started ${fmtDate(job.started_at || job.created_at)}`),
        job.finished_at ? h("div", {}, `Finished ${fmtDate(job.finished_at)}`) : null);
      cancel.hidden = !JOB_ACTIVE.has(job.status);
      cancel.disabled = false;
      retry.hidden = !(job.failed > 0 && JOB_TERMINAL.has(job.status));
      retry.disabled = false;
      failuresToggle.hidden = !(job.failed > 0);
    };
    entry.update(initial);
    return entry;
  }

  // ---- panel tabs (a proper ARIA tablist)
  const tabs = [
    { id: "fields", label: "Fields", body: fieldsTab },
    { id: "execution", label: "Execution", body: execTab },
  ];
  let active = params.get("tab") || localStorage.getItem(PANEL_KEY) || "execution";
  const tabButtons = tabs.map((t) => h("button", { type: "button", role: "tab", id: `tab-${t.id}`,
    "aria-controls": `tabpanel-${t.id}`, onclick: () => selectTab(t.id) }, t.label));
  const tabPanels = tabs.map((t) => h("div", { role: "tabpanel", id: `tabpanel-${t.id}`, "aria-labelledby": `tab-${t.id}` }, t.body));
  const selectTab = (id) => {
    active = id;
    localStorage.setItem(PANEL_KEY, id);
    tabs.forEach((t, i) => {
      tabButtons[i].setAttribute("aria-selected", String(t.id === id));
      tabButtons[i].tabIndex = t.id === id ? 0 : -1;
      tabPanels[i].hidden = t.id !== id;
    });
  };
  const tabList = h("div", { role: "tablist", "aria-label": "Dataset panel", class: "tabs" }, tabButtons);
  tabList.addEventListener("keydown", (e) => {
    if (e.key !== "ArrowLeft" && e.key !== "ArrowRight") return;
    const i = tabs.findIndex((t) => t.id === active);
    const j = (i + (e.key === "ArrowRight" ? 1 : tabs.length - 1)) % tabs.length;
    selectTab(tabs[j].id);
    tabButtons[j].focus();
  });
  selectTab(tabs.some((t) => t.id === active) ? active : "execution");
  clear(execTab, h("div", { class: "panel-actions" },
    h("button", { type: "button", class: "secondary small", onclick: () => loadJobs().catch(() => {}) }, "Refresh")), jobList);

  // ---- toolbar
  const suitcase = h("button", { type: "button", class: "primary icon-btn", title: "Run model on this dataset (submit job)",
    "aria-label": "Run model (submit job)", onclick: () => runModelDialog(name, () => {
      selectTab("execution");
      loadJobs().catch(() => {});
    }) }, svg(ICONS.suitcase), h("span", {}, "Run model"));
  const addBtn = h("button", { type: "button", class: "secondary", onclick: () => addSamplesDialog(name, async () => {
    await loadSamples();
  }) }, "Add samples");

  clear(view,
    h("nav", { class: "crumbs", "aria-label": "Breadcrumb" }, h("a", { href: "#/datasets" }, "Datasets"), " / ", dataset.name),
    h("div", { class: "dataset-layout" },
      h("section", { class: "dataset-main", "aria-label": "Samples" },
        h("div", { class: "page-head" },
          h("div", {}, h("h1", {}, dataset.name), h("p", { class: "muted" }, count, ` · owner ${dataset.owner}`,
            dataset.description ? ` · ${dataset.description}` : "")),
          h("div", { class: "toolbar" }, addBtn, suitcase)),
        samplesBox, pager),
      h("aside", { class: "side-panel card", "aria-label": "Fields and execution" }, tabList, tabPanels)));
  await Promise.all([loadSamples(), loadJobs()]);
}

// ------------------------------------------------------------------ dialogs

function addSamplesDialog(name, done) {
  const paths = h("textarea", { rows: 12, class: "mono", required: true, spellcheck: "false",
    placeholder: "/data/photos/0001.jpg\n/data/photos/0002.jpg" });
  const progress = h("p", { class: "muted small", role: "status" });
  modal({
    title: `Add samples to ${name}`,
    submitLabel: "Add",
    wide: true,
    body: [field("Absolute file paths, one per line", paths,
      "The files stay where they are; inference workers read them from these paths. Sent 10,000 per request."), progress],
    onSubmit: async () => {
      const lines = paths.value.split(/\r?\n/).map((l) => l.trim()).filter(Boolean);
      if (!lines.length) throw new Error("Paste at least one path.");
      const relative = lines.findIndex((l) => !l.startsWith("/"));
      if (relative >= 0) throw new Error(`Line ${relative + 1} is not an absolute path: ${lines[relative]}`);
      let added = 0;
      try {
        for (let i = 0; i < lines.length; i += CHUNK) {
          const chunk = lines.slice(i, i + CHUNK).map((filepath) => ({ filepath }));
          const result = await api("POST", `/datasets/${enc(name)}/samples`, { samples: chunk });
          added += result.added;
          progress.textContent = `Added ${added.toLocaleString()} of ${lines.length.toLocaleString()}…`;
        }
      } finally {
        if (added) await done();
      }
      toast(`Added ${added.toLocaleString()} samples`, "ok");
    },
  });
  paths.focus();
}

async function runModelDialog(dataset, submitted) {
  const { items } = await api("GET", `/deployments`);
  const running = items.filter((d) => d.status === "running");
  const deployment = h("select", { required: true },
    h("option", { value: "" }, running.length ? "Choose a running deployment…" : "No running deployment"),
    running.map((d) => h("option", { value: d.name }, `${d.name} — ${d.model} v${d.version}`)));
  const schemaBox = h("div", { class: "schema-box muted small" }, "Choose a deployment to see its model's outputs.");
  const outputRows = h("tbody", {});
  const inputsBox = h("div", {});
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

  deployment.addEventListener("change", async () => {
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
      outputs = props("outputs");
      inputs = props("inputs");
    } catch (exc) {
      clear(schemaBox, h("span", { class: "error-text" }, exc.detail || String(exc)));
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
      const inputMap = {};
      inputsBox.querySelectorAll("input[data-input]").forEach((input) => {
        if (input.value.trim()) inputMap[input.dataset.input] = input.value.trim();
      });
      if (Object.keys(inputMap).length) body.inputs = inputMap;
      const job = await api("POST", `/datasets/${enc(dataset)}/jobs`, body);
      toast(`Job submitted: ${job.total} samples`, "ok");
      submitted(job);
    },
  });
  if (running.length === 1) {
    deployment.value = running[0].name;
    deployment.dispatchEvent(new Event("change"));
  }
}
