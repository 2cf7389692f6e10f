"""The upload check of an ONNX package's model file: well-formed ONNX, and the tensors its
manifest names (API.md §3, "ONNX models"). No user code runs: an ONNX file is a protobuf, read by
`onnx.load` and judged by onnx's own checker (C++); nothing is executed, imported or unpickled.

Bounded, as the rest of an upload's checks: only the ONNX file is written out of the zip (its size
was capped by `inspect_package`, `PackageLimits.max_onnx_bytes`), parsed once without its external
data, and the checker reads it again from the file after that copy is dropped, so about one model
is in memory at a time. External data (weights kept in files beside the graph) is never read: each
reference must name a file of the package, inside the package's folder, and fit in it; the checker
then sees empty sparse stand-ins of those files (their real sizes, no bytes), since it insists on
finding a regular file for each reference.

The registry runs the check in a child process of its own (`check_isolated`), bounded in time and
address space: onnx's parser and checker are C++ judging a hostile file, so a crash, a hang or a
memory blow-up there fails that upload, never the registry.
"""

from __future__ import annotations

import asyncio
import json
import posixpath
import resource
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

import onnx
from onnx import AttributeProto, GraphProto, ModelProto, TensorProto

from modelhub_contracts.onnx_manifest import CHANNELS, OnnxSpec
from modelhub_contracts.package import FORMAT_ENTRYPOINTS, MANIFEST, PackageError, PackageInfo

_CHUNK = 1 << 20
# What the adapter can feed: it prepares float32 pixels and casts them to the input's type.
INPUT_TYPES = {
    TensorProto.FLOAT: "float",
    TensorProto.FLOAT16: "float16",
    TensorProto.DOUBLE: "double",
    TensorProto.UINT8: "uint8",
}
# A classification's argmax and softmax need real numbers.
SCORE_TYPES = {TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.DOUBLE}
CHECK_TIMEOUT_S = 300.0  # parsing and checking a 512 MiB graph takes tens of seconds on a slow machine
# The child's address space: what it holds once onnx is imported, the parsed model (the file read
# and its parse: about twice its size, and once more for the checker's copy), and this room.
MEMORY_ROOM = 1 << 30


async def check_isolated(
    zip_path: Path, info: PackageInfo, timeout_s: float = CHECK_TIMEOUT_S, room: int = MEMORY_ROOM
) -> None:
    """check_onnx_package in a child process (`python -m modelhub_registry.onnx_check`), killed past
    `timeout_s`, its address space capped; PackageError for the model's faults and for a child that
    died (a crash or the memory cap) or hung, naming the file."""
    spec = info.onnx
    assert spec is not None
    request = {"zip": str(zip_path), "root": info.root, "files": list(info.files), "onnx": spec.model_dump()}
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        __name__,
        str(room),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    where = f"{zip_path.name}: checking {spec.file!r}"
    try:
        out, err = await asyncio.wait_for(child.communicate(json.dumps(request).encode()), timeout_s)
    except TimeoutError:
        raise PackageError(f"{where} took over {timeout_s:g} s; the file is refused") from None
    finally:
        if child.returncode is None:  # timed out, or the upload's handler was cancelled
            child.kill()
            await child.wait()
    _verdict(child.returncode, out, err, where)


def _verdict(returncode: int | None, out: bytes, err: bytes, where: str) -> None:
    try:
        verdict = json.loads(out) if returncode == 0 else {}
    except ValueError:
        verdict = {}
    if verdict.get("ok") is True:
        return
    if isinstance(verdict.get("refused"), str):
        raise PackageError(verdict["refused"])
    tail = err.decode(errors="replace").strip().splitlines()[-1:] or [f"exit status {returncode}"]
    raise PackageError(f"{where} failed in onnx's parser or checker ({tail[0][:300]}); the file is refused")


def check_onnx_package(zip_path: Path, info: PackageInfo) -> None:
    """Return when the package's ONNX file is a valid model whose input and output fit its manifest;
    else raise PackageError naming the file, the tensor or the manifest field."""
    spec = info.onnx
    assert spec is not None, "only for format 'onnx', whose section inspect_package parsed"
    label = zip_path.name
    # beside the upload (the registry's own temp space on its data disk), not in a tmpfs /tmp
    with tempfile.TemporaryDirectory(prefix="onnx-check-", dir=zip_path.parent) as tmp, zipfile.ZipFile(zip_path) as zf:
        model_path = Path(tmp) / spec.file
        _copy_entry(zf, info.root + spec.file, model_path)
        _cap_memory(model_path.stat().st_size)
        model = _load(model_path, label, spec.file)
        externals = _external_files(model, spec.file, info, zf, label)
        _check_tensors(model, spec, label)
        del model  # the checker reads the file again: one parsed copy at a time
        for rel, size in externals.items():
            _sparse_file(Path(tmp) / rel, size)
        _run_checker(model_path, label, spec.file)


