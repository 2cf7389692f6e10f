// Models menu: list, "Create Model", model page (description, tags, versions), Upload, Deploy, Share, Delete.
import { api, enc } from "./api.js";
import { clear, field, fmtBytes, fmtDate, h, modal } from "./dom.js";
import { currentUser, go, toast } from "./app.js";
import { statusBadge } from "./deployments.js";

// The seed's example schema, prefilled in the Upload dialog.
const EXAMPLE_SCHEMA = {
  inputs: { type: "object", properties: { image_paths: { type: "local" } } },
  outputs: { type: "object", properties: { predictions: { type: "classification" } } },
};
const NAME_PATTERN = "[A-Za-z0-9_.\\-]{1,64}";
const NAME_HELP = "1–64 letters, digits, '-', '_' or '.'; unique (case-insensitively).";

export function sharingSummary(sharing) {
  const users = Object.keys((sharing && sharing.users) || {}).length;
  const everyone = (sharing && sharing.everyone) || "none";
  const parts = [];
  if (everyone !== "none") parts.push(`everyone: ${everyone}`);
  if (users) parts.push(`${users} user${users === 1 ? "" : "s"}`);
  return parts.length ? parts.join(", ") : "private";
}

const tagChips = (tags) => h("span", { class: "chips" }, (tags || []).map((t) => h("span", { class: "chip tag" }, t)));

// ------------------------------------------------------------------ list

export async function modelsView(view) {
  const { items } = await api("GET", `/models`);
  const rows = items.map((m) => h("tr", {},
    h("td", {}, h("a", { href: `#/models/${enc(m.name)}`, class: "strong" }, m.name),
      m.description ? h("div", { class: "muted clamp" }, m.description) : null),
    h("td", {}, m.owner),
    h("td", {}, tagChips(m.tags)),
    h("td", { class: "num" }, m.versions.length),
    h("td", {}, h("span", { class: `share ${m.sharing.everyone !== "none" ? "public" : ""}` }, sharingSummary(m.sharing))),
    h("td", {}, fmtDate(m.updated_at))));
  clear(view,
    h("div", { class: "page-head" }, h("h1", {}, "Models"),
      h("button", { type: "button", class: "primary", onclick: createModelDialog }, "Create Model")),
    items.length
      ? h("table", { class: "table" },
        h("thead", {}, h("tr", {}, ["Name", "Owner", "Tags", "Versions", "Sharing", "Updated"].map((c) =>
          h("th", { scope: "col", class: c === "Versions" ? "num" : "" }, c)))),
        h("tbody", {}, rows))
      : h("div", { class: "empty" }, h("p", {}, "No models yet. Click “Create Model” to register one.")));
}

