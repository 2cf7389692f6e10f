"""Models that bring no code of their own, run through an adapter with the interface of a user's
`Model` (API.md section 3): `Model(root)` and `predict(columns) -> {output: [value per sample]}`.

Only the model process imports these: jail.py binds this folder read-only beside host.py
(`/run/modelhub/modelhub_formats`) and host.py puts that folder on the import path after the
package root; the package's format names the adapter (`modelhub_contracts.package.FORMAT_ENTRYPOINTS`).
They import what the deployment's environment has (numpy, Pillow, onnxruntime, mlflow), never the
hub. Importing this package imports nothing else.
"""
