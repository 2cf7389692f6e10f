"""modelhub's service plumbing: what every service process runs besides its own use cases.

The NATS broker's helpers (declared publishers, durable consumers, acks and retries, prompt batches),
the settings that say where NATS, MongoDB and Ray are, the MongoDB connection, logs, traces,
metrics, probes and the event loop. Services share it so they run alike; what they agree on (events,
subjects, documents) is in modelhub_contracts, which this package builds on and never the reverse.
"""
