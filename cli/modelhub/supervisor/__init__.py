"""Process supervision for the embedded stack (used by `modelhub.stack`).

Every child is started in its own session (start_new_session=True) with the marker
environment variable MARKER_ENV=<data dir>, so that everything `up` started for one
data dir -- including grandchildren such as Ray's raylet, gcs_server and workers, which
inherit the environment -- can be found again (and only that) when stopping.

The modules, each one concern; a module imports only those listed below it (the import-linter
contract "The supervisor's modules are layered" in the root pyproject.toml holds this):
  loop       the Supervisor: start in order, wait for ports, restart with backoff, stop in reverse
  child      one supervised process: its spec, start and stop
  statefile  DIR/state.json and the single-instance lock (supervisor.pid, supervisor.lock)
  procs      /proc: liveness, command lines, the marker, sweeping what is left; TCP ports
StackError, here, is what every one of them raises for the user to read.
"""


class StackError(RuntimeError):
    """A failure with a message meant for the user."""
