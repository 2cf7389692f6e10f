"""The model package (a .zip, API.md §3): checks that an upload is safe data, and unpacks it.

The registry calls `inspect_package` on each upload and the deployer calls `safe_extract`.
Nothing inside a package is ever imported, executed or unpickled here: a package is data until
a deployment runs it. Every entry is streamed through decompression in bounded chunks, so a zip
bomb or a corrupt entry is caught without holding any entry in memory.

A package's format says what runs it: "python" (its own `Model` class, the default), or a format
that carries no code and runs through an adapter shipped with the replica (`FORMAT_ENTRYPOINTS`):
"onnx" when manifest.json says `"format": "onnx"` (its `onnx` section: onnx_manifest.py).
"""

from __future__ import annotations

import json
import os
import re
import stat
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from modelhub_contracts.onnx_manifest import ManifestError, OnnxSpec, parse_onnx_section

MiB = 1024 * 1024
GiB = 1024 * MiB

MANIFEST = "manifest.json"
MANIFEST_MAX_BYTES = 64 * 1024
DEFAULT_ENTRYPOINT = "model:Model"
MLMODEL = "MLmodel"  # the file at an MLflow model directory's root (mlflow.<flavor>.save_model)
PYTHON_FORMAT = "python"
# Formats without code: the replica runs them through its own adapter (the folder
# services/deployer/modelhub_replica/modelhub_formats/, importable in the model's jail), with the
# interface of a user's Model.
FORMAT_ENTRYPOINTS = {
    "mlflow": "modelhub_formats.mlflow_model:Model",
    "onnx": "modelhub_formats.onnx_model:Model",
}
MANIFEST_FORMATS = (PYTHON_FORMAT, "onnx")  # what manifest.json's "format" may say

_CHUNK = 256 * 1024
_ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")  # first local header, or an empty archive
_ENTRYPOINT_RE = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*:[A-Za-z_]\w*", re.ASCII)
_DRIVE_RE = re.compile(r"^[A-Za-z]:")
# Only methods whose decompression zipfile bounds per read: it inflates deflate in capped
# steps, but bzip2 and lzma data is decompressed whole per compressed block.
_ACCEPTED_METHODS = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)
# macOS's "Compress" adds resource forks under this folder; they are never part of the model.
_IGNORED_FOLDER = "__MACOSX/"
_CORRUPT = (zipfile.BadZipFile, EOFError, zlib.error)


@dataclass(frozen=True)
class PackageLimits:
    """Caps on an upload; the ratio cap applies per entry, to entries past `ratio_floor_bytes`."""

    max_zip_bytes: int = 512 * MiB
    max_total_uncompressed: int = 2 * GiB
    max_entries: int = 10_000
    max_ratio: float = 200
    ratio_floor_bytes: int = 1 * MiB
    # The ONNX file that the registry parses (onnx.load) at upload: the protobuf is held in memory
    # whole, so it is capped; weights past this belong in external data files, which are not read.
    max_onnx_bytes: int = 512 * MiB


class PackageError(ValueError):
    """A package that is refused; the message names the zip and the offending entry."""


@dataclass(frozen=True)
class PackageInfo:
    """What a checked package holds. `files` are relative to `root` ("" or e.g. "my-model/")."""

    root: str
    entrypoint: str
    files: tuple[str, ...]
    uncompressed_bytes: int
    has_requirements: bool
    has_environment: bool
    format: str = PYTHON_FORMAT  # "python" (its own Model class), "mlflow" or "onnx" (FORMAT_ENTRYPOINTS)
    onnx: OnnxSpec | None = None  # the manifest's `onnx` section, for format "onnx"


def inspect_package(path: str | Path, limits: PackageLimits = PackageLimits()) -> PackageInfo:
    """Check that the zip at `path` is a safe, complete model package and describe it.

    Raises PackageError for anything that is not a zip, is corrupt, passes a limit, has an
    unsafe entry (absolute, `..`, drive letter, backslash, symlink, encrypted, duplicate), or
    lacks its entrypoint module (or, for format "onnx", has a bad `onnx` section or lacks its ONNX
    file, or that file is over `max_onnx_bytes`). Every entry is decompressed and its CRC verified.
    """
    with _open_zip(Path(path), limits) as (zf, label):
        return _inspect(zf, label, limits)


