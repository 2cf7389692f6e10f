// One sample, opened from the grid: the picture large with its detections labelled, every field,
// and each field's lineage (which job, model, version and deployment wrote it, and when).
// ← and → step through the page's samples.
import { api, enc } from "./api.js";
import { clear, fmtDate, h, modal } from "./dom.js";
import { detectionOverlay, fieldValue, isClassification, isDetections, loadPicture, percent } from "./fields.js";

export function sampleDialog(dataset, samples, index) {
  const body = h("div", { class: "sample-view" });
  const position = h("span", { class: "muted small" });
  const prev = h("button", { type: "button", class: "secondary small", "aria-label": "Previous sample" }, "‹");
  const next = h("button", { type: "button", class: "secondary small", "aria-label": "Next sample" }, "›");
  const show = (i) => {
    index = i;
    const sample = samples[i];
    position.textContent = `${i + 1} of ${samples.length}`;
    prev.disabled = i === 0;
    next.disabled = i === samples.length - 1;
    clear(body, picture(dataset, sample), details(sample));
  };
  prev.addEventListener("click", () => show(Math.max(0, index - 1)));
  next.addEventListener("click", () => show(Math.min(samples.length - 1, index + 1)));
  const { dialog } = modal({
    title: "Sample",
    submitLabel: "Close",
    wide: true,
    noCancel: true,
    body: [h("div", { class: "sample-nav" }, prev, position, next), body],
    onSubmit: async () => false,
  });
  dialog.addEventListener("keydown", (e) => {
    if (e.target.closest("input, textarea, select")) return;
    if (e.key === "ArrowLeft" && !prev.disabled) prev.click();
    if (e.key === "ArrowRight" && !next.disabled) next.click();
  });
  show(index);
}

function picture(dataset, sample) {
  const img = h("img", { alt: `the picture of ${sample.filepath}` });
  const frame = h("figure", { class: "sample-picture" }, h("div", { class: "pic" }, h("span", { class: "frame" }, img, detectionOverlay(sample.fields, { labels: true }))));
  loadPicture(() => api("GET", `/datasets/${enc(dataset)}/samples/${enc(sample.id)}/thumbnail?size=768`, undefined,
    { quiet: true, blob: true }), img, (exc) => clear(frame, h("p", { class: "muted" }, `No picture: ${exc.detail || exc.message}`)));
  return frame;
}

function details(sample) {
  const lineage = sample.lineage || {};
  const rows = Object.entries(sample.fields || {}).map(([name, value]) => h("tr", {},
    h("th", { scope: "row" }, h("code", {}, name)),
    h("td", {}, isClassification(value) || isDetections(value) ? fieldValue(name, value) : null,
      isDetections(value) ? h("ul", { class: "plain small" }, value.detections.map((d) =>
        h("li", {}, `${d.label}${percent(d.confidence)} at [${(d.bounding_box || []).map((n) => n.toFixed(2)).join(", ")}]`))) : null,
      !isClassification(value) && !isDetections(value) ? h("pre", { class: "json" }, JSON.stringify(value, null, 2)) : null),
    h("td", { class: "muted small" }, lineage[name] ? writtenBy(lineage[name]) : "added with the sample")));
  return h("div", { class: "sample-details" },
    h("p", {}, h("code", { class: "path" }, sample.filepath)),
    h("p", { class: "muted tiny" }, `id ${sample.id}`),
    rows.length
      ? h("table", { class: "table compact" },
        h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Field"), h("th", { scope: "col" }, "Value"),
          h("th", { scope: "col" }, "Written by"))),
        h("tbody", {}, rows))
      : h("p", { class: "muted" }, "No fields yet."));
}

function writtenBy(entry) {
  return h("span", {}, `${entry.model} v${entry.version} on ${entry.deployment}`, h("br"),
    `job ${entry.job_id}`, h("br"), fmtDate(entry.at));
}
