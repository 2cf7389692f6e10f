// Two evaluations side by side (e.g. a model's version 2 and version 3 on the same ground truth):
// headlines, per-label scores in one table (the second's better or worse marked), and both
// confusion matrices; a count closes the dialog and shows its samples in the grid.
import { h, modal } from "./dom.js";
import { confusionTable, headline, scoresTable, writer } from "./evaluation-tables.js";

export function compareEvaluationsDialog(a, b, onCell) {
  const side = (e) => h("section", { class: "compare-side", "aria-label": e.name },
    h("h3", {}, e.name),
    h("p", { class: "small" }, h("strong", {}, headline(e)), ` · ${e.prediction} vs ${e.ground_truth}`,
      e.lineage ? ` · ${writer(e)}` : "", ` · ${e.samples.toLocaleString()} samples`),
    e.type === "classification" ? confusionTable(e, (...cell) => {
      close();
      onCell(...cell);
    }) : null);
  const { close } = modal({
    title: `${a.name} against ${b.name}`,
    submitLabel: "Close",
    wide: true,
    noCancel: true,
    body: [h("div", { class: "eval-compare" }, side(a), side(b)), scoresTable([a, b])],
    onSubmit: async () => false,
  });
}
