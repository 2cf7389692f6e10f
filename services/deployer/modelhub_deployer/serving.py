"""Ray Serve through the Ray dashboard's REST API (JSON over HTTP): the deployer is no Ray driver.

A Ray driver exchanges pickles with the cluster (Serve's controller, handles, tasks), and any Ray
member (a replica runs a model's code) can put something into what the driver unpickles. The
deployer holds the hub's NATS and MongoDB credentials, so it talks to Ray only over HTTP with JSON:

- `PUT /api/packages/gcs/<name>.zip` hands the cluster a zip (runtime_env `py_modules` packages):
  the replica module (`modelhub_replica`, with the direct path's wire protocol it imports) and the
  verified model zip wrapped in a folder;
- `PUT /api/serve/applications/` sets Serve's declarative config (it replaces the whole set of
  applications, so every change reads the current set first, under one lock);
- `GET /api/serve/applications/` and `GET /api/v0/nodes` say how applications and nodes are.

Every request carries the cluster's Ray auth token (`Authorization: Bearer`), when there is one.
"""

import asyncio
import hashlib
import importlib.util
import io
import os
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx
import yaml

import modelhub_contracts
from modelhub_contracts import direct
from modelhub_deployer import deploy
from modelhub_deployer.deploy import AppState, ReplicaConfig, ServeUnavailable
from modelhub_deployer.environments import requirement_lines

REPLICA_MODULE = "modelhub_replica"  # services/deployer/modelhub_replica, shipped as py_modules
REPLICA_IMPORT_PATH = f"{REPLICA_MODULE}:build"
REPLICA_DEPLOYMENT = "ModelReplica"  # the @serve.deployment class in modelhub_replica
REPLICA_RESOURCE_SHARE = 0.001
MODEL_PACKAGE_DIR = "modelhub_model_{sha256}"  # as in modelhub_replica
MODEL_PACKAGE_FILE = "package.zip"
HEALTH_CHECK_PERIOD_S = 10.0
HEALTH_CHECK_TIMEOUT_S = 30.0
SERVE_LOOK_BACK_S = 30.0  # Serve's default look_back_period_s for autoscaling


class RayApiError(Exception):
    """The Ray dashboard refused a request or did not answer."""


class RayUnreachable(RayApiError, ServeUnavailable):
    """The Ray dashboard did not answer at all, or answered that it is not ready (502-504)."""


def ray_auth_token(env: Mapping[str, str] | None = None) -> str | None:
    """The cluster's Ray auth token, from Ray's own settings (RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH)."""
    source: Mapping[str, str] = os.environ if env is None else env
    if token := source.get("RAY_AUTH_TOKEN"):
        return token.strip()
    if path := source.get("RAY_AUTH_TOKEN_PATH"):
        return Path(path).read_text().strip()
    return None


def replica_module_zip() -> tuple[str, bytes]:
    """The replica module, with what it imports of modelhub's own, as a py_modules package (their
    folders at the zip's top), and a name for it in the cluster's package store that changes
    whenever its content does."""
    spec = importlib.util.find_spec(REPLICA_MODULE)  # finds the folder; does not import it
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"the {REPLICA_MODULE} package is not installed next to the deployer")
    folder = Path(next(iter(spec.submodule_search_locations)))
    files = sorted(p for p in folder.rglob("*.py") if "__pycache__" not in p.parts)
    entries = {f"{REPLICA_MODULE}/{p.relative_to(folder).as_posix()}": p.read_bytes() for p in files}
    data = _zip(entries | replica_imports())
    return f"_ray_pkg_{REPLICA_MODULE}_{hashlib.sha256(data).hexdigest()[:20]}.zip", data


def replica_imports() -> dict[str, bytes]:
    """What the replica imports of modelhub's own code, shipped beside it (a Ray node has only what
    the runtime_env brings): the direct path's wire protocol, a standard-library-only module, and
    its package's `__init__` (a docstring)."""
    modules = (Path(str(modelhub_contracts.__file__)), Path(str(direct.__file__)))
    return {f"modelhub_contracts/{path.name}": path.read_bytes() for path in modules}


def model_package_zip(sha256: str, zip_path: Path) -> tuple[str, bytes]:
    """The verified model zip inside a folder of its own (nothing importable), as py_modules."""
    folder = MODEL_PACKAGE_DIR.format(sha256=sha256)
    return f"_ray_pkg_{folder}.zip", _zip({f"{folder}/{MODEL_PACKAGE_FILE}": Path(zip_path).read_bytes()}, stored=True)


