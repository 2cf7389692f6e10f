"""`modelhub run` (a deployment over a dataset, followed to the end) and `modelhub jobs ...`: show,
list, follow, failures, trace, cancel and retry jobs."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

import click

from modelhub import exitcodes, trace
from modelhub.api import ApiClient, ApiError, GatewayError
from modelhub.commands import base, complete
from modelhub.commands.base import api_command, api_group, fail, pairs_option
from modelhub.render import JobProgress, Output, cell, echo_table, items, record_renderer
from modelhub.settings import CliSettings

JOB_DONE = frozenset({"completed", "failed", "cancelled"})
MAX_FAILURES_SHOWN = 5

jobs = api_group("jobs", "Inspect, cancel and retry jobs (runs of a deployment over a dataset).")
JOB_KEYS = (
    "id",
    "dataset",
    "deployment",
    "model",
    "version",
    "outputs",
    "only",
    "status",
    "total",
    "succeeded",
    "failed",
    "progress",
    "created_at",
    "started_at",
    "finished_at",
)


def follow_job(api: ApiClient, job: dict) -> dict:
    """Show the job's progress until it ends: its event stream, else polling."""
    progress = JobProgress(job)
    try:
        if job.get("status") not in JOB_DONE:
            job = _follow_events(api, job, progress)
        while job.get("status") not in JOB_DONE:
            time.sleep(base.POLL_INTERVAL)
            job = api.get_job(job["id"])
            progress.update(job)
    except KeyboardInterrupt:
        progress.close()
        fail(f"stopped waiting; job {job['id']} goes on (see `modelhub jobs show {job['id']}`)", exitcodes.INTERRUPTED)
    progress.close()
    return job


def _follow_events(api: ApiClient, job: dict, progress: JobProgress) -> dict:
    try:
        with contextlib.closing(api.job_events(job["id"])) as events:
            for event in events:
                if isinstance(event, dict):
                    job = {**job, **event}
                    progress.update(job)
                if job.get("status") in JOB_DONE:
                    break
    except (ApiError, GatewayError):
        pass  # the stream broke: the caller falls back to polling
    return job


def job_summary(job: dict) -> str:
    return f"job {job['id']} {job.get('status')}: {job.get('succeeded', 0)} succeeded, {job.get('failed', 0)} failed"


def render_job_result(api: ApiClient, job: dict) -> None:
    click.echo(job_summary(job))
    if job.get("failed"):
        failures = items(api.job_failures(job["id"]))
        for failure in failures[:MAX_FAILURES_SHOWN]:
            click.echo(f"  sample {failure.get('sample_id')}: {cell(failure.get('error'))}")
        if len(failures) > MAX_FAILURES_SHOWN:
            click.echo(
                f"  ... and {len(failures) - MAX_FAILURES_SHOWN} more (see `modelhub jobs failures {job['id']}`)"
            )


def exit_by_outcome(job: dict) -> None:
    """Exit with JOB_FAILED unless the job completed with every sample annotated."""
    if job.get("status") != "completed" or job.get("failed"):
        click.get_current_context().exit(exitcodes.JOB_FAILED)


def follow_to_the_end(api: ApiClient, out: Output, job: dict) -> None:
    """Follow the job until it ends, print the outcome, and exit by it."""
    job = follow_job(api, job)
    out.emit(job, lambda j: render_job_result(api, j))
    if out.as_json:
        Output.note(job_summary(job))
    exit_by_outcome(job)


def finish_job(api: ApiClient, out: Output, job: dict, wait: bool) -> None:
    """Print a submitted job, or follow it to the end (exit code by its outcome)."""
    if not wait:
        out.emit(
            job,
            lambda j: click.echo(
                f"job {j['id']} {j.get('status', 'submitted')} "
                f"(dataset {j.get('dataset')}, deployment {j.get('deployment')})"
            ),
        )
        return
    Output.note(f"job {job['id']} submitted")
    follow_to_the_end(api, out, job)


@click.command("run")
@api_command
@click.argument("dataset", shell_complete=complete.datasets)
@click.option("--deployment", required=True, help="A running deployment.")
@pairs_option(
    "--output",
    "outputs",
    metavar="MODEL_OUTPUT=FIELD",
    required=True,
    help="Store a model output in a sample field (repeatable).",
)
@pairs_option(
    "--input",
    "inputs",
    metavar="MODEL_INPUT=FIELD",
    help="Feed a sample field to a model input (default: `local` inputs read the filepath).",
)
@click.option(
    "--only",
    type=click.Choice(["all", "missing", "stale"]),
    default=None,
    help="Which samples run: all (the default); missing: those lacking an output field; stale: "
    "those too, and those whose field another model or model version wrote.",
)
@click.option("--wait/--no-wait", default=True, show_default=True, help="Follow the job until it ends.")
def run(
    api: ApiClient,
    out: Output,
    dataset: str,
    deployment: str,
    outputs: dict,
    inputs: dict,
    only: str | None,
    wait: bool,
) -> None:
    """Run a deployment over the samples of DATASET (every one, or those --only selects).

    With --wait, exits 0 only when every sample succeeded, 4 otherwise. A run with nothing to do
    (--only missing when every sample has its fields) completes at once with 0 samples.
    """
    finish_job(api, out, api.submit_job(dataset, deployment, outputs, inputs or None, only), wait)


