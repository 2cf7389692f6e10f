"""The model package (API.md §3): what an upload must look like; unsafe zips are refused."""

import os
import stat
import struct
import zipfile
from pathlib import Path

import pytest

from modelhub_contracts.package import (
    PackageError,
    PackageInfo,
    PackageLimits,
    inspect_package,
    safe_extract,
)

MODEL_PY = b"class Model:\n    def __init__(self, model_dir):\n        pass\n"
FIVE_MIB_OF_ZEROS = bytes(5 * 1024 * 1024)


def make_zip(path: Path, entries, compression=zipfile.ZIP_DEFLATED) -> Path:
    """Write a zip of (name or ZipInfo, bytes) pairs, exactly as given (no name sanitising)."""
    with zipfile.ZipFile(path, "w", compression=compression) as zf:
        for name, data in entries:
            zf.writestr(name, data)
    return path


def info_with_mode(name: str, mode: int) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.create_system = 3  # unix, so external_attr carries st_mode
    info.external_attr = mode << 16
    return info


def patch_central(path: Path, name: str, offset: int, fmt: str, value: int) -> None:
    """Overwrite one field of `name`'s central-directory header (where zipfile reads sizes)."""
    data = bytearray(path.read_bytes())
    start = data.find(b"PK\x01\x02")
    while data[start + 46 : start + 46 + len(name)] != name.encode():
        start = data.find(b"PK\x01\x02", start + 1)
    struct.pack_into(fmt, data, start + offset, value)
    path.write_bytes(bytes(data))


def refusal(path: Path, limits: PackageLimits | None = None) -> str:
    with pytest.raises(PackageError) as caught:
        inspect_package(path, limits or PackageLimits())
    return str(caught.value)


# --- accepted packages --------------------------------------------------------------------


def test_flat_package_is_described(tmp_path):
    zpath = make_zip(
        tmp_path / "model.zip",
        [("model.py", MODEL_PY), ("weights/w.bin", b"\x00" * 1000), ("requirements.txt", b"x\n")],
    )
    info = inspect_package(zpath)
    assert info == PackageInfo(
        root="",
        entrypoint="model:Model",
        files=("model.py", "requirements.txt", "weights/w.bin"),
        uncompressed_bytes=len(MODEL_PY) + 1000 + 2,
        has_requirements=True,
        has_environment=False,
    )


def test_zipped_folder_becomes_the_root(tmp_path):
    zpath = make_zip(
        tmp_path / "model.zip",
        [
            ("my-model/", b""),
            ("my-model/model.py", MODEL_PY),
            ("my-model/environment.yml", b"name: x\n"),
            ("__MACOSX/my-model/._model.py", b"junk"),
        ],
    )
    info = inspect_package(str(zpath))
    assert info.root == "my-model/"
    assert info.files == ("environment.yml", "model.py")
    assert info.has_environment is True
    assert info.has_requirements is False


def test_two_top_level_folders_have_no_root(tmp_path):
    zpath = make_zip(tmp_path / "m.zip", [("a/model.py", MODEL_PY), ("b/x.txt", b"x")])
    assert refusal(zpath) == "m.zip: entrypoint 'model:Model' needs model.py at the package root"


def test_manifest_names_the_entrypoint(tmp_path):
    zpath = make_zip(
        tmp_path / "m.zip",
        [("manifest.json", b'{"entrypoint": "nets.resnet:Net"}'), ("nets/resnet.py", b"")],
    )
    assert inspect_package(zpath).entrypoint == "nets.resnet:Net"


def test_manifest_entrypoint_may_be_a_package_init(tmp_path):
    manifest = b'{"entrypoint": "nets:Net"}'
    zpath = make_zip(tmp_path / "m.zip", [("manifest.json", manifest), ("nets/__init__.py", b"")])
    assert inspect_package(zpath).entrypoint == "nets:Net"


def test_manifest_without_entrypoint_uses_the_default(tmp_path):
    manifest = b'\xef\xbb\xbf{"name": "x"}'  # with a byte-order mark
    zpath = make_zip(tmp_path / "m.zip", [("manifest.json", manifest), ("model.py", MODEL_PY)])
    assert inspect_package(zpath).entrypoint == "model:Model"


