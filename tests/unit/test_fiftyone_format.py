"""modelhub.interop.fiftyone_format: a hub sample ↔ a FiftyOne sample dict, both ways (the real
FiftyOne reads and writes these in tests/integration/test_fiftyone.py)."""

from __future__ import annotations

import pytest

from modelhub.interop.fiftyone_format import (
    ANY,
    CLASSIFICATION,
    DETECTIONS,
    DROP,
    FIELD_TYPES,
    STRLIST,
    FieldTypes,
    from_fiftyone,
    hub_value,
    metadata,
    to_fiftyone,
    value_kind,
)
from modelhub_contracts.model_schema import check_field_name, check_output

PRED = {"label": "cat", "confidence": 0.75}
BOXES = {
    "detections": [
        {"label": "dog", "confidence": 0.5, "bounding_box": [0.1, 0.2, 0.3, 0.4]},
        {"label": "cat", "confidence": 1, "bounding_box": [0, 0, 1, 1]},
    ]
}


def kinds_of(*samples: dict) -> dict[str, str]:
    types = FieldTypes()
    for fields in samples:
        types.observe(fields)
    return types.kinds()


# ------------------------------------------------------------------------------- hub → FiftyOne


def test_a_classification_becomes_a_fiftyone_classification() -> None:
    sample = to_fiftyone({"pred": PRED}, "data/a.png", {"pred": CLASSIFICATION})
    assert sample == {
        "filepath": "data/a.png",
        "tags": [],
        "metadata": None,
        "pred": {"_cls": "Classification", "label": "cat", "confidence": 0.75, "tags": []},
    }


def test_boxes_pass_unchanged_in_relative_xywh() -> None:
    """The hub's box is FiftyOne's: relative [top-left x, top-left y, width, height]."""
    out = to_fiftyone({"boxes": BOXES}, "/abs/a.png", {"boxes": DETECTIONS})["boxes"]
    assert out["_cls"] == "Detections"
    assert [d["_cls"] for d in out["detections"]] == ["Detection", "Detection"]
    assert [d["bounding_box"] for d in out["detections"]] == [[0.1, 0.2, 0.3, 0.4], [0, 0, 1, 1]]
    assert [(d["label"], d["confidence"]) for d in out["detections"]] == [("dog", 0.5), ("cat", 1)]


def test_no_confidence_is_fiftyones_none() -> None:
    """Ground truth carries no confidence; FiftyOne's is then None."""
    kinds = kinds_of({"gt": {"label": "cat"}}, {"gt": {"label": "dog", "confidence": None}})
    assert kinds == {"gt": CLASSIFICATION}
    assert to_fiftyone({"gt": {"label": "cat"}}, "a", kinds)["gt"]["confidence"] is None
    box = {"detections": [{"label": "x", "bounding_box": [0, 0, 0.5, 0.5]}]}
    assert to_fiftyone({"b": box}, "a", kinds_of({"b": box}))["b"]["detections"][0]["confidence"] is None


def test_hub_tags_become_sample_tags_and_label_tags_stay_label_tags() -> None:
    fields = {"tags": ["train", "hard"], "gt": {"label": "cat", "tags": ["checked"]}}
    sample = to_fiftyone(fields, "a", kinds_of(fields))
    assert sample["tags"] == ["train", "hard"] and "hub_tags" not in sample
    assert sample["gt"]["tags"] == ["checked"]


def test_a_tags_field_that_is_not_strings_is_renamed_not_lost() -> None:
    fields = {"tags": [1, 2]}
    kinds = kinds_of(fields)
    assert to_fiftyone(fields, "a", kinds)["hub_tags"] == [1, 2]
    assert metadata("d", kinds, {})["sample_fields"] == {"hub_tags": FIELD_TYPES["list"]}


@pytest.mark.parametrize("name", ["metadata", "created_at", "last_modified_at", "frames", "_private"])
def test_names_fiftyone_keeps_for_itself_are_renamed(name: str) -> None:
    fields = {name: 3}
    sample = to_fiftyone(fields, "a", kinds_of(fields))
    assert sample["hub_" + name] == 3
    assert sample.get("metadata") is None


def test_a_missing_field_stays_missing_and_null_stays_null() -> None:
    kinds = kinds_of({"pred": PRED}, {}, {"pred": None})
    assert kinds == {"pred": CLASSIFICATION}
    assert "pred" not in to_fiftyone({}, "a", kinds)
    assert to_fiftyone({"pred": None}, "a", kinds)["pred"] is None


