// Two evaluations side by side (e.g. a model's version 3 against version 2 on the same ground
// truth): the headline's difference, both confusion matrices, and the per-label scores in one table
// (the first's better or worse marked); a count closes the dialog and shows its samples in the grid.
import { h, modal } from "./dom.js";
import { confusionTable, difference, headline, scoresTable, writer } from "./evaluation-tables.js";

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
    body: [h("p", {}, h("strong", {}, `${a.name}: ${headline(a)}`), ` (${difference(a, b)})`),
      h("div", { class: "eval-compare" }, side(a), side(b)),
      h("p", { class: "muted small" }, `Per label; ${a.name}'s numbers are marked where they are better or worse than ${b.name}'s.`),
      scoresTable([a, b])],
    onSubmit: async () => false,
  });
}
