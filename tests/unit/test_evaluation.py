"""Evaluation numbers (modelhub_gateway.evaluation): classification scores against scikit-learn's on
the same data, box matching and AP against hand-computed cases, the census's reading of field types
and labels from the groups MongoDB returns, the confusion-cell filter, and who may delete."""

import random
from collections import Counter
from datetime import UTC, datetime
from typing import Any, cast

import pytest
from sklearn.metrics import classification_report, confusion_matrix

from modelhub_contracts.documents import Dataset, User
from modelhub_contracts.errors import Forbidden, Invalid, NotFound
from modelhub_gateway.app import build_app
from modelhub_gateway.evaluation import census, detections, evaluations, scoring
from modelhub_gateway.evaluation.scoring import Box, DetectionTally
from modelhub_gateway.settings import GatewaySettings
from modelhub_gateway.store import GatewayStore

NOW = datetime(2026, 12, 6, tzinfo=UTC)


# ---------------------------------------------------------------- classification


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.UndefinedMetricWarning")
def test_classification_scores_are_scikit_learns_on_the_same_data():
    rng = random.Random(7)
    labels = ["cat", "dog", "bird", "fish"]
    truth = [rng.choice(labels) for _ in range(500)]
    predicted = [t if rng.random() < 0.7 else rng.choice([*labels, "cow"]) for t in truth]  # "cow": never true
    scores = scoring.classification(Counter(zip(truth, predicted, strict=True)))

    # zero_division's default ("warn") gives 0 as modelhub does, with a warning
    report = cast(dict[str, Any], classification_report(truth, predicted, output_dict=True))
    names = sorted(set(truth) | set(predicted))
    assert scores["confusion"] == {"labels": names, "matrix": confusion_matrix(truth, predicted, labels=names).tolist()}
    assert scores["accuracy"] == pytest.approx(report["accuracy"])
    assert set(scores["per_label"]) == set(names)
    for label, mine in scores["per_label"].items():
        theirs = report[label]
        assert mine == {
            "precision": pytest.approx(theirs["precision"]),
            "recall": pytest.approx(theirs["recall"]),
            "f1": pytest.approx(theirs["f1-score"]),
            "support": theirs["support"],
        }, label
    assert scores["per_label"]["cow"]["support"] == 0 and scores["per_label"]["cow"]["recall"] == 0.0


def test_a_label_never_predicted_has_precision_zero_not_an_error():
    scores = scoring.classification(Counter({("a", "b"): 3, ("b", "b"): 1}))
    assert scores["per_label"]["a"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 3}
    assert scores["per_label"]["b"] == {"precision": 0.25, "recall": 1.0, "f1": pytest.approx(0.4), "support": 1}
    assert scores["confusion"]["matrix"] == [[0, 3], [0, 1]]
    assert scores["accuracy"] == 0.25


# ---------------------------------------------------------------- detections


def box(label: str, x: float, y: float, w: float, h: float, confidence: float = 1.0) -> Box:
    return Box(label, x, y, w, h, confidence)


def test_iou_of_boxes_given_as_x_y_w_h():
    assert scoring.iou(box("a", 0, 0, 0.5, 0.5), box("a", 0, 0, 0.5, 0.5)) == 1.0
    assert scoring.iou(box("a", 0, 0, 0.5, 0.5), box("a", 0.5, 0.5, 0.5, 0.5)) == 0.0  # touching corners
    assert scoring.iou(box("a", 0, 0, 1, 1), box("a", 0, 0, 1, 0.6)) == pytest.approx(0.6)


def test_hand_computed_average_precision_and_map():
    """Three samples. cat: 3 true boxes; ranked 0.9 hit (IoU 1), 0.8 miss (its best box is taken,
    the other overlaps 0.005), 0.7 hit (IoU 0.6): precision 1, 1/2, 2/3 at recall 1/3, 1/3, 2/3,
    AP = 1/3·1 + 1/3·2/3 = 5/9. dog: one predicted in a sample without a true dog (a miss), the one
    true dog never found: AP 0. bird: predicted, never true: AP null, left out of
    mAP = (5/9 + 0) / 2."""
    tally = DetectionTally(threshold=0.5)
    tally.add(
        [box("cat", 0, 0, 0.5, 0.5, 0.9), box("cat", 0.05, 0.05, 0.5, 0.5, 0.8)],
        [box("cat", 0, 0, 0.5, 0.5), box("cat", 0.5, 0.5, 0.5, 0.5)],
    )
    tally.add([box("cat", 0, 0, 1, 0.6, 0.7), box("dog", 0, 0, 1, 1, 0.6)], [box("cat", 0, 0, 1, 1)])
    tally.add([box("bird", 0, 0, 1, 1, 0.5)], [box("dog", 0.2, 0.2, 0.2, 0.2)])
    scores = tally.scores()
    assert scores["per_label"] == {
        "bird": {"ap": None, "precision": 0.0, "recall": 0.0, "support": 0},
        "cat": {
            "ap": pytest.approx(5 / 9),
            "precision": pytest.approx(2 / 3),
            "recall": pytest.approx(2 / 3),
            "support": 3,
        },
        "dog": {"ap": 0.0, "precision": 0.0, "recall": 0.0, "support": 1},
    }
    assert scores["map"] == pytest.approx(5 / 18)


