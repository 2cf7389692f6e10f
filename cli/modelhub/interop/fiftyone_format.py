"""A hub sample ↔ a FiftyOne sample dict (one entry of a FiftyOneDataset directory's samples.json):
pure functions, no I/O.

Labels. The hub stores model outputs as plain JSON (docs/API.md §4): a classification is
`{"label", "confidence"}`, detections are `{"detections": [{"label", "confidence", "bounding_box"}]}`
with each box relative `[x, y, w, h]` in [0, 1] (top-left corner, width, height). FiftyOne's
`Classification` and `Detections` hold the same values, and its `Detection.bounding_box` is the same
relative `[x, y, w, h]`, so boxes pass unchanged both ways (no image size is needed). A hub field
becomes a FiftyOne label field when every value it holds in the dataset has that shape
(`FieldTypes`); a ground truth without a confidence is a classification too (FiftyOne's confidence
is then None, and the hub's value has no `confidence` key).

The directory the hub writes. metadata.json has `name`, `media_type`, `sample_fields` (field name
→ FiftyOne field type) and `info`, and no `version`: the form FiftyOne's own
`fo.types.LegacyFiftyOneDataset` exporter writes, which `fo.Dataset.from_dir(...,
dataset_type=fo.types.FiftyOneDataset)` still reads (FiftyOne 1.22: its importer hands a directory
without `version` to `LegacyFiftyOneDatasetImporter`, which builds each sample with the public
`fo.Sample.from_dict`). The versioned form is a copy of FiftyOne's internal database documents (its
importer puts metadata.json in place of the dataset's own document and inserts samples.json as raw
documents), which a writer outside FiftyOne could only match for one FiftyOne release.

The directories the hub reads: both forms, as FiftyOne writes them — labels tagged by `_cls`,
values in MongoDB Extended JSON (`{"$oid"}`, `{"$date"}`, `{"$numberDouble"}`, `{"$binary"}`, ...).
What the hub cannot hold (binary data such as masks and logits arrays, FiftyOne's bookkeeping) is
left out, and each leaving is noted so that the command can say so.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeGuard

CLASSIFICATION = "classification"
DETECTIONS = "detections"
ANY = "any"  # a field whose values share no one FiftyOne type (or that only ever held null)
STRLIST = "strlist"  # a list of strings (FiftyOne's ListField(StringField); sample tags are one)
LABEL = "label:"  # + a FiftyOne label class the hub has no type for, kept from an import

_FIELDS = "fiftyone.core.fields."
_LABEL_TYPE = _FIELDS + "EmbeddedDocumentField(fiftyone.core.labels.{})"
# metadata.json's `sample_fields` names each field's FiftyOne type by its import path
FIELD_TYPES = {
    CLASSIFICATION: _LABEL_TYPE.format("Classification"),
    DETECTIONS: _LABEL_TYPE.format("Detections"),
    "bool": _FIELDS + "BooleanField",
    "int": _FIELDS + "IntField",
    "float": _FIELDS + "FloatField",
    "str": _FIELDS + "StringField",
    STRLIST: _FIELDS + "ListField(fiftyone.core.fields.StringField)",
    "list": _FIELDS + "ListField",
    "dict": _FIELDS + "DictField",
    ANY: _FIELDS + "Field",
}

# FiftyOne's label classes (fiftyone.core.labels). An imported label of a class the hub has no type
# for keeps its `_cls`, so that an export gives it back to FiftyOne as that label.
LABEL_CLASSES = frozenset(
    {
        "Classification",
        "Classifications",
        "Detection",
        "Detections",
        "Polyline",
        "Polylines",
        "Keypoint",
        "Keypoints",
        "Segmentation",
        "Heatmap",
        "TemporalDetection",
        "TemporalDetections",
        "GeoLocation",
        "GeoLocations",
        "Regression",
    }
)

# A sample's own fields in FiftyOne; it keeps names starting with "_" for itself too
FIFTYONE_SAMPLE_FIELDS = frozenset({"id", "filepath", "tags", "metadata", "created_at", "last_modified_at", "frames"})
RENAMED_PREFIX = "hub_"

# The hub's rule for field names (modelhub_contracts.model_schema, which the CLI does not import)
HUB_FIELD_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}\Z")
HUB_RESERVED = frozenset({"id", "_id", "filepath"})

DROP = object()  # a value the hub cannot hold (binary data), left out of its parent


# ---------------------------------------------------------------------------------------- shapes


def _is_number(value: Any) -> bool:
    # bool is an int to Python, but not a confidence or a coordinate
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _is_confidence(value: Any) -> bool:
    return value is None or _is_number(value)


def _is_box(value: Any) -> bool:
    return isinstance(value, list | tuple) and len(value) == 4 and all(_is_number(v) for v in value)


def _is_strings(value: Any) -> TypeGuard[list[str]]:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def is_classification(value: Any) -> bool:
    """A hub classification: a string `label`, a confidence that is a number or absent/None."""
    return (
        isinstance(value, dict)
        and value.get("_cls", "Classification") == "Classification"
        and isinstance(value.get("label"), str)
        and _is_confidence(value.get("confidence"))
        and "detections" not in value
    )


def is_detection(value: Any) -> bool:
    return (
        isinstance(value, dict)
        and value.get("_cls", "Detection") == "Detection"
        and isinstance(value.get("label"), str)
        and _is_box(value.get("bounding_box"))
        and _is_confidence(value.get("confidence"))
    )


def is_detections(value: Any) -> bool:
    """Hub detections: `{"detections": [...]}`, each with a label, a 4-number box and a confidence
    that is a number or absent/None."""
    return (
        isinstance(value, dict)
        and value.get("_cls", "Detections") == "Detections"
        and isinstance(value.get("detections"), list)
        and all(is_detection(d) for d in value["detections"])
    )


def value_kind(value: Any) -> str | None:
    """What FiftyOne type one hub value asks for; None for null, which says nothing."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "str"
    if isinstance(value, list):
        return STRLIST if _is_strings(value) else "list"
    if is_classification(value):
        return CLASSIFICATION
    if is_detections(value):
        return DETECTIONS
    cls = value.get("_cls") if isinstance(value, dict) else None
    return LABEL + cls if cls in LABEL_CLASSES else "dict"


