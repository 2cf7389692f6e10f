"""Evaluations: a prediction field scored against a ground-truth field of the same dataset.

`census` counts, in one MongoDB aggregation, each field's types and each (ground truth,
prediction) label pair; `detections` streams the two fields of each sample for box matching;
`scoring` turns those counts and matches into the numbers (pure functions); `evaluations` holds the
use cases (create, list, get, delete, and the confusion-cell filter of the samples route) over the
`evaluations` collection; `schemas` the HTTP models.
"""