def _copy_entry(zf: zipfile.ZipFile, name: str, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    with zf.open(name) as src, dest.open("xb") as out:
        while chunk := src.read(_CHUNK):
            out.write(chunk)


_ROOM: int | None = None  # set in the child process: its memory cap's room over the model


def _cap_memory(model_bytes: int) -> None:
    """In the child: cap the address space at what it uses now, three times the model, and room."""
    if _ROOM is None:
        return
    with open("/proc/self/statm") as fh:
        used = int(fh.read().split()[0]) * resource.getpagesize()
    limit = used + 3 * model_bytes + _ROOM
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def _load(path: Path, label: str, name: str) -> ModelProto:
    try:
        return onnx.load(str(path), load_external_data=False)
    except MemoryError:
        raise  # the cap, not the model's form: the child dies and the parent says so
    except Exception as exc:  # noqa: BLE001 - protobuf's DecodeError and friends: not an ONNX file
        raise PackageError(f"{label}: {name!r} is not an ONNX model ({_short(exc)})") from None


def _run_checker(path: Path, label: str, name: str) -> None:
    try:
        # full_check adds shape inference: a graph whose types or shapes contradict themselves
        # is refused at upload, not at the first batch
        onnx.checker.check_model(str(path), full_check=True)
    except MemoryError:
        raise
    except Exception as exc:  # noqa: BLE001 - ValidationError, InferenceError: the model's fault
        raise PackageError(f"{label}: {name!r} fails onnx's checker: {_short(exc)}") from None


def _short(exc: BaseException) -> str:
    return str(exc).strip().replace("\n", " ")[:500] or type(exc).__name__


# ---------------------------------------------------------------- external data


def _external_files(model: ModelProto, name: str, info: PackageInfo, zf: zipfile.ZipFile, label: str) -> dict[str, int]:
    """Each external data file the model refers to (its path in the package) and its size; refuses a
    reference outside the package, to a file it lacks, or past that file's end."""
    folder = posixpath.dirname(name)
    files: dict[str, int] = {}
    for tensor in _tensors(model):
        if tensor.data_location != TensorProto.EXTERNAL:
            continue
        entries = {e.key: e.value for e in tensor.external_data}
        location = entries.get("location", "")
        rel = posixpath.normpath(posixpath.join(folder, location)) if location else ""
        where = f"{label}: {name!r} tensor {tensor.name!r} keeps its data in {location!r}"
        if not location or location.startswith("/") or "\\" in location or rel.startswith("../") or rel == "..":
            raise PackageError(f"{where}: external data must be a relative path inside the package")
        if rel not in info.files:
            raise PackageError(f"{where}, which is not a file of the package")
        size = zf.getinfo(info.root + rel).file_size
        end = _int(entries.get("offset", "0"), where) + _int(entries.get("length", "0"), where)
        if end > size:
            raise PackageError(f"{where}: it reaches byte {end} of a {size}-byte file")
        files[rel] = size
    return files


def _int(text: str, where: str) -> int:
    if not text.isdigit():
        raise PackageError(f"{where}: offset and length must be whole numbers, got {text!r}")
    return int(text)


def _sparse_file(path: Path, size: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as fh:
        fh.truncate(size)  # no bytes written: a hole of the file's size


def _tensors(model: ModelProto) -> Iterator[TensorProto]:
    """Every tensor of the model: initializers, constants in attributes, subgraphs, functions."""
    yield from _graph_tensors(model.graph)
    for function in model.functions:
        for node in function.node:
            yield from _attribute_tensors(node.attribute)


def _graph_tensors(graph: GraphProto) -> Iterator[TensorProto]:
    yield from graph.initializer
    for sparse in graph.sparse_initializer:
        yield sparse.values
        yield sparse.indices
    for node in graph.node:
        yield from _attribute_tensors(node.attribute)


def _attribute_tensors(attributes) -> Iterator[TensorProto]:
    for attribute in attributes:
        if attribute.type == AttributeProto.TENSOR:
            yield attribute.t
        elif attribute.type == AttributeProto.TENSORS:
            yield from attribute.tensors
        elif attribute.type == AttributeProto.SPARSE_TENSOR:
            yield attribute.sparse_tensor.values
            yield attribute.sparse_tensor.indices
        elif attribute.type == AttributeProto.GRAPH:
            yield from _graph_tensors(attribute.g)
        elif attribute.type == AttributeProto.GRAPHS:
            for graph in attribute.graphs:
                yield from _graph_tensors(graph)


# ---------------------------------------------------------------- the manifest's tensors


def _check_tensors(model: ModelProto, spec: OnnxSpec, label: str) -> None:
    graph = model.graph
    constants = {t.name for t in graph.initializer}
    inputs = {i.name: i for i in graph.input if i.name not in constants}  # IR >= 4: initializers may be listed
    outputs = {o.name: o for o in graph.output}
    where = f"{label}: {MANIFEST} field"
    if spec.input not in inputs:
        raise PackageError(f"{where} onnx.input: the graph has no input {spec.input!r} (its inputs: {sorted(inputs)})")
    if len(inputs) > 1:
        raise PackageError(
            f"{where} onnx.input: the graph has {len(inputs)} inputs {sorted(inputs)}; an ONNX package feeds one"
        )
    if spec.output not in outputs:
        raise PackageError(
            f"{where} onnx.output: the graph has no output {spec.output!r} (its outputs: {sorted(outputs)})"
        )
    _check_input(inputs[spec.input], spec, f"{where} onnx.input")
    _check_output(outputs[spec.output], spec, f"{where} onnx.output")


def _tensor_type(value: onnx.ValueInfoProto, where: str) -> tuple[int, list[int | str | None]]:
    if value.type.WhichOneof("value") != "tensor_type":
        raise PackageError(f"{where}: {value.name!r} is not a tensor")
    tensor = value.type.tensor_type
    if not tensor.HasField("shape"):
        raise PackageError(f"{where}: {value.name!r} has no declared shape")
    dims: list[int | str | None] = []
    for dim in tensor.shape.dim:
        kind = dim.WhichOneof("value")
        dims.append(dim.dim_value if kind == "dim_value" else dim.dim_param if kind == "dim_param" else None)
    return tensor.elem_type, dims


def _check_input(value: onnx.ValueInfoProto, spec: OnnxSpec, where: str) -> None:
    elem, dims = _tensor_type(value, where)
    if elem not in INPUT_TYPES:
        raise PackageError(
            f"{where}: {value.name!r} holds {_type_name(elem)}; an image input is one of {sorted(INPUT_TYPES.values())}"
        )
    image = spec.image
    height, width = image.size
    channels = CHANNELS[image.color]
    if len(dims) == 4:  # an image batch: [N, C, H, W] or [N, H, W, C]
        expected = [channels, height, width] if image.layout == "NCHW" else [height, width, channels]
        named = "[N, C, H, W]" if image.layout == "NCHW" else "[N, H, W, C]"
    elif len(dims) == 2:  # a flat feature vector per sample (e.g. scikit-learn's), in layout order
        expected, named = [channels * height * width], "[N, C*H*W]"
    else:
        raise PackageError(
            f"{where}: {value.name!r} has shape {_shape(dims)}; an image input is [N, C, H, W], [N, H, W, C] "
            "or a flat [N, C*H*W]"
        )
    for got, want in zip(dims[1:], expected, strict=True):
        if isinstance(got, int) and got > 0 and got != want:
            raise PackageError(
                f"{where}: {value.name!r} has shape {_shape(dims)}, but onnx.image (size {image.size}, color "
                f"{image.color!r}, layout {image.layout!r}) makes {named} = {_shape([dims[0], *expected])}"
            )


def _check_output(value: onnx.ValueInfoProto, spec: OnnxSpec, where: str) -> None:
    if spec.labels is None:  # json: each sample's slice of whatever tensor it is
        _tensor_type(value, where)
        return
    elem, dims = _tensor_type(value, where)
    if elem not in SCORE_TYPES:
        raise PackageError(f"{where}: {value.name!r} holds {_type_name(elem)}; a classification needs scores (floats)")
    if len(dims) != 2:
        raise PackageError(f"{where}: {value.name!r} has shape {_shape(dims)}; a classification reads [N, classes]")
    classes = dims[1]
    if isinstance(classes, int) and classes > 0 and classes != len(spec.labels):
        raise PackageError(
            f"{where.replace('onnx.output', 'onnx.labels')}: {len(spec.labels)} labels, but {value.name!r} scores {classes} classes"
        )


def _type_name(elem: int) -> str:
    try:
        return TensorProto.DataType.Name(elem).lower()
    except ValueError:
        return f"type {elem}"


def _shape(dims: list[int | str | None]) -> str:
    return "[" + ", ".join("?" if d is None or d == 0 else str(d) for d in dims) + "]"


def _child(room: int) -> None:
    """The child's side of check_isolated: a request on stdin, one verdict as JSON on stdout."""
    global _ROOM
    _ROOM = room
    request = json.loads(sys.stdin.read())
    info = PackageInfo(
        root=request["root"],
        entrypoint=FORMAT_ENTRYPOINTS["onnx"],
        files=tuple(request["files"]),
        uncompressed_bytes=0,
        has_requirements=False,
        has_environment=False,
        format="onnx",
        onnx=OnnxSpec.model_validate(request["onnx"]),
    )
    try:
        check_onnx_package(Path(request["zip"]), info)
    except PackageError as exc:
        print(json.dumps({"refused": str(exc)}))
    else:
        print(json.dumps({"ok": True}))


if __name__ == "__main__":
    _child(int(sys.argv[1]))
