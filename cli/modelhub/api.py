"""The modelhub HTTP API (base path /api/v1) as a small synchronous Python SDK.

The `modelhub` commands are one user of it; scripts and notebooks are another. One method per API
call (docs/API.md is the contract), each returning the decoded JSON body. An error status raises
`ApiError` (with `.status` and `.message`); a gateway that cannot be reached raises `GatewayError`.

    >>> from modelhub.api import ApiClient
    >>> with ApiClient("http://127.0.0.1:8000", token="...") as hub:       # doctest: +SKIP
    ...     hub.create_dataset("digits")
    ...     hub.add_samples("digits", ["/data/digits/0001.png"])
    ...     job = hub.submit_job("digits", deployment="digits-demo", outputs={"predictions": "predictions"})
    ...     hub.get_job(job["id"])["status"]

With no `url` / `token`, the client takes them as the CLI does (see modelhub.settings.CliSettings:
MODELHUB_URL, else the running stack's URL; MODELHUB_TOKEN, else DIR/admin-token).
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Generator, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
from httpx_sse import connect_sse

from modelhub.settings import API_PREFIX, CliSettings

SAMPLES_PER_REQUEST = 10_000  # the most samples one POST /datasets/{name}/samples takes, or one page gives


class ApiError(Exception):
    """The gateway answered with an error status: `status` (e.g. 404) and its `message`."""

    def __init__(self, status: int, message: str):
        super().__init__(f"Error ({status}): {message}")
        self.status = status
        self.message = message

    @property
    def detail(self) -> str:
        """The server's `detail`, as one line (the same as `message`)."""
        return self.message


class GatewayError(Exception):
    """The gateway could not be reached or the connection broke."""


def format_detail(detail: Any) -> str:
    """Turn an error `detail` (a string, or FastAPI's 422 list of issues) into one readable line."""
    if isinstance(detail, str):
        return detail
    if isinstance(detail, list):
        return "; ".join(_format_issue(issue) for issue in detail)
    return json.dumps(detail)


def _format_issue(issue: Any) -> str:
    if not isinstance(issue, dict):
        return str(issue)
    loc = [str(part) for part in issue.get("loc", ())]
    where = ".".join(loc[1:] if loc[:1] == ["body"] else loc)
    msg = issue.get("msg") or json.dumps(issue)
    return f"{where}: {msg}" if where else msg


def error_detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text.strip() or response.reason_phrase
    return format_detail(body.get("detail", body) if isinstance(body, dict) else body)


_NOT_JSON = object()  # an event whose data is not JSON (keep-alive comments carry no event)


def seg(value: Any) -> str:
    """A value quoted for use as one URL path segment."""
    return quote(str(value), safe="")


def given(**values: Any) -> dict[str, Any]:
    return {key: value for key, value in values.items() if value is not None}


