"""The OIP codec (services/gateway/modelhub_gateway/oip/codec.py): tensors in, samples out, and
back, in JSON and in Triton's binary tensor data extension. Wire bytes are built by hand here
(little-endian, 4-byte BYTES lengths) and, for what clients really send and read, by tritonclient
itself; every refusal is a 400 that names what was wrong."""

import json
import math
import struct

import numpy as np
import pytest
from tritonclient.http import InferenceServerClient, InferInput, InferRequestedOutput

from modelhub_gateway.oip import codec
from modelhub_gateway.oip.codec import BadRequest, Decoded

INPUTS = {"text": "text", "n": "number"}
OUTPUTS = {"label": "classification", "score": "number", "echo": "text", "extra": "json"}


def request(inputs: list[dict], **fields) -> bytes:
    return json.dumps({"inputs": inputs, **fields}).encode()


def text_json(values: list[str]) -> dict:
    return {"name": "text", "shape": [len(values)], "datatype": "BYTES", "data": values}


def n_json(values: list, datatype: str = "FP64") -> dict:
    return {"name": "n", "shape": [len(values)], "datatype": datatype, "data": values}


def binary(name: str, datatype: str, count: int, raw: bytes) -> dict:
    return {"name": name, "shape": [count], "datatype": datatype, "parameters": {"binary_data_size": len(raw)}}


def bytes_tensor(*items: bytes) -> bytes:
    return b"".join(struct.pack("<I", len(item)) + item for item in items)


def with_binary(header: dict, *chunks: bytes) -> tuple[bytes, str]:
    """A body of a JSON header and binary data after it, and its Inference-Header-Content-Length."""
    head = json.dumps(header).encode()
    return head + b"".join(chunks), str(len(head))


def decode(body: bytes, header_length: str | None = None, inputs=INPUTS, outputs=OUTPUTS) -> Decoded:
    return codec.decode_request(body, header_length, inputs, outputs)


def refused(body: bytes, header_length: str | None = None, inputs=INPUTS, outputs=OUTPUTS) -> str:
    with pytest.raises(BadRequest) as caught:
        decode(body, header_length, inputs, outputs)
    assert caught.value.status == 400
    return caught.value.message


# ------------------------------------------------------------------------------ reading inputs


def test_json_tensors_become_samples_in_order():
    decoded = decode(request([text_json(["a", "bé"]), n_json([1.5, -2])], id="r1"))
    assert decoded.inputs == {"text": ["a", "bé"], "n": [1.5, -2]}
    assert decoded.id == "r1"
    assert decoded.outputs == (("label", False), ("score", False), ("echo", False), ("extra", False))


def test_binary_bytes_are_length_prefixed_little_endian_utf8():
    raw = bytes_tensor("héllo".encode(), b"", "日本".encode())
    assert raw[:4] == b"\x06\x00\x00\x00"  # 6 bytes of UTF-8, the length's low byte first
    body, length = with_binary({"inputs": [binary("text", "BYTES", 3, raw), n_json([1, 2, 3])]}, raw)
    assert decode(body, length).inputs["text"] == ["héllo", "", "日本"]


@pytest.mark.parametrize(
    ("datatype", "letter", "values"),
    [
        ("FP64", "d", [0.1, -2.5, 1e300]),
        ("FP32", "f", [0.5, -2.25, 3.0]),
        ("FP16", "e", [0.5, -2.0, 1024.0]),
        ("INT8", "b", [-128, 0, 127]),
        ("INT16", "h", [-32768, 1, 32767]),
        ("INT32", "i", [-(2**31), 7, 2**31 - 1]),
        ("INT64", "q", [-(2**63), 9, 2**63 - 1]),
        ("UINT8", "B", [0, 1, 255]),
        ("UINT16", "H", [0, 1, 65535]),
        ("UINT32", "I", [0, 1, 2**32 - 1]),
        ("UINT64", "Q", [0, 1, 2**64 - 1]),
    ],
)
def test_binary_numbers_are_read_little_endian(datatype, letter, values):
    raw = struct.pack(f"<{len(values)}{letter}", *values)
    body, length = with_binary({"inputs": [text_json(["a", "b", "c"]), binary("n", datatype, 3, raw)]}, raw)
    assert decode(body, length).inputs["n"] == values


