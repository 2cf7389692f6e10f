// How model outputs look: label chips for classifications and detections, compact JSON for the
// rest, and detection boxes drawn over a picture. Shared by the grid, the table and the sample view.
import { h } from "./dom.js";

// Ground truth (e.g. imported from FiftyOne) has a label and no confidence: shown without a percentage
export const isClassification = (v) => v && typeof v === "object" && !Array.isArray(v)
  && typeof v.label === "string" && (typeof v.confidence === "number" || v.confidence == null)
  && !("detections" in v);
/** " 90%" for a confidence, "" for none. */
export const percent = (confidence) => (typeof confidence === "number" ? ` ${Math.round(confidence * 100)}%` : "");
export const isDetections = (v) => v && typeof v === "object" && !Array.isArray(v) && Array.isArray(v.detections);

export function compactJson(value, max = 120) {
  const text = JSON.stringify(value);
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

/** `name: value` as a chip (classification, detections) or compact JSON. */
export function fieldValue(name, value) {
  let content;
  if (isClassification(value)) {
    content = h("span", { class: "chip cls", title: JSON.stringify(value) },
      typeof value.confidence === "number" ? `${value.label} (${Math.round(value.confidence * 100)}%)` : value.label);
  } else if (isDetections(value)) {
    const n = value.detections.length;
    content = h("span", { class: "chip det", title: compactJson(value, 2000) }, `${n} detection${n === 1 ? "" : "s"}`);
  } else {
    content = h("code", { class: "json", title: compactJson(value, 2000) }, compactJson(value));
  }
  return h("span", { class: "field-val" }, h("span", { class: "field-name" }, name), content);
}

/** The file name in full, the directory shortened from the left when the column is narrow. */
export function filepathCell(sample) {
  // the slash goes with the file name: a trailing "/" in the right-to-left span would be reordered
  const cut = Math.max(sample.filepath.lastIndexOf("/"), 0);
  return h("code", { class: "path", title: `${sample.filepath}\nid ${sample.id}` },
    h("span", { class: "dir" }, h("bdi", { dir: "ltr" }, sample.filepath.slice(0, cut))),
    h("span", { class: "base" }, sample.filepath.slice(cut)));
}

const BOX_COLORS = ["#e4572e", "#29335c", "#f3a712", "#669bbc", "#4f8a3c", "#8e44ad"];

/** A layer over a picture with each detection's box [x, y, w, h] (relative to the picture) and,
 * if `labels`, its label; boxes are positioned in percent, so they follow the picture's size. */
export function detectionOverlay(fields, { labels = false } = {}) {
  const layer = h("span", { class: "boxes", "aria-hidden": "true" });
  let i = 0;
  for (const value of Object.values(fields || {})) {
    if (!isDetections(value)) continue;
    for (const det of value.detections) {
      const [x, y, w, hgt] = det.bounding_box || [];
      if (![x, y, w, hgt].every((n) => typeof n === "number")) continue;
      const color = BOX_COLORS[i++ % BOX_COLORS.length];
      const box = h("span", { class: "box" }, labels ? h("span", { class: "box-label" },
        `${det.label}${percent(det.confidence)}`) : null);
      Object.assign(box.style, { left: `${x * 100}%`, top: `${y * 100}%`, width: `${w * 100}%`,
        height: `${hgt * 100}%`, borderColor: color, color });
      layer.append(box);
    }
  }
  return layer;
}

/** The labels a sample's fields carry, as chips (for the grid's cards). */
export function labelChips(fields) {
  const chips = [];
  for (const [name, value] of Object.entries(fields || {})) {
    if (isClassification(value)) {
      chips.push(h("span", { class: "chip cls", title: `${name}: ${value.label} (${value.confidence ?? "no confidence"})` },
        `${value.label}${percent(value.confidence)}`));
    } else if (isDetections(value)) {
      const labels = [...new Set(value.detections.map((d) => d.label))];
      chips.push(h("span", { class: "chip det", title: `${name}: ${value.detections.length} detections` },
        labels.slice(0, 3).join(", ") || "no detections"));
    }
  }
  return h("span", { class: "chips" }, chips);
}

/** Thumbnails are fetched with the token (an <img> URL cannot carry it) and shown as object URLs;
 * at most a few at once, so a page of 100 does not flood the gateway. */
const MAX_LOADING = 6;
let loading = 0;
const waiting = [];
export function loadPicture(fetchBlob, img, onFail) {
  const start = async () => {
    loading += 1;
    try {
      const blob = await fetchBlob();
      const url = URL.createObjectURL(blob);
      img.addEventListener("load", () => URL.revokeObjectURL(url), { once: true });
      img.src = url;
    } catch (exc) {
      onFail(exc);
    } finally {
      loading -= 1;
      if (waiting.length) waiting.shift()();
    }
  };
  if (loading < MAX_LOADING) start();
  else waiting.push(start);
}
