"""NATS subjects and JetStream names. Handlers use these constants, never string literals.

`modelhub.evt.>` is captured by the JetStream stream (events that must not be lost);
`modelhub.rpc.>` is plain request/reply for commands that need an immediate answer
(they are retried by the caller, and never captured by the stream).
"""

STREAM = "MODELHUB"
STREAM_SUBJECTS = ["modelhub.evt.>"]
PACKAGES_BUCKET = "modelhub-packages"

# events (JetStream)
DEPLOYMENT_REQUESTED = "modelhub.evt.deployments.requested"
DEPLOYMENT_STOP_REQUESTED = "modelhub.evt.deployments.stop_requested"
JOB_SUBMITTED = "modelhub.evt.jobs.submitted"
JOB_SCHEDULED = "modelhub.evt.jobs.scheduled"
JOB_CANCELLED = "modelhub.evt.jobs.cancelled"
JOB_REFUSED = "modelhub.evt.jobs.refused"
TASK_SCHEDULED = "modelhub.evt.tasks.scheduled"
SAMPLE_ANNOTATED = "modelhub.evt.samples.annotated"

# durable consumer names (one per consuming service and subject)
DURABLE_DEPLOYER_REQUESTS = "deployer-requests"
DURABLE_DEPLOYER_STOPS = "deployer-stops"
DURABLE_SCHEDULER_JOBS = "scheduler-jobs"
DURABLE_SCHEDULER_PROGRESS = "scheduler-progress"
DURABLE_WORKER_TASKS = "worker-tasks"
DURABLE_GATEWAY_PROGRESS = "gateway-progress"
DURABLE_GATEWAY_SCHEDULED = "gateway-scheduled"
DURABLE_GATEWAY_REFUSED = "gateway-refused"

# request/reply (core NATS)
RPC_CREATE_MODEL = "modelhub.rpc.registry.create_model"
RPC_UPDATE_MODEL = "modelhub.rpc.registry.update_model"
RPC_DELETE_MODEL = "modelhub.rpc.registry.delete_model"
RPC_SET_SHARING = "modelhub.rpc.registry.set_sharing"
RPC_ADD_VERSION = "modelhub.rpc.registry.add_version"
RPC_DELETE_VERSION = "modelhub.rpc.registry.delete_version"
RPC_SET_ALIAS = "modelhub.rpc.registry.set_alias"
RPC_REMOVE_ALIAS = "modelhub.rpc.registry.remove_alias"
RPC_PREDICT = "modelhub.rpc.worker.predict"
RPC_PING = "modelhub.rpc.ping.{service}"

SERVICES = ("registry", "deployer", "scheduler", "inference-worker", "gateway")

# The Serve deployment's method for callers of Serve itself (benchmarks, other Serve apps): one
# sample's inputs {input name: value} in, that sample's outputs {output name: value} out. The
# replica gathers concurrent calls with @serve.batch(max_batch_size=mini_batch) into Model.predict.
REPLICA_METHOD = "predict_one"
# The worker calls this one, for jobs and online predict alike: samples (at most mini_batch) in
# one call, one Model.predict call on them; mini_batch-times fewer calls than one per sample.
REPLICA_CHUNK_METHOD = "predict_chunk"
SERVE_NAMESPACE = "serve"

# Dead letters: JetStream publishes this advisory when a message of the worker's task consumer
# has been delivered max_deliver times without an ack. A stream of its own keeps the advisory
# even while no worker is up to hear it (a core NATS subscription would miss it then).
DEADLETTER_STREAM = "MODELHUB_DEADLETTER"
WORKER_TASKS_MAX_DELIVERIES = f"$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.{STREAM}.{DURABLE_WORKER_TASKS}"
DURABLE_WORKER_DEADLETTERS = "worker-deadletters"

# Commands from other systems, as a user (modelhub_contracts.external): request/reply, answered by
# the gateway on the caller's inbox (`_INBOX_ext.<nats user>.…`). The integration NATS user may
# publish only under EXT_COMMANDS.
EXT_COMMANDS = "modelhub.ext.cmd.>"
EXT_ADD_SAMPLES = "modelhub.ext.cmd.samples.add"
EXT_SUBMIT_JOB = "modelhub.ext.cmd.jobs.submit"
EXT_GET_JOB = "modelhub.ext.cmd.jobs.get"
EXT_REPLIES = "_INBOX_ext.>"