def test_the_byte_order_is_little_endian():
    raw = b"\x01\x00\x00\x00"
    body, length = with_binary({"inputs": [text_json(["a"]), binary("n", "INT32", 1, raw)]}, raw)
    assert decode(body, length).inputs["n"] == [1]  # big-endian would read 16777216


def test_binary_inputs_take_their_bytes_in_the_order_they_come():
    numbers, texts = struct.pack("<2d", 1.0, 2.0), bytes_tensor(b"x", b"yz")
    body, length = with_binary(
        {"inputs": [binary("n", "FP64", 2, numbers), binary("text", "BYTES", 2, texts)]}, numbers, texts
    )
    assert decode(body, length).inputs == {"n": [1.0, 2.0], "text": ["x", "yz"]}


def test_json_and_binary_inputs_mix():
    texts = bytes_tensor(b"p", b"q")
    body, length = with_binary({"inputs": [n_json([3, 4], "INT64"), binary("text", "BYTES", 2, texts)]}, texts)
    assert decode(body, length).inputs == {"n": [3, 4], "text": ["p", "q"]}


def test_a_json_input_holds_json_text():
    types = {"doc": "json"}
    tensor = {"name": "doc", "shape": [2], "datatype": "BYTES", "data": ['{"a": [1, 2]}', "3"]}
    assert decode(request([tensor]), inputs=types).inputs == {"doc": [{"a": [1, 2]}, 3]}
    raw = bytes_tensor(b'"x"')
    body, length = with_binary({"inputs": [binary("doc", "BYTES", 1, raw)]}, raw)
    assert decode(body, length, inputs=types).inputs == {"doc": ["x"]}
    tensor["data"] = ["{not json", "1"]
    assert "element 0 is not JSON text" in refused(request([tensor]), inputs=types)
    tensor["data"] = ["NaN", "1"]
    assert "element 0 is not JSON text" in refused(request([tensor]), inputs=types)


def test_a_local_input_is_bytes_holding_the_path():
    tensor = {"name": "image", "shape": [1], "datatype": "BYTES", "data": ["/data/1.png"]}
    assert decode(request([tensor]), inputs={"image": "local"}).inputs == {"image": ["/data/1.png"]}


def test_an_empty_outputs_list_and_unknown_fields_and_parameters_are_what_clients_send():
    body = request([text_json(["a"]), n_json([1])], outputs=[], model_name="m", parameters={"priority": 1})
    assert [name for name, _ in decode(body).outputs] == list(OUTPUTS)


# ------------------------------------------------------------------------------ refusals


@pytest.mark.parametrize(
    ("inputs", "says"),
    [
        ([text_json(["a"]), n_json([1]), {**text_json(["b"]), "name": "other"}], "unknown input 'other'"),
        ([text_json(["a"])], "missing input(s): n"),
        ([text_json(["a"]), n_json([1]), text_json(["b"])], "input 'text' is given twice"),
        ([text_json(["a", "b"]), n_json([1])], "same number of samples N"),
        ([{**text_json(["a"]), "datatype": "FP64"}, n_json([1])], "input 'text' is FP64; this model takes it as BYTES"),
        ([text_json(["a"]), n_json(["1"], "BYTES")], "input 'n' is BYTES; this model takes it as FP64"),
        ([text_json(["a"]), n_json([True], "BOOL")], "input 'n' is BOOL"),
        ([text_json(["a"]), n_json([1], "FLOAT64")], "input 'n' is FLOAT64"),
        ([{**text_json(["a"]), "shape": [1, 1]}, n_json([1])], "has shape [1, 1]; it must be [N]"),
        ([{**text_json(["a"]), "shape": []}, n_json([1])], "has shape []"),
        ([{**text_json(["a"]), "shape": [-1]}, n_json([1])], "has shape [-1]"),
        ([{**text_json(["a"]), "shape": [2]}, n_json([1, 2])], "input 'text' has shape [2] but 1 values"),
        ([text_json(["a"]), {**n_json([1]), "data": None}], "input 'n' has no data"),
        ([{**text_json(["a"]), "data": [1]}, n_json([1])], "each of its values must be a string"),
        ([text_json(["a"]), n_json(["1"])], "each of its values must be a number"),
        ([text_json(["a"]), n_json([True])], "each of its values must be a number"),
        ([text_json(["a"]), n_json([128], "INT8")], "is INT8: 128 is not one"),
        ([text_json(["a"]), n_json([-1], "UINT32")], "is UINT32: -1 is not one"),
        ([text_json(["a"]), n_json([1.5], "INT32")], "is INT32: 1.5 is not one"),
        ([text_json(["a"]), n_json([[1]])], "each of its values must be a number"),
    ],
)
def test_tensors_that_do_not_fit_the_model_are_a_400(inputs, says):
    assert says in refused(request(inputs))


