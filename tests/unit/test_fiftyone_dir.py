"""modelhub.interop.fiftyone_dir and `modelhub datasets export --format fiftyone` / `datasets import`:
the directory, its media and the API calls, against a fake hub (the real FiftyOne and the real stack
are in tests/integration/test_fiftyone.py)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from test_cli_client import FakeGateway, gateway  # noqa: F401  (the fixture)

from modelhub import exitcodes
from modelhub.api import ApiError
from modelhub.cli import main as cli
from modelhub.interop import fiftyone_dir
from modelhub.interop.fiftyone_dir import DirectoryError, batches, export_fiftyone, import_fiftyone

PRED = {"label": "cat", "confidence": 0.75}
BOXES = {"detections": [{"label": "dog", "confidence": 0.5, "bounding_box": [0.1, 0.2, 0.3, 0.4]}]}


class FakeHub:
    """The ApiClient methods the directory code calls, over samples held in memory."""

    url = "http://hub.test"

    def __init__(self, datasets: dict[str, list[dict]] | None = None, largest_batch: int | None = None) -> None:
        self.datasets = {name: list(samples) for name, samples in (datasets or {}).items()}
        self.largest_batch = largest_batch  # more samples in one call are refused with 413
        self.pages: list[tuple[int, int]] = []
        self.batches: list[int] = []

    def get_dataset(self, name: str) -> dict:
        if name not in self.datasets:
            raise ApiError(404, f"dataset '{name}' not found")
        return {"name": name, "description": "pets", "num_samples": len(self.datasets[name])}

    def create_dataset(self, name: str, description: str | None = None) -> dict:
        self.datasets[name] = []
        return self.get_dataset(name)

    def list_samples(self, name: str, limit: int = 20, offset: int = 0, **_filters: Any) -> dict:
        self.pages.append((limit, offset))
        samples = self.get_dataset(name) and self.datasets[name]
        return {"items": samples[offset : offset + limit], "total": len(samples)}

    def add_samples(self, name: str, samples: list[dict]) -> dict:
        if self.largest_batch is not None and len(samples) > self.largest_batch:
            raise ApiError(413, "request body is over the limit")
        self.batches.append(len(samples))
        start = len(self.datasets[name])
        for index, sample in enumerate(samples):
            self.datasets[name].append({"id": str(start + index), "fields": {}, **sample})
        return {"added": len(samples)}


def image(path: Path, content: bytes = b"png") -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return str(path)


def hub_sample(filepath: str, **fields: Any) -> dict:
    return {"id": "x", "filepath": filepath, "fields": fields}


def read(dest: Path) -> tuple[dict, list[dict]]:
    return json.loads((dest / "metadata.json").read_text()), json.loads((dest / "samples.json").read_text())["samples"]


# ------------------------------------------------------------------------------------ export


def test_export_writes_metadata_samples_and_copies_the_media(tmp_path: Path) -> None:
    a, b = image(tmp_path / "media/a.png", b"A"), image(tmp_path / "media/b.png", b"B")
    hub = FakeHub({"pets": [hub_sample(a, pred=PRED, boxes=BOXES), hub_sample(b, pred={"label": "dog"})]})
    dest = tmp_path / "out"

    report = export_fiftyone(hub, "pets", dest)  # pyright: ignore[reportArgumentType]

    meta, samples = read(dest)
    assert meta["name"] == "pets" and "version" not in meta
    assert meta["info"]["modelhub"]["dataset"] == "pets" and meta["info"]["description"] == "pets"
    assert meta["sample_fields"]["boxes"].endswith("fiftyone.core.labels.Detections)")
    assert [s["filepath"] for s in samples] == ["data/a.png", "data/b.png"]
    assert (dest / "data/a.png").read_bytes() == b"A" and not (dest / "data/a.png").is_symlink()
    assert samples[0]["boxes"]["detections"][0]["bounding_box"] == [0.1, 0.2, 0.3, 0.4]
    assert samples[1]["pred"] == {"_cls": "Classification", "label": "dog", "confidence": None, "tags": []}
    assert "boxes" not in samples[1]
    assert (report.samples, report.media, report.unreadable) == (2, 2, [])
    assert sorted(os.listdir(tmp_path)) == ["media", "out"]  # no scratch, no .part folder left


def test_export_pages_through_the_samples(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fiftyone_dir, "PAGE_SIZE", 2)
    hub = FakeHub({"d": [hub_sample(f"/nowhere/{i}.png", n=i) for i in range(5)]})
    seen: list[tuple[int, int]] = []

    export_fiftyone(hub, "d", tmp_path / "out", media="skip", progress=lambda *p: seen.append(p))  # pyright: ignore[reportArgumentType]

    assert hub.pages == [(2, 0), (2, 2), (2, 4)]
    assert [s["n"] for s in read(tmp_path / "out")[1]] == [0, 1, 2, 3, 4]
    assert seen[-1] == (5, 5)


def test_a_file_that_cannot_be_read_keeps_its_hub_path(tmp_path: Path) -> None:
    a = image(tmp_path / "a.png")
    hub = FakeHub({"d": [hub_sample(a), hub_sample("/on/the/hub/only.png"), hub_sample(a)]})

    report = export_fiftyone(hub, "d", tmp_path / "out")  # pyright: ignore[reportArgumentType]

    # the same file twice is copied once
    assert [s["filepath"] for s in read(tmp_path / "out")[1]] == ["data/a.png", "/on/the/hub/only.png", "data/a.png"]
    assert report.unreadable == ["/on/the/hub/only.png"] and report.media == 1


def test_link_mode_links_and_names_do_not_collide(tmp_path: Path) -> None:
    one, two = image(tmp_path / "x/a.png", b"1"), image(tmp_path / "y/a.png", b"2")
    hub = FakeHub({"d": [hub_sample(one), hub_sample(two)]})

    export_fiftyone(hub, "d", tmp_path / "out", media="link")  # pyright: ignore[reportArgumentType]

    assert [s["filepath"] for s in read(tmp_path / "out")[1]] == ["data/a.png", "data/a-2.png"]
    assert os.readlink(tmp_path / "out/data/a-2.png") == two
    assert (tmp_path / "out/data/a-2.png").read_bytes() == b"2"


def test_skip_mode_keeps_every_hub_path_and_makes_no_data_folder(tmp_path: Path) -> None:
    a = image(tmp_path / "a.png")
    export_fiftyone(FakeHub({"d": [hub_sample(a)]}), "d", tmp_path / "out", media="skip")  # pyright: ignore[reportArgumentType]
    assert read(tmp_path / "out")[1][0]["filepath"] == a and not (tmp_path / "out/data").exists()


def test_fields_can_be_chosen_and_renamed_ones_are_listed(tmp_path: Path) -> None:
    hub = FakeHub({"d": [hub_sample("/a.png", pred=PRED, metadata={"k": 1}, other=1)]})
    report = export_fiftyone(hub, "d", tmp_path / "out", media="skip", fields=["pred", "metadata"])  # pyright: ignore[reportArgumentType]
    meta, (sample,) = read(tmp_path / "out")
    assert "other" not in sample and sample["hub_metadata"] == {"k": 1}
    assert report.renamed == meta["info"]["modelhub"]["renamed_fields"] == {"hub_metadata": "metadata"}


def test_export_refuses_a_directory_that_is_not_empty(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "out/keep.txt").write_text("mine")
    with pytest.raises(DirectoryError, match="not an empty directory"):
        export_fiftyone(FakeHub({"d": []}), "d", tmp_path / "out")  # pyright: ignore[reportArgumentType]
    assert os.listdir(tmp_path / "out") == ["keep.txt"]
    export_fiftyone(FakeHub({"d": []}), "d", tmp_path / "empty")  # pyright: ignore[reportArgumentType]
    assert read(tmp_path / "empty")[1] == []


def test_a_failed_export_leaves_nothing_behind(tmp_path: Path) -> None:
    class Breaks(FakeHub):
        def list_samples(self, name: str, limit: int = 20, offset: int = 0, **_f: Any) -> dict:
            raise ApiError(503, "the hub is busy")

    with pytest.raises(ApiError):
        export_fiftyone(Breaks({"d": []}), "d", tmp_path / "out")  # pyright: ignore[reportArgumentType]
    assert os.listdir(tmp_path) == []


# ------------------------------------------------------------------------------------ import


def make_fo_dir(path: Path, samples: list[dict], meta: dict | None = None) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "samples.json").write_text(json.dumps({"samples": samples}))
    if meta is not None:
        (path / "metadata.json").write_text(json.dumps(meta))
    return path


def fo_sample(filepath: str, **fields: Any) -> dict:
    return {"_id": {"$oid": "6b15c409c129ea5c775dfbc3"}, "filepath": filepath, "tags": [], **fields}


GT = {"_cls": "Classification", "label": "cat", "tags": []}


def test_import_creates_the_dataset_and_resolves_relative_paths(tmp_path: Path) -> None:
    src = make_fo_dir(tmp_path / "fo", [fo_sample("data/a.png", ground_truth=GT), fo_sample("/abs/b.png")])
    image(src / "data/a.png")
    hub = FakeHub()

    report = import_fiftyone(hub, "pets", src)  # pyright: ignore[reportArgumentType]

    assert report.created and report.added == 2
    first, second = hub.datasets["pets"]
    assert first["filepath"] == str(src / "data/a.png") and first["fields"] == {"ground_truth": {"label": "cat"}}
    assert second["filepath"] == "/abs/b.png" and report.missing == ["/abs/b.png"]


def test_import_into_an_existing_dataset_appends(tmp_path: Path) -> None:
    src = make_fo_dir(tmp_path / "fo", [fo_sample("/a.png")])
    hub = FakeHub({"pets": [hub_sample("/old.png")]})
    report = import_fiftyone(hub, "pets", src)  # pyright: ignore[reportArgumentType]
    assert not report.created and [s["filepath"] for s in hub.datasets["pets"]] == ["/old.png", "/a.png"]


def test_import_skips_samples_whose_media_is_not_a_local_path(tmp_path: Path) -> None:
    src = make_fo_dir(tmp_path / "fo", [fo_sample("s3://bucket/a.png"), {"tags": []}, fo_sample("/b.png")])
    hub = FakeHub()
    report = import_fiftyone(hub, "d", src)  # pyright: ignore[reportArgumentType]
    assert report.skipped == ["s3://bucket/a.png", "None"] and report.added == 1


def test_import_copies_media_into_a_media_dir(tmp_path: Path) -> None:
    src = make_fo_dir(tmp_path / "fo", [fo_sample("data/a.png"), fo_sample("data/sub/a.png"), fo_sample("/gone.png")])
    image(src / "data/a.png", b"1")
    image(src / "data/sub/a.png", b"2")
    image(tmp_path / "media/a.png", b"already there")
    hub = FakeHub()

    report = import_fiftyone(hub, "d", src, media_dir=tmp_path / "media")  # pyright: ignore[reportArgumentType]

    paths = [s["filepath"] for s in hub.datasets["d"]]
    assert paths == [str(tmp_path / "media/a-2.png"), str(tmp_path / "media/a-3.png"), "/gone.png"]
    assert Path(paths[1]).read_bytes() == b"2" and (tmp_path / "media/a.png").read_bytes() == b"already there"
    assert report.copied == 2 and report.missing == ["/gone.png"]


def test_import_sends_batches_and_halves_one_that_is_too_large(tmp_path: Path) -> None:
    src = make_fo_dir(tmp_path / "fo", [fo_sample(f"/{i}.png", n=i) for i in range(7)])
    hub = FakeHub(largest_batch=2)
    report = import_fiftyone(hub, "d", src)  # pyright: ignore[reportArgumentType]
    assert report.added == 7 and all(n <= 2 for n in hub.batches)
    assert [s["fields"]["n"] for s in hub.datasets["d"]] == list(range(7))


def test_batches_stay_under_the_count_and_the_size() -> None:
    samples = [{"filepath": f"/{i}", "fields": {"x": "y" * 100}} for i in range(10)]
    assert [len(b) for b in batches(samples, count=4)] == [4, 4, 2]
    assert [len(b) for b in batches(samples, size=300)] == [2, 2, 2, 2, 2]
    assert [len(b) for b in batches(samples[:1], size=10)] == [1]  # one too large still goes (the hub says)


def test_an_error_says_how_many_samples_came_in_before_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fiftyone_dir, "SAMPLES_PER_REQUEST", 2)
    src = make_fo_dir(tmp_path / "fo", [fo_sample(f"/{i}.png") for i in range(3)])

    class Refuses(FakeHub):
        def add_samples(self, name: str, samples: list[dict]) -> dict:
            if self.batches:
                raise ApiError(422, "bad sample")
            return super().add_samples(name, samples)

    with pytest.raises(ApiError, match=r"bad sample \(2 samples were added before this error\)"):
        import_fiftyone(Refuses(), "d", src)  # pyright: ignore[reportArgumentType]


def test_import_reads_fiftyones_samples_folder(tmp_path: Path) -> None:
    """`dataset.export(..., use_dirs=True)` writes one file per sample under samples/."""
    (tmp_path / "fo/samples").mkdir(parents=True)
    for index, name in enumerate(["b.png", "a.png"]):
        (tmp_path / f"fo/samples/{index:06d}-x.json").write_text(json.dumps(fo_sample(f"/{name}")))
    hub = FakeHub()
    import_fiftyone(hub, "d", tmp_path / "fo")  # pyright: ignore[reportArgumentType]
    assert [s["filepath"] for s in hub.datasets["d"]] == ["/b.png", "/a.png"]


def test_a_directory_that_is_not_a_fiftyone_dataset_is_refused_before_anything(tmp_path: Path) -> None:
    hub = FakeHub()
    with pytest.raises(DirectoryError, match="not a FiftyOne dataset directory"):
        import_fiftyone(hub, "d", tmp_path)  # pyright: ignore[reportArgumentType]
    (tmp_path / "samples.json").write_text("{not json")
    with pytest.raises(DirectoryError, match="cannot read"):
        import_fiftyone(hub, "d", tmp_path)  # pyright: ignore[reportArgumentType]
    assert hub.datasets == {}


def test_hub_to_fiftyone_directory_to_hub_keeps_every_field(tmp_path: Path) -> None:
    a = image(tmp_path / "a.png")
    fields = {"pred": PRED, "boxes": BOXES, "tags": ["train"], "metadata": {"k": 1}, "gt": {"label": "dog"}}
    hub = FakeHub({"src": [hub_sample(a, **fields), hub_sample(a, pred={"label": "x", "confidence": 0.1})]})

    export_fiftyone(hub, "src", tmp_path / "out")  # pyright: ignore[reportArgumentType]
    import_fiftyone(hub, "back", tmp_path / "out")  # pyright: ignore[reportArgumentType]

    assert [s["fields"] for s in hub.datasets["back"]] == [s["fields"] for s in hub.datasets["src"]]
    assert hub.datasets["back"][0]["filepath"] == str(tmp_path / "out/data/a.png")


# ------------------------------------------------------------------------------------ commands


def test_export_command_writes_the_directory(gateway: FakeGateway, tmp_path: Path) -> None:  # noqa: F811
    a = image(tmp_path / "a.png")
    gateway.on("GET", "/datasets/pets", {"name": "pets", "description": ""})
    gateway.on("GET", "/datasets/pets/samples", {"items": [hub_sample(a, pred=PRED)], "total": 1})

    result = CliRunner().invoke(cli, ["datasets", "export", "pets", "--format", "fiftyone", str(tmp_path / "out")])

    assert result.exit_code == 0, result.output
    assert "exported 1 samples of pets" in result.stderr and "1 files copied into data/" in result.stderr
    assert read(tmp_path / "out")[1][0]["pred"]["_cls"] == "Classification"
    (page,) = gateway.sent("GET", "/datasets/pets/samples")
    assert page.url.params["limit"] == "10000" and page.url.params["offset"] == "0"


def test_export_command_warns_of_files_it_could_not_read(gateway: FakeGateway, tmp_path: Path) -> None:  # noqa: F811
    gateway.on("GET", "/datasets/pets", {"name": "pets"})
    gateway.on("GET", "/datasets/pets/samples", {"items": [hub_sample("/hub/only.png")], "total": 1})
    result = CliRunner().invoke(cli, ["datasets", "export", "pets", "--format", "fiftyone", str(tmp_path / "out")])
    assert result.exit_code == 0 and "1 files could not be read here" in result.stderr
    assert "/hub/only.png" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--format", "fiftyone"], "give it as DIR"),
        (["--format", "fiftyone", "DIR", "-o", "x"], "give it as DIR"),
        (["DIR"], "DIR is for --format fiftyone"),
    ],
)
def test_export_command_usage_errors(gateway: FakeGateway, args: list[str], message: str) -> None:  # noqa: F811
    result = CliRunner().invoke(cli, ["datasets", "export", "pets", *args])
    assert result.exit_code == exitcodes.USAGE and message in result.output
    assert gateway.requests == []


def test_export_command_refuses_a_full_directory_as_usage(gateway: FakeGateway, tmp_path: Path) -> None:  # noqa: F811
    (tmp_path / "x").write_text("")
    result = CliRunner().invoke(cli, ["datasets", "export", "pets", "--format", "fiftyone", str(tmp_path)])
    assert result.exit_code == exitcodes.USAGE and "not an empty directory" in result.output


def test_export_command_maps_api_errors(gateway: FakeGateway, tmp_path: Path) -> None:  # noqa: F811
    gateway.on("GET", "/datasets/gone", {"detail": "dataset 'gone' not found"}, status=404)
    result = CliRunner().invoke(cli, ["datasets", "export", "gone", "--format", "fiftyone", str(tmp_path / "o")])
    assert result.exit_code == exitcodes.NOT_FOUND and not (tmp_path / "o").exists()


def test_import_command_adds_and_reports(gateway: FakeGateway, tmp_path: Path) -> None:  # noqa: F811
    src = make_fo_dir(
        tmp_path / "fo",
        [fo_sample("/a.png", ground_truth=GT, logits={"$binary": "AA"}), fo_sample("http://x/b.png")],
    )
    gateway.on("GET", "/datasets/pets", {"detail": "dataset 'pets' not found"}, status=404)
    gateway.on("POST", "/datasets", lambda req: httpx.Response(201, json={"name": "pets"}))
    gateway.on(
        "POST",
        "/datasets/pets/samples",
        lambda req: httpx.Response(201, json={"added": len(json.loads(req.content)["samples"])}),
    )

    result = CliRunner().invoke(cli, ["datasets", "import", "pets", str(src), "--json"])

    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert body["created"] and body["added"] == 1 and body["skipped"] == ["http://x/b.png"]
    assert body["left_out"] == {"logits left out: binary data (the hub stores JSON)": 1}
    assert gateway.body("POST", "/datasets/pets/samples") == {
        "samples": [{"filepath": "/a.png", "fields": {"ground_truth": {"label": "cat"}}}]
    }
    assert "1 samples skipped" in result.stderr and "/a.png" in result.stderr  # missing here


def test_import_command_refuses_a_directory_that_is_not_fiftyones(gateway: FakeGateway, tmp_path: Path) -> None:  # noqa: F811
    result = CliRunner().invoke(cli, ["datasets", "import", "pets", str(tmp_path)])
    assert result.exit_code == exitcodes.USAGE and "not a FiftyOne dataset directory" in result.output
    assert gateway.requests == []


def test_a_folder_that_cannot_be_written_is_an_error_not_a_traceback(gateway: FakeGateway, tmp_path: Path) -> None:  # noqa: F811
    gateway.on("GET", "/datasets/pets", {"name": "pets"})
    (tmp_path / "file").write_text("")  # a file where a folder should be
    result = CliRunner().invoke(cli, ["datasets", "export", "pets", "--format", "fiftyone", str(tmp_path / "file/out")])
    assert result.exit_code == exitcodes.ERROR and "Error:" in result.stderr
