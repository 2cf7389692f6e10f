"""ONNX packages (API.md §3, "ONNX models"), without a stack: the manifest's checks at upload
(package.py, onnx_manifest.py), the registry's check of the ONNX file (onnx's checker, external
data kept inside the package, the graph against the manifest), and the replica's adapter run with
the real onnxruntime on real PNG files, alone and in its jail. tests/integration/test_onnx.py
drives the same through the stack."""

from __future__ import annotations

import asyncio
import hashlib
import importlib
import io
import json
import sys
import zipfile
from pathlib import Path
from typing import Any, get_args

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper
from PIL import Image

from modelhub_contracts import onnx_manifest
from modelhub_contracts.onnx_manifest import schema_problem
from modelhub_contracts.package import FORMAT_ENTRYPOINTS, PackageError, PackageLimits, inspect_package
from modelhub_deployer.serving import replica_module_zip
from modelhub_registry.onnx_check import INPUT_TYPES, check_isolated, check_onnx_package
from modelhub_replica import jail
from modelhub_replica.jail import JailSpec, ModelProcess

# as host.py imports them: the folder beside host.py on the path
sys.path.append(str(Path(jail.FORMATS_DIR).parent))
onnx_model = importlib.import_module("modelhub_formats.onnx_model")

RNG = np.random.default_rng(0)
H, W = 4, 5
LABELS = ["cat", "dog", "eel"]