def merge_kinds(kinds: set[str]) -> str:
    """One FiftyOne type for every kind a field held: numbers widen to float, lists of strings to
    lists; anything else mixed (or nothing but null) is FiftyOne's untyped `Field`."""
    if kinds == {"int", "float"}:
        return "float"
    if kinds == {STRLIST, "list"}:
        return "list"
    return next(iter(kinds)) if len(kinds) == 1 else ANY


@dataclass
class FieldTypes:
    """The FiftyOne type of each hub field of a dataset, from every value it holds there: feed each
    sample's fields to `observe`, then read `kinds()`. A field must have one type for the whole
    dataset (FiftyOne checks every value against its field's type), so the types are known only
    once every sample has been seen."""

    seen: dict[str, set[str]] = field(default_factory=dict)

    def observe(self, fields: Mapping[str, Any]) -> None:
        for name, value in fields.items():
            kinds = self.seen.setdefault(name, set())
            kind = value_kind(value)
            if kind is not None:
                kinds.add(kind)

    def kinds(self) -> dict[str, str]:
        return {name: merge_kinds(kinds) for name, kinds in self.seen.items()}


# ------------------------------------------------------------------------------- hub → FiftyOne


def fiftyone_field_name(name: str) -> str:
    """The name a hub field has in FiftyOne: its own, or `hub_<name>` where FiftyOne keeps the name
    for itself (`metadata`, `created_at`, `_anything`, ...; `tags` only when it is not a list of
    strings, see `to_fiftyone`)."""
    if name in FIFTYONE_SAMPLE_FIELDS or name.startswith("_"):
        return RENAMED_PREFIX + name
    return name


def is_sample_tags(name: str, kind: str) -> bool:
    """A hub field `tags` holding lists of strings is the FiftyOne sample's tags."""
    return name == "tags" and kind == STRLIST


def to_fiftyone(fields: Mapping[str, Any], filepath: str, kinds: Mapping[str, str]) -> dict[str, Any]:
    """One entry of samples.json for a hub sample's fields, its media at `filepath` (relative to the
    directory, or absolute), each field converted as `kinds` (from `FieldTypes`) says."""
    sample: dict[str, Any] = {"filepath": filepath, "tags": [], "metadata": None}
    for name, value in fields.items():
        kind = kinds.get(name, ANY)
        if is_sample_tags(name, kind):
            sample["tags"] = list(value or [])
        else:
            sample[fiftyone_field_name(name)] = fiftyone_value(kind, value)
    return sample