def _zip(files: dict[str, bytes], stored: bool = False) -> bytes:
    buf = io.BytesIO()
    method = zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED
    with zipfile.ZipFile(buf, "w", method) as zf:
        for name, data in files.items():
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))  # same bytes, same name
            info.compress_type = method
            zf.writestr(info, data)
    return buf.getvalue()


def application_config(
    config: ReplicaConfig, replica_uri: str, model_uri: str, jail: dict[str, Any] | None = None
) -> dict[str, Any]:
    """One deployment as a Serve application in the declarative config (JSON)."""
    env = _runtime_env(config)
    env["py_modules"] = [replica_uri, model_uri]
    scale: dict[str, Any]
    if config.max_replicas:
        # Serve adds a replica when the calls in flight per replica stay above the target (the
        # worker keeps up to 2 calls per replica in flight, each a whole mini-batch), and removes
        # one after downscale_delay_s under it. With min_replicas 0 it takes the last one away
        # after that long without calls (the app stays RUNNING), and a call that arrives then
        # waits in its proxy while Serve starts one at once (its cold-start path skips
        # upscale_delay_s). Load is averaged over look_back_period_s (Serve's 30 s), kept within
        # the delay so that "idle that long" is what scales to zero.
        scale = {
            "autoscaling_config": {
                "min_replicas": config.min_replicas,
                "max_replicas": config.max_replicas,
                "initial_replicas": config.num_replicas,
                "target_ongoing_requests": 1,
                "downscale_delay_s": config.scale_down_delay_s,
                "look_back_period_s": min(SERVE_LOOK_BACK_S, config.scale_down_delay_s),
            }
        }
    else:
        scale = {"num_replicas": config.num_replicas}
    return {
        "name": config.name,
        "route_prefix": f"/{config.name}",
        "import_path": REPLICA_IMPORT_PATH,
        # the builder task imports only modelhub_replica; the model's own env is the replicas'
        "runtime_env": {"py_modules": [replica_uri]},
        "args": {
            "package_id": config.package_id,
            "sha256": config.package_sha256,
            "entrypoint": config.entrypoint,
            "mini_batch": config.mini_batch,
            "batch_wait_s": config.batch_wait_ms / 1000,
            "secret": config.secret,
            # a replica's own port for the worker (modelhub_replica.DirectServer); not when Serve
            # autoscales, which counts only the calls its proxy sees
            "direct": not config.max_replicas,
            # the model's jail (modelhub_replica.jail): what it may read, what it never sees, and
            # whether a node without bubblewrap may run the model unjailed
            **(jail or {}),
        },
        "deployments": [
            {
                "name": REPLICA_DEPLOYMENT,
                **scale,
                "max_ongoing_requests": 2 * config.mini_batch + 8,
                "health_check_period_s": HEALTH_CHECK_PERIOD_S,
                "health_check_timeout_s": HEALTH_CHECK_TIMEOUT_S,
                "ray_actor_options": {
                    "num_cpus": config.num_cpus,
                    "num_gpus": config.num_gpus,
                    # only replica nodes advertise this: never the head, next to the control plane
                    "resources": {deploy.REPLICA_RESOURCE: REPLICA_RESOURCE_SHARE},
                    "runtime_env": env,
                },
            }
        ],
    }