class ApiClient:
    """A small synchronous client of the gateway API (use it as a context manager, or `close()`)."""

    TIMEOUT = httpx.Timeout(300.0, connect=10.0)
    STREAM_TIMEOUT = httpx.Timeout(300.0, connect=10.0, read=60.0)
    RESUME_TRIES = 5  # reconnects in a row to a broken event stream before giving up

    def __init__(
        self,
        url: str | None = None,
        token: str | None = None,
        transport: httpx.BaseTransport | None = None,
        timeout: httpx.Timeout | None = None,
    ):
        if url is None or token is None:
            settings = CliSettings()
            url = settings.gateway_url(url)
            token = token if token is not None else settings.api_token(url)
        self.url: str = url.rstrip("/").removesuffix(API_PREFIX)
        self.token: str | None = token
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        self._http = httpx.Client(
            base_url=self.url + API_PREFIX, headers=headers, timeout=timeout or self.TIMEOUT, transport=transport
        )

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # ------------------------------------------------------------------ transport

    def request(self, method: str, path: str, **kw: Any) -> Any:
        """Send a request; return the decoded JSON body (None when empty); raise ApiError on errors."""
        with self._transport_errors():
            response = self._http.request(method, path, **kw)
        if response.is_error:
            raise ApiError(response.status_code, error_detail(response))
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            return response.text

    def events(self, path: str) -> Generator[Any, None, None]:
        """Follow a Server-Sent Events stream (read by httpx-sse), yielding each event's JSON payload;
        an event whose data is not JSON is skipped. A stream cut by the network or a gateway restart
        is opened again with `Last-Event-ID` (the SSE resume rule), so no event is seen twice; after
        RESUME_TRIES failed reconnects in a row the GatewayError is raised. A stream that the gateway
        ends on its own is the end."""
        last_id, failures = "", 0
        while True:
            headers = {"Last-Event-ID": last_id} if last_id else {}
            try:
                for event_id, payload in self._stream(path, headers):
                    failures = 0
                    last_id = event_id or last_id
                    if payload is not _NOT_JSON:
                        yield payload
                return
            except GatewayError:
                failures += 1
                if failures > self.RESUME_TRIES:
                    raise
                time.sleep(min(0.5 * 2**failures, 5.0))

    def _stream(self, path: str, headers: dict[str, str]) -> Iterator[tuple[str, Any]]:
        """One connection to an event stream: (id, JSON payload or _NOT_JSON) per event."""
        with (
            self._transport_errors(),
            connect_sse(self._http, "GET", path, headers=headers, timeout=self.STREAM_TIMEOUT) as source,
        ):
            if source.response.is_error:
                source.response.read()
                raise ApiError(source.response.status_code, error_detail(source.response))
            for event in source.iter_sse():
                try:
                    payload = event.json()
                except ValueError:
                    payload = _NOT_JSON
                yield event.id, payload

    def download(self, path: str, params: dict[str, Any]) -> Generator[bytes, None, None]:
        """Stream a response body in chunks (exports), raising ApiError on an error status."""
        with (
            self._transport_errors(),
            self._http.stream("GET", path, params=params, timeout=self.STREAM_TIMEOUT) as response,
        ):
            if response.is_error:
                response.read()
                raise ApiError(response.status_code, error_detail(response))
            yield from response.iter_bytes()

    @contextlib.contextmanager
    def _transport_errors(self) -> Iterator[None]:
        try:
            yield
        except httpx.ConnectError as exc:
            raise GatewayError(
                f"Error: cannot connect to the modelhub gateway at {self.url} ({exc}).\n"
                "Is the stack running? Start it with `modelhub up` (or pass --url / set MODELHUB_URL)."
            ) from exc
        except httpx.TimeoutException as exc:
            raise GatewayError(f"Error: the gateway at {self.url} did not answer in time ({exc!r}).") from exc
        except httpx.TransportError as exc:
            raise GatewayError(f"Error: connection to the gateway at {self.url} failed: {exc}") from exc

    # ------------------------------------------------------------------ models

    @staticmethod
    def model_path(name: str, *rest: Any) -> str:
        return "/".join([f"/models/{seg(name)}", *(seg(part) for part in rest)])

    def create_model(self, name: str, description: str | None = None, tags: list[str] | None = None) -> Any:
        return self.request("POST", "/models", json={"name": name, **given(description=description, tags=tags)})

    def list_models(self) -> Any:
        return self.request("GET", "/models")

    def get_model(self, name: str) -> Any:
        return self.request("GET", self.model_path(name))

    def update_model(self, name: str, description: str | None = None, tags: list[str] | None = None) -> Any:
        return self.request("PATCH", self.model_path(name), json=given(description=description, tags=tags))

    def delete_model(self, name: str) -> Any:
        return self.request("DELETE", self.model_path(name))

    def delete_version(self, name: str, version: int) -> Any:
        return self.request("DELETE", f"{self.model_path(name)}/versions/{version}")

    def upload_version(
        self,
        name: str,
        zipfile: Path,
        schema: Any = None,
        local_inputs: Sequence[str] = (),
        output_types: Sequence[str] | Mapping[str, str] = (),
    ) -> Any:
        """Upload a packed model (a .zip) as the model's next version, with its schema. An MLflow
        model with a signature may go without one: `local_inputs` names its string inputs that are
        file paths, `output_types` its outputs' types ({name: type}, or "name=type" strings)."""
        pairs = [f"{k}={v}" for k, v in output_types.items()] if isinstance(output_types, Mapping) else output_types
        form = {"schema": json.dumps(schema) if schema is not None else None}
        form |= {"local_inputs": ",".join(local_inputs) or None, "output_types": ",".join(pairs) or None}
        with zipfile.open("rb") as stream:
            return self.request(
                "POST",
                self.model_path(name, "versions"),
                files={"file": (zipfile.name, stream, "application/zip")},
                data={k: v for k, v in form.items() if v is not None},
            )

    def set_sharing(self, name: str, sharing: dict[str, Any]) -> Any:
        """Replace who may run/edit the model: {"everyone": level, "users": {user: level}}."""
        return self.request("PUT", self.model_path(name, "sharing"), json=sharing)

    def set_alias(self, name: str, alias: str, version: int) -> Any:
        """Point the model's `alias` at `version` (creating or moving it)."""
        return self.request("PUT", self.model_path(name, "aliases", alias), json={"version": version})

    def remove_alias(self, name: str, alias: str) -> Any:
        return self.request("DELETE", self.model_path(name, "aliases", alias))

    def alias_history(self, name: str, alias: str) -> Any:
        """{"items": [{"version" (None: removed), "set_by", "set_at"}, ...]}, oldest first."""
        return self.request("GET", self.model_path(name, "aliases", alias, "history"))

    def deploy(self, model: str, spec: dict[str, Any]) -> Any:
        """Create a deployment of `model` (spec: name, version (a number or "@alias"), mini_batch, ...)."""
        return self.request("POST", self.model_path(model, "deployments"), json=spec)

    # ------------------------------------------------------------------ deployments

    def list_deployments(self) -> Any:
        return self.request("GET", "/deployments")

    def get_deployment(self, name: str) -> Any:
        return self.request("GET", f"/deployments/{seg(name)}")

    def delete_deployment(self, name: str) -> Any:
        return self.request("DELETE", f"/deployments/{seg(name)}")

    def predict(self, name: str, inputs: dict[str, list[Any]], timeout_s: float | None = None) -> Any:
        """Online inference: {input name: [values]} in, {"outputs": {...}} out."""
        return self.request(
            "POST", f"/deployments/{seg(name)}/predict", json={"inputs": inputs, **given(timeout_s=timeout_s)}
        )

    # ------------------------------------------------------------------ datasets

    def create_dataset(self, name: str, description: str | None = None) -> Any:
        return self.request("POST", "/datasets", json={"name": name, **given(description=description)})

    def list_datasets(self) -> Any:
        return self.request("GET", "/datasets")

    def get_dataset(self, name: str) -> Any:
        return self.request("GET", f"/datasets/{seg(name)}")

    def delete_dataset(self, name: str) -> Any:
        return self.request("DELETE", f"/datasets/{seg(name)}")

    def list_samples(self, name: str, limit: int = 20, offset: int = 0, **filters: Any) -> Any:
        """A page of samples; filters: field, label, min_confidence, max_confidence, missing, failed_job,
        evaluation with ground_truth_label / prediction_label (a confusion cell)."""
        return self.request(
            "GET", f"/datasets/{seg(name)}/samples", params={"limit": limit, "offset": offset, **given(**filters)}
        )

    def add_samples(self, name: str, samples: list[str] | list[dict[str, Any]]) -> Any:
        """Add samples (at most 10,000 per call): file paths, or `{"filepath", "fields"?}` dicts."""
        body = [{"filepath": s} if isinstance(s, str) else s for s in samples]
        return self.request("POST", f"/datasets/{seg(name)}/samples", json={"samples": body})

    def delete_samples(self, name: str, ids: list[str]) -> Any:
        return self.request("POST", f"/datasets/{seg(name)}/samples/delete", json={"ids": ids})

    def remove_field(self, name: str, field: str) -> Any:
        return self.request("DELETE", f"/datasets/{seg(name)}/fields/{seg(field)}")

    def fields(self, name: str) -> Any:
        return self.request("GET", f"/datasets/{seg(name)}/fields")

    def export(self, name: str, fmt: str = "jsonl", fields: str | None = None) -> Generator[bytes, None, None]:
        """The dataset's samples as JSON Lines or CSV, streamed in chunks."""
        return self.download(f"/datasets/{seg(name)}/export", {"format": fmt, **given(fields=fields)})

    # ------------------------------------------------------------------ evaluations

    def evaluate(self, dataset: str, name: str, prediction: str, ground_truth: str, iou: float | None = None) -> Any:
        """Score field `prediction` against field `ground_truth`, kept as evaluation `name`."""
        body = {"name": name, "prediction": prediction, "ground_truth": ground_truth, **given(iou=iou)}
        return self.request("POST", f"/datasets/{seg(dataset)}/evaluations", json=body)

    def list_evaluations(self, dataset: str) -> Any:
        return self.request("GET", f"/datasets/{seg(dataset)}/evaluations")

    def get_evaluation(self, dataset: str, name: str) -> Any:
        return self.request("GET", f"/datasets/{seg(dataset)}/evaluations/{seg(name)}")

    def delete_evaluation(self, dataset: str, name: str) -> Any:
        return self.request("DELETE", f"/datasets/{seg(dataset)}/evaluations/{seg(name)}")

    # ------------------------------------------------------------------ jobs

    def submit_job(
        self,
        dataset: str,
        deployment: str,
        outputs: dict[str, str],
        inputs: dict[str, str] | None = None,
        only: str | None = None,
    ) -> Any:
        """Run `deployment` over the samples of `dataset`; outputs: {model output: field}; `only`:
        "all" (the default), "missing" or "stale" (see `POST /datasets/{name}/jobs`)."""
        body = {"deployment": deployment, "outputs": outputs, **given(inputs=inputs or None, only=only)}
        return self.request("POST", f"/datasets/{seg(dataset)}/jobs", json=body)

    def list_jobs(self, dataset: str) -> Any:
        return self.request("GET", f"/datasets/{seg(dataset)}/jobs")

    def get_job(self, job_id: str) -> Any:
        return self.request("GET", f"/jobs/{seg(job_id)}")

    def job_events(self, job_id: str) -> Generator[Any, None, None]:
        """The job's progress as it happens (Server-Sent Events), each a partial job."""
        return self.events(f"/jobs/{seg(job_id)}/events")

    def job_failures(self, job_id: str) -> Any:
        return self.request("GET", f"/jobs/{seg(job_id)}/failures")

    def cancel_job(self, job_id: str) -> Any:
        return self.request("POST", f"/jobs/{seg(job_id)}/cancel")

    def retry_job(self, job_id: str) -> Any:
        """Run the job again on its failed samples only."""
        return self.request("POST", f"/jobs/{seg(job_id)}/retry")

    # ------------------------------------------------------------------ users

    def create_user(self, username: str) -> Any:
        return self.request("POST", "/users", json={"username": username})

    def list_users(self) -> Any:
        return self.request("GET", "/users")

    def delete_user(self, username: str) -> Any:
        return self.request("DELETE", f"/users/{seg(username)}")

    def me(self) -> Any:
        return self.request("GET", "/users/me")