def test_label_extras_become_attributes_and_clashing_ones_are_renamed() -> None:
    value = {"label": "cat", "confidence": 0.5, "model": "m1", "id": "x", "logits": "not numbers"}
    out = to_fiftyone({"p": value}, "a", {"p": CLASSIFICATION})["p"]
    assert out["model"] == "m1" and out["hub_id"] == "x" and out["hub_logits"] == "not numbers"
    assert "id" not in out and "logits" not in out
    box = {"label": "a", "bounding_box": [0, 0, 1, 1], "confidence": 0.1, "index": 2, "mask": [1], "score": 7}
    (det,) = to_fiftyone({"b": {"detections": [box]}}, "a", {"b": DETECTIONS})["b"]["detections"]
    assert det["index"] == 2 and det["score"] == 7 and det["hub_mask"] == [1] and "mask" not in det


@pytest.mark.parametrize(
    ("values", "kind"),
    [
        ([PRED, {"label": "x"}], CLASSIFICATION),
        ([BOXES, {"detections": []}], DETECTIONS),
        ([1, 2], "int"),
        ([1, 2.5], "float"),
        ([True], "bool"),
        (["a"], "str"),
        ([["a"], []], STRLIST),
        ([["a"], [1]], "list"),
        ([{"a": 1}], "dict"),
        ([PRED, "cat"], ANY),  # one field, two shapes: FiftyOne's untyped Field
        ([PRED, BOXES], ANY),
        ([None], ANY),
        ([{"label": 3}], "dict"),  # not a classification: the label is no string
        ([{"label": "x", "confidence": True}], "dict"),
        ([{"label": "x", "confidence": float("nan")}], "dict"),
        ([{"detections": [{"label": "x", "bounding_box": [0, 0, 1]}]}], "dict"),  # a box is 4 numbers
        ([{"_cls": "Polylines", "polylines": []}], "label:Polylines"),
    ],
)
def test_a_fields_kind_is_read_from_every_value(values: list, kind: str) -> None:
    assert kinds_of(*({"f": v} for v in values)) == {"f": kind}


def test_an_untyped_field_keeps_each_value_as_it_is() -> None:
    kinds = kinds_of({"f": PRED}, {"f": "cat"})
    assert to_fiftyone({"f": PRED}, "a", kinds)["f"] == PRED


def test_metadata_names_every_field_type_and_no_version() -> None:
    """No `version`: FiftyOne then reads the directory with Sample.from_dict (see the module doc)."""
    kinds = kinds_of({"pred": PRED, "boxes": BOXES, "n": 1, "tags": ["a"], "metadata": {"k": 1}})
    meta = metadata("pets", kinds, {"description": "d"})
    assert "version" not in meta
    assert meta["name"] == "pets" and meta["media_type"] == "image" and meta["info"] == {"description": "d"}
    assert meta["sample_fields"] == {
        "pred": "fiftyone.core.fields.EmbeddedDocumentField(fiftyone.core.labels.Classification)",
        "boxes": "fiftyone.core.fields.EmbeddedDocumentField(fiftyone.core.labels.Detections)",
        "n": "fiftyone.core.fields.IntField",
        "hub_metadata": "fiftyone.core.fields.DictField",
    }


# ------------------------------------------------------------------------------- FiftyOne → hub

# One sample as FiftyOne 1.22's FiftyOneDataset exporter writes it (Extended JSON, `_cls` labels)
FO_SAMPLE = {
    "_id": {"$oid": "6b15c409c129ea5c775dfbc3"},
    "filepath": "data/x.png",
    "tags": ["validation"],
    "_media_type": "image",
    "_rand": 0.99,
    "_dataset_id": {"$oid": "6b15c409c129ea5c775dfbc0"},
    "metadata": {"_cls": "ImageMetadata", "width": 40, "height": 20},
    "created_at": {"$date": "2026-12-06T20:22:33.986Z"},
    "last_modified_at": {"$date": "2026-12-06T20:22:33.986Z"},
    "ground_truth": {"_id": {"$oid": "6b15c409c129ea5c775dfbc1"}, "_cls": "Classification", "tags": [], "label": "cat"},
    "predictions": {
        "_id": {"$oid": "6b15c409c129ea5c775dfbc4"},
        "_cls": "Classification",
        "tags": ["reviewed"],
        "label": "dog",
        "confidence": 0.9,
        "logits": {"$binary": {"base64": "k05VTVBZ", "subType": "00"}},
    },
    "dets": {
        "_cls": "Detections",
        "detections": [
            {
                "_id": {"$oid": "6b15c409c129ea5c775dfbc2"},
                "_cls": "Detection",
                "attributes": {},
                "tags": [],
                "label": "a",
                "bounding_box": [0.1, 0.2, 0.3, 0.4],
                "confidence": 0.9,
            },
            {"_cls": "Detection", "label": "b", "bounding_box": [0.5, 0.5, 0.25, 0.25], "mask": {"$binary": "AAAA"}},
        ],
    },
    "count": 3,
    "when": {"$date": {"$numberLong": "0"}},
    "ratio": {"$numberDouble": "NaN"},
    "big": {"$numberLong": "9007199254740993"},
    "info": {"source": "web", "ref": {"$oid": "abc"}, "scale": {"$numberDouble": "Infinity"}, "none": None},
    "nothing": None,
}