def test_ap_interpolates_precision_from_higher_recall():
    """Ranked miss, hit, hit over 2 true boxes: precision 0, 1/2, 2/3 at recall 0, 1/2, 1. All-points
    interpolation takes 2/3 at recall 1/2 as well: AP = 1/2·2/3 + 1/2·2/3 = 2/3 (not 0.583, the
    non-interpolated sum)."""
    assert scoring.average_precision([0.9, 0.8, 0.7], [0, 1, 1], positives=2) == pytest.approx(2 / 3)
    assert scoring.average_precision([0.9], [1], positives=4) == pytest.approx(0.25)
    assert scoring.average_precision([], [], positives=3) == 0.0
    assert scoring.average_precision([0.5], [0], positives=0) is None


def test_a_prediction_takes_the_unmatched_true_box_it_overlaps_most():
    """The first prediction overlaps X (IoU 0.45) and Y (0.78): it takes Y, leaving X to the second
    prediction (IoU 1). Taking the first box over the threshold would leave the second only Y (0.33)."""
    x, y = box("car", 0, 0, 0.4, 0.4), box("car", 0.2, 0, 0.4, 0.4)
    first, second = box("car", 0.15, 0, 0.4, 0.4, 0.9), box("car", 0, 0, 0.4, 0.4, 0.8)
    assert scoring.match([second, first], [x, y], threshold=0.4) == [(first, True), (second, True)]


def test_the_more_confident_prediction_is_matched_first_and_labels_must_agree():
    truth = box("cat", 0, 0, 0.5, 0.5)
    exact, rough = box("cat", 0, 0, 0.5, 0.5, 0.6), box("cat", 0.05, 0, 0.5, 0.5, 0.9)
    assert scoring.match([exact, rough], [truth], 0.5) == [(rough, True), (exact, False)]
    assert scoring.match([box("dog", 0, 0, 0.5, 0.5, 0.9)], [truth], 0.5)[0][1] is False


def test_detections_read_from_a_field_name_the_field_and_sample_when_malformed():
    value = {"detections": [{"label": "cat", "confidence": 0.5, "bounding_box": [0.1, 0.2, 0.3, 0.4]}]}
    assert detections.boxes(value, "pred", "s1", truth=False) == [Box("cat", 0.1, 0.2, 0.3, 0.4, 0.5)]
    truth = {"detections": [{"label": "cat", "bounding_box": [0, 0, 1, 1]}]}  # ground truth needs no confidence
    assert detections.boxes(truth, "gt", "s1", truth=True)[0].confidence == 1.0
    with pytest.raises(Invalid, match="field 'pred' of sample s1, detections\\[0\\] has no confidence"):
        detections.boxes(truth, "pred", "s1", truth=False)
    with pytest.raises(Invalid, match="field 'gt' of sample s2, detections\\[0\\] has no bounding_box"):
        detections.boxes({"detections": [{"label": "cat", "bounding_box": [0, 0, 1]}]}, "gt", "s2", truth=True)


# ---------------------------------------------------------------- the census


def group(p: dict | None, g: dict | None, n: int, model: str | None = None, version: int | None = None) -> dict:
    key: dict[str, Any] = {"p": p or {"k": "missing"}, "g": g or {"k": "missing"}}
    if model is not None:
        key |= {"m": model, "v": version}
    return {"_id": key, "n": n}


def counted(*groups: dict) -> census.Census:
    result = census.Census("pred", "gt")
    for g in groups:
        result.add(g)
    return result


CLS = {"k": "object"}


