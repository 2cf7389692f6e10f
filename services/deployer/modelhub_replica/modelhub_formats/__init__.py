"""Models that bring no code of their own, run through an adapter with the interface of a user's
`Model` (API.md section 3): `Model(root)` and `predict(columns) -> {output: [value per sample]}`.

Only the model process imports these (host.py finds this folder beside itself: in the jail it is
bound read-only at /run/modelhub/modelhub_formats); the package's format names the adapter
(`modelhub_contracts.package.FORMAT_ENTRYPOINTS`). Importing this package imports nothing else.
"""
