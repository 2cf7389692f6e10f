"""`modelhub datasets ...`: create, list, show and delete datasets; add, list, filter and delete
samples; fields (what each holds, who wrote it); remove a field; export as JSON Lines or CSV; export
to and import from a FiftyOne dataset directory (modelhub.interop)."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import click

from modelhub import exitcodes
from modelhub.api import SAMPLES_PER_REQUEST, ApiClient, ApiError, GatewayError
from modelhub.commands import complete
from modelhub.commands.base import api_command, api_group, confirm_delete, connect, fail, url_option, yes_option
from modelhub.interop.fiftyone_dir import (
    MEDIA_MODES,
    DirectoryError,
    ImportReport,
    export_fiftyone,
    import_fiftyone,
)
from modelhub.render import Output, byte_progress, count_progress, echo_table, items, record_renderer

datasets = api_group("datasets", "Create datasets, add and list their samples.")
DATASET_KEYS = ("name", "description", "owner", "num_samples", "created_at")


@datasets.command("create")
@api_command
@click.argument("name")
@click.option("--description", default=None)
def datasets_create(api: ApiClient, out: Output, name: str, description: str | None) -> None:
    """Create a dataset."""
    out.emit(api.create_dataset(name, description), lambda d: click.echo(f"created dataset {d['name']}"))


@datasets.command("list")
@api_command
def datasets_list(api: ApiClient, out: Output) -> None:
    """List datasets."""
    out.emit(
        api.list_datasets(),
        lambda page: echo_table(
            ["NAME", "OWNER", "SAMPLES", "CREATED_AT", "DESCRIPTION"],
            (
                [d.get("name"), d.get("owner"), d.get("num_samples"), d.get("created_at"), d.get("description")]
                for d in items(page)
            ),
            empty="no datasets",
        ),
    )


@datasets.command("show")
@api_command
@click.argument("name", shell_complete=complete.datasets)
def datasets_show(api: ApiClient, out: Output, name: str) -> None:
    """Show a dataset."""
    out.emit(api.get_dataset(name), record_renderer(*DATASET_KEYS))


@datasets.command("samples")
@api_command
@click.argument("name", shell_complete=complete.datasets)
@click.option("--limit", type=click.IntRange(min=0), default=20, show_default=True)
@click.option("--offset", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--field", default=None, help="The field that --label / --min-confidence / --max-confidence read.")
@click.option(
    "--label", default=None, help="Only samples whose --field has this label (classification or a detection)."
)
@click.option("--min-confidence", type=click.FloatRange(0, 1), default=None)
@click.option("--max-confidence", type=click.FloatRange(0, 1), default=None)
@click.option("--missing", default=None, metavar="FIELD", help="Only samples without this field.")
@click.option("--failed-job", default=None, metavar="JOB_ID", help="Only the samples this job failed.")
@click.option("--evaluation", default=None, help="Only the samples of this evaluation (that have both its fields).")
@click.option("--ground-truth-label", default=None, help="With --evaluation: a row of its confusion matrix.")
@click.option("--prediction-label", default=None, help="With --evaluation: a column of its confusion matrix.")
def datasets_samples(api: ApiClient, out: Output, name: str, limit: int, offset: int, **filters: Any) -> None:
    """List a dataset's samples (id, filepath, fields), optionally filtered."""
    page = api.list_samples(name, limit, offset, **filters)
    out.emit(page, lambda p: render_samples(p, offset))


@datasets.command("delete")
@api_command
@click.argument("name", shell_complete=complete.datasets)
@yes_option
def datasets_delete(api: ApiClient, out: Output, name: str, yes: bool) -> None:
    """Delete a dataset with its samples, jobs and their ledgers (refused while a job runs on it)."""
    confirm_delete(f"dataset {name} with its samples and jobs", yes)
    api.delete_dataset(name)
    out.emit({"name": name, "deleted": True}, lambda _: click.echo(f"deleted dataset {name}"))


@datasets.command("remove-field")
@api_command
@click.argument("name", shell_complete=complete.datasets)
@click.argument("field")
@yes_option
def datasets_remove_field(api: ApiClient, out: Output, name: str, field: str, yes: bool) -> None:
    """Take a field (and its lineage) off every sample: the undo of a run."""
    confirm_delete(f"field {field} of every sample of dataset {name}", yes)
    out.emit(
        api.remove_field(name, field), lambda r: click.echo(f"removed {field} from {r['removed']} samples of {name}")
    )


@datasets.command("delete-samples")
@api_command
@click.argument("name", shell_complete=complete.datasets)
@click.argument("ids", nargs=-1, required=True)
@yes_option
def datasets_delete_samples(api: ApiClient, out: Output, name: str, ids: tuple[str, ...], yes: bool) -> None:
    """Delete samples by id."""
    confirm_delete(f"{len(ids)} sample(s) of dataset {name}", yes)
    out.emit(api.delete_samples(name, list(ids)), lambda r: click.echo(f"deleted {r['deleted']} samples of {name}"))


