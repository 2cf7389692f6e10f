// Confirm and remove a field from every sample of a dataset (the undo of a run).
import { api, enc } from "./api.js";
import { h, modal } from "./dom.js";
import { toast } from "./ui.js";

export function removeFieldDialog(dataset, field, done) {
  modal({
    title: `Remove ${field.name}?`,
    submitLabel: "Remove field",
    danger: true,
    body: [h("p", {}, `This takes the field `, h("code", {}, field.name), ` off ${field.samples.toLocaleString()} `,
      `sample${field.samples === 1 ? "" : "s"} of ${dataset}, with its lineage. It is refused while a running job writes it.`)],
    onSubmit: async () => {
      const { removed } = await api("DELETE", `/datasets/${enc(dataset)}/fields/${enc(field.name)}`);
      toast(`Removed ${field.name} from ${removed.toLocaleString()} samples`, "ok");
      await done();
    },
  });
}
