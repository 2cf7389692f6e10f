// The "Create Model" dialog.
import { api, enc } from "./api.js";
import { field, h, modal } from "./dom.js";
import { go, NAME_HELP, NAME_PATTERN, toast } from "./ui.js";

export function createModelDialog() {
  const name = h("input", { name: "name", required: true, pattern: NAME_PATTERN, maxlength: 64, autocomplete: "off" });
  modal({
    title: "Create Model",
    submitLabel: "Create",
    body: [field("Name", name, NAME_HELP)],
    onSubmit: async () => {
      const model = await api("POST", `/models`, { name: name.value.trim() });
      toast(`Model ${model.name} created`, "ok");
      go(`#/models/${enc(model.name)}`);
    },
  });
  name.focus();
}