class DashboardServe:
    """Deploys, inspects and deletes Serve applications named after deployments, over HTTP."""

    def __init__(
        self,
        dashboard_url: str,
        serve_url: str,
        token: str | None = None,
        timeout: float = 60.0,
        client: httpx.AsyncClient | None = None,
        jail: dict[str, Any] | None = None,
    ) -> None:
        self._jail = jail or {}
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = client or httpx.AsyncClient(base_url=dashboard_url.rstrip("/"), headers=headers, timeout=timeout)
        serve = httpx.URL(serve_url)
        self._http_options = {"host": serve.host, "port": serve.port or 80}
        self._lock = asyncio.Lock()  # PUT replaces every application: one change at a time

    async def close(self) -> None:
        await self._http.aclose()

    async def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = await self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise RayUnreachable(f"the Ray dashboard did not answer {method} {path}: {exc!r}") from exc
        if response.status_code in (502, 503, 504):
            raise RayUnreachable(f"the Ray dashboard is not ready ({method} {path}: {response.status_code})")
        if response.status_code >= 400:
            raise RayApiError(
                f"the Ray dashboard answered {method} {path} with {response.status_code}: {response.text[-2000:]}"
            )
        return response

    async def cluster_resources(self) -> dict[str, float]:
        """The total resources of the cluster's alive nodes (Ray's state API)."""
        body = (await self._request("GET", "/api/v0/nodes", params={"limit": 10000})).json()
        totals: dict[str, float] = {}
        for node in body["data"]["result"]["result"]:
            if node.get("state") == "ALIVE":
                for name, amount in (node.get("resources_total") or {}).items():
                    totals[name] = totals.get(name, 0.0) + float(amount)
        return totals

    async def upload(self, name: str, data: bytes) -> str:
        """Put a zip into the cluster's package store; its gcs:// URI."""
        await self._request("PUT", f"/api/packages/gcs/{name}", content=data)
        return f"gcs://{name}"

    async def submit(self, config: ReplicaConfig) -> None:
        """Hand the application to Serve and return without waiting for replicas."""
        replica_uri = await self.upload(*replica_module_zip())
        name, data = await asyncio.to_thread(model_package_zip, config.package_sha256, config.package_zip)
        model_uri = await self.upload(name, data)
        app = application_config(config, replica_uri, model_uri, self._jail)
        async with self._lock:
            apps = [a for a in await self._deployed_configs() if a.get("name") != config.name]
            await self._put(apps + [app])

    async def delete(self, name: str, wait_s: float = 60.0) -> None:
        """Remove the application and wait (bounded) until Serve has stopped its replicas, so
        that a stopped deployment's name can be deployed again at once."""
        async with self._lock:
            apps = await self._deployed_configs()
            if any(a.get("name") == name for a in apps):
                await self._put([a for a in apps if a.get("name") != name])
        deadline = asyncio.get_running_loop().time() + wait_s
        while await self.app_state(name) is not None and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.5)

    async def drop_package(self, sha256: str) -> None:
        """Nothing to do: the model's package is a runtime_env package of its replicas, and Ray
        drops it from the cluster's store once no replica uses it."""

    async def app_state(self, name: str) -> AppState | None:
        app = (await self._details()).get("applications", {}).get(name)
        if app is None:
            return None
        deployments = (app.get("deployments") or {}).values()
        ready = sum(1 for d in deployments for r in d.get("replicas") or [] if r.get("state") == "RUNNING")
        messages = [app.get("message") or ""] + [d.get("message") or "" for d in deployments]
        return AppState(
            status=str(app.get("status")), message="\n".join(m for m in messages if m), ready_replicas=ready
        )

    async def model_process(self, name: str, secret: str) -> dict[str, Any] | None:
        """What one replica of `name` (Serve's proxy picks it) says of its model process: jailed,
        restarts, the last death's reason; None when no replica answered."""
        url = f"http://{self._http_options['host']}:{self._http_options['port']}/{name}"
        try:
            response = await self._http.post(
                url, json={"status": True}, headers={"x-modelhub-secret": secret}, timeout=5.0
            )
            state = response.json().get("model_process") if response.status_code == 200 else None
        except (httpx.HTTPError, ValueError, AttributeError):
            return None
        return state if isinstance(state, dict) else None

    async def _details(self) -> dict[str, Any]:
        return (await self._request("GET", "/api/serve/applications/")).json()

    async def _deployed_configs(self) -> list[dict[str, Any]]:
        apps = (await self._details()).get("applications") or {}
        return [
            app["deployed_app_config"]
            for app in apps.values()
            if app.get("deployed_app_config") and app.get("status") != "DELETING"
        ]

    async def _put(self, apps: list[dict[str, Any]]) -> None:
        body = {"proxy_location": "HeadOnly", "http_options": self._http_options, "applications": apps}
        await self._request("PUT", "/api/serve/applications/", json=body)


def _runtime_env(config: ReplicaConfig) -> dict:
    """The pip/conda part, as content, so that nothing is resolved on the Serve controller. The
    deployer's plan (environments.py) gives the content itself; a path is a file to read."""
    env: dict = {}
    if pip := config.runtime_env.get("pip"):
        env["pip"] = requirement_lines(Path(pip).read_text()) if isinstance(pip, str | Path) else list(pip)
    if conda := config.runtime_env.get("conda"):
        env["conda"] = yaml.safe_load(Path(conda).read_text()) if isinstance(conda, str | Path) else conda
    return env
