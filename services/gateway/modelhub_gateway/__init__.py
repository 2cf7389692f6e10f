"""modelhub's gateway: the HTTP API and web UI, and the fold of events into job progress.

Rooms: `api/` (HTTP entry points), `bus/` (NATS entry points and sends), `progress/` (the ledger,
its fold and history); the use cases sit at the package top (models, datasets, deployments, jobs,
samples, lifecycle, online, media, auth) with the store, settings and `app` that wires it all.
"""
