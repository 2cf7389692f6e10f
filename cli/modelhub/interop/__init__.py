"""Datasets in other tools' formats, read and written by the CLI over the HTTP API.

`fiftyone_format` converts one sample at a time (pure functions, no I/O); `fiftyone_dir` reads and
writes a FiftyOne dataset directory, its media and the hub's samples through `modelhub.api`.
"""
