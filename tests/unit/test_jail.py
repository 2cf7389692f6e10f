"""The model's process and its jail (modelhub_replica.jail, host.py), without Ray: the package is
verified and unpacked each time a process starts, the model runs jailed by bubblewrap, answers in
bounded frames, and a process that dies fails its calls with the reason and is started again.

The jail's own tests need bubblewrap (`make install` and `.ci/run` install it as root); where it
is missing they are skipped, saying so. tests/integration/test_sealing.py attacks it on a stack."""

import asyncio
import hashlib
import json
import os
import shutil
import zipfile
from pathlib import Path

import pytest

from modelhub_replica import jail
from modelhub_replica.jail import JailSpec, ModelError, ModelProcess, ModelUnavailable

needs_bwrap = pytest.mark.skipif(
    jail.jail_available() is not None, reason=f"bubblewrap cannot jail here: {jail.jail_available()}"
)

MODEL = """
import asyncio, os, sys

class Model:
    def __init__(self, root):
        self.root = root
        self.seen = []

    def predict(self, batch):
        self.seen.append(len(batch["x"]))
        outputs = []
        for x in batch["x"]:
            if x == "die":
                os._exit(3)
            if x == "odd":
                outputs.append(object())
            elif x == "raise":
                raise ValueError("no odd ones")
            elif x == "uid":
                outputs.append(os.getuid())
            elif x == "seen":
                outputs.append(self.seen)
            elif isinstance(x, str) and x.startswith("read:"):
                try:
                    outputs.append(open(x[5:]).read())
                except OSError as exc:
                    outputs.append(type(exc).__name__)
            else:
                outputs.append(x * 2)
        return {"y": outputs}

    def check_health(self):
        if os.path.exists(os.path.join(self.root, "sick")):
            raise RuntimeError("the model says it is sick")
"""

ASYNC_MODEL = """
import asyncio

class Model:
    def __init__(self, root):
        pass

    async def predict(self, batch):
        await asyncio.sleep(0.01)
        return {"y": [x + 1 for x in batch["x"]]}
"""


def package(tmp_path: Path, files: dict[str, str], name: str = "p.zip") -> tuple[str, str]:
    path = tmp_path / name
    with zipfile.ZipFile(path, "w") as zf:
        for file, text in files.items():
            zf.writestr(file, text)
    return str(path), hashlib.sha256(path.read_bytes()).hexdigest()


def start(tmp_path: Path, files: dict[str, str], roots=(), hidden=(), allow_unsealed=False) -> ModelProcess:
    zip_path, sha = package(tmp_path, files)
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    return ModelProcess(
        zip_path, sha, "model:Model", str(work), JailSpec(list(roots), list(hidden), False), allow_unsealed
    )


def outputs(results) -> list:
    return [[o["y"] for o in result["outputs"]] if "outputs" in result else result for result, _ in results]


# ---------------------------------------------------------------- the package


def test_a_zipped_folder_is_unpacked_as_the_root_and_mac_junk_is_skipped(tmp_path):
    zip_path, sha = package(tmp_path, {"pkg/model.py": "X = 1\n", "pkg/w/a.txt": "a", "__MACOSX/pkg/._model.py": "j"})
    root = Path(jail.unpack_verified(zip_path, sha, str(tmp_path)))
    assert (root / "model.py").read_text() == "X = 1\n" and (root / "w" / "a.txt").read_text() == "a"
    assert not (root / "__MACOSX").exists() and not (root.parent / ".package.zip").exists()
    again = jail.unpack_verified(zip_path, sha, str(tmp_path))
    assert again != str(root)  # each process start unpacks (and checks) afresh


def test_bytes_that_do_not_match_the_sha256_are_refused(tmp_path):
    zip_path, _ = package(tmp_path, {"model.py": "import os; os.system('evil')\n"})
    with pytest.raises(ModelUnavailable, match="refusing to run it"):
        jail.unpack_verified(zip_path, "ab" * 32, str(tmp_path))
    assert os.listdir(tmp_path) == ["p.zip"]  # nothing left behind


def test_an_entry_escaping_the_package_is_refused(tmp_path):
    zip_path, sha = package(tmp_path, {"model.py": "", "../escape.py": "x"})
    with pytest.raises(ModelUnavailable, match="not a plain relative path"):
        jail.unpack_verified(zip_path, sha, str(tmp_path))


# ---------------------------------------------------------------- the process


@needs_bwrap
async def test_a_jailed_model_answers_each_mini_batch_and_its_errors_stay_its_own(tmp_path):
    model = start(tmp_path, {"model.py": MODEL})
    try:
        results = await model.predict([[{"x": 1}, {"x": "ab"}], [{"x": "odd"}], [{"x": "raise"}], [{"x": "uid"}]])
        first, odd, raised, uid = outputs(results)
        assert first == [2, "abab"]
        assert "not JSON serializable" in odd["error"] and raised == {"error": "ValueError: no odd ones"}
        assert uid == [65534]  # an unprivileged uid in the jail
        assert results[0][1] == json.dumps(results[0][0]).encode()  # the bytes passed on are the result's
    finally:
        model.close()


@needs_bwrap
async def test_a_model_that_dies_fails_its_call_with_the_reason_and_is_started_again(tmp_path):
    model = start(tmp_path, {"model.py": MODEL})
    try:
        await model.predict([[{"x": 1}]])
        with pytest.raises(ModelError, match="died while predicting.*exited with code 3"):
            await model.predict([[{"x": "die"}]])
        assert outputs(await model.predict([[{"x": "seen"}]])) == [[[1]]]  # a fresh process: its memory is new
        # it died twice: with the call, and again when that call was tried alone
        assert model.restarts == 2 and "exited with code 3" in (model.last_death or "")
    finally:
        model.close()