function createModelDialog() {
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

// ------------------------------------------------------------------ model page

export async function modelView(view, name) {
  const [model, deployments] = await Promise.all([
    api("GET", `/models/${enc(name)}`),
    api("GET", `/deployments`).then((d) => d.items).catch(() => []),
  ]);
  const user = currentUser();
  const isOwner = user && (user.is_admin || user.username === model.owner);
  const versions = [...model.versions].sort((a, b) => b.version - a.version);

  // description + tags editor
  const description = h("textarea", { rows: 4, maxlength: 10000, placeholder: "What does this model do? Inputs, outputs, training data…" });
  description.value = model.description || "";
  let tags = [...model.tags];
  const tagList = h("ul", { class: "chips editable", "aria-label": "Tags" });
  const renderTags = () => clear(tagList, tags.map((t, i) => h("li", { class: "chip tag" }, t,
    h("button", { type: "button", class: "chip-x", "aria-label": `Remove tag ${t}`,
      onclick: () => { tags.splice(i, 1); renderTags(); } }, "×"))));
  renderTags();
  const tagInput = h("input", { placeholder: "Add a tag and press Enter", maxlength: 100, autocomplete: "off" });
  const addTag = () => {
    const value = tagInput.value.trim();
    if (value && !tags.includes(value)) tags.push(value);
    tagInput.value = "";
    renderTags();
  };
  tagInput.addEventListener("keydown", (e) => {
    if (e.key === "Enter") {
      e.preventDefault();
      addTag();
    }
  });
  const save = h("button", { type: "submit", class: "primary" }, "Save");
  const details = h("form", { class: "card" },
    h("h2", {}, "About"),
    field("Description", description),
    h("div", { class: "field" }, h("label", { for: "tag-input" }, "Tags"), tagList,
      h("div", { class: "inline" }, Object.assign(tagInput, { id: "tag-input" }),
        h("button", { type: "button", class: "secondary", onclick: addTag }, "Add tag"))),
    h("div", { class: "actions" }, save));
  details.addEventListener("submit", async (e) => {
    e.preventDefault();
    if (tagInput.value.trim()) addTag();
    save.disabled = true;
    try {
      await api("PATCH", `/models/${enc(name)}`, { description: description.value, tags });
      toast("Saved", "ok");
    } finally {
      save.disabled = false;
    }
  });

  const versionsTable = versions.length
    ? h("table", { class: "table" },
      h("thead", {}, h("tr", {}, ["Version", "SHA-256", "Size", "Inputs → outputs", "Created", "By"].map((c) => h("th", { scope: "col" }, c)))),
      h("tbody", {}, versions.map((v) => h("tr", {},
        h("td", { class: "strong" }, `v${v.version}`),
        h("td", {}, h("code", { title: v.sha256 }, v.sha256.slice(0, 12))),
        h("td", {}, fmtBytes(v.size_bytes)),
        h("td", {}, schemaSummary(v.schema)),
        h("td", {}, fmtDate(v.created_at)),
        h("td", {}, v.created_by)))))
    : h("p", { class: "muted" }, "No versions yet. Click “Upload” to add the packed model (.zip) and its schema.");

  const mine = deployments.filter((d) => d.model === model.name && d.status !== "stopped");
  const deploymentsCard = h("section", { class: "card" }, h("h2", {}, "Deployments"),
    mine.length
      ? h("ul", { class: "plain" }, mine.map((d) => h("li", {}, h("strong", {}, d.name), ` v${d.version} `, statusBadge(d.status),
        ` ${d.ready_replicas}/${d.num_replicas} replicas`)))
      : h("p", { class: "muted" }, "None active."),
    h("p", {}, h("a", { href: "#/deployments" }, "All deployments →")));

  const deployBtn = h("button", { type: "button", class: "secondary", onclick: () => deployDialog(model, versions),
    disabled: !versions.length, title: versions.length ? null : "Upload a version first" }, "Deploy");
  clear(view,
    h("nav", { class: "crumbs", "aria-label": "Breadcrumb" }, h("a", { href: "#/models" }, "Models"), " / ", model.name),
    h("div", { class: "page-head" },
      h("div", {}, h("h1", {}, model.name),
        h("p", { class: "muted" }, `Owner ${model.owner} · created ${fmtDate(model.created_at)} · sharing: ${sharingSummary(model.sharing)}`)),
      h("div", { class: "toolbar" },
        h("button", { type: "button", class: "primary", onclick: () => uploadDialog(model) }, "Upload"),
        deployBtn,
        h("button", { type: "button", class: "secondary", onclick: () => shareDialog(model), disabled: !isOwner,
          title: isOwner ? null : "Only the owner can change sharing" }, "Share"),
        h("button", { type: "button", class: "danger-outline", onclick: () => deleteDialog(model), disabled: !isOwner,
          title: isOwner ? null : "Only the owner can delete" }, "Delete"))),
    h("div", { class: "grid-2" }, details, deploymentsCard),
    h("section", { class: "card" }, h("h2", {}, "Versions"), versionsTable));
}

function schemaSummary(schema) {
  const names = (part) => Object.entries((schema && schema[part] && schema[part].properties) || {})
    .map(([n, s]) => `${n}: ${s && s.type}`).join(", ");
  return h("span", { class: "muted small" }, `${names("inputs")} → ${names("outputs")}`);
}

// ------------------------------------------------------------------ dialogs

function uploadDialog(model) {
  const file = h("input", { type: "file", name: "file", accept: ".zip,application/zip", required: true });
  const schema = h("textarea", { name: "schema", rows: 16, class: "mono", required: true, spellcheck: "false" });
  schema.value = JSON.stringify(EXAMPLE_SCHEMA, null, 2);
  modal({
    title: `Upload a version of ${model.name}`,
    submitLabel: "Upload",
    wide: true,
    body: [
      field("Model package (.zip)", file, "model.py defining class Model, weights and other files; see the README's “Packing a model”."),
      field("Model schema (JSON)", schema, "Input types: local, text, number, json. Output types: classification, detections, number, text, json."),
    ],
    onSubmit: async () => {
      try {
        JSON.parse(schema.value);
      } catch (exc) {
        throw new Error(`The schema is not valid JSON: ${exc.message}`);
      }
      const form = new FormData();
      form.append("file", file.files[0]);
      form.append("schema", schema.value);
      // on failure api() toasts the server's detail and modal() shows it verbatim in the dialog, which stays open
      const version = await api("POST", `/models/${enc(model.name)}/versions`, form);
      toast(`Uploaded ${model.name} v${version.version}`, "ok");
      go(`#/models/${enc(model.name)}`);
    },
  });
}

function numberInput(name, value, min, max) {
  return h("input", { type: "number", name, value: String(value), min, max, step: 1, required: true });
}

function deployDialog(model, versions) {
  const name = h("input", { name: "name", required: true, pattern: NAME_PATTERN, maxlength: 64, autocomplete: "off" });
  const version = h("select", { name: "version" }, versions.map((v, i) =>
    h("option", { value: String(v.version), selected: i === 0 }, `v${v.version}${i === 0 ? " (latest)" : ""}`)));
  const modelType = h("select", { name: "model_type" }, h("option", { value: "inference", selected: true }, "Inference"));
  const miniBatch = numberInput("mini_batch", 1, 1, 4096);
  const replicas = numberInput("num_replicas", 1, 1, 64);
  const gpus = numberInput("num_gpus", 0, 0, 1);
  const customEnv = h("input", { type: "checkbox", name: "custom_env", id: "deploy-custom-env" });
  modal({
    title: `Deploy ${model.name}`,
    submitLabel: "Deploy",
    body: [
      field("Deploy Name", name, NAME_HELP),
      field("Version", version),
      field("Model Type", modelType),
      h("div", { class: "row-3" },
        field("Mini Batch", miniBatch, "Larger if the model batches; mind memory."),
        field("Num Replicas", replicas, "Model instances to spin up."),
        field("Num gpus", gpus, "0, or 1 if the model runs on GPU.")),
      h("fieldset", { class: "field" }, h("legend", {}, "Environment (optional)"),
        h("label", { class: "check", for: "deploy-custom-env" }, customEnv, " Install Custom Conda Env"),
        h("small", { class: "help" }, "Builds the replica's environment from the package's environment.yml or requirements.txt.")),
    ],
    onSubmit: async () => {
      const deployment = await api("POST", `/models/${enc(model.name)}/deployments`, {
        name: name.value.trim(),
        version: Number(version.value),
        model_type: modelType.value,
        mini_batch: Number(miniBatch.value),
        num_replicas: Number(replicas.value),
        num_gpus: Number(gpus.value),
        custom_env: customEnv.checked,
      });
      toast(`Deployment ${deployment.name} requested`, "ok");
      go("#/deployments");
    },
  });
  name.focus();
}

function shareDialog(model) {
  const levels = (options, selected) => options.map((o) => h("option", { value: o, selected: o === selected }, o));
  const everyone = h("select", { name: "everyone" }, levels(["none", "run", "edit"], model.sharing.everyone));
  const rows = h("tbody", {});
  let counter = 0;
  const addRow = (username = "", level = "run") => {
    counter += 1;
    const userInput = h("input", { value: username, placeholder: "username", "aria-label": `Username ${counter}`,
      autocomplete: "off", required: true });
    const levelSelect = h("select", { "aria-label": `Permission ${counter}` }, levels(["run", "edit"], level));
    const tr = h("tr", { class: "share-row" }, h("td", {}, userInput), h("td", {}, levelSelect),
      h("td", {}, h("button", { type: "button", class: "secondary small", onclick: () => tr.remove(),
        "aria-label": `Remove ${username || "this user"}` }, "Remove")));
    rows.append(tr);
    return userInput;
  };
  Object.entries(model.sharing.users || {}).forEach(([u, l]) => addRow(u, l));
  modal({
    title: `Share ${model.name}`,
    submitLabel: "Save",
    body: [
      field("Everyone", everyone, "none: only you (and users below); run: anyone may deploy and run it; edit: also change it."),
      h("div", { class: "field" }, h("span", { class: "label" }, "Users"),
        h("table", { class: "table compact" },
          h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Username"), h("th", { scope: "col" }, "Permission"), h("th", {}, ""))),
          rows),
        h("button", { type: "button", class: "secondary small", onclick: () => addRow().focus() }, "Add user")),
    ],
    onSubmit: async () => {
      const users = {};
      for (const tr of rows.querySelectorAll("tr")) {
        const username = tr.querySelector("input").value.trim();
        if (username) users[username] = tr.querySelector("select").value;
      }
      await api("PUT", `/models/${enc(model.name)}/sharing`, { everyone: everyone.value, users });
      toast("Sharing saved", "ok");
      go(`#/models/${enc(model.name)}`);
    },
  });
}

function deleteDialog(model) {
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
