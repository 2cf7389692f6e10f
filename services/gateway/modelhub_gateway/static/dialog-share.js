// The Share dialog: everyone none/run/edit, and chosen users with run or edit.
import { api, enc } from "./api.js";
import { field, h, modal } from "./dom.js";
import { go, toast } from "./ui.js";

export function shareDialog(model) {
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