def fiftyone_value(kind: str, value: Any) -> Any:
    """A hub value as FiftyOne holds it in a field of this kind: labels as `_cls`-tagged dicts,
    anything else as it is."""
    if value is None:
        return None
    if kind == CLASSIFICATION:
        return _label("Classification", value, {"label": value["label"], "confidence": value.get("confidence")})
    if kind == DETECTIONS:
        detections = [
            _label(
                "Detection",
                d,
                {"label": d["label"], "bounding_box": list(d["bounding_box"]), "confidence": d.get("confidence")},
            )
            for d in value["detections"]
        ]
        return {**_attributes("Detections", value, ("detections",)), "_cls": "Detections", "detections": detections}
    return value


def _label(cls: str, value: Mapping[str, Any], known: dict[str, Any]) -> dict[str, Any]:
    tags = value.get("tags")
    extras = _attributes(cls, value, (*known, "tags") if _is_strings(tags) else tuple(known))
    return {**extras, "_cls": cls, **known, "tags": list(tags) if _is_strings(tags) else []}


def _int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# The attributes a FiftyOne label declares with a type of its own, and the values that fit it; a hub
# key of that name whose value does not fit (and `id`, which must be FiftyOne's ObjectId) is renamed
# `hub_<key>`, so that FiftyOne loads the label with the value kept.
_DECLARED: dict[str, dict[str, Callable[[Any], bool]]] = {
    "Classification": {"logits": lambda v: isinstance(v, list) and all(_is_number(x) for x in v)},
    "Detection": {
        "index": _int,
        "mask_path": lambda v: isinstance(v, str),
        "attributes": lambda v: v == {},
        "mask": lambda v: False,
    },
    "Detections": {},
}


def _attributes(cls: str, value: Mapping[str, Any], known: tuple[str, ...]) -> dict[str, Any]:
    """A label's other keys, as FiftyOne's dynamic attributes."""
    declared = _DECLARED[cls]
    out: dict[str, Any] = {}
    for key, item in value.items():
        if key in known or key in ("_cls", "_id"):
            continue
        fits = item is None or declared.get(key, lambda _v: True)(item)
        renamed = key == "id" or key == "tags" or key.startswith("_") or not fits
        out[RENAMED_PREFIX + key if renamed else key] = item
    return out


def metadata(name: str, kinds: Mapping[str, str], info: Mapping[str, Any]) -> dict[str, Any]:
    """metadata.json: the dataset's name, media type, the type of each field (so that a field that
    is null on every sample still gets its type) and `info`."""
    sample_fields = {
        fiftyone_field_name(field_name): field_type(kind)
        for field_name, kind in kinds.items()
        if not is_sample_tags(field_name, kind)
    }
    # "image": FiftyOne reads a sample's media type from its file's extension, and a directory
    # of the legacy form that says "video" must carry frame labels the hub does not have
    return {"name": name, "media_type": "image", "sample_fields": sample_fields, "info": dict(info)}


def field_type(kind: str) -> str:
    if kind.startswith(LABEL):
        return _LABEL_TYPE.format(kind.removeprefix(LABEL))
    return FIELD_TYPES[kind]


# ------------------------------------------------------------------------------- FiftyOne → hub


@dataclass
class Imported:
    """A FiftyOne sample as the hub takes it: `filepath` as written there (relative to the
    directory, or absolute; None if it had none), the hub `fields`, and `notes` on what was left out."""

    filepath: str | None
    fields: dict[str, Any]
    notes: list[str]


# What a FiftyOne sample holds for FiftyOne's own use: ids, timestamps, media metadata (the file's
# size and dimensions, which the hub reads from the file when it needs them), video frames
_BOOKKEEPING = frozenset({"id", "filepath", "tags", "metadata", "created_at", "last_modified_at", "frames"})


def hub_field_name_problem(name: str) -> str | None:
    """Why `name` cannot name a hub sample field, or None when it can."""
    if name in HUB_RESERVED:
        return "the hub keeps that name for itself"
    if not HUB_FIELD_NAME.match(name):
        return "a hub field name is letters, digits and _, not starting with a digit, at most 64 characters"
    return None