# --- entrypoint and manifest refusals -----------------------------------------------------


def test_default_entrypoint_needs_model_py(tmp_path):
    zpath = make_zip(tmp_path / "m.zip", [("net.py", MODEL_PY)])
    assert refusal(zpath) == "m.zip: entrypoint 'model:Model' needs model.py at the package root"


def test_manifest_entrypoint_module_must_exist(tmp_path):
    zpath = make_zip(tmp_path / "m.zip", [("manifest.json", b'{"entrypoint": "a.b:C"}'), ("model.py", MODEL_PY)])
    assert refusal(zpath) == "m.zip: entrypoint 'a.b:C' needs a/b.py at the package root"


@pytest.mark.parametrize("entrypoint", ['"model"', '"model:"', '"../x:Model"', '"a-b:Model"', '"model:Model\\n"', "3"])
def test_bad_manifest_entrypoint(tmp_path, entrypoint):
    manifest = f'{{"entrypoint": {entrypoint}}}'.encode()
    zpath = make_zip(tmp_path / "m.zip", [("manifest.json", manifest), ("model.py", MODEL_PY)])
    assert refusal(zpath).startswith("m.zip: manifest.json entrypoint must be 'module:Class'")


@pytest.mark.parametrize(
    ("manifest", "reason"),
    [
        (b"{not json", "m.zip: manifest.json is not valid JSON"),
        (b"\xff\xfe", "m.zip: manifest.json is not valid JSON"),
        (b"[" * 10_000 + b"]" * 10_000, "m.zip: manifest.json is not valid JSON"),
        (b'["model:Model"]', "m.zip: manifest.json must be a JSON object"),
        (b" " * (64 * 1024) + b"{}", "m.zip: manifest.json is over 65536 bytes"),
    ],
)
def test_bad_manifest(tmp_path, manifest, reason):
    zpath = make_zip(tmp_path / "m.zip", [("manifest.json", manifest), ("model.py", MODEL_PY)])
    assert refusal(zpath).startswith(reason)


def test_empty_package(tmp_path):
    assert refusal(make_zip(tmp_path / "m.zip", [])) == "m.zip: the package holds no files"
    only_a_folder = make_zip(tmp_path / "m.zip", [("a/", b"")])
    assert refusal(only_a_folder) == "m.zip: the package holds no files"


# --- not a zip, corrupt, too big ----------------------------------------------------------


def test_non_zip_bytes(tmp_path):
    path = tmp_path / "m.zip"
    path.write_bytes(b"#!/bin/sh\necho hi\n")
    assert refusal(path) == "m.zip: not a zip archive"


def test_truncated_zip(tmp_path):
    zpath = make_zip(tmp_path / "m.zip", [("model.py", MODEL_PY * 50)])
    zpath.write_bytes(zpath.read_bytes()[:-30])
    assert refusal(zpath).startswith("m.zip: corrupt or truncated zip archive")


def test_corrupt_entry_data(tmp_path):
    zpath = make_zip(tmp_path / "m.zip", [("model.py", MODEL_PY)], compression=zipfile.ZIP_STORED)
    data = bytearray(zpath.read_bytes())
    data[30 + len("model.py") + 3] ^= 0xFF  # a byte inside model.py's stored data
    zpath.write_bytes(bytes(data))
    assert refusal(zpath).startswith("m.zip: entry 'model.py' is corrupt (Bad CRC-32")


def test_zip_over_size_cap(tmp_path):
    zpath = make_zip(tmp_path / "m.zip", [("model.py", MODEL_PY)])
    size = zpath.stat().st_size
    assert inspect_package(zpath, PackageLimits(max_zip_bytes=size)).files == ("model.py",)
    assert refusal(zpath, PackageLimits(max_zip_bytes=size - 1)) == (
        f"m.zip: {size} bytes is over the {size - 1}-byte limit"
    )


def test_too_many_entries(tmp_path):
    zpath = make_zip(tmp_path / "m.zip", [("model.py", MODEL_PY), ("a", b""), ("b", b"")])
    assert inspect_package(zpath, PackageLimits(max_entries=3)).files == ("a", "b", "model.py")
    assert refusal(zpath, PackageLimits(max_entries=2)) == "m.zip: 3 entries, over the 2 limit"