@datasets.command("fields")
@api_command
@click.argument("name", shell_complete=complete.datasets)
def datasets_fields(api: ApiClient, out: Output, name: str) -> None:
    """Each field on the dataset's samples: how many have it, its top labels, the jobs that wrote it."""
    out.emit(api.fields(name), render_fields)


def render_fields(page: dict) -> None:
    def labels(field: dict) -> str:
        return ", ".join(f"{lab['label']} ×{lab['count']}" for lab in field.get("labels", [])[:8])

    def writer(field: dict) -> str:
        jobs = field.get("jobs") or []
        if not jobs:
            return ""
        return f"{jobs[0]['model']} v{jobs[0]['version']} ({jobs[0]['deployment']}, job {jobs[0]['job_id']})"

    echo_table(
        ["FIELD", "SAMPLES", "TOP LABELS", "LAST WRITTEN BY"],
        ([f["name"], f["samples"], labels(f), writer(f)] for f in items(page)),
        empty="no fields",
    )


@datasets.command("export")
@url_option()
@click.argument("name", shell_complete=complete.datasets)
@click.argument("directory", metavar="[DIR]", required=False, type=click.Path(file_okay=False, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["jsonl", "csv", "fiftyone"]), default="jsonl", show_default=True)
@click.option("--fields", default=None, help="Comma-separated field names (default: every field).")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write to this file (default: standard output). JSON Lines and CSV only.",
)
@click.option(
    "--media",
    type=click.Choice(MEDIA_MODES),
    default="copy",
    show_default=True,
    help="fiftyone: copy each sample's file into DIR/data, link it there, or skip (samples keep the hub's paths).",
)
def datasets_export(
    url: str | None, name: str, directory: Path | None, fmt: str, fields: str | None, output: Path | None, media: str
) -> None:
    """Export a dataset's samples and fields: JSON Lines or CSV (streamed), or a FiftyOne dataset
    directory DIR (`--format fiftyone DIR`) that `fo.Dataset.from_dir(DIR,
    dataset_type=fo.types.FiftyOneDataset)` loads, classifications and detections as FiftyOne labels."""
    if fmt == "fiftyone":
        if directory is None or output is not None:
            raise click.UsageError("--format fiftyone writes a directory: give it as DIR, not -o")
        export_to_fiftyone(url, name, directory, media, fields)
        return
    if directory is not None:
        raise click.UsageError(f"DIR is for --format fiftyone; write {fmt} to a file with -o FILE")
    export_lines(url, name, fmt, fields, output)


def export_lines(url: str | None, name: str, fmt: str, fields: str | None, output: Path | None) -> None:
    try:
        with connect(url) as api:
            if output is None:
                stdout = sys.stdout.buffer  # (click.get_binary_stream is deprecated)
                for chunk in api.export(name, fmt, fields):
                    stdout.write(chunk)
                return
            tmp = output.with_name(output.name + ".part")
            lines = 0
            with tmp.open("wb") as fh, byte_progress("export") as bar:
                for chunk in api.export(name, fmt, fields):
                    fh.write(chunk)
                    lines += chunk.count(b"\n")
                    bar.update(len(chunk))
            tmp.replace(output)
    except (ApiError, GatewayError) as exc:
        if output is not None:
            output.with_name(output.name + ".part").unlink(missing_ok=True)
        api_failure(exc)
        return
    samples = lines - 1 if fmt == "csv" else lines
    click.echo(f"exported {samples} samples of {name} to {output}", err=True)


def api_failure(exc: ApiError | GatewayError) -> None:
    if isinstance(exc, ApiError):
        fail(str(exc), exitcodes.exit_code_for_status(exc.status), exc.status)
    fail(str(exc), exitcodes.STACK_DOWN)


def export_to_fiftyone(url: str | None, name: str, directory: Path, media: str, fields: str | None) -> None:
    chosen = [f.strip() for f in fields.split(",") if f.strip()] if fields else None
    try:
        with connect(url) as api, count_progress(0, f"exporting {name}") as bar:
            report = export_fiftyone(api, name, directory, media, chosen, progress=bar_progress(bar))
    except DirectoryError as exc:
        raise click.UsageError(str(exc)) from exc
    except (ApiError, GatewayError) as exc:
        api_failure(exc)
        return
    except OSError as exc:  # DIR's folder cannot be written (the partial export is gone)
        fail(f"Error: {exc}")
        return
    placed = {"copy": f", {report.media} files copied into data/", "link": f", {report.media} files linked in data/"}
    click.echo(f"exported {report.samples} samples of {name} to {directory}{placed.get(media, '')}", err=True)
    if report.unreadable:
        click.echo(
            f"warning: {len(report.unreadable)} files could not be read here; their samples keep the hub's "
            f"path: {shorten(report.unreadable)}",
            err=True,
        )
    if report.renamed:
        pairs = ", ".join(f"{hub} as {fo}" for fo, hub in report.renamed.items())
        click.echo(f"note: names FiftyOne keeps for itself were renamed: {pairs}", err=True)


