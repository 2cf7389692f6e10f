// The "Create Dataset" dialog.
import { api, enc } from "./api.js";
import { field, h, modal } from "./dom.js";
import { go, NAME_PATTERN, toast } from "./ui.js";

export function createDatasetDialog() {
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