def test_declared_total_over_cap(tmp_path):
    zpath = make_zip(tmp_path / "m.zip", [("model.py", MODEL_PY), ("w.bin", b"1" * 1000)])
    limits = PackageLimits(max_total_uncompressed=1000)
    assert refusal(zpath, limits) == (
        f"m.zip: declares {1000 + len(MODEL_PY)} uncompressed bytes, over the 1000-byte limit"
    )


def test_real_high_ratio_entry_is_a_zip_bomb(tmp_path):
    zpath = make_zip(tmp_path / "m.zip", [("model.py", MODEL_PY), ("zeros.bin", FIVE_MIB_OF_ZEROS)])
    assert refusal(zpath) == ("m.zip: entry 'zeros.bin' expands more than 200 times its compressed size (a zip bomb?)")


def test_ratio_cap_only_applies_past_the_floor(tmp_path):
    zpath = make_zip(tmp_path / "m.zip", [("model.py", MODEL_PY), ("zeros.bin", bytes(100_000))])
    assert inspect_package(zpath).uncompressed_bytes == 100_000 + len(MODEL_PY)
    small_floor = PackageLimits(ratio_floor_bytes=10_000)
    assert "expands more than 200 times" in refusal(zpath, small_floor)


def test_header_that_understates_size_is_caught(tmp_path):
    # A bomb that claims to be small: zipfile stops at the claimed size and the CRC then fails,
    # so the real size is never trusted to the header.
    zpath = make_zip(tmp_path / "m.zip", [("model.py", MODEL_PY), ("zeros.bin", FIVE_MIB_OF_ZEROS)])
    patch_central(zpath, "zeros.bin", 24, "<I", 1000)
    assert refusal(zpath).startswith("m.zip: entry 'zeros.bin' is corrupt (Bad CRC-32")


def test_header_that_overstates_size_is_caught(tmp_path):
    zpath = make_zip(tmp_path / "m.zip", [("model.py", MODEL_PY), ("w.bin", b"abc" * 1000)])
    patch_central(zpath, "w.bin", 24, "<I", 5000)
    assert refusal(zpath) == ("m.zip: entry 'w.bin' is corrupt (holds 3000 bytes, its header says 5000)")


# --- unsafe entries -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("../evil.py", "escapes the package directory"),
        ("a/../../evil.py", "escapes the package directory"),
        ("a/..", "escapes the package directory"),
        ("/etc/cron.d/evil", "is an absolute path"),
        ("C:/Windows/evil.dll", "starts with a drive letter"),
        ("c:evil.dll", "starts with a drive letter"),
        ("a\\..\\evil.py", "contains a backslash"),
        ("a//b.py", "is not a plain relative path"),
        ("./model.py", "is not a plain relative path"),
    ],
)
def test_unsafe_names(tmp_path, name, problem):
    zpath = make_zip(tmp_path / "model.zip", [("model.py", MODEL_PY), (name, b"x")])
    assert refusal(zpath) == f"model.zip: entry {name!r} {problem}"


def test_symlink_entry(tmp_path):
    link = info_with_mode("weights.bin", stat.S_IFLNK | 0o777)
    zpath = make_zip(tmp_path / "m.zip", [("model.py", MODEL_PY), (link, b"/etc/passwd")])
    assert refusal(zpath) == "m.zip: entry 'weights.bin' is a symbolic link"


def test_fifo_entry(tmp_path):
    fifo = info_with_mode("pipe", stat.S_IFIFO | 0o644)
    zpath = make_zip(tmp_path / "m.zip", [("model.py", MODEL_PY), (fifo, b"")])
    assert refusal(zpath) == "m.zip: entry 'pipe' is not a regular file"


def test_regular_unix_modes_are_fine(tmp_path):
    regular = info_with_mode("model.py", stat.S_IFREG | 0o755)
    zpath = make_zip(tmp_path / "m.zip", [(regular, MODEL_PY)])
    assert inspect_package(zpath).files == ("model.py",)


def test_encrypted_entry(tmp_path):
    zpath = make_zip(tmp_path / "m.zip", [("model.py", MODEL_PY), ("secret.bin", b"x")])
    patch_central(zpath, "secret.bin", 8, "<H", 0x1)
    assert refusal(zpath) == "m.zip: entry 'secret.bin' is encrypted"