@jobs.command("show")
@api_command
@click.argument("job_id", metavar="ID")
def jobs_show(api: ApiClient, out: Output, job_id: str) -> None:
    """Show a job."""
    out.emit(api.get_job(job_id), record_renderer(*JOB_KEYS))


@jobs.command("list")
@api_command
@click.argument("dataset", required=False, shell_complete=complete.datasets)
def jobs_list(api: ApiClient, out: Output, dataset: str | None) -> None:
    """List a dataset's jobs, newest first; without DATASET, the jobs of every dataset you can see.

    The gateway lists jobs per dataset only: without DATASET this asks for each dataset's jobs in
    turn (one request per dataset) and merges them, newest first.
    """
    out.emit(
        api.list_jobs(dataset) if dataset else all_jobs(api),
        lambda page: echo_table(
            ["ID", "STATUS", "DATASET", "DEPLOYMENT", "SUCCEEDED", "FAILED", "TOTAL", "CREATED_AT"],
            (
                [
                    j.get("id"),
                    j.get("status"),
                    j.get("dataset"),
                    j.get("deployment"),
                    j.get("succeeded"),
                    j.get("failed"),
                    j.get("total"),
                    j.get("created_at"),
                ]
                for j in items(page)
            ),
            empty="no jobs",
        ),
    )


def all_jobs(api: ApiClient) -> dict:
    """The jobs of every dataset the caller may see, newest first (a dataset deleted meanwhile is skipped)."""
    found: list[dict] = []
    for ds in items(api.list_datasets()):
        try:
            found += items(api.list_jobs(ds["name"]))
        except ApiError as exc:
            if exc.status != 404:
                raise
    return {"items": sorted(found, key=lambda j: str(j.get("created_at") or ""), reverse=True)}


@jobs.command("follow")
@api_command
@click.argument("job_id", metavar="ID")
def jobs_follow(api: ApiClient, out: Output, job_id: str) -> None:
    """Show a job's progress live until it ends (its event stream, else polling).

    Exits 0 when every sample succeeded, 4 when the job ended with failed samples, failed or was
    cancelled (see `modelhub --help` for the other exit codes).
    """
    follow_to_the_end(api, out, api.get_job(job_id))


@jobs.command("failures")
@api_command
@click.argument("job_id", metavar="ID")
def jobs_failures(api: ApiClient, out: Output, job_id: str) -> None:
    """List the samples a job failed on, with their errors."""
    out.emit(
        api.job_failures(job_id),
        lambda page: echo_table(
            ["SAMPLE", "ERROR"], ([f.get("sample_id"), f.get("error")] for f in items(page)), empty="no failures"
        ),
    )


@jobs.command("trace")
@api_command
@click.argument("job_id", metavar="ID")
@click.option(
    "--telemetry-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where the stack writes spans (default DIR/telemetry).",
)
def jobs_trace(api: ApiClient, out: Output, job_id: str, telemetry_dir: Path | None) -> None:
    """Print the job's trace: its spans as a tree, with start offsets and durations (--json: the spans)."""
    api.get_job(job_id)  # the job exists and you may see it
    telemetry_dir = telemetry_dir or CliSettings().client_dir() / "telemetry"
    spans = trace.job_spans(trace.read_spans(telemetry_dir), job_id)
    if not spans and not out.as_json:
        fail(
            f"no spans of job {job_id} under {telemetry_dir} (yet: spans are "
            "written every few seconds; with an OTLP exporter they are in your tracing backend)"
        )
    out.emit(spans, lambda s: click.echo("\n".join(trace.render_tree(s))))


@jobs.command("cancel")
@api_command
@click.argument("job_id", metavar="ID")
def jobs_cancel(api: ApiClient, out: Output, job_id: str) -> None:
    """Cancel a job."""
    result = api.cancel_job(job_id)
    out.emit(
        result if result is not None else {"id": job_id},
        lambda _: click.echo(f"cancellation of job {job_id} requested"),
    )


@jobs.command("retry")
@api_command
@click.argument("job_id", metavar="ID")
@click.option("--wait/--no-wait", default=False, show_default=True, help="Follow the job until it ends.")
def jobs_retry(api: ApiClient, out: Output, job_id: str, wait: bool) -> None:
    """Run a job again on its failed samples only."""
    job = api.retry_job(job_id)
    if not (isinstance(job, dict) and "id" in job):
        job = api.get_job(job_id)
    finish_job(api, out, job, wait)
