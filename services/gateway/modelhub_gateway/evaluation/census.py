"""One pass of MongoDB over a dataset's samples for an evaluation: per sample, each field's type and
label and who wrote the prediction, grouped and counted by the server. What comes back is small
(label pairs × types × writers), so the dataset never travels to the gateway.

How a field is read: a string is its own label, and so is a whole number (as text: 3 is "3"); an
object with a string `label` is a classification (`{"label": "cat"}`, a model's `{"label",
"confidence"}`); an object with a `detections` list is detections. A field must hold one of these
kinds on every sample that has it (null counts as not having it); anything else is refused, naming
the field, as is a field no sample has.

Why `$type` and not cheaper forms: this group runs in MongoDB's classic engine (6.0's slot-based
one does not take `$type`), and the bench found the kind expressions cost less there than the same
test spelt with comparisons in the slot-based engine (bench/README.md, Evaluation).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from modelhub_contracts.documents import Dataset
from modelhub_contracts.errors import Invalid
from modelhub_gateway.store import GatewayStore

# Group keys read at most: past this many (type, label, writer) combinations the fields are not
# class labels (a million distinct strings would make a million-row matrix).
MAX_GROUPS = 100_000
MAX_LABELS = 1_000  # a confusion matrix's side; a 1,000 × 1,000 matrix is about 9 MB stored

# The dataset's share of all samples from which a collection scan beats the index (bench/README.md)
WHOLE_COLLECTION = 0.85

MISSING = "missing"
STRING, NUMBER, CLASSIFICATION, DETECTIONS = "string", "number", "classification", "detections"
LABEL_KINDS = (STRING, NUMBER, CLASSIFICATION)
NUMBER_TYPES = ("int", "long", "double")
READS = 'class labels (a string, a whole number or {"label": ...}) or detections ({"detections": [...]})'


def _reading(path: str) -> dict[str, Any]:
    """Per sample: `k`, the field's BSON type (an object told apart as detections or not), and `l`,
    its label: the value itself for a scalar, an object's `label`."""
    value = f"$fields.{path}"
    return {
        "$let": {
            "vars": {"t": {"$type": value}},
            "in": {
                "$cond": [
                    {"$eq": ["$$t", "object"]},
                    {
                        "k": {"$cond": [{"$isArray": f"{value}.detections"}, DETECTIONS, "object"]},
                        "l": f"{value}.label",
                    },
                    {"k": "$$t", "l": {"$cond": [{"$eq": ["$$t", "array"]}, None, value]}},
                ]
            },
        }
    }


def pipeline(dataset: str, prediction: str, ground_truth: str) -> list[dict[str, Any]]:
    """The aggregation: one `$group` by both fields' readings and the prediction's writer."""
    writer = f"$lineage.{prediction}"
    key = {"p": _reading(prediction), "g": _reading(ground_truth), "m": f"{writer}.model", "v": f"{writer}.version"}
    return [
        {"$match": {"dataset": dataset}},
        {"$group": {"_id": key, "n": {"$sum": 1}}},
        {"$limit": MAX_GROUPS + 1},
    ]


def kind(reading: dict[str, Any]) -> str:
    """A field's kind on the samples of one group: a label kind, detections, missing, or the BSON
    type that makes it neither."""
    bson_type = reading.get("k")
    if bson_type in (None, "missing", "null"):
        return MISSING
    if bson_type == "object":
        return CLASSIFICATION if isinstance(reading.get("l"), str) else "object"
    return NUMBER if bson_type in NUMBER_TYPES else bson_type


