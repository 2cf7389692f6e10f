// The "Add samples" dialog: absolute file paths, sent 10,000 per request.
import { api, enc } from "./api.js";
import { field, h, modal } from "./dom.js";
import { toast } from "./ui.js";

const CHUNK = 10000; // the API takes up to 10,000 samples per request

export function addSamplesDialog(name, done) {
  const paths = h("textarea", { rows: 12, class: "mono", required: true, spellcheck: "false",
    placeholder: "/data/photos/0001.jpg\n/data/photos/0002.jpg" });
  const progress = h("p", { class: "muted small", role: "status" });
  modal({
    title: `Add samples to ${name}`,
    submitLabel: "Add",
    wide: true,
    body: [field("Absolute file paths, one per line", paths,
      "The files stay where they are; inference workers read them from these paths. Sent 10,000 per request."), progress],
    onSubmit: async () => {
      const lines = paths.value.split(/\r?\n/).map((l) => l.trim()).filter(Boolean);
      if (!lines.length) throw new Error("Paste at least one path.");
      const relative = lines.findIndex((l) => !l.startsWith("/"));
      if (relative >= 0) throw new Error(`Line ${relative + 1} is not an absolute path: ${lines[relative]}`);
      let added = 0;
      try {
        for (let i = 0; i < lines.length; i += CHUNK) {
          const chunk = lines.slice(i, i + CHUNK).map((filepath) => ({ filepath }));
          const result = await api("POST", `/datasets/${enc(name)}/samples`, { samples: chunk });
          added += result.added;
          progress.textContent = `Added ${added.toLocaleString()} of ${lines.length.toLocaleString()}…`;
        }
      } finally {
        if (added) await done();
      }
      toast(`Added ${added.toLocaleString()} samples`, "ok");
    },
  });
  paths.focus();
}