def shorten(paths: list[str], shown: int = 3) -> str:
    more = f" and {len(paths) - shown} more" if len(paths) > shown else ""
    return ", ".join(paths[:shown]) + more


def bar_progress(bar: Any) -> Callable[[int, int], None]:
    """A progress callback (done, total) that moves a tqdm bar."""

    def update(done: int, total: int) -> None:
        bar.total, bar.n = total, done
        bar.refresh()

    return update


@datasets.command("import")
@api_command
@click.argument("name", shell_complete=complete.datasets)
@click.argument("directory", metavar="DIR", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["fiftyone"]), default="fiftyone", show_default=True)
@click.option(
    "--media-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Copy the files into this folder (one the hub can read) and name them there; "
    "by default the samples name the files where DIR has them.",
)
def datasets_import(api: ApiClient, out: Output, name: str, directory: Path, fmt: str, media_dir: Path | None) -> None:
    """Add the samples of a FiftyOne dataset directory DIR (`dataset.export(DIR,
    dataset_type=fo.types.FiftyOneDataset)`) to dataset NAME, created if missing: Classification and
    Detections fields (ground truth too) become the hub's classification and detections fields."""
    try:
        with count_progress(0, f"importing into {name}") as bar:
            report = import_fiftyone(api, name, directory, media_dir, progress=bar_progress(bar))
    except DirectoryError as exc:
        raise click.UsageError(str(exc)) from exc
    except OSError as exc:  # --media-dir cannot be made or written
        fail(f"Error: {exc}")
        return
    for line in import_warnings(report):
        out.note(line)
    result = {
        "dataset": name,
        "created": report.created,
        "added": report.added,
        "copied": report.copied,
        "skipped": report.skipped,
        "missing": report.missing,
        "left_out": dict(report.notes),
    }
    out.emit(
        result,
        lambda r: click.echo(f"added {r['added']} samples to dataset {name}" + (" (created)" if r["created"] else "")),
    )


def import_warnings(report: ImportReport) -> list[str]:
    lines = [f"left out ({count}×): {note}" for note, count in report.notes.items()]
    if report.skipped:
        lines.append(
            f"warning: {len(report.skipped)} samples skipped, their media is not a local path: {shorten(report.skipped)}"
        )
    if report.missing:
        lines.append(
            f"warning: {len(report.missing)} files not found here; their samples name them anyway: {shorten(report.missing)}"
        )
    return lines


def render_samples(page: dict, offset: int) -> None:
    rows = page.get("items", [])
    echo_table(
        ["ID", "FILEPATH", "FIELDS"],
        ([s.get("id"), s.get("filepath"), s.get("fields") or {}] for s in rows),
        empty="no samples",
    )
    if rows:
        click.echo(f"samples {offset + 1}-{offset + len(rows)} of {page.get('total', '?')}")


def collect_files(paths: Iterable[Path], pattern: str, recursive: bool) -> list[str]:
    """Absolute paths: files as given, directories expanded to their (non-hidden) files matching pattern."""
    files: list[str] = []
    for path in (Path(os.path.abspath(p)) for p in paths):
        if path.is_dir():
            matches = path.rglob(pattern) if recursive else path.glob(pattern)
            files.extend(
                sorted(
                    str(m)
                    for m in matches
                    if m.is_file() and not any(part.startswith(".") for part in m.relative_to(path).parts)
                )
            )
        else:
            files.append(str(path))
    return list(dict.fromkeys(files))


def add_samples(api: ApiClient, name: str, files: list[str], chunk_size: int) -> int:
    added = 0
    with count_progress(len(files), f"adding to {name}") as bar:
        for start in range(0, len(files), chunk_size):
            chunk = files[start : start + chunk_size]
            try:
                result = api.add_samples(name, chunk)
            except ApiError as exc:
                raise ApiError(exc.status, f"{exc.detail} ({added} samples were added before this error)") from exc
            added += (result or {}).get("added", len(chunk))
            bar.update(len(chunk))
    return added


@datasets.command("add")
@api_command
@click.argument("name", shell_complete=complete.datasets)
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--glob", "pattern", default="*", show_default=True, help="Files to take from directories.")
@click.option("--recursive", is_flag=True, help="Look into subdirectories too.")
@click.option("--chunk-size", type=click.IntRange(1, SAMPLES_PER_REQUEST), default=SAMPLES_PER_REQUEST, hidden=True)
def datasets_add(
    api: ApiClient, out: Output, name: str, paths: tuple[Path, ...], pattern: str, recursive: bool, chunk_size: int
) -> None:
    """Add files (PATH: a file or a directory) to dataset NAME as samples."""
    files = collect_files(paths, pattern, recursive)
    if not files:
        fail(f"Error: no files matching {pattern!r} found in {', '.join(map(str, paths))}")
    added = add_samples(api, name, files, chunk_size)
    out.emit({"added": added}, lambda r: click.echo(f"added {r['added']} samples to dataset {name}"))
