// A model's page: description, tags, versions, aliases, its deployments; Upload, Deploy, Share, Delete.
import { api, enc } from "./api.js";
import { clear, field, fmtBytes, fmtDate, h } from "./dom.js";
import { currentUser, replicasText, scaledToZero, sharingSummary, statusBadge, toast } from "./ui.js";
import { uploadDialog } from "./dialog-upload.js";
import { deployDialog } from "./dialog-deploy.js";
import { shareDialog } from "./dialog-share.js";
import { deleteModelDialog } from "./dialog-delete-model.js";
import { aliasesPanel } from "./panel-aliases.js";

export async function modelView(view, name) {
  const [model, deployments] = await Promise.all([
    api("GET", `/models/${enc(name)}`),
    api("GET", `/deployments`).then((d) => d.items).catch(() => []),
  ]);
  const user = currentUser();
  const isOwner = user && (user.is_admin || user.username === model.owner);
  const canEdit = isOwner || (user && (model.sharing.everyone === "edit" || model.sharing.users[user.username] === "edit"));
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
        h("td", { class: "strong" }, `v${v.version}`, v.format && v.format !== "python" ? h("span", { class: "muted" }, ` ${v.format}`) : null),
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
        ` ${replicasText(d)}${scaledToZero(d) ? "" : " replicas"}`)))
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
        h("button", { type: "button", class: "danger-outline", onclick: () => deleteModelDialog(model), disabled: !isOwner,
          title: isOwner ? null : "Only the owner can delete" }, "Delete"))),
    h("div", { class: "grid-2" }, details, deploymentsCard),
    h("section", { class: "card" }, h("h2", {}, "Versions"), versionsTable),
    aliasesPanel(model, versions, canEdit, () => modelView(view, name)));
}

function schemaSummary(schema) {
  const names = (part) => Object.entries((schema && schema[part] && schema[part].properties) || {})
    .map(([n, s]) => `${n}: ${s && s.type}`).join(", ");
  return h("span", { class: "muted small" }, `${names("inputs")} → ${names("outputs")}`);
}
