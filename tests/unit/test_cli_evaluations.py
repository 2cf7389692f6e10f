"""`modelhub datasets evaluate|evaluations|evaluation|delete-evaluation` and the confusion-cell
options of `datasets samples`, against a mocked gateway (httpx.MockTransport)."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner, Result

from modelhub import exitcodes
from modelhub.cli import main as cli
from modelhub.commands import base
from modelhub.commands.evaluations import default_name
from modelhub.settings import API_PREFIX

CLASSIFICATION = {
    "name": "pred-vs-gt",
    "dataset": "pics",
    "prediction": "pred",
    "ground_truth": "gt",
    "type": "classification",
    "samples": 10,
    "missing": 1,
    "created_by": "admin",
    "created_at": "2026-12-06T12:00:00",
    "lineage": {"model": "cats", "version": 3, "samples": 10},
    "accuracy": 0.7,
    "per_label": {
        "cat": {"precision": 0.8, "recall": 0.6666666, "f1": 0.7272727, "support": 6},
        "dog": {"precision": 0.6, "recall": 0.75, "f1": 0.6666666, "support": 4},
    },
    "confusion": {"labels": ["cat", "dog"], "matrix": [[4, 2], [1, 3]]},
}
DETECTIONS = {
    **{k: v for k, v in CLASSIFICATION.items() if k not in ("accuracy", "confusion", "per_label")},
    "type": "detections",
    "iou": 0.5,
    "map": 0.4321,
    "per_label": {"car": {"ap": 0.4321, "precision": 0.5, "recall": 0.5, "support": 2}},
}


class Gateway:
    """Answers each (method, path) with a fixed status and JSON; records what was sent."""

    def __init__(self) -> None:
        self.answers: dict[tuple[str, str], tuple[int, object]] = {}
        self.sent: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        request.read()
        self.sent.append(request)
        status, body = self.answers.get(
            (request.method, request.url.path.removeprefix(API_PREFIX)), (404, {"detail": "no"})
        )
        return httpx.Response(status, json=body) if body is not None else httpx.Response(status)


@pytest.fixture
def gateway(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Gateway:
    fake = Gateway()
    monkeypatch.setattr(base, "TRANSPORT_FACTORY", lambda: httpx.MockTransport(fake))
    monkeypatch.setenv("MODELHUB_URL", "http://gateway.test")
    monkeypatch.setenv("MODELHUB_TOKEN", "tok")
    monkeypatch.setenv("MODELHUB_DATA_DIR", str(tmp_path / "data"))
    return fake


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_evaluate_posts_the_fields_and_prints_the_table_and_matrix(gateway: Gateway):
    gateway.answers[("POST", "/datasets/pics/evaluations")] = (201, CLASSIFICATION)
    result = invoke("datasets", "evaluate", "pics", "--prediction", "pred", "--ground-truth", "gt")
    assert result.exit_code == 0, result.output
    assert json.loads(gateway.sent[0].content) == {"name": "pred-vs-gt", "prediction": "pred", "ground_truth": "gt"}
    lines = result.output.splitlines()
    assert "accuracy 0.7000 over 10 samples (1 without one of the fields)" in lines
    assert "predictions written by cats v3 on 10 of them" in lines
    assert any(line.split() == ["cat", "0.8000", "0.6667", "0.7273", "6"] for line in lines)
    assert "confusion matrix (rows: ground truth, columns: prediction)" in lines
    matrix = lines[lines.index("confusion matrix (rows: ground truth, columns: prediction)") + 1 :]
    assert [row.split()[-3:] for row in matrix] == [["predicted", "cat", "dog"], ["cat", "4", "2"], ["dog", "1", "3"]]


def test_evaluate_detections_with_a_name_and_iou_prints_ap(gateway: Gateway):
    gateway.answers[("POST", "/datasets/pics/evaluations")] = (201, DETECTIONS)
    args = ["--prediction", "boxes", "--ground-truth", "truth", "--name", "v2", "--iou", "0.7"]
    result = invoke("datasets", "evaluate", "pics", *args)
    assert result.exit_code == 0, result.output
    assert json.loads(gateway.sent[0].content)["iou"] == 0.7
    assert "mAP@0.5 0.4321 over 10 samples" in result.output
    assert any(line.split() == ["car", "0.4321", "0.5000", "0.5000", "2"] for line in result.output.splitlines())


@pytest.mark.parametrize(
    ("status", "code"), [(404, exitcodes.NOT_FOUND), (409, exitcodes.CONFLICT), (422, exitcodes.INVALID)]
)
def test_evaluate_refusals_exit_with_their_class(gateway: Gateway, status: int, code: int):
    gateway.answers[("POST", "/datasets/pics/evaluations")] = (status, {"detail": "field 'gt' has mixed types"})
    result = invoke("datasets", "evaluate", "pics", "--prediction", "pred", "--ground-truth", "gt", "--json")
    assert result.exit_code == code
    assert json.loads(result.stderr) == {"error": f"Error ({status}): field 'gt' has mixed types", "status": status}


def test_list_show_delete_and_the_cell_filter(gateway: Gateway):
    summary = {k: v for k, v in CLASSIFICATION.items() if k not in ("per_label", "confusion")}
    gateway.answers[("GET", "/datasets/pics/evaluations")] = (200, {"items": [summary, DETECTIONS]})
    gateway.answers[("GET", "/datasets/pics/evaluations/v2")] = (200, CLASSIFICATION)
    gateway.answers[("DELETE", "/datasets/pics/evaluations/v2")] = (204, None)
    gateway.answers[("GET", "/datasets/pics/samples")] = (200, {"items": [], "total": 0})
    listed = invoke("datasets", "evaluations", "pics")
    assert listed.exit_code == 0 and "accuracy 0.7000" in listed.output and "mAP@0.5 0.4321" in listed.output
    assert "cats v3" in listed.output
    assert "confusion matrix" in invoke("datasets", "evaluation", "pics", "v2").output
    assert invoke("datasets", "delete-evaluation", "pics", "v2", "--yes").exit_code == 0
    cell = ["--evaluation", "v2", "--ground-truth-label", "cat", "--prediction-label", "dog"]
    assert invoke("datasets", "samples", "pics", *cell).exit_code == 0
    params = gateway.sent[-1].url.params
    assert (params["evaluation"], params["ground_truth_label"], params["prediction_label"]) == ("v2", "cat", "dog")


def test_the_default_name_is_a_valid_name():
    assert default_name("pred", "gt") == "pred-vs-gt"
    assert default_name("my pred", "ground truth/v1") == "my_pred-vs-ground_truth_v1"
    assert len(default_name("p" * 60, "g" * 60)) == 64
