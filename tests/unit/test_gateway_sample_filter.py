"""The grid's filters become the MongoDB queries they promise (modelhub_gateway.samples)."""

import pytest

from modelhub_gateway.samples import InvalidFilter, SampleFilter


def test_no_filter_is_the_whole_dataset():
    assert SampleFilter().query("d") == {"dataset": "d"}


def test_a_label_matches_a_classification_or_any_detection():
    query = SampleFilter(field="pred", label="cat").query("d")
    assert query["$or"] == [{"fields.pred.label": "cat"}, {"fields.pred.detections": {"$elemMatch": {"label": "cat"}}}]


def test_a_confidence_range_applies_to_the_same_detection_as_the_label():
    query = SampleFilter(field="pred", label="cat", min_confidence=0.5, max_confidence=0.9).query("d")
    assert query["$or"][0] == {"fields.pred.label": "cat", "fields.pred.confidence": {"$gte": 0.5, "$lte": 0.9}}
    assert query["$or"][1] == {
        "fields.pred.detections": {"$elemMatch": {"label": "cat", "confidence": {"$gte": 0.5, "$lte": 0.9}}}
    }


def test_missing_and_failed_filters():
    query = SampleFilter(missing="pred", failed_ids=("a", "b")).query("d")
    assert query == {"dataset": "d", "fields.pred": {"$exists": False}, "_id": {"$in": ["a", "b"]}}


@pytest.mark.parametrize(
    "bad",
    [
        SampleFilter(label="cat"),  # a label needs a field
        SampleFilter(field="a.b", label="cat"),  # no dotted paths into other fields
        SampleFilter(missing="$where"),  # no operators
        SampleFilter(field="p", min_confidence=0.9, max_confidence=0.1),
    ],
)
def test_a_filter_that_cannot_mean_anything_is_refused(bad):
    with pytest.raises(InvalidFilter):
        bad.query("d")