def safe_extract(path: str | Path, dest_dir: str | Path, limits: PackageLimits = PackageLimits()) -> PackageInfo:
    """Check the package as `inspect_package` does, then write its root's files into `dest_dir`.

    `dest_dir` is created if needed. Files are written streaming, with mode 0644, never through
    or as symlinks, and never outside `dest_dir`; an existing file is never overwritten
    (FileExistsError). After an error `dest_dir` may hold a partial copy: discard it.
    """
    with _open_zip(Path(path), limits) as (zf, label):
        info = _inspect(zf, label, limits)
        _extract(zf, label, info, Path(dest_dir), limits)
    return info


@contextmanager
def _open_zip(path: Path, limits: PackageLimits) -> Iterator[tuple[zipfile.ZipFile, str]]:
    label = path.name
    size = path.stat().st_size
    if size > limits.max_zip_bytes:
        raise PackageError(f"{label}: {size} bytes is over the {limits.max_zip_bytes}-byte limit")
    with path.open("rb") as fh:
        if fh.read(4) not in _ZIP_MAGICS:
            raise PackageError(f"{label}: not a zip archive")
        fh.seek(0)
        try:
            zf = zipfile.ZipFile(fh)
        except (*_CORRUPT, OSError) as exc:
            raise PackageError(f"{label}: corrupt or truncated zip archive ({exc})") from exc
        with zf:
            yield zf, label


def _inspect(zf: zipfile.ZipFile, label: str, limits: PackageLimits) -> PackageInfo:
    infos = zf.infolist()
    _check_counts(infos, label, limits)
    for info in infos:
        _check_entry(info, label)
    _check_unique(infos, label)
    total = _verify_contents(zf, infos, label, limits)
    root, files = _package_files(infos, label)
    manifest = _read_manifest(zf, root + MANIFEST, label) if MANIFEST in files else {}
    package_format = _format(manifest, files, label)
    onnx = _onnx_section(zf, root, files, manifest, label, limits) if package_format == "onnx" else None
    return PackageInfo(
        root=root,
        entrypoint=FORMAT_ENTRYPOINTS.get(package_format) or _entrypoint(manifest, files, label),
        files=files,
        uncompressed_bytes=total,
        has_requirements="requirements.txt" in files,
        has_environment="environment.yml" in files,
        format=package_format,
        onnx=onnx,
    )


def _check_counts(infos: list[zipfile.ZipInfo], label: str, limits: PackageLimits) -> None:
    if len(infos) > limits.max_entries:
        raise PackageError(f"{label}: {len(infos)} entries, over the {limits.max_entries} limit")
    # Headers can lie, so this only refuses early what streaming would refuse later anyway.
    declared = sum(info.file_size for info in infos)
    if declared > limits.max_total_uncompressed:
        raise PackageError(
            f"{label}: declares {declared} uncompressed bytes, over the {limits.max_total_uncompressed}-byte limit"
        )


def _check_entry(info: zipfile.ZipInfo, label: str) -> None:
    name = info.filename
    if info.flag_bits & 0x1:
        raise PackageError(f"{label}: entry {name!r} is encrypted")
    if info.compress_type not in _ACCEPTED_METHODS:
        raise PackageError(
            f"{label}: entry {name!r} uses compression method {info.compress_type}; "
            "only stored and deflate are accepted"
        )
    _check_name(name, label)
    _check_mode(info, label)


def _check_name(name: str, label: str) -> None:
    if not name:
        raise PackageError(f"{label}: an entry has an empty name")
    if "\\" in name:
        raise PackageError(f"{label}: entry {name!r} contains a backslash")
    if name.startswith("/"):
        raise PackageError(f"{label}: entry {name!r} is an absolute path")
    if _DRIVE_RE.match(name):
        raise PackageError(f"{label}: entry {name!r} starts with a drive letter")
    parts = name.removesuffix("/").split("/")
    if ".." in parts:
        raise PackageError(f"{label}: entry {name!r} escapes the package directory")
    if "" in parts or "." in parts:
        raise PackageError(f"{label}: entry {name!r} is not a plain relative path")


