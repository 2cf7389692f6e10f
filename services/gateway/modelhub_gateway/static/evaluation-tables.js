// How an evaluation reads on the page: its headline number, the per-label scores, and the confusion
// matrix whose cells (and row and column headings) are buttons: `onCell(evaluation, truth, predicted)`
// shows those samples in the grid (a heading passes one label, the other undefined).
import { h } from "./dom.js";

export const score = (x) => (x == null ? "—" : x.toFixed(3));

/** "accuracy 0.912" or "mAP@0.5 0.431". */
export function headline(e) {
  return e.type === "classification" ? `accuracy ${score(e.accuracy)}` : `mAP@${e.iou} ${score(e.map)}`;
}

/** "+0.031 against v2" (the headline number's difference), or "" when either has none. */
export function difference(e, other) {
  const key = e.type === "classification" ? "accuracy" : "map";
  if (e[key] == null || other[key] == null) return "";
  const d = e[key] - other[key];
  return `${d >= 0 ? "+" : "−"}${Math.abs(d).toFixed(3)} against ${other.name}`;
}

/** "cats v3" (the model version that wrote most of the evaluated predictions), or "". */
export function writer(e) {
  return e.lineage ? `${e.lineage.model} v${e.lineage.version}` : "";
}

const COLUMNS = {
  classification: [["precision", "Precision"], ["recall", "Recall"], ["f1", "F1"]],
  detections: [["ap", "AP"], ["precision", "Precision"], ["recall", "Recall"]],
};

/** The per-label table of one evaluation, or of two side by side (of one type): the first's numbers
 * are marked better or worse than the second's. */
export function scoresTable(evaluations) {
  const columns = COLUMNS[evaluations[0].type];
  const labels = [...new Set(evaluations.flatMap((e) => Object.keys(e.per_label)))].sort();
  const many = evaluations.length > 1;
  return h("table", { class: "table compact scores" },
    h("thead", {},
      many ? h("tr", {}, h("th", {}), evaluations.map((e) => h("th", { scope: "colgroup", colspan: columns.length + 1,
        class: "num" }, e.name))) : null,
      h("tr", {}, h("th", { scope: "col" }, "Label"), evaluations.map(() => [
        columns.map(([, title]) => h("th", { scope: "col", class: "num" }, title)),
        h("th", { scope: "col", class: "num" }, "Support")]))),
    h("tbody", {}, labels.map((label) => h("tr", {}, h("th", { scope: "row" }, label), evaluations.map((e, i) => {
      const s = e.per_label[label];
      return [columns.map(([key]) => h("td", { class: `num${many && !i ? " " + trend(s, evaluations[1].per_label[label], key) : ""}` },
        s ? score(s[key]) : "—")), h("td", { class: "num muted" }, s ? s.support : "—")];
    })))));
}

// one evaluation's number against another's: better, worse or the same
function trend(mine, theirs, key) {
  if (!mine || !theirs || mine[key] == null || theirs[key] == null || mine[key] === theirs[key]) return "";
  return mine[key] > theirs[key] ? "better" : "worse";
}

/** The confusion matrix: rows ground truth, columns prediction; each count is a button. */
export function confusionTable(e, onCell) {
  const { labels, matrix } = e.confusion;
  const rowSums = matrix.map((row) => row.reduce((a, b) => a + b, 0));
  const cell = (truth, predicted, count, share) => {
    const button = h("button", { type: "button", class: `cell${truth === predicted ? " diagonal" : ""}`,
      "aria-label": `${count} samples: ground truth ${truth}, predicted ${predicted}`,
      onclick: () => onCell(e.name, truth, predicted) }, String(count));
    button.style.setProperty("--share", String(share));
    return button;
  };
  return h("div", { class: "confusion-wrap" },
    h("table", { class: "confusion", "aria-label": `Confusion matrix of ${e.name}: rows ground truth, columns prediction` },
      h("thead", {}, h("tr", {}, h("th", { scope: "col", class: "corner" }, "truth ↓ predicted →"),
        labels.map((label) => h("th", { scope: "col" }, h("button", { type: "button", class: "link small",
          title: `Samples predicted ${label}`, onclick: () => onCell(e.name, undefined, label) }, label))))),
      h("tbody", {}, labels.map((truth, i) => h("tr", {},
        h("th", { scope: "row" }, h("button", { type: "button", class: "link small", title: `Samples whose ground truth is ${truth}`,
          onclick: () => onCell(e.name, truth, undefined) }, truth)),
        labels.map((predicted, j) => h("td", {}, cell(truth, predicted, matrix[i][j], rowSums[i] ? matrix[i][j] / rowSums[i] : 0))))))));
}
