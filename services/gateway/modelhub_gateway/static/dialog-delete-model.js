// Confirm and delete a model (refused by the API while a deployment of it runs).
import { api, enc } from "./api.js";
import { h, modal } from "./dom.js";
import { go, toast } from "./ui.js";

export function deleteModelDialog(model) {
  modal({
    title: `Delete ${model.name}?`,
    submitLabel: "Delete",
    danger: true,
    body: [h("p", {}, "This deletes the model and all its versions. It is refused while a deployment of it runs.")],
    onSubmit: async () => {
      await api("DELETE", `/models/${enc(model.name)}`, undefined);
      toast(`Deleted ${model.name}`, "ok");
      go("#/models");
    },
  });
}