def test_a_body_that_is_not_an_inference_request_is_a_400():
    assert "not an inference request" in refused(b"not json")
    assert "not an inference request" in refused(b"[1, 2]")
    assert "inputs: Field required" in refused(b"{}")
    assert "inputs.0.shape" in refused(request([{**text_json(["a"]), "shape": "x"}]))


@pytest.mark.parametrize(
    ("header", "chunks", "length", "says"),
    [
        # the header's length
        ({"inputs": [text_json(["a"]), n_json([1])]}, [], "12345", "Inference-Header-Content-Length is 12345"),
        ({"inputs": [text_json(["a"]), n_json([1])]}, [], "-1", "must be a whole number"),
        ({"inputs": [text_json(["a"]), n_json([1])]}, [], "1_0", "must be a whole number"),
        # sizes that do not add up
        (
            {"inputs": [text_json(["a"]), n_json([1])]},
            [b"extra"],
            None,
            "5 bytes of binary data, but the inputs declare 0",
        ),
        (
            {"inputs": [text_json(["a"]), {**binary("n", "FP64", 1, b"x" * 8), "parameters": {"binary_data_size": 9}}]},
            [struct.pack("<d", 1.0)],
            None,
            "declares 9 bytes of binary data, but only 8 are left",
        ),
        (
            {"inputs": [text_json(["a", "b"]), binary("n", "FP32", 2, b"x" * 4)]},
            [b"x" * 4],
            None,
            "2 FP32 values are 8 bytes, but its binary_data_size is 4",
        ),
        (
            {"inputs": [text_json(["a"]), {**binary("n", "FP64", 1, b"x" * 8), "data": [1.0]}]},
            [b"x" * 8],
            None,
            "has both `data` and binary_data_size",
        ),
        (
            {"inputs": [text_json(["a"]), {**binary("n", "FP64", 1, b""), "parameters": {"binary_data_size": "8"}}]},
            [],
            None,
            "binary_data_size must be a whole number",
        ),
        # BYTES elements
        (
            {"inputs": [binary("text", "BYTES", 1, b"\x05\x00"), n_json([1])]},
            [b"\x05\x00"],
            None,
            "length is cut short",
        ),
        (
            {"inputs": [binary("text", "BYTES", 1, bytes_tensor(b"abc")[:-1]), n_json([1])]},
            [bytes_tensor(b"abc")[:-1]],
            None,
            "element 0 says 3 bytes, only 2 left",
        ),
        (
            {"inputs": [binary("text", "BYTES", 1, bytes_tensor(b"a", b"b")), n_json([1])]},
            [bytes_tensor(b"a", b"b")],
            None,
            "holds more than the 1 elements its shape says",
        ),
        (
            {"inputs": [binary("text", "BYTES", 2, bytes_tensor(b"a")), n_json([1, 2])]},
            [bytes_tensor(b"a")],
            None,
            "input 'text' has shape [2] but 1 elements",
        ),
        (
            {"inputs": [binary("text", "BYTES", 1, bytes_tensor(b"\xff\xfe")), n_json([1])]},
            [bytes_tensor(b"\xff\xfe")],
            None,
            "element 0 is not UTF-8 text",
        ),
        # numbers
        (
            {"inputs": [text_json(["a"]), binary("n", "FP64", 1, b"x" * 8)]},
            [struct.pack("<d", math.nan)],
            None,
            "not a finite number",
        ),
        (
            {"inputs": [text_json(["a"]), binary("n", "FP32", 1, b"x" * 4)]},
            [struct.pack("<f", math.inf)],
            None,
            "not a finite number",
        ),
        # extensions modelhub does not take
        (
            {"inputs": [text_json(["a"]), {**n_json([1]), "parameters": {"shared_memory_region": "r"}}]},
            [],
            None,
            "shared-memory extension is not supported",
        ),
    ],
)
def test_binary_data_that_does_not_add_up_is_a_400(header, chunks, length, says):
    body, header_length = with_binary(header, *chunks)
    assert says in refused(body, length or header_length)


