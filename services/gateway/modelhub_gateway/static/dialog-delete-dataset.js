// Confirm and delete a dataset: says what goes with it (samples, jobs); refused while a job runs.
import { api, enc } from "./api.js";
import { h, modal } from "./dom.js";
import { go, toast } from "./ui.js";

export async function deleteDatasetDialog(dataset) {
  const { items } = await api("GET", `/datasets/${enc(dataset.name)}/jobs`);
  const n = dataset.num_samples;
  modal({
    title: `Delete ${dataset.name}?`,
    submitLabel: "Delete dataset",
    danger: true,
    body: [h("p", {}, `This deletes the dataset, its ${n.toLocaleString()} sample${n === 1 ? "" : "s"} with their fields, `,
      `and its ${items.length} job${items.length === 1 ? "" : "s"} with their history. The files on disk stay. `,
      "It is refused while a job runs on it.")],
    onSubmit: async () => {
      await api("DELETE", `/datasets/${enc(dataset.name)}`);
      toast(`Deleted ${dataset.name}`, "ok");
      go("#/datasets");
    },
  });
}