@needs_bwrap
async def test_only_the_call_that_kills_the_process_fails_not_those_beside_it(tmp_path):
    model = start(
        tmp_path, {"model.py": MODEL.replace("self.seen.append", "import time; time.sleep(0.05); self.seen.append")}
    )
    try:
        calls: list[list[list[dict]]] = [[[{"x": i}]] for i in range(12)]
        calls[5] = [[{"x": "die"}]]
        answers = await asyncio.gather(*[model.predict(c) for c in calls], return_exceptions=True)
        failed = [i for i, a in enumerate(answers) if isinstance(a, BaseException)]
        assert failed == [5] and "exited with code 3" in str(answers[5])
        assert [outputs(a)[0] for i, a in enumerate(answers) if i != 5] == [[2 * i] for i in range(12) if i != 5]
    finally:
        model.close()


@needs_bwrap
async def test_an_async_model_runs_its_calls_concurrently(tmp_path):
    model = start(tmp_path, {"model.py": ASYNC_MODEL})
    try:
        answers = await asyncio.gather(*[model.predict([[{"x": i}]]) for i in range(20)])
        assert [outputs(a)[0] for a in answers] == [[i + 1] for i in range(20)]
    finally:
        model.close()


@needs_bwrap
async def test_the_models_own_health_probe_is_asked(tmp_path):
    model = start(tmp_path, {"model.py": MODEL})
    try:
        await model.health()
        model.close()
        bad = start(tmp_path, {"model.py": MODEL, "sick": ""})
        with pytest.raises(RuntimeError, match="sick"):
            await bad.health()
        bad.close()
    finally:
        model.close()


@needs_bwrap
def test_a_model_that_cannot_load_fails_the_start_with_its_traceback(tmp_path):
    with pytest.raises(ModelUnavailable, match="ZeroDivisionError"):
        start(tmp_path, {"model.py": "class Model:\n    def __init__(self, root):\n        1 / 0\n"})


@needs_bwrap
async def test_a_jail_with_media_roots_shows_those_and_never_the_hidden_paths(tmp_path):
    data, secret = tmp_path / "data", tmp_path / "data" / "hub"
    secret.mkdir(parents=True)
    (data / "a.txt").write_text("sample")
    (secret / "admin-token").write_text("t0ken")
    (tmp_path / "elsewhere.txt").write_text("x")
    model = start(tmp_path, {"model.py": MODEL}, roots=[str(data)], hidden=[str(secret)])
    try:
        files = [data / "a.txt", secret / "admin-token", tmp_path / "elsewhere.txt", Path("/etc/hostname")]
        (got,) = outputs(await model.predict([[{"x": f"read:{f}"} for f in files]]))
        assert got == ["sample", "FileNotFoundError", "FileNotFoundError", "FileNotFoundError"]
    finally:
        model.close()


@needs_bwrap
async def test_without_media_roots_the_machine_shows_less_the_covered_places(tmp_path):
    hidden = tmp_path / "hub"
    hidden.mkdir()
    (hidden / "admin-token").write_text("t0ken")
    model = start(tmp_path, {"model.py": MODEL}, hidden=[str(hidden)])
    try:
        (got,) = outputs(await model.predict([[{"x": f"read:{f}"} for f in (hidden / "admin-token", "/etc/hostname")]]))
        assert got[0] == "FileNotFoundError" and got[1] == Path("/etc/hostname").read_text()
    finally:
        model.close()


async def test_without_bubblewrap_a_model_is_refused_unless_unsealed_is_allowed(tmp_path, monkeypatch):
    monkeypatch.setattr(jail, "_JAIL_CHECKED", "bubblewrap (bwrap) is not installed on this node")
    with pytest.raises(ModelUnavailable, match="--allow-unsealed"):
        start(tmp_path, {"model.py": MODEL})
    model = start(tmp_path, {"model.py": MODEL}, allow_unsealed=True)
    try:
        assert not model.jailed and "not installed" in (model.unsealed_reason or "")
        assert outputs(await model.predict([[{"x": 2}]])) == [[4]]
    finally:
        model.close()


def test_the_jail_passes_nothing_of_the_hubs_environment(monkeypatch):
    monkeypatch.setenv("MODELHUB_ADMIN_TOKEN", "t")
    monkeypatch.setenv("RAY_AUTH_TOKEN", "r")
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    env = jail.model_env(["/x"])
    assert "MODELHUB_ADMIN_TOKEN" not in env and "RAY_AUTH_TOKEN" not in env
    assert env["OMP_NUM_THREADS"] == "2" and env["PYTHONPATH"] == "/x" and env["HOME"] == "/tmp"


def test_the_jails_arguments_drop_every_capability_and_share_no_namespace():
    argv = jail.command("/pkg", 3, "model:Model", JailSpec([], [], False))
    assert argv[0] == (shutil.which("bwrap") or "bwrap")
    for flag in ("--unshare-all", "--die-with-parent", "--new-session"):
        assert flag in argv
    assert argv[argv.index("--cap-drop") + 1] == "ALL" and argv[argv.index("--uid") + 1] == "65534"
    assert "--share-net" not in argv and not any(a.startswith("/dev/nvidia") for a in argv)