def linear_model(
    input_shape: list, classes: int = 3, name_in: str = "image", name_out: str = "scores", elem=TensorProto.FLOAT
) -> tuple[onnx.ModelProto, np.ndarray, np.ndarray]:
    """image (any shape with N first) -> Flatten -> MatMul W -> Add b -> scores [N, classes]."""
    features = int(np.prod([d for d in input_shape[1:]]))
    weights = RNG.normal(size=(features, classes)).astype(np.float32)
    bias = RNG.normal(size=classes).astype(np.float32)
    nodes = [
        helper.make_node("Cast", [name_in], ["x"], to=TensorProto.FLOAT),
        helper.make_node("Flatten", ["x"], ["flat"], axis=1),
        helper.make_node("MatMul", ["flat", "W"], ["mm"]),
        helper.make_node("Add", ["mm", "b"], [name_out]),
    ]
    graph = helper.make_graph(
        nodes,
        "linear",
        [helper.make_tensor_value_info(name_in, elem, input_shape)],
        [helper.make_tensor_value_info(name_out, TensorProto.FLOAT, [input_shape[0], classes])],
        [numpy_helper.from_array(weights, "W"), numpy_helper.from_array(bias, "b")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8  # what this onnxruntime reads
    return model, weights, bias


def manifest(**onnx_fields) -> dict:
    section = {"input": "image", "output": "scores", "image": {"size": [H, W]}, "labels": LABELS}
    section.update(onnx_fields)
    return {"format": "onnx", "onnx": section}


def schema(input_name: str = "image", output_name: str = "scores", output_type: str = "classification") -> dict:
    return {
        "inputs": {"type": "object", "properties": {input_name: {"type": "local"}}},
        "outputs": {"type": "object", "properties": {output_name: {"type": output_type}}},
    }


def package(tmp_path: Path, model: onnx.ModelProto | bytes | None, man: dict, extra=(), name="m.zip") -> Path:
    path = tmp_path / name
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("manifest.json", json.dumps(man))
        if model is not None:
            zf.writestr("model.onnx", model if isinstance(model, bytes) else model.SerializeToString())
        for entry, data in extra:
            zf.writestr(entry, data)
    return path


def pngs(tmp_path: Path, count: int, mode: str = "RGB", size=(11, 7)) -> list[str]:
    paths = []
    for i in range(count):
        shape = (size[1], size[0], 3) if mode == "RGB" else (size[1], size[0])
        path = tmp_path / f"img-{i}.png"
        Image.fromarray(RNG.integers(0, 256, size=shape, dtype=np.uint8), mode).save(path)
        paths.append(str(path))
    return paths


def reference_pixels(paths: list[str], color: str, resample=Image.Resampling.BILINEAR) -> np.ndarray:
    """What the manifest says, written out again: (N, H, W, C) float32, pixel values 0..255."""
    out = []
    for p in paths:
        with Image.open(p) as img:
            array = np.asarray(img.convert(color).resize((W, H), resample), dtype=np.float32)
        out.append(array if array.ndim == 3 else array[:, :, None])
    return np.stack(out)


def adapter(tmp_path: Path, model: onnx.ModelProto, man: dict) -> Any:
    root = tmp_path / "unpacked"
    root.mkdir(exist_ok=True)
    (root / "model.onnx").write_bytes(model.SerializeToString())
    (root / "manifest.json").write_text(json.dumps(man))
    return onnx_model.Model(str(root))


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


# ---------------------------------------------------------------- the package and its manifest


def test_an_onnx_manifest_makes_a_package_without_code(tmp_path):
    model, _, _ = linear_model(["N", 3, H, W])
    info = inspect_package(package(tmp_path, model, manifest()))
    assert info.format == "onnx" and info.entrypoint == FORMAT_ENTRYPOINTS["onnx"]
    assert info.onnx is not None and info.onnx.labels == LABELS and info.onnx.output_kind == "logits"
    assert info.onnx.image.color == "RGB" and info.onnx.image.scale == pytest.approx(1 / 255)
    assert inspect_package(package(tmp_path, None, {}, [("model.py", "")], "p.zip")).format == "python"


@pytest.mark.parametrize(
    ("onnx_fields", "named"),
    [
        ({"input": None}, "onnx.input"),
        ({"image": {"size": [4]}}, "onnx.image.size"),
        ({"image": {"size": ["4", 5]}}, "onnx.image.size.0"),
        ({"image": {"size": [4, 5], "color": "CMYK"}}, "onnx.image.color"),
        ({"image": {"size": [4, 5], "layout": "CHW"}}, "onnx.image.layout"),
        ({"image": {"size": [4, 5], "mean": [0.5]}}, "onnx.image: mean needs 3 value(s)"),
        ({"image": {"size": [4, 5], "std": [1, 0, 1]}}, "onnx.image.std.1"),
        ({"image": {"size": [4, 5], "sharpen": True}}, "onnx.image.sharpen"),
        ({"output_kind": "softmax"}, "onnx.output_kind"),
        ({"labels": []}, "onnx.labels"),
        ({"input": "input.1"}, "onnx: input 'input.1' must be a valid schema name"),
        ({"file": "weights/model.onnx"}, "onnx.file: 'weights/model.onnx' is not a file of the package"),
    ],
)
def test_a_bad_manifest_field_is_refused_by_name(tmp_path, onnx_fields, named):
    model, _, _ = linear_model(["N", 3, H, W])
    man = manifest(**onnx_fields)
    man["onnx"] = {k: v for k, v in man["onnx"].items() if v is not None}
    with pytest.raises(PackageError) as caught:
        inspect_package(package(tmp_path, model, man))
    assert f"manifest.json field {named}" in str(caught.value)


def test_the_manifests_format_and_the_onnx_files_size_are_checked(tmp_path):
    model, _, _ = linear_model(["N", 3, H, W])
    for man, expected in (
        ({"format": "tensorflow"}, "format must be one of ['python', 'onnx']"),
        ({**manifest(), "entrypoint": "model:Model"}, "names an entrypoint and format 'onnx'"),
        ({"format": "onnx"}, "field onnx: is required"),
    ):
        with pytest.raises(PackageError, match=expected.replace("[", r"\[").replace("]", r"\]")):
            inspect_package(package(tmp_path, model, man))
    with pytest.raises(PackageError, match="over the 100-byte limit for an ONNX file"):
        inspect_package(package(tmp_path, model, manifest()), PackageLimits(max_onnx_bytes=100))


def test_the_schema_must_be_the_manifests_one_input_and_output():
    spec = onnx_manifest.parse_onnx_section(manifest()["onnx"])
    assert schema_problem(spec, schema()) is None
    assert "onnx.input ('image')" in str(schema_problem(spec, schema(input_name="image_paths")))
    assert "onnx.output ('scores')" in str(schema_problem(spec, schema(output_name="predictions")))
    assert "must be 'classification' because onnx.labels are given" in str(
        schema_problem(spec, schema(output_type="json"))
    )
    text = {**schema(), "inputs": {"type": "object", "properties": {"image": {"type": "text"}}}}
    assert "inputs.properties.image.type: must be 'local'" in str(schema_problem(spec, text))
    raw = onnx_manifest.parse_onnx_section({**manifest()["onnx"], "labels": None})
    assert schema_problem(raw, schema(output_type="json")) is None
    assert "must be 'json'" in str(schema_problem(raw, schema()))


# ---------------------------------------------------------------- the registry's check of the ONNX file


def checked(tmp_path: Path, model, man: dict | None = None, extra=()) -> str | None:
    """None when the registry accepts the package, else its refusal."""
    path = package(tmp_path, model, man or manifest(), extra)
    try:
        check_onnx_package(path, inspect_package(path))
    except PackageError as exc:
        return str(exc)
    return None


def test_a_graph_that_fits_its_manifest_is_accepted(tmp_path):
    assert checked(tmp_path, linear_model(["N", 3, H, W])[0]) is None
    assert checked(tmp_path, linear_model([1, H, W, 3])[0], manifest(image={"size": [H, W], "layout": "NHWC"})) is None
    flat = linear_model(["N", H * W])[0]  # scikit-learn's way: one flat row of pixels per sample
    assert checked(tmp_path, flat, manifest(image={"size": [H, W], "color": "L"})) is None
    raw = manifest(labels=None)
    assert checked(tmp_path, linear_model(["N", 3, H, W], classes=7)[0], raw) is None


def test_a_graph_that_does_not_fit_its_manifest_is_refused_naming_the_field(tmp_path):
    model = linear_model(["N", 3, H, W])[0]
    assert "onnx.input: the graph has no input 'picture'" in str(checked(tmp_path, model, manifest(input="picture")))
    assert "onnx.output: the graph has no output 'probs'" in str(checked(tmp_path, model, manifest(output="probs")))
    gray = manifest(image={"size": [H, W], "color": "L"})
    assert "makes [N, C, H, W] = [N, 1, 4, 5]" in str(checked(tmp_path, model, gray))
    wrong_size = manifest(image={"size": [H + 1, W]})
    assert "has shape [N, 3, 4, 5]" in str(checked(tmp_path, model, wrong_size))
    assert "onnx.labels: 3 labels, but 'scores' scores 4 classes" in str(
        checked(tmp_path, linear_model(["N", 3, H, W], classes=4)[0])
    )
    ints = linear_model(["N", 3, H, W], elem=TensorProto.INT64)[0]
    assert "holds int64" in str(checked(tmp_path, ints))
    cube = linear_model(["N", 3, H * W])[0]
    assert "an image input is [N, C, H, W]" in str(checked(tmp_path, cube))


def test_what_is_not_a_valid_onnx_model_is_refused(tmp_path):
    assert "is not an ONNX model" in str(checked(tmp_path, b"\x0f\xff garbage, not a protobuf"))
    broken = linear_model(["N", 3, H, W])[0]
    broken.graph.node[2].input[1] = "nowhere"  # a node that reads a tensor nothing makes
    assert "fails onnx's checker" in str(checked(tmp_path, broken))


def external(model: onnx.ModelProto, tmp_path: Path, location: str) -> tuple[onnx.ModelProto, bytes]:
    """The model with its weights W moved to an external file; returns it and that file's bytes."""
    folder = tmp_path / "ext"
    folder.mkdir(exist_ok=True)
    onnx.save(model, folder / "m.onnx", save_as_external_data=True, location="w.bin", size_threshold=0)
    data = (folder / "w.bin").read_bytes()
    saved = onnx.load(str(folder / "m.onnx"), load_external_data=False)
    for tensor in saved.graph.initializer:
        for entry in tensor.external_data:
            if entry.key == "location":
                entry.value = location
    return saved, data


def test_external_data_must_stay_inside_the_package_and_is_never_read(tmp_path):
    model = linear_model(["N", 3, H, W])[0]
    inside, data = external(model, tmp_path, "weights/w.bin")
    assert checked(tmp_path, inside, extra=[("weights/w.bin", data)]) is None
    assert "which is not a file of the package" in str(checked(tmp_path, inside))
    assert "reaches byte" in str(checked(tmp_path, inside, extra=[("weights/w.bin", data[:8])]))
    for location in ("../w.bin", "/etc/passwd", "weights/../../w.bin"):
        outside, _ = external(model, tmp_path, location)
        assert "must be a relative path inside the package" in str(
            checked(tmp_path, outside, extra=[("w.bin", data)])
        ), location


async def test_the_registry_checks_in_a_child_bounded_in_time_and_memory(tmp_path):
    good = package(tmp_path, linear_model(["N", 3, H, W])[0], manifest(), name="good.zip")
    await check_isolated(good, inspect_package(good))
    bad = package(tmp_path, linear_model(["N", 3, H, W])[0], manifest(input="picture"))
    with pytest.raises(PackageError) as in_child:
        await check_isolated(bad, inspect_package(bad))
    assert str(in_child.value) == checked(tmp_path, linear_model(["N", 3, H, W])[0], manifest(input="picture"))
    assert "onnx.input: the graph has no input 'picture'" in str(in_child.value)
    with pytest.raises(PackageError, match="took over 0.01 s; the file is refused"):
        await check_isolated(good, inspect_package(good), timeout_s=0.01)
    with pytest.raises(PackageError, match="checking 'model.onnx' failed in onnx's parser or checker"):
        await check_isolated(good, inspect_package(good), room=0)  # no room past what it holds: parsing fails


# ---------------------------------------------------------------- the adapter, with onnxruntime


def test_images_are_decoded_resized_scaled_normalised_and_classified(tmp_path):
    model, weights, bias = linear_model(["N", 3, H, W])
    image = {"size": [H, W], "scale": 0.01, "mean": [0.5, 0.4, 0.3], "std": [0.2, 0.25, 0.3]}
    run = adapter(tmp_path, model, manifest(image=image))
    paths = pngs(tmp_path, 5)
    got = run.predict({"image": paths})["scores"]

    x = (reference_pixels(paths, "RGB") * 0.01 - np.array([0.5, 0.4, 0.3])) / np.array([0.2, 0.25, 0.3])
    probs = softmax(x.transpose(0, 3, 1, 2).reshape(5, -1) @ weights + bias)
    assert [g["label"] for g in got] == [LABELS[i] for i in probs.argmax(axis=1)]
    assert [g["confidence"] for g in got] == pytest.approx(probs.max(axis=1).tolist(), abs=1e-5)


def test_nhwc_and_flat_inputs_take_the_pixels_in_their_order(tmp_path):
    paths = pngs(tmp_path, 3, mode="L")
    for shape, layout in (([None, H, W, 1], "NHWC"), (["N", H * W], "NCHW")):
        model, weights, bias = linear_model(shape)
        run = adapter(tmp_path, model, manifest(image={"size": [H, W], "color": "L", "layout": layout}, labels=None))
        got = np.array(run.predict({"image": paths})["scores"])
        expected = (reference_pixels(paths, "L") / 255).reshape(3, -1) @ weights + bias
        assert got == pytest.approx(expected, abs=1e-4)  # json: the raw rows, no softmax


def test_a_fixed_batch_size_runs_in_chunks_and_pads_the_last(tmp_path):
    model, weights, bias = linear_model([2, 3, H, W])
    run = adapter(tmp_path, model, manifest(labels=None))
    paths = pngs(tmp_path, 5)
    got = np.array(run.predict({"image": paths})["scores"])
    expected = (reference_pixels(paths, "RGB") / 255).transpose(0, 3, 1, 2).reshape(5, -1) @ weights + bias
    assert got.shape == (5, 3) and got == pytest.approx(expected, abs=1e-4)


def test_probabilities_are_taken_as_they_are_and_checked(tmp_path):
    model = linear_model(["N", 3, H, W])[0]
    model.graph.node.append(helper.make_node("Softmax", ["scores"], ["probs"], axis=1))
    model.graph.output[0].name = "probs"
    run = adapter(tmp_path, model, manifest(output="probs", output_kind="probabilities"))
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    paths = pngs(tmp_path, 4)
    x = (reference_pixels(paths, "RGB") / 255).transpose(0, 3, 1, 2).astype(np.float32)
    probs = np.asarray(session.run(["probs"], {"image": x})[0])
    got = run.predict({"image": paths})["probs"]
    assert [g["confidence"] for g in got] == pytest.approx(probs.max(axis=1).tolist(), abs=1e-5)

    logits = adapter(tmp_path, linear_model(["N", 3, H, W])[0], manifest(output_kind="probabilities"))
    with pytest.raises(ValueError, match="not probabilities; set onnx.output_kind to 'logits'"):
        for _ in range(20):  # random logits fall outside [0, 1] at once, but make sure
            logits.predict({"image": pngs(tmp_path, 4)})


def test_a_file_that_is_no_image_fails_its_batch_naming_the_file(tmp_path):
    run = adapter(tmp_path, linear_model(["N", 3, H, W])[0], manifest())
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    with pytest.raises(ValueError, match="notes.png: cannot be read as an image"):
        run.predict({"image": [*pngs(tmp_path, 1), str(text)]})


def test_uint8_inputs_get_rounded_pixels(tmp_path):
    model, weights, bias = linear_model(["N", H, W, 3], elem=TensorProto.UINT8)
    run = adapter(tmp_path, model, manifest(image={"size": [H, W], "layout": "NHWC", "scale": 1}, labels=None))
    paths = pngs(tmp_path, 2)
    expected = reference_pixels(paths, "RGB").reshape(2, -1) @ weights + bias
    assert np.array(run.predict({"image": paths})["scores"]) == pytest.approx(expected, rel=1e-4)


def test_one_thread_per_run_and_the_cpu_without_a_gpu(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert onnx_model.session_options().intra_op_num_threads == 1
    monkeypatch.setenv("OMP_NUM_THREADS", "2")  # what Ray gives a replica with 2 CPUs; the jail keeps it
    assert onnx_model.session_options().intra_op_num_threads == 2
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert onnx_model.providers() == ["CPUExecutionProvider"]


def test_the_adapter_reads_the_contracts_defaults_and_accepts_what_the_registry_does():
    assert onnx_model.DEFAULT_SCALE == onnx_manifest.DEFAULT_SCALE
    assert onnx_model.DEFAULT_FILE == onnx_manifest.DEFAULT_FILE
    resample = get_args(onnx_manifest.ImageSpec.model_fields["resample"].annotation)
    assert set(onnx_model.RESAMPLE) == set(resample)
    names = {f"tensor({name})" for name in INPUT_TYPES.values()}
    assert names == set(onnx_model.INPUT_DTYPES)
    assert onnx_model.Images({"size": [1, 1]}).layout == onnx_manifest.ImageSpec(size=[1, 1]).layout


# ---------------------------------------------------------------- the seam: shipped, bound, imported


def test_the_replicas_package_carries_the_adapters():
    _, data = replica_module_zip()
    names = zipfile.ZipFile(io.BytesIO(data)).namelist()
    assert "modelhub_replica/modelhub_formats/onnx_model.py" in names
    assert "modelhub_replica/modelhub_formats/__init__.py" in names


def test_the_jail_binds_the_adapters_read_only_beside_the_host():
    argv = jail.command("/pkg", 3, FORMAT_ENTRYPOINTS["onnx"], JailSpec([], [], False))
    at = argv.index(jail.JAIL_FORMATS)
    assert argv[at - 2 : at + 1] == ["--ro-bind", jail.FORMATS_DIR, "/run/modelhub/modelhub_formats"]
    assert Path(jail.FORMATS_DIR, "onnx_model.py").is_file()


@pytest.mark.skipif(jail.jail_available() is not None, reason=f"bubblewrap cannot jail here: {jail.jail_available()}")
async def test_an_onnx_package_runs_in_the_jail(tmp_path):
    model, weights, bias = linear_model(["N", 3, H, W])
    zip_path = package(tmp_path, model, manifest())
    images = tmp_path / "media"
    images.mkdir()
    paths = pngs(images, 3)
    work = tmp_path / "work"
    work.mkdir()
    process = await asyncio.to_thread(
        ModelProcess,
        str(zip_path),
        hashlib.sha256(zip_path.read_bytes()).hexdigest(),
        inspect_package(zip_path).entrypoint,
        str(work),
        JailSpec([str(images)], [], False),
        False,
    )
    try:
        assert process.jailed
        ((result, _),) = await process.predict([[{"image": p} for p in paths]])
    finally:
        process.close()
    x = (reference_pixels(paths, "RGB") / 255).transpose(0, 3, 1, 2).reshape(3, -1)
    probs = softmax(x @ weights + bias)
    got = [o["scores"] for o in result["outputs"]]
    assert [g["label"] for g in got] == [LABELS[i] for i in probs.argmax(axis=1)]
    assert [g["confidence"] for g in got] == pytest.approx(probs.max(axis=1).tolist(), abs=1e-5)
