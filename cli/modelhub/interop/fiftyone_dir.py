"""A hub dataset written as a FiftyOne dataset directory, and one read into the hub, over the HTTP
API only (modelhub.api): the CLI may run on another machine than the hub.

Export pages through `GET /datasets/{name}/samples` (insertion order, up to 10,000 a page), puts
each sample's file under DIR/data/ (a copy, or a symbolic link; or leaves it where it is), and
writes samples.json and metadata.json (modelhub.interop.fiftyone_format says what they hold). A
field's FiftyOne type depends on every value it holds, so the samples are first written to a
scratch file and converted in a second pass: memory holds one page whatever the dataset's size.
The directory is built beside DIR as `.DIR.part-*` and renamed into place when it is complete, so a
failed export leaves nothing that looks like a dataset.

Import reads samples.json (or FiftyOne's samples/ folder of one file per sample), creates the
dataset if there is none of that name, and adds the samples with their labels as fields through
`POST /datasets/{name}/samples`, in batches under the route's limits. The hub keeps a file's path,
not the file: the samples name the files where the directory has them (a relative path is taken
from the directory), or copies put in a folder the hub can read (`media_dir`).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from modelhub.api import SAMPLES_PER_REQUEST, ApiClient, ApiError
from modelhub.interop.fiftyone_format import (
    FieldTypes,
    fiftyone_field_name,
    from_fiftyone,
    is_sample_tags,
    metadata,
    to_fiftyone,
)

MEDIA_MODES = ("copy", "link", "skip")
PAGE_SIZE = SAMPLES_PER_REQUEST  # the most GET /datasets/{name}/samples gives in one page
# The samples route refuses a body over 64 MiB (MODELHUB_SAMPLES_MAX_BODY_BYTES, which an operator
# may lower): a batch stays at half of that, and a batch refused as too large is sent in halves.
BATCH_BYTES = 32 * 1024 * 1024
SCRATCH = ".hub-samples.jsonl"
INFO_KEY = "modelhub"  # under metadata.json's `info`: where the dataset came from, renamed fields

Progress = Callable[[int, int], None]  # (samples done, samples in all)


class DirectoryError(ValueError):
    """A directory that cannot be written to or read from (not empty, not a FiftyOne dataset)."""


@dataclass
class MediaPlacer:
    """Puts files in `folder` under unique names (a copy, or a symbolic link to the original) and
    says where; a file that cannot be read here is listed in `unreadable` and not placed."""

    folder: Path
    mode: str = "copy"
    placed: dict[str, Path] = field(default_factory=dict)  # source path → its place (once per file)
    unreadable: list[str] = field(default_factory=list)
    _names: set[str] = field(default_factory=set)

    def place(self, source: str) -> Path | None:
        if source in self.placed:
            return self.placed[source]
        if not (os.path.isfile(source) and os.access(source, os.R_OK)):
            self.unreadable.append(source)
            return None
        target = self.folder / self._unique(Path(source).name)
        try:
            if self.mode == "link":
                target.symlink_to(os.path.abspath(source))
            else:
                shutil.copyfile(source, target)
        except OSError:  # unreadable after all (a race, a special file): the same as unreadable
            target.unlink(missing_ok=True)
            self.unreadable.append(source)
            return None
        self.placed[source] = target
        return target

    def _unique(self, name: str) -> str:
        """`name`, or `stem-2.ext`, `stem-3.ext`, ... when taken (FiftyOne's exporter does the same)."""
        stem, ext = os.path.splitext(name)
        candidate, n = name, 1
        while candidate in self._names or os.path.lexists(self.folder / candidate):
            n += 1
            candidate = f"{stem}-{n}{ext}"
        self._names.add(candidate)
        return candidate


# ------------------------------------------------------------------------------------ export


@dataclass
class ExportReport:
    samples: int = 0
    media: int = 0  # files copied or linked under data/
    unreadable: list[str] = field(default_factory=list)  # kept their hub path: not readable here
    renamed: dict[str, str] = field(default_factory=dict)  # FiftyOne name → hub field name


def export_fiftyone(
    api: ApiClient,
    name: str,
    dest: Path,
    media: str = "copy",
    fields: list[str] | None = None,
    progress: Progress | None = None,
) -> ExportReport:
    """Write dataset `name` as a FiftyOne dataset directory at `dest` (which must not exist, or be
    empty): with `media` "copy" or "link" each readable file goes under data/ (one that cannot be
    read here keeps its hub path in samples.json), with "skip" every sample keeps its hub path."""
    if media not in MEDIA_MODES:
        raise ValueError(f"media must be one of {MEDIA_MODES}, not {media!r}")
    dest = Path(os.path.abspath(dest))
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise DirectoryError(f"{dest} exists and is not an empty directory")
    dataset = api.get_dataset(name)
    dest.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{dest.name}.part-", dir=dest.parent))
    try:
        report = _write_export(api, dataset, work, media, fields, progress)
        if dest.exists():
            dest.rmdir()
        work.rename(dest)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return report


def _write_export(
    api: ApiClient, dataset: dict, work: Path, media: str, fields: list[str] | None, progress: Progress | None
) -> ExportReport:
    name = dataset["name"]
    (work / "data").mkdir()
    placer = MediaPlacer(work / "data", media)
    types, report = FieldTypes(), ExportReport()
    with (work / SCRATCH).open("w") as scratch:
        for sample, total in iter_samples(api, name):
            values = sample.get("fields") or {}
            if fields is not None:
                values = {k: values[k] for k in fields if k in values}
            types.observe(values)
            scratch.write(json.dumps({"filepath": _exported_path(placer, sample["filepath"]), "fields": values}))
            scratch.write("\n")
            report.samples += 1
            if progress:
                progress(report.samples, total)
    kinds = types.kinds()
    _write_samples(work, kinds)
    report.media, report.unreadable = len(placer.placed), placer.unreadable
    report.renamed = {
        fiftyone_field_name(k): k
        for k, kind in kinds.items()
        if fiftyone_field_name(k) != k and not is_sample_tags(k, kind)
    }
    info = {INFO_KEY: {"dataset": name, "exported_at": _now(), "renamed_fields": report.renamed}}
    if dataset.get("description"):
        info["description"] = dataset["description"]
    (work / "metadata.json").write_text(json.dumps(metadata(name, kinds, info), indent=1))
    if media == "skip":
        (work / "data").rmdir()
    return report


def _exported_path(placer: MediaPlacer, filepath: str) -> str:
    """samples.json's `filepath`: relative to the directory for a file placed under data/, else
    the hub's own (absolute) path."""
    if placer.mode == "skip":
        return filepath
    placed = placer.place(filepath)
    return f"data/{placed.name}" if placed else filepath


def _write_samples(work: Path, kinds: dict[str, str]) -> None:
    """samples.json, `{"samples": [...]}`, streamed from the scratch file (then removed)."""
    scratch = work / SCRATCH
    with scratch.open() as lines, (work / "samples.json").open("w") as out:
        out.write('{"samples": [')
        for index, line in enumerate(lines):
            sample = json.loads(line)
            out.write(",\n" if index else "\n")
            out.write(json.dumps(to_fiftyone(sample["fields"], sample["filepath"], kinds)))
        out.write("\n]}\n")
    scratch.unlink()


def iter_samples(api: ApiClient, name: str, page_size: int | None = None) -> Iterator[tuple[dict, int]]:
    """Each sample of the dataset, in insertion order, with the dataset's sample count as the
    latest page gave it. Pages follow the API's `limit`/`offset`; the last page is a short one."""
    page_size = page_size or PAGE_SIZE
    offset = 0
    while True:
        page = api.list_samples(name, limit=page_size, offset=offset)
        items = page.get("items") or []
        total = max(int(page.get("total") or 0), offset + len(items))
        for sample in items:
            yield sample, total
        offset += len(items)
        if len(items) < page_size:
            return


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


# ------------------------------------------------------------------------------------ import


@dataclass
class ImportReport:
    created: bool = False  # the dataset did not exist and was created
    added: int = 0
    skipped: list[str] = field(default_factory=list)  # samples left out: no local file path
    missing: list[str] = field(default_factory=list)  # files not found here (their samples came in)
    copied: int = 0  # files copied into media_dir
    notes: Counter[str] = field(default_factory=Counter)  # what the hub could not take, and how often


def read_directory(src: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """metadata.json (empty when there is none) and the samples of a FiftyOne dataset directory."""
    meta_path = src / "metadata.json"
    meta = _json(meta_path) if meta_path.is_file() else {}
    if (src / "samples.json").is_file():
        samples = _json(src / "samples.json").get("samples", [])
    elif (src / "samples").is_dir():  # export(..., use_dirs=True): one file per sample, in order
        samples = [_json(p) for p in sorted((src / "samples").glob("*.json"))]
    else:
        raise DirectoryError(f"{src} is not a FiftyOne dataset directory (it has no samples.json nor samples/)")
    return meta, samples


def _json(path: Path) -> Any:
    try:
        value = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise DirectoryError(f"cannot read {path}: {exc}") from exc
    if not isinstance(value, dict):
        raise DirectoryError(f"{path} does not hold a JSON object")
    return value


def import_fiftyone(
    api: ApiClient,
    name: str,
    src: Path,
    media_dir: Path | None = None,
    progress: Progress | None = None,
) -> ImportReport:
    """Add the samples of the FiftyOne dataset directory `src` to dataset `name` (created when
    missing), each label field as a hub field. A sample whose media is not a local path (e.g. a
    cloud URL) is skipped; one whose file is missing comes in with its path, and is reported."""
    src = Path(os.path.abspath(src))
    meta, entries = read_directory(src)
    renamed = ((meta.get("info") or {}).get(INFO_KEY) or {}).get("renamed_fields") or {}
    report = ImportReport()
    if (src / "frames.json").is_file() or (src / "frames").is_dir():
        report.notes["video frame labels left out: the hub's samples have no frames"] += 1
    samples = []
    for entry in entries:
        imported = from_fiftyone(entry)
        report.notes.update(imported.notes)
        path = _local_path(imported.filepath, src)
        if path is None:
            report.skipped.append(str(imported.filepath))
            continue
        if not os.path.isfile(path):
            report.missing.append(path)
        samples.append({"filepath": path, "fields": {renamed.get(k, k): v for k, v in imported.fields.items()}})
    report.created = ensure_dataset(api, name)
    if media_dir is not None:
        samples = _copy_media(samples, Path(os.path.abspath(media_dir)), report)
    _post(api, name, samples, report, progress)
    return report


def _local_path(filepath: str | None, src: Path) -> str | None:
    """The absolute local path a sample's `filepath` names (relative ones from the directory, as
    FiftyOne reads them), or None for none or a URL."""
    if not filepath or "://" in filepath:
        return None
    return os.path.normpath(filepath if os.path.isabs(filepath) else src / filepath)


def ensure_dataset(api: ApiClient, name: str) -> bool:
    """True when the dataset had to be created."""
    try:
        api.get_dataset(name)
        return False
    except ApiError as exc:
        if exc.status != 404:
            raise
    api.create_dataset(name)
    return True


def _copy_media(samples: list[dict], media_dir: Path, report: ImportReport) -> list[dict]:
    media_dir.mkdir(parents=True, exist_ok=True)
    placer = MediaPlacer(media_dir, "copy")
    missing = set(report.missing)
    for sample in samples:
        if sample["filepath"] not in missing:
            placed = placer.place(sample["filepath"])
            if placed is None:
                report.missing.append(sample["filepath"])
            else:
                sample["filepath"] = str(placed)
    report.copied = len(placer.placed)
    return samples


def _post(api: ApiClient, name: str, samples: list[dict], report: ImportReport, progress: Progress | None) -> None:
    for batch in batches(samples):
        try:
            report.added += _add(api, name, batch)
        except ApiError as exc:
            raise ApiError(exc.status, f"{exc.message} ({report.added} samples were added before this error)") from exc
        if progress:
            progress(report.added, len(samples))


def _add(api: ApiClient, name: str, batch: list[dict]) -> int:
    """Add one batch (all or none, as the route promises); one refused as too large goes in halves."""
    try:
        return int((api.add_samples(name, batch) or {}).get("added", len(batch)))
    except ApiError as exc:
        if exc.status != 413 or len(batch) == 1:
            raise
    half = len(batch) // 2
    return _add(api, name, batch[:half]) + _add(api, name, batch[half:])


def batches(samples: list[dict], count: int | None = None, size: int | None = None) -> Iterator[list[dict]]:
    """The samples in runs of at most `count` samples (the API's most) and about `size` bytes of JSON."""
    count, size = count or SAMPLES_PER_REQUEST, size or BATCH_BYTES
    batch: list[dict] = []
    used = 0
    for sample in samples:
        n = len(json.dumps(sample)) + 2
        if batch and (len(batch) >= count or used + n > size):
            yield batch
            batch, used = [], 0
        batch.append(sample)
        used += n
    if batch:
        yield batch
