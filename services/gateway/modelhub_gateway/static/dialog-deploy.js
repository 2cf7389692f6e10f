// The Deploy dialog (the seed's fields: name, version, model type, mini batch, replicas, GPUs, custom env).
import { api, enc } from "./api.js";
import { field, h, modal } from "./dom.js";
import { go, NAME_HELP, NAME_PATTERN, toast } from "./ui.js";

function numberInput(name, value, min, max) {
  return h("input", { type: "number", name, value: String(value), min, max, step: 1, required: true });
}

/** What a custom env deploy does with a version whose package holds `files` (null: not recorded). */
export function envText(label, files) {
  if (!Array.isArray(files)) {
    return "environment.yml is built with conda where the Ray nodes have it, else with pip; " +
      "requirements.txt with pip. A need pip cannot meet fails the deploy, naming it.";
  }
  if (files.length === 0) return `${label}'s package has neither environment.yml nor requirements.txt.`;
  if (!files.includes("environment.yml")) return `pip installs ${label}'s requirements.txt on the Ray nodes.`;
  const beside = files.includes("requirements.txt")
    ? " Its requirements.txt is used only if environment.yml's pip: list names it (-r requirements.txt)." : "";
  return `${label}'s environment.yml: conda builds it where the Ray nodes have conda; otherwise pip installs ` +
    "its pip: list and its conda packages by their PyPI names, and a conda-only one (e.g. cudatoolkit) " +
    `fails the deploy, naming it.${beside}`;
}

export function deployDialog(model, versions) {
  const name = h("input", { name: "name", required: true, pattern: NAME_PATTERN, maxlength: 64, autocomplete: "off" });
  const aliases = Object.entries(model.aliases || {}).sort(([a], [b]) => a.localeCompare(b));
  const version = h("select", { name: "version" }, versions.map((v, i) =>
    h("option", { value: String(v.version), selected: i === 0 }, `v${v.version}${i === 0 ? " (latest)" : ""}`)),
    aliases.map(([alias, v]) => h("option", { value: `@${alias}` }, `@${alias} (now v${v})`)));
  const modelType = h("select", { name: "model_type" }, h("option", { value: "inference", selected: true }, "Inference"));
  const miniBatch = numberInput("mini_batch", 1, 1, 4096);
  const replicas = numberInput("num_replicas", 1, 1, 64);
  const gpus = h("input", { type: "number", name: "num_gpus", value: "0", min: 0, max: 1, step: "any", required: true });
  const minReplicas = h("input", { type: "number", name: "min_replicas", min: 0, max: 64, step: 1, placeholder: "1" });
  const maxReplicas = h("input", { type: "number", name: "max_replicas", min: 1, max: 64, step: 1, placeholder: "off" });
  const scaleDownDelay = h("input", { type: "number", name: "scale_down_delay_s", min: 5, max: 86400, step: "any", placeholder: "600" });
  const customEnv = h("input", { type: "checkbox", name: "custom_env", id: "deploy-custom-env" });
  const envHelp = h("small", { class: "help", id: "deploy-custom-env-help" });
  // what ticking it will do with the chosen version's package (the registry records its files)
  const showEnv = () => {
    const chosen = versions.find((v) => String(v.version) === version.value);
    const files = chosen ? chosen.environment_files : null;
    customEnv.disabled = Array.isArray(files) && files.length === 0;
    if (customEnv.disabled) customEnv.checked = false;
    envHelp.textContent = envText(chosen ? `v${chosen.version}` : "this version", files);
  };
  version.addEventListener("change", showEnv);
  showEnv();
  modal({
    title: `Deploy ${model.name}`,
    submitLabel: "Deploy",
    body: [
      field("Deploy Name", name, NAME_HELP),
      field("Version", version, aliases.length ? "An alias is resolved now: the deployment keeps that version." : null),
      field("Model Type", modelType),
      h("div", { class: "row-3" },
        field("Mini Batch", miniBatch, "Larger if the model batches; mind memory."),
        field("Num Replicas", replicas, "Model instances to spin up."),
        field("Num gpus", gpus, "0 to 1 per replica; 0.5 lets two replicas share a GPU.")),
      h("div", { class: "row-3" },
        field("Min Replicas", minReplicas, "Autoscaling: fewest replicas (default 1)."),
        field("Max Replicas", maxReplicas, "Autoscaling: empty for a fixed number of replicas."),
        field("Scale Down Delay (s)", scaleDownDelay,
          "Autoscaling: idle this long, a replica goes; with min 0 the last one too (scaled to zero).")),
      h("fieldset", { class: "field" }, h("legend", {}, "Environment (optional)"),
        h("label", { class: "check", for: "deploy-custom-env" }, customEnv,
          " Build the model's environment from its requirements.txt / environment.yml (pip; conda when the cluster has it)"),
        envHelp),
    ],
    onSubmit: async () => {
      const deployment = await api("POST", `/models/${enc(model.name)}/deployments`, {
        name: name.value.trim(),
        version: version.value.startsWith("@") ? version.value : Number(version.value),
        model_type: modelType.value,
        mini_batch: Number(miniBatch.value),
        num_replicas: Number(replicas.value),
        num_gpus: Number(gpus.value),
        custom_env: customEnv.checked,
        ...(maxReplicas.value ? { max_replicas: Number(maxReplicas.value) } : {}),
        ...(maxReplicas.value && minReplicas.value ? { min_replicas: Number(minReplicas.value) } : {}),
        ...(maxReplicas.value && scaleDownDelay.value ? { scale_down_delay_s: Number(scaleDownDelay.value) } : {}),
      });
      toast(`Deployment ${deployment.name} requested`, "ok");
      go("#/deployments");
    },
  });
  name.focus();
}