def from_fiftyone(sample: Mapping[str, Any]) -> Imported:
    """The hub's view of one samples.json entry: sample tags (when there are any) become the field
    `tags`; `Classification` and `Detections` become the hub's classification and detections;
    other fields come as plain JSON. FiftyOne's own fields and private (`_`) fields stay behind."""
    notes: list[str] = []
    fields: dict[str, Any] = {}
    tags = sample.get("tags")
    if _is_strings(tags) and tags:
        fields["tags"] = list(tags)
    for name, value in sample.items():
        if name in _BOOKKEEPING or name.startswith("_"):
            continue
        problem = hub_field_name_problem(name)
        if problem:
            notes.append(f"field {name!r} left out: {problem}")
            continue
        converted = hub_value(value, notes, name)
        if converted is not None and converted is not DROP:
            fields[name] = converted
    filepath = sample.get("filepath")
    return Imported(filepath if isinstance(filepath, str) else None, fields, notes)


def hub_value(value: Any, notes: list[str], where: str) -> Any:
    """A FiftyOne value as plain JSON for the hub; DROP (with a note) for what it cannot hold."""
    if isinstance(value, dict):
        cls = value.get("_cls")
        if cls == "Classification" and isinstance(value.get("label"), str):
            return _hub_label(value, notes, where, ("label",))
        if cls == "Detections" and isinstance(value.get("detections"), list):
            detections = [_hub_detection(d, notes, f"{where}.detections") for d in value["detections"]]
            return {**_hub_dict(value, notes, where, skip=("_cls", "detections")), "detections": detections}
        if _is_extended_json(value):
            return _extended_json(value, notes, where)
        return _hub_dict(value, notes, where, skip=() if cls in LABEL_CLASSES else ("_cls",))
    if isinstance(value, list):
        items = [hub_value(item, notes, where) for item in value]
        return [item for item in items if item is not DROP]
    if isinstance(value, float) and not math.isfinite(value):
        return None  # the hub's JSON has no NaN or infinity
    return value


def _hub_detection(value: Any, notes: list[str], where: str) -> Any:
    if not isinstance(value, dict) or not isinstance(value.get("label"), str):
        return hub_value(value, notes, where)
    return _hub_label(value, notes, where, ("label", "bounding_box"))


def _hub_label(value: Mapping[str, Any], notes: list[str], where: str, first: tuple[str, ...]) -> dict[str, Any]:
    """A Classification or Detection: its label (and box) first, a confidence only when it has one,
    tags only when there are some, then its other attributes (None ones left out, as FiftyOne does
    in its own exports)."""
    out = {key: hub_value(value[key], notes, f"{where}.{key}") for key in first if key in value}
    rest = _hub_dict(value, notes, where, skip=("_cls", *first))
    return out | {k: v for k, v in rest.items() if v is not None and v != [] and not (k == "attributes" and v == {})}


def _hub_dict(value: Mapping[str, Any], notes: list[str], where: str, skip: tuple[str, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, item in value.items():
        if key == "_id" or key in skip:  # FiftyOne's ids of labels: the hub's samples have their own
            continue
        converted = hub_value(item, notes, f"{where}.{key}")
        if converted is not DROP:
            out[key] = converted
    return out


def _is_extended_json(value: Mapping[str, Any]) -> bool:
    return bool(value) and all(isinstance(k, str) and k.startswith("$") for k in value)


def _extended_json(value: Mapping[str, Any], notes: list[str], where: str) -> Any:
    """MongoDB Extended JSON (as FiftyOne's exports write it) as a plain value."""
    if "$oid" in value:
        return str(value["$oid"])
    if "$date" in value:
        return _date(value["$date"])
    if "$numberLong" in value or "$numberInt" in value:
        return int(value.get("$numberLong", value.get("$numberInt")))
    if "$numberDouble" in value or "$numberDecimal" in value:
        number = float(value.get("$numberDouble", value.get("$numberDecimal")))
        return number if math.isfinite(number) else None
    kind = "binary data" if "$binary" in value else f"a {next(iter(value))} value"
    notes.append(f"{where} left out: {kind} (the hub stores JSON)")
    return DROP


def _date(value: Any) -> str:
    """An ISO 8601 string, from either form of `$date`: a string, or milliseconds since the epoch."""
    if isinstance(value, str):
        return value
    millis = int(value["$numberLong"]) if isinstance(value, dict) else int(value)
    return datetime.fromtimestamp(millis / 1000, UTC).isoformat().replace("+00:00", "Z")