def test_the_census_reads_labels_of_every_kind_and_counts_missing_and_writers():
    result = counted(
        group(CLS | {"l": "cat"}, {"k": "string", "l": "cat"}, 5, "m", 2),
        group(CLS | {"l": "dog"}, {"k": "string", "l": "cat"}, 2, "m", 3),
        group(CLS | {"l": "dog"}, {"k": "string", "l": "cat"}, 1, "m", 3),
        group(CLS | {"l": "dog"}, None, 4, "m", 3),  # no ground truth: missing, and not a writer counted
        group(None, {"k": "null"}, 1),
    )
    assert result.evaluation_type("d") == "classification"
    assert (result.evaluated, result.missing) == (8, 5)
    assert result.label_pairs() == Counter({("cat", "cat"): 5, ("cat", "dog"): 3})
    assert result.lineage() == {"model": "m", "version": 2, "samples": 5}
    numbers = counted(
        group({"k": "int", "l": 3}, {"k": "double", "l": 3.0}, 2), group({"k": "long", "l": 7}, {"k": "int", "l": 3}, 1)
    )
    assert numbers.evaluation_type("d") == "classification"
    assert numbers.label_pairs() == Counter({("3", "3"): 2, ("3", "7"): 1})
    assert numbers.lineage() is None


@pytest.mark.parametrize(
    ("groups", "message"),
    [
        ([group(None, {"k": "string", "l": "a"}, 3)], "field 'pred' is on no sample of dataset 'd'"),
        ([group(CLS | {"l": "a"}, {"k": "null"}, 3)], "field 'gt' is on no sample of dataset 'd'"),
        (
            [group(CLS | {"l": "a"}, {"k": "string", "l": "a"}, 3), group(CLS | {"l": "a"}, CLS | {"l": "a"}, 2)],
            r"field 'gt' has mixed types \(3 samples hold string, 2 samples hold classification\)",
        ),
        ([group(CLS | {"l": 3}, {"k": "string", "l": "1"}, 1)], "field 'pred' holds object values"),
        ([group({"k": "bool", "l": True}, {"k": "string", "l": "a"}, 1)], "field 'pred' holds bool values"),
        ([group({"k": "detections"}, {"k": "string", "l": "a"}, 1)], "field 'gt' holds string values but the other"),
        ([group(CLS | {"l": "a"}, {"k": "detections"}, 1)], "field 'pred' holds classification values but the other"),
        (
            [group(CLS | {"l": "a"}, None, 1), group(None, {"k": "string", "l": "a"}, 1)],
            "no sample of dataset 'd' has both",
        ),
    ],
)
def test_the_census_refuses_naming_the_field(groups, message):
    with pytest.raises(Invalid, match=message):
        counted(*groups).evaluation_type("d")


def test_numbers_that_are_not_whole_are_not_labels():
    result = counted(group(CLS | {"l": "a"}, {"k": "double", "l": 0.25}, 1))
    assert result.evaluation_type("d") == "classification"
    with pytest.raises(Invalid, match=r"field 'gt' holds numbers that are not whole \(e.g. 0.25\)"):
        result.label_pairs()


def test_detections_fields_make_a_detections_evaluation():
    result = counted(group({"k": "detections"}, {"k": "detections"}, 4, "det", 1))
    assert result.evaluation_type("d") == "detections"
    assert result.lineage() == {"model": "det", "version": 1, "samples": 4}


def test_the_pipeline_is_one_group_over_the_dataset_with_a_bounded_answer():
    stages = census.pipeline("d", "pred", "gt")
    assert stages[0] == {"$match": {"dataset": "d"}}
    assert set(stages[1]["$group"]["_id"]) == {"p", "g", "m", "v"}
    assert stages[2] == {"$limit": census.MAX_GROUPS + 1}


async def test_a_dataset_that_is_nearly_every_sample_is_read_by_a_collection_scan():
    class Samples:
        async def estimated_document_count(self) -> int:
            return 1000

    store = cast(GatewayStore, type("Store", (), {"samples": Samples()})())
    whole, half = (
        Dataset(_id="d", name="d", description="", owner="ann", num_samples=n, created_at=NOW) for n in (900, 500)
    )
    assert await census._plan(store, whole) == {"hint": {"$natural": 1}}
    assert await census._plan(store, half) == {}


# ---------------------------------------------------------------- the cell filter and deleting