def test_unbounded_compression_methods_are_refused(tmp_path):
    zpath = make_zip(tmp_path / "m.zip", [("model.py", MODEL_PY)], compression=zipfile.ZIP_BZIP2)
    assert refusal(zpath) == (
        "m.zip: entry 'model.py' uses compression method 12; only stored and deflate are accepted"
    )


def test_duplicate_names(tmp_path):
    with pytest.warns(UserWarning, match="Duplicate name"):
        zpath = make_zip(tmp_path / "m.zip", [("model.py", MODEL_PY), ("model.py", b"evil")])
    assert refusal(zpath) == "m.zip: entry 'model.py' appears more than once"


def test_file_and_folder_with_one_name(tmp_path):
    zpath = make_zip(tmp_path / "m.zip", [("model.py", MODEL_PY), ("w", b"1"), ("w/x", b"2")])
    assert refusal(zpath) == "m.zip: entry 'w' is both a file and a folder"


# --- safe_extract -------------------------------------------------------------------------


def test_safe_extract_writes_the_root_files(tmp_path):
    zpath = make_zip(
        tmp_path / "m.zip",
        [("my-model/model.py", MODEL_PY), ("my-model/w/weights.bin", b"\x01" * 300_000)],
    )
    dest = tmp_path / "out" / "deep"
    info = safe_extract(zpath, dest)
    assert info == inspect_package(zpath)
    assert (dest / "model.py").read_bytes() == MODEL_PY
    assert (dest / "w" / "weights.bin").read_bytes() == b"\x01" * 300_000
    assert sorted(str(p.relative_to(dest)) for p in dest.rglob("*")) == [
        "model.py",
        "w",
        "w/weights.bin",
    ]
    assert stat.S_IMODE((dest / "model.py").stat().st_mode) & 0o111 == 0


def test_safe_extract_writes_nothing_for_an_unsafe_package(tmp_path):
    zpath = make_zip(tmp_path / "m.zip", [("model.py", MODEL_PY), ("../evil.py", b"x")])
    dest = tmp_path / "out"
    with pytest.raises(PackageError, match="escapes the package directory"):
        safe_extract(zpath, dest)
    assert not (tmp_path / "evil.py").exists()
    assert not dest.exists() or list(dest.iterdir()) == []


def test_safe_extract_refuses_a_zip_bomb(tmp_path):
    zpath = make_zip(tmp_path / "m.zip", [("model.py", MODEL_PY), ("zeros.bin", FIVE_MIB_OF_ZEROS)])
    with pytest.raises(PackageError, match="zip bomb"):
        safe_extract(zpath, tmp_path / "out")


def test_safe_extract_does_not_follow_a_symlinked_folder_in_dest(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    dest = tmp_path / "out"
    dest.mkdir()
    (dest / "w").symlink_to(outside)
    zpath = make_zip(tmp_path / "m.zip", [("model.py", MODEL_PY), ("w/weights.bin", b"1")])
    with pytest.raises(PackageError, match="'w/weights.bin' would be written outside"):
        safe_extract(zpath, dest)
    assert list(outside.iterdir()) == []


def test_safe_extract_never_writes_through_a_symlinked_file(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_bytes(b"keep")
    dest = tmp_path / "out"
    dest.mkdir()
    os.symlink(victim, dest / "model.py")
    zpath = make_zip(tmp_path / "m.zip", [("model.py", MODEL_PY)])
    with pytest.raises((FileExistsError, PackageError)):
        safe_extract(zpath, dest)
    assert victim.read_bytes() == b"keep"


def test_safe_extract_never_overwrites(tmp_path):
    dest = tmp_path / "out"
    dest.mkdir()
    (dest / "model.py").write_bytes(b"old")
    zpath = make_zip(tmp_path / "m.zip", [("model.py", MODEL_PY)])
    with pytest.raises(FileExistsError):
        safe_extract(zpath, dest)
    assert (dest / "model.py").read_bytes() == b"old"


def test_package_error_is_a_value_error():
    assert issubclass(PackageError, ValueError)
