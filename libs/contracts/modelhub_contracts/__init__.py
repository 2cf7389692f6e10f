"""modelhub's shared contracts: what the parts agree on, and nothing else.

Events, commands, subjects, the shared documents and their statuses, the model-schema
meta-schema, the package format, names, domain errors, the access rule, the job task queue's
document and the direct path's wire protocol. No service imports another service; they
integrate through what is defined here. How a service runs (settings, NATS helpers, logs,
telemetry) is modelhub_runtime's.
"""