def _check_mode(info: zipfile.ZipInfo, label: str) -> None:
    # Unix tools keep st_mode in the high 16 bits; other creators leave them 0.
    file_type = stat.S_IFMT(info.external_attr >> 16)
    if file_type == stat.S_IFLNK:
        raise PackageError(f"{label}: entry {info.filename!r} is a symbolic link")
    if file_type not in (0, stat.S_IFREG, stat.S_IFDIR):
        raise PackageError(f"{label}: entry {info.filename!r} is not a regular file")


def _check_unique(infos: list[zipfile.ZipInfo], label: str) -> None:
    seen: set[str] = set()
    for info in infos:
        if info.filename in seen:
            raise PackageError(f"{label}: entry {info.filename!r} appears more than once")
        seen.add(info.filename)
    files = {name for name in seen if not name.endswith("/")}
    folders = {name.removesuffix("/") for name in seen if name.endswith("/")}
    folders |= {parent for name in files for parent in _parents(name)}
    clash = sorted(files & folders)
    if clash:
        raise PackageError(f"{label}: entry {clash[0]!r} is both a file and a folder")


def _parents(name: str) -> Iterator[str]:
    parts = name.split("/")
    for end in range(1, len(parts)):
        yield "/".join(parts[:end])


def _verify_contents(zf: zipfile.ZipFile, infos: list[zipfile.ZipInfo], label: str, limits: PackageLimits) -> int:
    total = 0
    for info in infos:
        if not info.is_dir():
            total += sum(len(chunk) for chunk in _stream(zf, info, label, limits, total))
    return total


def _stream(
    zf: zipfile.ZipFile, info: zipfile.ZipInfo, label: str, limits: PackageLimits, before: int
) -> Iterator[bytes]:
    """Yield the entry's real bytes in chunks, stopping once a cap is passed.

    Reading to the end makes zipfile verify the CRC, and the real size must equal the
    declared one. `before` is the running total of the entries already streamed, so the caps
    count real bytes, whatever the headers claim.
    """
    count = 0
    try:
        with zf.open(info) as fh:
            while chunk := fh.read(_CHUNK):
                count += len(chunk)
                _check_running(info, label, limits, count, before + count)
                yield chunk
    except _CORRUPT as exc:
        raise PackageError(f"{label}: entry {info.filename!r} is corrupt ({exc})") from exc
    # zipfile stops quietly when the data ends before the size its header claims.
    if count != info.file_size:
        raise PackageError(
            f"{label}: entry {info.filename!r} is corrupt (holds {count} bytes, its header says {info.file_size})"
        )


def _check_running(info: zipfile.ZipInfo, label: str, limits: PackageLimits, count: int, total: int) -> None:
    if total > limits.max_total_uncompressed:
        raise PackageError(
            f"{label}: entry {info.filename!r} takes the uncompressed total past "
            f"the {limits.max_total_uncompressed}-byte limit"
        )
    compressed = max(info.compress_size, 1)
    if count > limits.ratio_floor_bytes and count > limits.max_ratio * compressed:
        raise PackageError(
            f"{label}: entry {info.filename!r} expands more than {limits.max_ratio:g} times "
            "its compressed size (a zip bomb?)"
        )


def _package_files(infos: list[zipfile.ZipInfo], label: str) -> tuple[str, tuple[str, ...]]:
    names = [i.filename for i in infos if not i.filename.startswith(_IGNORED_FOLDER)]
    root = _single_root(names)
    files = tuple(sorted(n[len(root) :] for n in names if not n.endswith("/")))
    if not files:
        raise PackageError(f"{label}: the package holds no files")
    return root, files


def _single_root(names: list[str]) -> str:
    """Return "folder/" when every name lies under that one folder (a zipped folder), else ""."""
    tops = {name.split("/", 1)[0] for name in names}
    if len(tops) == 1 and all("/" in name for name in names):
        return f"{tops.pop()}/"
    return ""


