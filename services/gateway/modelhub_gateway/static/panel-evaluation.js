// The dataset page's "Evaluation" tab: evaluate a prediction field against a ground-truth field, the
// dataset's evaluations, one evaluation's scores and confusion matrix (a cell shows its samples in the
// grid), and "Compare" for two evaluations side by side (e.g. version 2 against version 3 on the same
// ground truth).
import { api, enc } from "./api.js";
import { clear, field, fmtDate, h, modal } from "./dom.js";
import { toast } from "./ui.js";
import { confusionTable, headline, scoresTable, writer } from "./evaluation-tables.js";
import { compareEvaluationsDialog } from "./dialog-compare-evaluations.js";

/** The tab of dataset `name`; `onCell(evaluation, truth, predicted)` filters the grid. Returns {element, load}. */
export function evaluationPanel(name, onCell) {
  const state = { items: [], shown: null, fields: [] };
  const form = h("div", {});
  const list = h("div", { class: "evaluation-list" });
  const detail = h("div", { class: "evaluation-detail" });

  const load = async () => {
    const [{ items }, summary] = await Promise.all([
      api("GET", `/datasets/${enc(name)}/evaluations`),
      api("GET", `/datasets/${enc(name)}/fields`),
    ]);
    state.items = items;
    state.fields = summary.items.map((f) => f.name);
    renderForm();
    renderList();
    if (state.shown && !items.some((e) => e.name === state.shown.name)) state.shown = null;
    if (!state.shown && items.length) await show(items[0].name);
    else renderDetail();
  };
  const show = async (evaluation) => {
    state.shown = await api("GET", `/datasets/${enc(name)}/evaluations/${enc(evaluation)}`);
    renderList();
    renderDetail();
  };

  // ---- a new evaluation
  const renderForm = () => {
    const choose = (label, guess) => h("select", { required: true, "aria-label": label },
      h("option", { value: "" }, "Choose a field…"),
      state.fields.map((f) => h("option", { value: f, selected: f === guess }, f)));
    const byName = (re) => state.fields.find((f) => re.test(f));
    const prediction = choose("Prediction field", byName(/pred/i));
    const truth = choose("Ground truth field", byName(/truth|^gt$|label/i));
    const evalName = h("input", { placeholder: "name (optional)", "aria-label": "Evaluation name",
      pattern: "[A-Za-z0-9_.\\-]{1,64}", autocomplete: "off" });
    const iou = h("input", { type: "number", min: 0.05, max: 1, step: 0.05, value: 0.5, class: "narrow",
      "aria-label": "IoU for detections" });
    const error = h("p", { class: "form-error", role: "alert", hidden: true });
    const run = h("button", { type: "submit", class: "primary small" }, "Evaluate");
    const submit = async (event) => {
      event.preventDefault();
      error.hidden = true;
      run.disabled = true;
      const body = { name: evalName.value.trim() || `${prediction.value}-vs-${truth.value}`.replace(/[^A-Za-z0-9_.-]/g, "_").slice(0, 64),
        prediction: prediction.value, ground_truth: truth.value, iou: Number(iou.value) || 0.5 };
      try {
        state.shown = await api("POST", `/datasets/${enc(name)}/evaluations`, body, { quiet: true });
        toast(`Evaluated ${body.prediction} against ${body.ground_truth}: ${headline(state.shown)}`, "ok");
        await load();
      } catch (exc) {
        error.textContent = exc.detail || String(exc);
        error.hidden = false;
      } finally {
        run.disabled = false;
      }
    };
    // folded away once there are evaluations to look at
    clear(form, h("details", { class: "evaluate-box", open: !state.items.length }, h("summary", {}, "New evaluation"),
      h("form", { class: "evaluate-form", onsubmit: submit, "aria-label": "New evaluation" },
        h("p", { class: "muted small" }, "Score a prediction field against a ground-truth field (labels or detections)."),
        field("Prediction", prediction), field("Ground truth", truth),
        h("div", { class: "evaluate-row" }, evalName, h("label", { class: "small" }, "IoU ", iou), run), error)));
  };

  // ---- the dataset's evaluations
  const renderList = () => {
    if (!state.items.length) return clear(list, h("p", { class: "muted" }, "No evaluations yet."));
    clear(list, h("ul", { class: "plain" }, state.items.map((e) => h("li", {},
      h("button", { type: "button", class: "evaluation-item", "aria-pressed": String(state.shown?.name === e.name),
        onclick: () => show(e.name).catch(() => {}) },
      h("span", { class: "strong" }, e.name), " ", h("span", { class: "muted small" }, `${e.prediction} vs ${e.ground_truth}`),
      h("span", { class: "eval-headline" }, headline(e)),
      h("span", { class: "muted tiny" }, [writer(e), `${e.samples.toLocaleString()} samples`, fmtDate(e.created_at)]
        .filter(Boolean).join(" · ")))))));
  };

  // ---- one evaluation
  const renderDetail = () => {
    const e = state.shown;
    if (!e) return clear(detail);
    const others = state.items.filter((x) => x.name !== e.name && x.type === e.type);
    const compare = h("select", { "aria-label": `Compare ${e.name} with`, disabled: !others.length },
      h("option", { value: "" }, others.length ? "Compare with…" : "Nothing to compare with"),
      others.map((x) => h("option", { value: x.name }, x.name)));
    compare.addEventListener("change", async () => {
      if (!compare.value) return;
      const other = await api("GET", `/datasets/${enc(name)}/evaluations/${enc(compare.value)}`);
      compare.value = "";
      compareEvaluationsDialog(e, other, onCell);
    });
    const remove = h("button", { type: "button", class: "link small danger-link", onclick: () => modal({
      title: `Delete evaluation ${e.name}?`, submitLabel: "Delete", danger: true,
      body: [h("p", {}, "The stored numbers go; the samples and their fields stay.")],
      onSubmit: async () => {
        await api("DELETE", `/datasets/${enc(name)}/evaluations/${enc(e.name)}`);
        state.shown = null;
        await load();
      } }) }, "Delete");
    clear(detail,
      h("div", { class: "field-head" }, h("h3", {}, e.name), remove),
      h("p", { class: "small" }, h("strong", {}, headline(e)), ` over ${e.samples.toLocaleString()} samples`,
        e.missing ? ` (${e.missing.toLocaleString()} without one of the fields)` : "",
        e.lineage ? ` · predictions by ${writer(e)}` : ""),
      h("div", { class: "panel-actions" }, compare),
      scoresTable([e]),
      e.type === "classification"
        ? [h("p", { class: "muted small" }, "Confusion matrix: click a count to see those samples."), confusionTable(e, onCell)]
        : null);
  };

  const element = h("div", { class: "panel-body" }, form, list, detail);
  return { element, load };
}
