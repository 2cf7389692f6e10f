// The dataset page's "Execution" tab: each job's live progress, counts, failures, Cancel and Retry failed.
import { api, enc } from "./api.js";
import { clear, fmtDate, h } from "./dom.js";
import { statusBadge, viewSignal } from "./ui.js";

const JOB_ACTIVE = new Set(["queued", "running"]);
const JOB_TERMINAL = new Set(["completed", "failed", "cancelled"]);
const SAMPLES_REFRESH_MS = 3000;

/** The jobs of dataset `name`, followed live while queued or running; `onJobEnded()` re-reads the
 * samples (while a job writes, and when it ends), `onShowFailed(jobId)` shows a job's failed samples. Returns {element, load}. */
export function executionPanel(name, onJobEnded, onShowFailed) {
  const jobs = new Map(); // id -> {job, card, update}
  const jobList = h("div", { class: "job-list" });

  const loadJobs = async () => {
    const { items } = await api("GET", `/datasets/${enc(name)}/jobs`);
    const seen = new Set();
    for (const job of items) {
      seen.add(job.id);
      if (jobs.has(job.id)) jobs.get(job.id).update(job);
      else jobs.set(job.id, jobCard(job));
    }
    for (const id of [...jobs.keys()]) if (!seen.has(id)) jobs.delete(id);
    clear(jobList, items.length
      ? items.map((j) => jobs.get(j.id).card)
      : h("p", { class: "muted" }, "No jobs yet. Click the suitcase button to run a model on this dataset."));
    ensurePolling();
  };

  // Live progress: each queued or running job is followed on its Server-Sent Events stream
  // (GET /jobs/{id}/events, read with fetch so the token stays in a header); the samples are
  // re-read at most every few seconds while a job writes, and once more when it ends.
  const following = new Set();
  const ensurePolling = () => {
    for (const entry of jobs.values()) {
      if (JOB_ACTIVE.has(entry.job.status) && !following.has(entry.job.id)) follow(entry);
    }
  };
  const follow = async (entry) => {
    const id = entry.job.id;
    following.add(id);
    try {
      await api("GET", `/jobs/${enc(id)}/events`, undefined, { quiet: true, signal: viewSignal(), onEvent: (job) => {
        const wrote = job.succeeded !== entry.job.succeeded;
        entry.update(job);
        if (wrote) samplesChanged();
      } });
    } catch {
      // the stream broke (gateway restarting): read the job once more below and follow again
    } finally {
      following.delete(id);
    }
    if (!document.body.contains(jobList)) return; // the view was left
    const job = await api("GET", `/jobs/${enc(id)}`, undefined, { quiet: true }).catch(() => null);
    if (job) entry.update(job);
    if (JOB_TERMINAL.has(entry.job.status)) await onJobEnded(); // the new fields are in
    else setTimeout(ensurePolling, 1000);
  };
  let refreshAt = 0;
  let refreshTimer = null;
  const samplesChanged = () => {
    if (refreshTimer) return;
    const wait = Math.max(0, refreshAt - Date.now());
    refreshTimer = setTimeout(async () => {
      refreshTimer = null;
      refreshAt = Date.now() + SAMPLES_REFRESH_MS;
      if (document.body.contains(jobList)) await onJobEnded();
    }, wait);
  };

  function jobCard(initial) {
    const entry = { job: initial };
    const badge = h("span", {});
    const bar = h("div", { class: "bar-fill" });
    const progress = h("div", { class: "progress", role: "progressbar", "aria-valuemin": "0", "aria-valuemax": "100" }, bar);
    const counts = h("div", { class: "counts small" });
    const times = h("div", { class: "muted small" });
    const failuresBox = h("div", { class: "failures", hidden: true });
    const cancel = h("button", { type: "button", class: "secondary small", onclick: async () => {
      cancel.disabled = true;
      try {
        entry.update(await api("POST", `/jobs/${enc(entry.job.id)}/cancel`));
      } catch {
        cancel.disabled = false;
      }
    } }, "Cancel");
    const retry = h("button", { type: "button", class: "secondary small", onclick: async () => {
      retry.disabled = true;
      try {
        entry.update(await api("POST", `/jobs/${enc(entry.job.id)}/retry`));
        failuresBox.hidden = true;
        failuresToggle.setAttribute("aria-expanded", "false");
        ensurePolling();
      } catch {
        retry.disabled = false;
      }
    } }, "Retry failed");
    const failuresToggle = h("button", { type: "button", class: "link small", "aria-expanded": "false", onclick: async () => {
      const open = failuresBox.hidden;
      failuresToggle.setAttribute("aria-expanded", String(open));
      failuresBox.hidden = !open;
      if (!open) return;
      clear(failuresBox, h("p", { class: "muted small" }, "Loading…"));
      try {
        const { items } = await api("GET", `/jobs/${enc(entry.job.id)}/failures`);
        clear(failuresBox, items.length
          ? h("ul", { class: "plain" }, items.map((f) => h("li", {}, h("code", {}, f.sample_id), h("div", { class: "error-text" }, f.error))))
          : h("p", { class: "muted small" }, "No failures recorded."));
      } catch (exc) {
        clear(failuresBox, h("p", { class: "error-text" }, exc.detail || String(exc)));
      }
    } }, "Failures");
    const showFailed = h("button", { type: "button", class: "link small", onclick: () => onShowFailed(entry.job.id) },
      "Show failed samples");
    const mapping = Object.entries(initial.outputs || {}).map(([o, f]) => `${o} → ${f}`).join(", ");
    const card = h("article", { class: "job" },
      h("div", { class: "job-head" }, badge, h("span", { class: "strong" }, initial.deployment),
        h("span", { class: "muted small" }, `${initial.model} v${initial.version}`)),
      h("div", { class: "muted small" }, `outputs: ${mapping}`,
        initial.only && initial.only !== "all" ? ` · only ${initial.only} samples` : ""),
      progress, counts, times,
      h("div", { class: "job-actions" }, cancel, retry, failuresToggle, showFailed),
      failuresBox,
      h("div", { class: "muted tiny" }, `job ${initial.id}`));
    entry.card = card;
    entry.update = (job) => {
      entry.job = job;
      const pct = Math.round((job.progress || 0) * 100);
      clear(badge, statusBadge(job.status));
      bar.style.width = `${pct}%`;
      bar.className = `bar-fill ${job.failed ? "has-failures" : ""} ${job.status}`;
      progress.setAttribute("aria-valuenow", String(pct));
      progress.setAttribute("aria-label", `Job progress ${pct}%`);
      clear(counts, h("strong", {}, `${pct}%`), ` · ${job.succeeded} succeeded · `,
        h("span", { class: job.failed ? "error-text" : "" }, `${job.failed} failed`), ` · ${job.total} total`);
      clear(times, h("div", {}, `Started ${fmtDate(job.started_at || job.created_at)}`),
        job.finished_at ? h("div", {}, `Finished ${fmtDate(job.finished_at)}`) : null);
      cancel.hidden = !JOB_ACTIVE.has(job.status);
      cancel.disabled = false;
      retry.hidden = !(job.failed > 0 && JOB_TERMINAL.has(job.status));
      retry.disabled = false;
      failuresToggle.hidden = !(job.failed > 0);
      showFailed.hidden = !(job.failed > 0);
    };
    entry.update(initial);
    return entry;
  }

  const element = h("div", { class: "panel-body" },
    h("div", { class: "panel-actions" },
      h("button", { type: "button", class: "secondary small", onclick: () => loadJobs().catch(() => {}) }, "Refresh")), jobList);
  return { element, load: loadJobs };
}