def _entrypoint(manifest: dict, files: tuple[str, ...], label: str) -> str:
    entrypoint = manifest.get("entrypoint", DEFAULT_ENTRYPOINT)
    if not isinstance(entrypoint, str) or not _ENTRYPOINT_RE.fullmatch(entrypoint):
        raise PackageError(
            f"{label}: {MANIFEST} entrypoint must be 'module:Class' (e.g. 'model:Model'), got {entrypoint!r}"
        )
    module_path = entrypoint.split(":")[0].replace(".", "/")
    if f"{module_path}.py" not in files and f"{module_path}/__init__.py" not in files:
        raise PackageError(f"{label}: entrypoint {entrypoint!r} needs {module_path}.py at the package root")
    return entrypoint


def _read_manifest(zf: zipfile.ZipFile, name: str, label: str) -> dict:
    info = zf.getinfo(name)
    if info.file_size > MANIFEST_MAX_BYTES:
        raise PackageError(f"{label}: {MANIFEST} is over {MANIFEST_MAX_BYTES} bytes")
    with zf.open(info) as fh:
        raw = fh.read(MANIFEST_MAX_BYTES + 1)
    try:
        # utf-8-sig: editors on Windows often save JSON with a byte-order mark.
        manifest = json.loads(raw.decode("utf-8-sig"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise PackageError(f"{label}: {MANIFEST} is not valid JSON ({exc})") from exc
    if not isinstance(manifest, dict):
        raise PackageError(f"{label}: {MANIFEST} must be a JSON object")
    return manifest


def _format(manifest: dict, files: tuple[str, ...], label: str) -> str:
    """The package's format: "mlflow" for an MLflow model directory as saved (MLmodel at the root)
    that brings no code or manifest of its own (a package's own code wins); else what manifest.json
    says ("python" without one)."""
    if MLMODEL in files and MANIFEST not in files and "model.py" not in files:
        return "mlflow"
    package_format = manifest.get("format", PYTHON_FORMAT)
    known = list(MANIFEST_FORMATS)
    if package_format not in known:
        raise PackageError(f"{label}: {MANIFEST} format must be one of {known}, got {package_format!r}")
    if package_format != PYTHON_FORMAT and "entrypoint" in manifest:
        # one package, one way to run it: a format's adapter or the package's own class, not a guess
        raise PackageError(f"{label}: {MANIFEST} names an entrypoint and format {package_format!r}; drop one")
    return package_format


def _onnx_section(
    zf: zipfile.ZipFile, root: str, files: tuple[str, ...], manifest: dict, label: str, limits: PackageLimits
) -> OnnxSpec:
    try:
        spec = parse_onnx_section(manifest.get("onnx"))
    except ManifestError as exc:
        raise PackageError(f"{label}: {MANIFEST} field {exc}") from None
    if spec.file not in files:
        raise PackageError(f"{label}: {MANIFEST} field onnx.file: {spec.file!r} is not a file of the package")
    size = zf.getinfo(root + spec.file).file_size  # its real size: _verify_contents read it through
    if size > limits.max_onnx_bytes:
        raise PackageError(
            f"{label}: {spec.file!r} is {size} bytes, over the {limits.max_onnx_bytes}-byte limit for an ONNX "
            "file; keep larger weights in external data files beside it"
        )
    return spec


def _extract(zf: zipfile.ZipFile, label: str, info: PackageInfo, dest: Path, limits: PackageLimits) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    base = dest.resolve()
    total = 0
    for rel in info.files:
        target = _target(base, rel, label)
        target.parent.mkdir(parents=True, exist_ok=True)
        entry = zf.getinfo(info.root + rel)
        total += _write(target, _stream(zf, entry, label, limits, total))


def _target(base: Path, rel: str, label: str) -> Path:
    # resolve() follows any symlink already in dest_dir, so this catches escapes through one.
    target = (base / rel).resolve()
    if not target.is_relative_to(base) or target == base:
        raise PackageError(f"{label}: entry {rel!r} would be written outside {base}")
    return target


def _write(target: Path, chunks: Iterator[bytes]) -> int:
    # O_EXCL | O_NOFOLLOW: never overwrite, never write through a symlink planted at target.
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    written = 0
    with os.fdopen(os.open(target, flags, 0o644), "wb") as out:
        for chunk in chunks:
            written += out.write(chunk)
    return written
