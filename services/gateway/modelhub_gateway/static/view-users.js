// Users (the admin's page): who has access, create a user (the token is shown once), off-board one.
import { api, enc } from "./api.js";
import { clear, field, fmtDate, h, modal } from "./dom.js";
import { toast } from "./ui.js";

export async function usersView(view) {
  const table = h("div", {});
  const load = async () => {
    const { items } = await api("GET", `/users`);
    clear(table, h("table", { class: "table" },
      h("thead", {}, h("tr", {}, ["User", "Role", "Status", "Created", ""].map((c) => h("th", { scope: "col" }, c)))),
      h("tbody", {}, items.map((u) => h("tr", {},
        h("td", { class: "strong" }, u.username),
        h("td", {}, u.is_admin ? "admin" : "user"),
        h("td", {}, u.disabled ? h("span", { class: "badge status-failed" }, "disabled") : h("span", { class: "badge status-running" }, "active")),
        h("td", {}, fmtDate(u.created_at)),
        h("td", { class: "right" }, !u.is_admin && !u.disabled
          ? h("button", { type: "button", class: "danger-outline small", onclick: () => disable(u) }, "Disable")
          : null))))));
  };
  const disable = (u) => modal({
    title: `Disable ${u.username}?`,
    submitLabel: "Disable",
    danger: true,
    body: [h("p", {}, `Every token of ${u.username} stops working at once. The name stays reserved, and what they `,
      "own (models, datasets, deployments) stays: you can keep or delete it.")],
    onSubmit: async () => {
      await api("DELETE", `/users/${enc(u.username)}`);
      toast(`Disabled ${u.username}`, "ok");
      await load();
    },
  });
  const create = () => {
    let created = null;
    const name = h("input", { required: true, pattern: "[A-Za-z0-9_.\\-]{1,64}", maxlength: 64, autocomplete: "off" });
    modal({
      title: "Create user",
      submitLabel: "Create",
      body: [field("Username", name, "1–64 letters, digits, '-', '_' or '.'.")],
      onSubmit: async (form) => {
        if (created) return false; // "Done"
        created = await api("POST", `/users`, { username: name.value.trim() });
        await load();
        // the token is shown once, in the dialog, until the admin clicks Done
        clear(form.querySelector(".dialog-body"), h("p", {}, `Created ${created.username}. Their token, shown only now:`),
          h("pre", { class: "token mono" }, created.token));
        form.querySelector("button[type=submit]").textContent = "Done";
        return true;
      },
    });
    name.focus();
  };
  clear(view, h("div", { class: "page-head" }, h("h1", {}, "Users"),
    h("button", { type: "button", class: "primary", onclick: create }, "Create user")), table);
  await load();
}
