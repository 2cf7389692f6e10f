"""`modelhub up / down / status`: the embedded stack (NATS, MongoDB, Ray head, five services).

Files under the data dir DIR:
  stack.json       ports chosen for this DIR (reused by the next `up` when still free), URLs
  state.json       live supervisor view: pids and states of every child (updated on each change)
  supervisor.pid   pid of the running supervisor; supervisor.lock is flock'ed while it runs
  admin-token      the admin token (mode 0600), unless MODELHUB_ADMIN_TOKEN is set
  logs/<name>.log  each child's output (appended); logs/supervisor.log for `up --detach`
  nats/, mongo/    JetStream and MongoDB storage
  nats.conf, nats-password, mongo-password, credentials.json   the bus and database credentials
                   generated at the first `up` (mode 0600): handed to the services only
Ray's own files live under a short /tmp/mh-ray-<hash of DIR> (unix socket paths must stay short),
each replica node's under /tmp/mh-ray-<hash>r<i>.

Replica nodes (`--replica-nodes N`, default 1) are Ray nodes of their own that join the head and
advertise the `modelhub_replica` resource; the deployer places replicas only there. Each runs sealed
(modelhub.sandbox): own mount and PID namespaces, a tmpfs over DIR and over the head's Ray temp dir,
a fresh /proc, no MODELHUB_* variables.

The modules, each one concern; a module imports only those listed below it (the import-linter
contract "The stack's modules are layered" in the root pyproject.toml holds this):
  lifecycle    run the supervisor in this process (`up`, `python -m modelhub.stack supervise`)
  detach       `up --detach`: start it in the background, wait for health
  stop         `down`
  build        the plan: what `up` starts, with which environment, and stack.json
  status       what runs for DIR (`status`), where a stack is (`stack_info`)
  health       the gateway's /health, log tails, the ready message and warnings
  services     the services table
  natsconf     the embedded NATS: config and users
  mongousers   the embedded MongoDB: the services' user
  rayenv       the Ray nodes' environment, Serve's settings
  secretfiles  admin token, passwords, credentials.json (mode 0600)
  binaries     nats-server, mongod, ray
  ports        DIR, port allocation, stack.json
"""

from modelhub.stack.rayenv import SERVE_TUNING

# the Serve settings `up` gives its Ray nodes, named here by the compose file and the online bench
__all__ = ["SERVE_TUNING"]