@dataclass
class Census:
    """What the pass counted: each field's kinds (samples per kind), the label pairs of the samples
    that have both fields, the samples missing either, and who wrote those predictions."""

    prediction: str
    ground_truth: str
    kinds: dict[str, Counter[str]] = field(default_factory=dict)
    pairs: Counter[tuple[Any, Any]] = field(default_factory=Counter)
    writers: Counter[tuple[str, int]] = field(default_factory=Counter)
    missing: int = 0
    evaluated: int = 0

    def add(self, group: dict[str, Any]) -> None:
        key, count = group["_id"], group["n"]
        sides = {self.prediction: key.get("p") or {}, self.ground_truth: key.get("g") or {}}
        kinds = {name: kind(reading) for name, reading in sides.items()}
        for name, found in kinds.items():
            self.kinds.setdefault(name, Counter())[found] += count
        if MISSING in kinds.values():
            self.missing += count
            return
        self.evaluated += count
        self.pairs[(sides[self.ground_truth].get("l"), sides[self.prediction].get("l"))] += count
        if isinstance(key.get("m"), str) and isinstance(key.get("v"), int):
            self.writers[(key["m"], key["v"])] += count

    def evaluation_type(self, dataset: str) -> str:
        """`classification` or `detections`; Invalid naming the field that is on no sample, mixes
        types, or holds what is not a label, and when the two fields do not go together."""
        found = {name: self._one_kind(name, dataset) for name in (self.prediction, self.ground_truth)}
        prediction, truth = found[self.prediction], found[self.ground_truth]
        if (prediction == DETECTIONS) != (truth == DETECTIONS):
            odd = self.ground_truth if prediction == DETECTIONS else self.prediction
            raise Invalid(
                f"field '{odd}' holds {found[odd]} values but the other field holds detections: "
                "detections are evaluated against detections"
            )
        if self.evaluated == 0:
            raise Invalid(f"no sample of dataset '{dataset}' has both '{self.prediction}' and '{self.ground_truth}'")
        return DETECTIONS if prediction == DETECTIONS else "classification"

    def _one_kind(self, name: str, dataset: str) -> str:
        kinds = {k: n for k, n in (self.kinds.get(name) or Counter()).most_common() if k != MISSING}
        if not kinds:
            raise Invalid(f"field '{name}' is on no sample of dataset '{dataset}'")
        if len(kinds) > 1:
            mix = ", ".join(f"{n} sample{'s' if n != 1 else ''} hold {k}" for k, n in kinds.items())
            raise Invalid(f"field '{name}' has mixed types ({mix}); an evaluation needs one type per field")
        (only,) = kinds
        if only not in (*LABEL_KINDS, DETECTIONS):
            raise Invalid(f"field '{name}' holds {only} values; an evaluation reads {READS}")
        return only

    def label_pairs(self) -> Counter[tuple[str, str]]:
        """The (ground truth, prediction) counts with every label as text; Invalid for a number
        that is not whole, or more labels than a confusion matrix shows."""
        pairs: Counter[tuple[str, str]] = Counter()
        for (truth, prediction), count in self.pairs.items():
            pairs[(_label(truth, self.ground_truth), _label(prediction, self.prediction))] += count
        for side, name in ((0, self.ground_truth), (1, self.prediction)):
            labels = {pair[side] for pair in pairs}
            if len(labels) > MAX_LABELS:
                raise Invalid(
                    f"field '{name}' holds {len(labels)} distinct labels, over the {MAX_LABELS} an evaluation shows"
                )
        return pairs

    def lineage(self) -> dict[str, Any] | None:
        """The model version that wrote the prediction on most evaluated samples, and on how many."""
        if not self.writers:
            return None
        (model, version), samples = max(self.writers.items(), key=lambda item: (item[1], item[0][1]))
        return {"model": model, "version": version, "samples": samples}


def _label(value: Any, name: str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool) or not isinstance(value, int | float) or not float(value).is_integer():
        raise Invalid(f"field '{name}' holds numbers that are not whole (e.g. {value!r}): they are not class labels")
    return str(int(value))


async def count(store: GatewayStore, dataset: Dataset, prediction: str, ground_truth: str) -> Census:
    """Run the pass; Invalid when the fields hold too many distinct values to be class labels."""
    census = Census(prediction, ground_truth)
    groups = 0
    stages = pipeline(dataset["_id"], prediction, ground_truth)
    async for group in await store.samples.aggregate(stages, **await _plan(store, dataset)):
        groups += 1
        if groups > MAX_GROUPS:
            raise Invalid(
                f"fields '{prediction}' and '{ground_truth}' hold over {MAX_GROUPS:,} distinct values "
                "together: they are not class labels"
            )
        census.add(group)
    return census


async def _plan(store: GatewayStore, dataset: Dataset) -> dict[str, Any]:
    """A plain collection scan when the dataset is (nearly) all the samples: MongoDB's planner
    takes the (dataset, _id) index for the `$match` whatever share it selects, and walking it
    costs a whole-dataset pass more than reading the collection in order (bench/README.md)."""
    total = await store.samples.estimated_document_count()  # the collection's metadata, no scan
    return {"hint": {"$natural": 1}} if dataset["num_samples"] >= WHOLE_COLLECTION * total else {}