def test_binary_data_without_its_header_length_is_not_json():
    raw = struct.pack("<d", 1.0)
    body, _ = with_binary({"inputs": [text_json(["a"]), binary("n", "FP64", 1, raw)]}, raw)
    assert "not an inference request" in refused(body, None)


@pytest.mark.parametrize(
    ("outputs", "parameters", "says"),
    [
        ([{"name": "nope"}], None, "unknown output 'nope'"),
        ([{"name": "score"}, {"name": "score"}], None, "output 'score' is requested twice"),
        ([{"name": "score", "parameters": {"binary_data": "yes"}}], None, "binary_data must be true or false"),
        ([{"name": "score", "parameters": {"classification": 3}}], None, "classification extension is not supported"),
        ([{"name": "score", "parameters": {"shared_memory_region": "r"}}], None, "shared-memory extension"),
        (None, {"binary_data_output": 1}, "binary_data_output must be true or false"),
    ],
)
def test_requested_outputs_must_be_the_models(outputs, parameters, says):
    fields = {k: v for k, v in (("outputs", outputs), ("parameters", parameters)) if v is not None}
    assert says in refused(request([text_json(["a"]), n_json([1])], **fields))


def test_requested_outputs_keep_their_order_and_their_own_binary_choice():
    outputs = [{"name": "echo"}, {"name": "score", "parameters": {"binary_data": True}}]
    decoded = decode(request([text_json(["a"]), n_json([1])], outputs=outputs))
    assert decoded.outputs == (("echo", False), ("score", True))
    everything = decode(request([text_json(["a"]), n_json([1])], parameters={"binary_data_output": True}))
    assert all(binary for _, binary in everything.outputs)
    overridden = decode(
        request(
            [text_json(["a"]), n_json([1])],
            parameters={"binary_data_output": True},
            outputs=[{"name": "label", "parameters": {"binary_data": False}}, {"name": "extra"}],
        )
    )
    assert overridden.outputs == (("label", False), ("extra", True))


# ------------------------------------------------------------------------------ writing outputs

VALUES = {
    "label": [{"label": "cat", "confidence": 0.5}, {"label": "dög", "confidence": 1.0}],
    "score": [3, 0.25],
    "echo": ["x", "日本"],
    "extra": [[1, {"a": None}], "s"],
}


def test_json_outputs_are_fp64_numbers_and_bytes_texts():
    decoded = Decoded("r9", {}, (("score", False), ("label", False), ("echo", False), ("extra", False)))
    encoded = codec.encode_response("dep", 3, decoded, VALUES, OUTPUTS)
    assert encoded.header_length is None
    assert codec.content_headers(encoded) == {"content-type": "application/json"}
    response = json.loads(encoded.body)
    assert response["model_name"] == "dep" and response["model_version"] == "3" and response["id"] == "r9"
    score, label, echo, extra = response["outputs"]
    assert score == {"name": "score", "datatype": "FP64", "shape": [2], "data": [3.0, 0.25]}
    assert label["datatype"] == "BYTES" and [json.loads(t) for t in label["data"]] == VALUES["label"]
    assert echo == {"name": "echo", "datatype": "BYTES", "shape": [2], "data": ["x", "日本"]}
    assert [json.loads(t) for t in extra["data"]] == VALUES["extra"]


