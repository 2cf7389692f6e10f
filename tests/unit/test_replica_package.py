"""The replica's side of packages: fetched from the cluster store by sha-256, verified, unpacked
once per node, a zipped folder's root used as the package root (as the registry does)."""

import hashlib
import io
import zipfile

import pytest

from modelhub_deployer import replica


def zip_bytes(files: dict[str, str]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, text in files.items():
            zf.writestr(name, text)
    return buf.getvalue()


@pytest.fixture
def kv(monkeypatch, tmp_path):
    store: dict[tuple[str, str], bytes] = {}
    import ray.experimental.internal_kv as internal_kv
    monkeypatch.setattr(internal_kv, "_internal_kv_get",
                        lambda key, namespace=None: store.get((key, namespace)))
    monkeypatch.setattr(replica, "_cache_root", lambda: str(tmp_path))
    return store


def test_verified_package_is_unpacked_once_with_a_zipped_folder_as_root(kv):
    data = zip_bytes({"pkg/model.py": "X = 1\n", "pkg/w/a.txt": "a", "__MACOSX/pkg/._model.py": "junk"})
    sha = hashlib.sha256(data).hexdigest()
    kv[(sha, replica.PACKAGE_KV_NAMESPACE)] = data
    root = replica.fetch_package("pkg/m/1.zip", sha)
    assert open(f"{root}/model.py").read() == "X = 1\n" and open(f"{root}/w/a.txt").read() == "a"
    del kv[(sha, replica.PACKAGE_KV_NAMESPACE)]
    assert replica.fetch_package("pkg/m/1.zip", sha) == root  # the node's cache


def test_bytes_that_do_not_match_the_sha256_are_refused(kv):
    good = zip_bytes({"model.py": "X = 1\n"})
    sha = hashlib.sha256(good).hexdigest()
    kv[(sha, replica.PACKAGE_KV_NAMESPACE)] = zip_bytes({"model.py": "import os; os.system('evil')\n"})
    with pytest.raises(RuntimeError, match="refusing to run it"):
        replica.fetch_package("pkg/m/1.zip", sha)


def test_a_missing_package_names_the_version(kv):
    with pytest.raises(RuntimeError, match="pkg/m/1.zip .*not in the cluster's package store"):
        replica.fetch_package("pkg/m/1.zip", "ab" * 32)


def test_an_entry_escaping_the_package_is_refused(kv):
    data = zip_bytes({"model.py": "", "../escape.py": "x"})
    sha = hashlib.sha256(data).hexdigest()
    kv[(sha, replica.PACKAGE_KV_NAMESPACE)] = data
    with pytest.raises(RuntimeError, match="not a plain relative path"):
        replica.fetch_package("pkg/m/1.zip", sha)