def test_a_fiftyone_sample_comes_in_with_its_labels_as_hub_values() -> None:
    imported = from_fiftyone(FO_SAMPLE)
    assert imported.filepath == "data/x.png"
    assert imported.fields == {
        "tags": ["validation"],
        "ground_truth": {"label": "cat"},
        "predictions": {"label": "dog", "confidence": 0.9, "tags": ["reviewed"]},
        "dets": {
            "detections": [
                {"label": "a", "bounding_box": [0.1, 0.2, 0.3, 0.4], "confidence": 0.9},
                {"label": "b", "bounding_box": [0.5, 0.5, 0.25, 0.25]},
            ]
        },
        "count": 3,
        "when": "1970-01-01T00:00:00Z",
        "big": 9007199254740993,
        "info": {"source": "web", "ref": "abc", "scale": None, "none": None},
    }  # a field that is null (`nothing`, or NaN as `ratio`) is a field the sample does not have
    assert sorted(imported.notes) == [
        "dets.detections.mask left out: binary data (the hub stores JSON)",
        "predictions.logits left out: binary data (the hub stores JSON)",
    ]


def test_imported_labels_are_valid_hub_outputs() -> None:
    """What the import makes is what a model's output of that type would be (when it has a
    confidence: ground truth has none)."""
    fields = from_fiftyone(FO_SAMPLE).fields
    assert check_output("classification", fields["predictions"]) is None
    assert check_output("detections", {"detections": fields["dets"]["detections"][:1]}) is None
    assert all(check_field_name(name) is None for name in fields)


def test_field_names_the_hub_cannot_hold_are_left_out_with_a_note() -> None:
    imported = from_fiftyone({"filepath": "/a.png", "bad-name": 1, "x" * 65: 2, "ok": 3})
    assert imported.fields == {"ok": 3}
    assert len(imported.notes) == 2 and all("left out" in n for n in imported.notes)


def test_no_tags_no_tags_field_and_no_filepath_is_none() -> None:
    imported = from_fiftyone({"tags": [], "n": 1})
    assert imported.fields == {"n": 1} and imported.filepath is None


def test_label_types_the_hub_has_none_for_keep_their_class() -> None:
    value = {
        "_id": {"$oid": "1"},
        "_cls": "Classifications",
        "classifications": [{"_id": {"$oid": "2"}, "_cls": "Classification", "label": "a", "confidence": 0.5}],
    }
    out = hub_value(value, [], "f")
    assert out == {"_cls": "Classifications", "classifications": [{"label": "a", "confidence": 0.5}]}
    assert value_kind(out) == "label:Classifications"
    # and an export hands FiftyOne the same label class back
    assert metadata("d", kinds_of({"f": out}), {})["sample_fields"]["f"].endswith("labels.Classifications)")


def test_embedded_documents_that_are_not_labels_lose_their_class() -> None:
    assert hub_value({"_cls": "DynamicEmbeddedDocument", "a": 1}, [], "f") == {"a": 1}


def test_binary_in_a_list_is_dropped_with_a_note() -> None:
    notes: list[str] = []
    assert hub_value([1, {"$binary": "AA"}, 2], notes, "f") == [1, 2]
    assert hub_value({"$binary": "AA"}, notes, "g") is DROP
    assert len(notes) == 2


# ---------------------------------------------------------------------------------- round trips


@pytest.mark.parametrize(
    "fields",
    [
        {"pred": PRED, "boxes": BOXES},
        {"gt": {"label": "cat"}, "tags": ["a", "b"], "n": 2, "note": "hello", "extra": {"k": [1, 2]}},
        {"boxes": {"detections": []}, "flag": False},
        {"gt": {"label": "cat", "tags": ["checked"]}, "metadata": {"w": 1}},
    ],
)
def test_hub_to_fiftyone_to_hub_gives_the_same_fields(fields: dict) -> None:
    """What FiftyOne would write back (samples.json of a re-export) comes in as what went out; the
    renamed `metadata` comes back through metadata.json's map (modelhub.interop.fiftyone_dir)."""
    out = to_fiftyone(fields, "data/a.png", kinds_of(fields))
    back = from_fiftyone(out).fields
    if "metadata" in fields:
        back["metadata"] = back.pop("hub_metadata")
    assert back == fields