def test_binary_outputs_follow_the_json_in_order():
    decoded = Decoded(None, {}, (("echo", True), ("score", True), ("label", False)))
    encoded = codec.encode_response("dep", 1, decoded, VALUES, OUTPUTS)
    assert encoded.header_length is not None
    assert codec.content_headers(encoded) == {
        "content-type": "application/octet-stream",
        "Inference-Header-Content-Length": str(encoded.header_length),
    }
    header = json.loads(encoded.body[: encoded.header_length])
    assert "id" not in header and [o["name"] for o in header["outputs"]] == ["echo", "score", "label"]
    echo_raw = bytes_tensor(b"x", "日本".encode())
    score_raw = struct.pack("<2d", 3.0, 0.25)
    assert encoded.body[encoded.header_length :] == echo_raw + score_raw
    assert header["outputs"][0]["parameters"] == {"binary_data_size": len(echo_raw)}
    assert header["outputs"][1]["parameters"] == {"binary_data_size": 16}
    assert "data" in header["outputs"][2] and "parameters" not in header["outputs"][2]


def test_a_number_too_large_for_fp64_is_a_502():
    decoded = Decoded(None, {}, (("score", False),))
    with pytest.raises(Exception) as caught:
        codec.encode_response("dep", 1, decoded, {"score": [10**400]}, OUTPUTS)
    assert getattr(caught.value, "status", None) == 502


def test_metadata_names_each_tensor_with_its_datatype_and_shape():
    meta = codec.model_metadata("dep", 2, {"image": "local", "n": "number", "doc": "json"}, OUTPUTS)
    assert (meta.name, meta.versions, meta.platform) == ("dep", ["2"], "modelhub")
    assert [(t.name, t.datatype, t.shape) for t in meta.inputs] == [
        ("image", "BYTES", [-1]),
        ("n", "FP64", [-1]),
        ("doc", "BYTES", [-1]),
    ]
    assert [(t.name, t.datatype) for t in meta.outputs] == [
        ("label", "BYTES"),
        ("score", "FP64"),
        ("echo", "BYTES"),
        ("extra", "BYTES"),
    ]


# ------------------------------------------------------------------------------ with tritonclient


def client_request(binary_data: bool, outputs: list | None = None) -> tuple[bytes, str | None]:
    text = InferInput("text", [3], "BYTES")
    text.set_data_from_numpy(np.array(["a", "bé", ""], dtype=object), binary_data=binary_data)
    n = InferInput("n", [3], "FP32")
    n.set_data_from_numpy(np.array([1.5, -2, 0.25], dtype=np.float32), binary_data=binary_data)
    body, json_size = InferenceServerClient.generate_request_body([text, n], outputs=outputs, request_id="7")
    return body, None if json_size is None else str(json_size)


@pytest.mark.parametrize("binary_data", [True, False])
def test_what_tritonclient_sends_is_read(binary_data):
    body, length = client_request(binary_data)
    assert (length is not None) == binary_data
    decoded = decode(body, length)
    assert decoded.inputs == {"text": ["a", "bé", ""], "n": [1.5, -2.0, 0.25]}
    assert decoded.id == "7"
    # without requested outputs tritonclient asks for every output as binary
    assert decoded.outputs == tuple((name, True) for name in OUTPUTS)


def test_tritonclient_reads_what_is_answered():
    requested = [InferRequestedOutput("score", binary_data=True), InferRequestedOutput("echo", binary_data=False)]
    requested.append(InferRequestedOutput("label", binary_data=True))
    body, length = client_request(True, requested)
    decoded = decode(body, length)
    values = {
        **VALUES,
        "score": [3, 0.25, -1],
        "echo": ["x", "日本", ""],
        "label": [*VALUES["label"], VALUES["label"][0]],
    }
    encoded = codec.encode_response("dep", 1, decoded, values, OUTPUTS)
    result = InferenceServerClient.parse_response_body(encoded.body, header_length=encoded.header_length)
    assert result.as_numpy("score").tolist() == [3.0, 0.25, -1.0]
    assert result.as_numpy("score").dtype == np.float64
    assert [t.decode() if isinstance(t, bytes) else t for t in result.as_numpy("echo").tolist()] == ["x", "日本", ""]
    assert [json.loads(t) for t in result.as_numpy("label").tolist()] == values["label"]
    assert result.as_numpy("extra") is None  # not requested
    assert result.get_response()["id"] == "7"
