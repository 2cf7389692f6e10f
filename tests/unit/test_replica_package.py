"""The replica's side of packages: read from its py_modules package (a folder on sys.path that holds
only the zip), verified by sha-256, unpacked once per node, a zipped folder's root used as the
package root (as the registry does)."""

import hashlib
import io
import zipfile
from pathlib import Path

import pytest

import modelhub_replica as replica


def zip_bytes(files: dict[str, str]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, text in files.items():
            zf.writestr(name, text)
    return buf.getvalue()


class Packages:
    """What Ray unpacked for the replica's py_modules: one folder per package, on sys.path."""

    def __init__(self, root):
        self.root = root

    def __setitem__(self, sha: str, data: bytes) -> None:
        folder = self.root / replica.MODEL_PACKAGE_DIR.format(sha256=sha)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / replica.MODEL_PACKAGE_FILE).write_bytes(data)

    def __delitem__(self, sha: str) -> None:
        (self.root / replica.MODEL_PACKAGE_DIR.format(sha256=sha) / replica.MODEL_PACKAGE_FILE).unlink()


@pytest.fixture
def kv(monkeypatch, tmp_path):
    (tmp_path / "cache").mkdir()
    (tmp_path / "modules").mkdir()
    monkeypatch.setattr(replica, "_cache_root", lambda: str(tmp_path / "cache"))
    monkeypatch.syspath_prepend(str(tmp_path / "modules"))
    return Packages(tmp_path / "modules")


def test_verified_package_is_unpacked_once_with_a_zipped_folder_as_root(kv):
    data = zip_bytes({"pkg/model.py": "X = 1\n", "pkg/w/a.txt": "a", "__MACOSX/pkg/._model.py": "junk"})
    sha = hashlib.sha256(data).hexdigest()
    kv[sha] = data
    root = replica.fetch_package("pkg/m/1.zip", sha)
    assert Path(root, "model.py").read_text() == "X = 1\n" and Path(root, "w", "a.txt").read_text() == "a"
    del kv[sha]
    assert replica.fetch_package("pkg/m/1.zip", sha) == root  # the node's cache


def test_bytes_that_do_not_match_the_sha256_are_refused(kv):
    good = zip_bytes({"model.py": "X = 1\n"})
    sha = hashlib.sha256(good).hexdigest()
    kv[sha] = zip_bytes({"model.py": "import os; os.system('evil')\n"})
    with pytest.raises(RuntimeError, match="refusing to run it"):
        replica.fetch_package("pkg/m/1.zip", sha)


def test_a_missing_package_names_the_version(kv):
    with pytest.raises(RuntimeError, match="pkg/m/1.zip .*not in the cluster's package store"):
        replica.fetch_package("pkg/m/1.zip", "ab" * 32)


def test_an_entry_escaping_the_package_is_refused(kv):
    data = zip_bytes({"model.py": "", "../escape.py": "x"})
    sha = hashlib.sha256(data).hexdigest()
    kv[sha] = data
    with pytest.raises(RuntimeError, match="not a plain relative path"):
        replica.fetch_package("pkg/m/1.zip", sha)
