// Deployments: status badges, replicas, errors, Stop; refreshes every 2 s while any is in transition.
import { api, enc } from "./api.js";
import { clear, fmtDate, h, modal } from "./dom.js";
import { every, replicasText, scaledToZero, statusBadge, toast } from "./ui.js";

const TRANSITIONAL = new Set(["pending", "deploying", "stopping"]);
const STOPPABLE = new Set(["pending", "deploying", "running"]);

// "custom env: pip" once the deployer chose the route; its packages and why on hover
function envChip(env) {
  if (!env) return h("span", { class: "chip small" }, "custom env");
  const title = `${env.route} from ${env.file}: ${env.packages.join(", ") || "nothing to install"}\n${env.reason}`;
  return h("span", { class: "chip small", title }, `custom env: ${env.route}`);
}

export async function deploymentsView(view) {
  const table = h("div", {});
  const showStopped = h("input", { type: "checkbox", id: "show-stopped" });
  let stopPolling = null;

  const load = async () => {
    const { items } = await api("GET", `/deployments`);
    const visible = showStopped.checked ? items : items.filter((d) => d.status !== "stopped");
    visible.sort((a, b) => String(b.created_at).localeCompare(String(a.created_at)));
    render(visible, items.length - visible.length);
    const busy = items.some((d) => TRANSITIONAL.has(d.status));
    if (busy && !stopPolling) stopPolling = every(2000, () => load().catch(() => {}));
    if (!busy && stopPolling) {
      stopPolling();
      stopPolling = null;
    }
  };

  const render = (items, hidden) => {
    clear(table, items.length
      ? h("table", { class: "table" },
        h("thead", {}, h("tr", {}, ["Name", "Model", "Status", "Replicas", "Mini batch", "GPUs", "Created", ""].map((c) =>
          h("th", { scope: "col" }, c)))),
        h("tbody", {}, items.map((d) => h("tr", {},
          h("td", { class: "strong" }, d.name, d.custom_env ? envChip(d.environment) : null),
          h("td", {}, h("a", { href: `#/models/${enc(d.model)}` }, d.model), ` v${d.version}`,
            d.alias ? h("span", { class: "muted small" }, ` (@${d.alias})`) : null),
          h("td", {}, statusBadge(d.status),
            d.status === "failed" && d.error ? h("div", { class: "error-text" }, d.error) : null,
            d.model_process && d.model_process.last_death
              ? h("div", { class: "muted small", title: d.model_process.last_death },
                `model process restarted (${d.model_process.restarts}): ${d.model_process.last_death.split("\n")[0]}`)
              : null,
            d.model_process && !d.model_process.jailed ? h("div", { class: "error-text" }, "UNSEALED") : null),
          h("td", { class: "num", title: scaledToZero(d)
            ? `idle for ${d.scale_down_delay_s} s: no replica runs; a predict or a job starts one and waits for it`
            : null }, replicasText(d)),
          h("td", { class: "num" }, d.mini_batch),
          h("td", { class: "num" }, d.num_gpus),
          h("td", {}, fmtDate(d.created_at), h("div", { class: "muted small" }, `by ${d.created_by}`)),
          h("td", { class: "right" }, STOPPABLE.has(d.status)
            ? h("button", { type: "button", class: "danger-outline small", onclick: () => stop(d) }, "Stop")
            : null)))))
      : h("div", { class: "empty" }, h("p", {}, hidden
        ? `No active deployments (${hidden} stopped hidden).`
        : "No deployments yet. Open a model and click “Deploy”.")));
  };

  const stop = (d) => modal({
    title: `Stop ${d.name}?`,
    submitLabel: "Stop",
    danger: true,
    body: [h("p", {}, `The replicas of ${d.model} v${d.version} are shut down; running jobs on it will fail.`)],
    onSubmit: async () => {
      await api("DELETE", `/deployments/${enc(d.name)}`);
      toast(`Stopping ${d.name}`, "ok");
      await load();
    },
  });

  showStopped.addEventListener("change", () => load().catch(() => {}));
  clear(view,
    h("div", { class: "page-head" }, h("h1", {}, "Deployments"),
      h("label", { class: "check", for: "show-stopped" }, showStopped, " Show stopped")),
    table);
  await load();
}
