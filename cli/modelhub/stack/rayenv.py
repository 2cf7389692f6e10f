"""The environment the embedded Ray nodes run with: Serve's data-plane settings, the stack's own
ports and auth token, and nothing of the hub's (no MODELHUB_* variable reaches a node)."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path


def ray_temp_dir(data_dir: Path) -> str:
    return f"/tmp/mh-ray-{hashlib.sha256(str(data_dir).encode()).hexdigest()[:8]}"


# What a Ray node takes from `up`'s environment besides Ray's own settings: what building a custom
# env (pip/conda behind a proxy or a private index) and GPUs need. Nothing of the hub's.
NODE_ENV_PASS = (
    "PIP_",
    "UV_",
    "CONDA_",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "SSL_CERT_",
    "REQUESTS_CA_BUNDLE",
    "CUDA_",
    "NVIDIA_",
    "LD_LIBRARY_PATH",
    "TZ",
)


def ray_node_env(ray_env: dict) -> dict:
    """A clean environment for a Ray node: nothing of the hub's (no MODELHUB_*), only what Ray needs;
    the auth token itself, as its file lies under DIR, which a sealed node cannot see."""
    env = {
        k: v
        for k, v in ray_env.items()
        if k.startswith(("RAY_", "AUTOSCALER_", "DASHBOARD_", *NODE_ENV_PASS)) and not k.startswith("MODELHUB_")
    }
    env.pop("RAY_AUTH_TOKEN_PATH", None)
    env["RAY_AUTH_TOKEN"] = Path(ray_env["RAY_AUTH_TOKEN_PATH"]).read_text().strip()
    env.update(
        {
            "PATH": f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin",
            "HOME": ray_env.get("HOME", "/"),
            "LANG": "C.UTF-8",
        }
    )
    return env


# Ray Serve's own data-plane settings for low per-request cost (Ray documents them as part of its
# throughput-optimized mode; that mode also turns on direct ingress, which starts no HTTP proxy,
# and the inference worker reaches replicas through the proxy, so the settings are taken one by
# one). They lower both the proxy's and a handle's latency and CPU per request (bench/README.md).
# A cluster of your own (RAY_ADDRESS) takes them in its nodes' environment.
SERVE_TUNING = {
    # user code in the replica's own event loop, not a second one in a thread (a sync
    # Model.predict still runs in a worker thread: modelhub_replica uses asyncio.to_thread)
    "RAY_SERVE_RUN_USER_CODE_IN_SEPARATE_THREAD": "0",
    # the proxy's router in its event loop (no hop between two loops per request)
    "RAY_SERVE_RUN_ROUTER_IN_SEPARATE_LOOP": "0",
    # access-log lines written in blocks (an ERROR line flushes at once)
    "RAY_SERVE_REQUEST_PATH_LOG_BUFFER_SIZE": "1000",
    # proxy -> replica and handle -> replica over gRPC instead of Ray actor calls
    "RAY_SERVE_USE_GRPC_BY_DEFAULT": "1",
    # not data-plane: the Serve controller's loop every 0.5 s instead of 0.1 s (Ray's performance
    # guide). It runs whether or not anything changes; the controller was Serve's busiest idle
    # process (40-50 ms of CPU per s, 17-20 with this). A deploy, a replica's replacement or an
    # autoscaling decision waits up to 0.4 s more
    "RAY_SERVE_CONTROL_LOOP_INTERVAL_S": "0.5",
}


def ray_env(base_env: dict[str, str], ports: dict, auth: dict[str, str]) -> dict[str, str]:
    """The embedded Ray's settings on top of `up`'s environment (ray_node_env then cleans it)."""
    env = {**SERVE_TUNING}  # defaults: a value in `up`'s environment wins
    env.update({k: v for k, v in base_env.items() if k not in ("RAY_AUTH_TOKEN", "RAY_ADDRESS")})
    env.update(
        {
            # Linux otherwise replaces 127.0.0.1 with the machine's routable IP, and binds there
            "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
            # fixed defaults (44217/44227) would clash between two stacks
            "AUTOSCALER_METRIC_PORT": str(ports["autoscaler_metrics"]),
            "DASHBOARD_METRIC_PORT": str(ports["dashboard_metrics"]),
            # SIGTERM drains for up to 30 s by default while actors are alive
            "RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "5",
            "RAY_USAGE_STATS_ENABLED": "0",
            **auth,
        }
    )
    return env
