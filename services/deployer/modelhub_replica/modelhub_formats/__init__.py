"""Adapters that run packages without code of their own (API.md §3): each is a class
`Model(root)` with `predict(columns) -> outputs`, the same interface as a package's model.py.

They run only in the model's jailed process: jail.py binds this folder read-only beside host.py
(`/run/modelhub/modelhub_formats`) and host.py puts that folder on the import path after the
package root, so `modelhub_formats.onnx_model:Model` (package.FORMAT_ENTRYPOINTS) imports there.
They import what the deployment's environment has (numpy, Pillow, onnxruntime), never the hub.
"""
