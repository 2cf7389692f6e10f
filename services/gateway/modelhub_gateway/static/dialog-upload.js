// The Upload dialog: a model package (.zip) and its schema become the model's next version.
import { api, enc } from "./api.js";
import { field, h, modal } from "./dom.js";
import { go, toast } from "./ui.js";

// The seed's example schema, prefilled in the dialog.
const EXAMPLE_SCHEMA = {
  inputs: { type: "object", properties: { image_paths: { type: "local" } } },
  outputs: { type: "object", properties: { predictions: { type: "classification" } } },
};

export function uploadDialog(model) {
  const file = h("input", { type: "file", name: "file", accept: ".zip,application/zip", required: true });
  // not required: an MLflow model with a signature may leave it empty (the schema is derived from it)
  const schema = h("textarea", { name: "schema", rows: 16, class: "mono", spellcheck: "false" });
  schema.value = JSON.stringify(EXAMPLE_SCHEMA, null, 2);
  modal({
    title: `Upload a version of ${model.name}`,
    submitLabel: "Upload",
    wide: true,
    body: [
      field("Model package (.zip)", file, "model.py defining class Model, weights and other files, or an MLflow model as saved (MLmodel at its root); see “Packing a model” in docs/guide.md."),
      field("Model schema (JSON)", schema, "Input types: local, text, number, json. Output types: classification, detections, number, text, json. Empty for an MLflow model with a signature: derived from it."),
    ],
    onSubmit: async () => {
      const text = schema.value.trim();
      try {
        if (text) JSON.parse(text);
      } catch (exc) {
        throw new Error(`The schema is not valid JSON: ${exc.message}`);
      }
      const form = new FormData();
      form.append("file", file.files[0]);
      if (text) form.append("schema", text);
      // on failure api() toasts the server's detail and modal() shows it verbatim in the dialog, which stays open
      const version = await api("POST", `/models/${enc(model.name)}/versions`, form);
      toast(`Uploaded ${model.name} v${version.version}`, "ok");
      go(`#/models/${enc(model.name)}`);
    },
  });
}