def test_a_confusion_cell_is_equality_on_the_two_field_paths():
    assert evaluations.label_match("pred", census.CLASSIFICATION, "cat") == {"fields.pred.label": "cat"}
    assert evaluations.label_match("gt", census.STRING, "cat") == {"fields.gt": "cat"}
    assert evaluations.label_match("gt", census.NUMBER, "3") == {"fields.gt": 3}


class FakeCollection:
    def __init__(self, docs: list[dict]) -> None:
        self.docs = docs

    async def find_one(self, query: dict, projection: Any = None) -> dict | None:
        return next((d for d in self.docs if all(d.get(k) == v for k, v in query.items())), None)

    async def delete_one(self, query: dict) -> None:
        self.docs = [d for d in self.docs if d["_id"] != query["_id"]]


def fake_store(*docs: dict) -> GatewayStore:
    store = type("Store", (), {"evaluations": FakeCollection(list(docs))})()
    return cast(GatewayStore, store)


def user(name: str, is_admin: bool = False) -> User:
    return User(_id=name, username=name, is_admin=is_admin, token_hash="h", created_at=NOW)


EVALUATION = {
    "_id": "e1",
    "dataset": "d",
    "name": "v2",
    "type": "classification",
    "prediction": "pred",
    "ground_truth": "gt",
    "kinds": {"prediction": census.CLASSIFICATION, "ground_truth": census.STRING},
    "created_by": "bob",
}
DATASET = Dataset(_id="d", name="d", description="", owner="ann", num_samples=1, created_at=NOW)


async def test_the_cell_filter_needs_an_evaluation_of_this_dataset():
    store = fake_store(EVALUATION)
    cell = await evaluations.cell_filter(store, "d", "v2", "cat", "dog")
    assert cell == {"fields.pred": {"$ne": None}, "fields.gt": "cat", "fields.pred.label": "dog"}
    assert await evaluations.cell_filter(store, "d", None, None, None) is None
    with pytest.raises(Invalid, match="need `evaluation`"):
        await evaluations.cell_filter(store, "d", None, "cat", None)
    with pytest.raises(NotFound, match="evaluation 'v2' not found on dataset 'e'"):
        await evaluations.cell_filter(store, "e", "v2", "cat", None)
    boxes = fake_store(EVALUATION | {"type": "detections"})
    with pytest.raises(Invalid, match="is of detections"):
        await evaluations.cell_filter(boxes, "d", "v2", None, "dog")


@pytest.mark.parametrize(("who", "allowed"), [("bob", True), ("ann", True), ("root", True), ("eve", False)])
async def test_an_evaluation_is_deleted_by_its_creator_the_datasets_owner_or_the_admin(who, allowed):
    store = fake_store(EVALUATION)
    caller = user(who, is_admin=who == "root")
    if allowed:
        await evaluations.delete(store, caller, DATASET, "v2")
        assert await store.evaluations.find_one({"name": "v2"}) is None
    else:
        with pytest.raises(Forbidden):
            await evaluations.delete(store, caller, DATASET, "v2")


# ---------------------------------------------------------------- the HTTP contract


@pytest.fixture(scope="module")
def document(tmp_path_factory) -> dict:
    return build_app(GatewaySettings(data_dir=tmp_path_factory.mktemp("data"), admin_token="x")).openapi()


def test_the_evaluation_routes_and_the_cell_filter_are_in_the_openapi_document(document):
    paths = document["paths"]
    listing = paths["/api/v1/datasets/{name}/evaluations"]
    one = paths["/api/v1/datasets/{name}/evaluations/{evaluation}"]
    assert [listing["post"]["operationId"], listing["get"]["operationId"]] == ["evaluations-create", "evaluations-list"]
    assert [one["get"]["operationId"], one["delete"]["operationId"]] == ["evaluations-get", "evaluations-delete"]
    assert {"201", "404", "409", "422"} <= set(listing["post"]["responses"])
    assert "403" in one["delete"]["responses"]
    created = listing["post"]["responses"]["201"]["content"]["application/json"]["schema"]
    assert created["discriminator"]["propertyName"] == "type"
    samples = paths["/api/v1/datasets/{name}/samples"]["get"]
    [filters] = [p for p in samples["parameters"] if p["name"] == "filters"]
    needs = filters["schema"]["dependentRequired"]
    assert needs["ground_truth_label"] == needs["prediction_label"] == ["evaluation"]
    assert set(filters["schema"]["properties"]) >= {"evaluation", "ground_truth_label", "prediction_label"}
