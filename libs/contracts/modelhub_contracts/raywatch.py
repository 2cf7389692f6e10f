"""Leave when the Ray cluster a process joined is gone.

A Ray driver cannot rejoin a restarted head (a new cluster behind the same address): its handles
and Serve lookups keep failing. So the deployer and the worker watch the node they joined and exit
when it is gone; `modelhub up`'s supervisor (or the container runtime) restarts them, they join the
new cluster, and the deployer's start-up reconcile redeploys what should be running.
"""

import asyncio
import logging
import os

log = logging.getLogger(__name__)
EXIT_CLUSTER_GONE = 75  # EX_TEMPFAIL: try again


def _joined_node_alive(node_id: str) -> bool:
    import ray

    # note: on a driver whose cluster vanished, Ray itself may abort the process right here,
    # which ends the same way
    return any(n["NodeID"] == node_id and n["Alive"] for n in ray.nodes())


async def watch_cluster(period: float = 5.0, timeout: float = 30.0) -> None:
    """Run forever; exit the process once the joined Ray node is no longer alive."""
    import ray

    node_id = ray.get_runtime_context().get_node_id()
    while True:
        await asyncio.sleep(period)
        try:
            alive = await asyncio.wait_for(asyncio.to_thread(_joined_node_alive, node_id), timeout)
        except Exception:  # unreachable GCS or a timeout: the cluster is not usable either way
            alive = False
        if not alive:
            log.error("the Ray cluster this process joined is gone; exiting to be restarted")
            os._exit(EXIT_CLUSTER_GONE)
