"""HTTP client commands of the `modelhub` CLI (models, deployments, datasets, run, jobs, users).

Every command talks to the gateway API (base path /api/v1) through `ApiClient`.
Connection: `--url` (on the group or the command), else env MODELHUB_URL, else the
`gateway_url` in `<data dir>/state.json`, else http://127.0.0.1:8000.
Token: env MODELHUB_TOKEN, else `<data dir>/admin-token`.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Callable, Generator, Iterable, Iterator
from urllib.parse import quote

import click
import httpx
from tqdm import tqdm
from modelhub import trace

API_PREFIX = "/api/v1"
DEFAULT_URL = "http://127.0.0.1:8000"
POLL_INTERVAL = 0.5  # seconds between polls (deployments, jobs)
SAMPLES_PER_REQUEST = 10_000  # the API's limit per POST /datasets/{name}/samples
MAX_FAILURES_SHOWN = 5
JOB_DONE = frozenset({"completed", "failed", "cancelled"})
DEPLOYMENT_DONE = frozenset({"running", "failed", "stopping", "stopped"})
URL_HELP = "Gateway URL (default: $MODELHUB_URL, the running stack's URL, or http://127.0.0.1:8000)."


def default_transport() -> httpx.BaseTransport | None:
    """The HTTP transport ApiClient uses; None means httpx's real network transport."""
    return None


# Tests replace this with e.g. `lambda: httpx.MockTransport(handler)`.
TRANSPORT_FACTORY: Callable[[], httpx.BaseTransport | None] = default_transport


# --------------------------------------------------------------------------- connection


def data_dir() -> Path:
    return Path(os.environ.get("MODELHUB_DATA_DIR") or Path.home() / ".modelhub").expanduser()


def _state_gateway_url() -> str | None:
    try:
        state = json.loads((data_dir() / "state.json").read_text())
    except (OSError, ValueError):
        return None
    return state.get("gateway_url") if isinstance(state, dict) else None


def resolve_url(url: str | None = None) -> str:
    url = (url or os.environ.get("MODELHUB_URL") or _state_gateway_url() or DEFAULT_URL).rstrip("/")
    return url.removesuffix(API_PREFIX)


def resolve_token() -> str | None:
    token = os.environ.get("MODELHUB_TOKEN", "").strip()
    if token:
        return token
    try:
        return (data_dir() / "admin-token").read_text().strip() or None
    except OSError:
        return None


class ApiError(Exception):
    """The gateway answered with an error status."""

    def __init__(self, status: int, detail: str):
        super().__init__(f"Error ({status}): {detail}")
        self.status = status
        self.detail = detail


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


def parse_sse(lines: Iterable[str]) -> Iterator[Any]:
    """Yield the JSON payload of each Server-Sent Event (`data:` lines up to a blank line)."""
    data: list[str] = []
    for line in _with_trailing_blank(lines):
        if line.startswith("data:"):
            data.append(line[5:].removeprefix(" "))
        elif not line and data:
            payload, data = "\n".join(data), []
            with contextlib.suppress(ValueError):
                yield json.loads(payload)


def _with_trailing_blank(lines: Iterable[str]) -> Iterator[str]:
    yield from lines
    yield ""


class ApiClient:
    """A small synchronous client of the gateway API."""

    TIMEOUT = httpx.Timeout(300.0, connect=10.0)
    STREAM_TIMEOUT = httpx.Timeout(300.0, connect=10.0, read=60.0)

    def __init__(self, url: str | None = None, token: str | None = None,
                 transport: httpx.BaseTransport | None = None):
        self.url = resolve_url(url)
        self.token = token if token is not None else resolve_token()
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        self._http = httpx.Client(base_url=self.url + API_PREFIX, headers=headers,
                                  timeout=self.TIMEOUT, transport=transport or TRANSPORT_FACTORY())

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self._http.close()

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
        """Follow a Server-Sent Events stream, yielding each event's JSON payload."""
        with self._transport_errors(), self._http.stream("GET", path, timeout=self.STREAM_TIMEOUT) as response:
            if response.is_error:
                response.read()
                raise ApiError(response.status_code, error_detail(response))
            yield from parse_sse(response.iter_lines())

    def download(self, path: str, params: dict[str, Any]) -> Iterator[bytes]:
        """Stream a response body in chunks (exports), raising ApiError on an error status."""
        with self._transport_errors(), self._http.stream("GET", path, params=params,
                                                         timeout=self.STREAM_TIMEOUT) as response:
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


def seg(value: Any) -> str:
    """A value quoted for use as one URL path segment."""
    return quote(str(value), safe="")


# --------------------------------------------------------------------------- command plumbing


def fail(message: str, code: int = 1) -> None:
    click.echo(message, err=True)
    click.get_current_context().exit(code)


class Output:
    """Prints a result readably, or as raw JSON with --json; `note` is for progress (stderr)."""

    def __init__(self, as_json: bool):
        self.as_json = as_json

    def emit(self, data: Any, render: Callable[[Any], object]) -> None:
        if self.as_json:
            click.echo(json.dumps(data, indent=2, default=str))
        else:
            render(data)

    @staticmethod
    def note(message: str) -> None:
        click.echo(message, err=True)


def api_group(name: str, help: str) -> click.Group:
    """A command group with a `--url` option that its commands inherit."""

    @click.group(name=name, help=help)
    @click.option("--url", default=None, help=URL_HELP)
    @click.pass_context
    def group(ctx: click.Context, url: str | None) -> None:
        if url:
            ctx.meta["modelhub.url"] = url

    return group


def api_command(fn: Callable[..., None]) -> Callable[..., None]:
    """Give a command `--url` and `--json`, call it as fn(api, out, **params), and report API errors."""

    @click.option("--json", "as_json", is_flag=True, help="Print the raw JSON response.")
    @click.option("--url", default=None, help=URL_HELP)
    @functools.wraps(fn)
    def wrapper(url: str | None, as_json: bool, **params: Any) -> None:
        api = ApiClient(url or click.get_current_context().meta.get("modelhub.url"))
        try:
            with api:
                fn(api, Output(as_json), **params)
        except ApiError as exc:
            fail(str(exc) + _auth_hint(api, exc))
        except GatewayError as exc:
            fail(str(exc))

    # list --url/--json after the command's own options in --help; click's option decorators keep
    # them on the function, an attribute its types do not declare
    params = wrapper.__click_params__  # pyright: ignore[reportAttributeAccessIssue]
    params[:] = params[-2:] + params[:-2]
    return wrapper


def _auth_hint(api: ApiClient, exc: ApiError) -> str:
    if exc.status == 401 and not api.token:
        return f"\n(no token found: set MODELHUB_TOKEN or start the stack so that {data_dir() / 'admin-token'} exists)"
    return ""


def _given(**values: Any) -> dict[str, Any]:
    return {key: value for key, value in values.items() if value is not None}


def parse_pairs(values: Iterable[str], metavar: str) -> dict[str, str]:
    pairs = {}
    for value in values:
        key, sep, rest = value.partition("=")
        if not sep or not key.strip() or not rest.strip():
            raise click.BadParameter(f"expected {metavar}, got {value!r}")
        pairs[key.strip()] = rest.strip()
    return pairs


def pairs_option(*decls: str, metavar: str, **kw: Any) -> Callable:
    """A repeatable KEY=VALUE option collected into a dict."""
    return click.option(*decls, multiple=True, metavar=metavar,
                        callback=lambda _ctx, _param, values: parse_pairs(values, metavar), **kw)


def load_json(text: str | None) -> Any:
    """JSON from a file path, or inline JSON text."""
    if text is None:
        return None
    with contextlib.suppress(OSError):
        if Path(text).is_file():
            text = Path(text).read_text()
    try:
        return json.loads(text)
    except ValueError as exc:
        raise click.BadParameter(f"not a JSON file nor valid JSON text: {exc}") from exc


def _json_option_callback(_ctx: click.Context, _param: click.Parameter, value: str | None) -> Any:
    return load_json(value)


def _json_list_pairs(_ctx: click.Context, _param: click.Parameter, values: Iterable[str]) -> dict[str, list]:
    result = {}
    for key, text in parse_pairs(values, "NAME=JSON_LIST").items():
        try:
            value = json.loads(text)
        except ValueError as exc:
            raise click.BadParameter(f"{key}: the value is not valid JSON ({exc}); e.g. {key}='[\"a\"]'") from exc
        result[key] = value if isinstance(value, list) else [value]
    return result


# --------------------------------------------------------------------------- rendering


def terminal_width() -> int:
    return shutil.get_terminal_size((120, 24)).columns


def truncate(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(width - 1, 0)] + "…"


def cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return ", ".join(value) or "-"
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"), default=str)
    return str(value).replace("\n", " ")


def echo_table(headers: list[str], rows: Iterable[list[Any]], empty: str = "(none)") -> None:
    """Aligned columns; each line cut to the terminal width (so the last column is truncated)."""
    cells = [headers] + [[cell(value) for value in row] for row in rows]
    if len(cells) == 1:
        click.echo(empty)
        return
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    width = terminal_width()
    for row in cells:
        click.echo(truncate("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip(), width))


def echo_record(record: dict, keys: Iterable[str]) -> None:
    keys = list(keys)
    pad = max(len(key) for key in keys) + 1
    for key in keys:
        click.echo(f"{key + ':':<{pad}} {cell(record.get(key))}")


def record_renderer(*keys: str) -> Callable[[dict], None]:
    return lambda record: echo_record(record, keys)


def human_size(size: Any) -> str:
    if not isinstance(size, (int, float)):
        return cell(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return str(size)


# --------------------------------------------------------------------------- models

models = api_group("models", "Create, upload, deploy and share models.")

MODEL_KEYS = ("name", "description", "tags", "owner", "created_at", "updated_at")
DEPLOYMENT_KEYS = ("name", "model", "version", "model_type", "mini_batch", "num_replicas", "num_gpus",
                   "min_replicas", "max_replicas", "custom_env", "batch_wait_ms", "max_in_flight", "status",
                   "ready_replicas", "error",
                   "created_by", "created_at", "updated_at")


def model_path(name: str, *rest: Any) -> str:
    return "/".join([f"/models/{seg(name)}", *(seg(part) for part in rest)])


def render_model_list(page: dict) -> None:
    echo_table(["NAME", "OWNER", "LATEST", "TAGS", "DESCRIPTION"],
               ([m.get("name"), m.get("owner"), _latest_version(m), m.get("tags"), m.get("description")]
                for m in page.get("items", [])), empty="no models")


def _latest_version(model: dict) -> Any:
    versions = [v.get("version") for v in model.get("versions") or []]
    return max(versions) if versions else None


def render_model(model: dict) -> None:
    echo_record({**model, "sharing": sharing_text(model.get("sharing") or {})}, (*MODEL_KEYS, "sharing"))
    click.echo("versions:")
    echo_table(["  VERSION", "SIZE", "SHA256", "CREATED_AT", "CREATED_BY"],
               ([f"  {v.get('version')}", human_size(v.get("size_bytes")), v.get("sha256"),
                 v.get("created_at"), v.get("created_by")] for v in model.get("versions") or []),
               empty="  (none: upload one with `modelhub models upload`)")


def sharing_text(sharing: dict) -> str:
    users = ", ".join(f"{user}={access}" for user, access in sorted((sharing.get("users") or {}).items()))
    return f"everyone={sharing.get('everyone', 'none')}" + (f"; {users}" if users else "")


def render_sharing(sharing: dict) -> None:
    click.echo(f"everyone: {sharing.get('everyone', 'none')}")
    for user, access in sorted((sharing.get("users") or {}).items()):
        click.echo(f"{user}: {access}")


@models.command("create")
@api_command
@click.argument("name")
@click.option("--description", default=None, help="What the model does.")
@click.option("--tag", "tags", multiple=True, help="A tag (repeatable).")
def models_create(api: ApiClient, out: Output, name: str, description: str | None, tags: tuple[str, ...]) -> None:
    """Create a model NAME."""
    body = {"name": name, **_given(description=description, tags=list(tags) or None)}
    out.emit(api.request("POST", "/models", json=body), lambda m: click.echo(f"created model {m['name']}"))


@models.command("list")
@api_command
def models_list(api: ApiClient, out: Output) -> None:
    """List the models you may see."""
    out.emit(api.request("GET", "/models"), render_model_list)


@models.command("show")
@api_command
@click.argument("name")
def models_show(api: ApiClient, out: Output, name: str) -> None:
    """Show a model with its versions and sharing."""
    out.emit(api.request("GET", model_path(name)), render_model)


@models.command("update")
@api_command
@click.argument("name")
@click.option("--description", default=None, help="New description.")
@click.option("--tag", "tags", multiple=True, help="Replace the tags (repeatable).")
def models_update(api: ApiClient, out: Output, name: str, description: str | None, tags: tuple[str, ...]) -> None:
    """Change a model's description and/or tags."""
    body = _given(description=description, tags=list(tags) or None)
    if not body:
        raise click.UsageError("nothing to update: pass --description and/or --tag")
    out.emit(api.request("PATCH", model_path(name), json=body), render_model)


@models.command("delete")
@api_command
@click.argument("name")
def models_delete(api: ApiClient, out: Output, name: str) -> None:
    """Delete a model and its versions."""
    api.request("DELETE", model_path(name))
    out.emit({"name": name, "deleted": True}, lambda _: click.echo(f"deleted model {name}"))


@models.command("delete-version")
@api_command
@click.argument("name")
@click.argument("version", type=click.IntRange(min=1))
def models_delete_version(api: ApiClient, out: Output, name: str, version: int) -> None:
    """Delete one version and its package (refused while a deployment uses it)."""
    api.request("DELETE", f"{model_path(name)}/versions/{version}")
    out.emit({"name": name, "version": version, "deleted": True},
             lambda _: click.echo(f"deleted {name} version {version}"))


@models.command("upload")
@api_command
@click.argument("name")
@click.argument("zipfile", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--schema", required=True, callback=_json_option_callback,
              help="The model schema: a path to a JSON file, or inline JSON text.")
def models_upload(api: ApiClient, out: Output, name: str, zipfile: Path, schema: Any) -> None:
    """Upload ZIPFILE (the packed model) as a new version of model NAME."""
    with zipfile.open("rb") as stream:
        version = api.request("POST", model_path(name, "versions"),
                              files={"file": (zipfile.name, stream, "application/zip")},
                              data={"schema": json.dumps(schema)})
    out.emit(version, lambda v: (click.echo(f"uploaded {name} version {v.get('version')}"),
                                 echo_record({**v, "size": human_size(v.get("size_bytes"))},
                                             ("sha256", "size", "size_bytes"))))


@models.command("deploy")
@api_command
@click.argument("name")
@click.option("--name", "deployment", required=True, help="The deployment name.")
@click.option("--version", type=int, default=None, help="Model version (default: the latest).")
@click.option("--mini-batch", type=int, default=1, show_default=True, help="Samples per predict call.")
@click.option("--num-replicas", type=int, default=1, show_default=True)
@click.option("--num-gpus", type=click.FloatRange(0, 1), default=0, show_default=True,
              help="GPUs per replica, 0 to 1 (0.5: two replicas share a GPU).")
@click.option("--min-replicas", type=int, default=None,
              help="Autoscaling (with --max-replicas): fewest replicas (default 1).")
@click.option("--max-replicas", type=int, default=None,
              help="Autoscaling: Serve adds replicas up to this many while calls queue, and removes idle ones.")
@click.option("--custom-env", is_flag=True, help="Build the replicas' environment from the package.")
@click.option("--batch-wait-ms", type=float, default=None,
              help="Online predict: how long a batch that is not full may wait for more samples while "
                   "the deployment is busy (default 2).")
@click.option("--max-in-flight", type=int, default=None,
              help="Online predict: samples taken at once; past it, 429 with Retry-After (default 256).")
@click.option("--model-type", default="inference", show_default=True)
@click.option("--wait/--no-wait", default=True, show_default=True, help="Wait until the deployment runs.")
@click.option("--timeout", type=float, default=600, show_default=True, help="Seconds to wait.")
def models_deploy(api: ApiClient, out: Output, name: str, deployment: str, version: int | None, mini_batch: int,
                  num_replicas: int, num_gpus: float, min_replicas: int | None, max_replicas: int | None,
                  custom_env: bool, batch_wait_ms: float | None,
                  max_in_flight: int | None, model_type: str, wait: bool, timeout: float) -> None:
    """Deploy model NAME as deployment --name."""
    body = {"name": deployment, "model_type": model_type, "mini_batch": mini_batch,
            "num_replicas": num_replicas, "num_gpus": num_gpus, "custom_env": custom_env,
            **_given(version=version, batch_wait_ms=batch_wait_ms, max_in_flight=max_in_flight,
                     min_replicas=min_replicas, max_replicas=max_replicas)}
    dep = api.request("POST", model_path(name, "deployments"), json=body)
    if not wait:
        out.emit(dep, lambda d: click.echo(f"deployment {d['name']} created (status: {d.get('status')})"))
        return
    dep = wait_for_deployment(api, dep, timeout)
    out.emit(dep, lambda d: click.echo(f"deployment {d['name']} is running "
                                       f"({d.get('ready_replicas')}/{d.get('num_replicas')} replicas ready)"))
    if dep.get("status") != "running":
        fail(f"Error: deployment {dep['name']} {dep.get('status')}: {dep.get('error') or 'no error given'}")


def wait_for_deployment(api: ApiClient, dep: dict, timeout: float) -> dict:
    """Poll the deployment until it runs, fails or stops; exit 1 after `timeout` seconds."""
    deadline, shown = time.monotonic() + timeout, None
    while True:
        if dep.get("status") != shown:
            shown = dep.get("status")
            Output.note(f"deployment {dep['name']}: {shown}")
        if shown in DEPLOYMENT_DONE:
            return dep
        if time.monotonic() >= deadline:
            fail(f"Error: timed out after {timeout:g}s waiting for deployment {dep['name']} (status: {shown})")
        time.sleep(POLL_INTERVAL)
        dep = api.request("GET", f"/deployments/{seg(dep['name'])}")


def _user_access(values: Iterable[str]) -> dict[str, str]:
    access = parse_pairs(values, "USER=run|edit|none")
    bad = {user: level for user, level in access.items() if level not in ("none", "run", "edit")}
    if bad:
        raise click.BadParameter(f"access must be run, edit or none, got {bad}")
    return access


@models.command("share")
@api_command
@click.argument("name")
@click.option("--everyone", type=click.Choice(["none", "run", "edit"]), default=None,
              help="What every user may do with the model.")
@click.option("--user", "users", multiple=True, metavar="USER=run|edit|none",
              callback=lambda _ctx, _param, values: _user_access(values),
              help="Grant a user run/edit (none removes them); repeatable.")
def models_share(api: ApiClient, out: Output, name: str, everyone: str | None, users: dict[str, str]) -> None:
    """Show or change who may run/edit model NAME.

    Changes are merged into the current sharing; with no options it is only shown.
    """
    current = api.request("GET", model_path(name)).get("sharing") or {}
    if everyone is None and not users:
        out.emit(current, render_sharing)
        return
    merged = {**(current.get("users") or {}), **users}
    sharing = {"everyone": everyone or current.get("everyone") or "none",
               "users": {user: level for user, level in merged.items() if level != "none"}}
    out.emit(api.request("PUT", model_path(name, "sharing"), json=sharing), render_sharing)


# --------------------------------------------------------------------------- deployments

deployments = api_group("deployments", "List, inspect, stop and query deployments.")


@deployments.command("list")
@api_command
def deployments_list(api: ApiClient, out: Output) -> None:
    """List deployments."""
    out.emit(api.request("GET", "/deployments"), lambda page: echo_table(
        ["NAME", "MODEL", "VERSION", "STATUS", "REPLICAS", "GPUS", "ERROR"],
        ([d.get("name"), d.get("model"), d.get("version"), d.get("status"),
          f"{d.get('ready_replicas', 0)}/{d.get('num_replicas')}", d.get("num_gpus"), d.get("error")]
         for d in _items(page)), empty="no deployments"))


def _items(page: Any) -> list:
    return page.get("items", []) if isinstance(page, dict) else list(page or [])


@deployments.command("show")
@api_command
@click.argument("name")
def deployments_show(api: ApiClient, out: Output, name: str) -> None:
    """Show a deployment."""
    out.emit(api.request("GET", f"/deployments/{seg(name)}"), record_renderer(*DEPLOYMENT_KEYS))


@deployments.command("delete")
@api_command
@click.argument("name")
def deployments_delete(api: ApiClient, out: Output, name: str) -> None:
    """Stop and remove a deployment."""
    result = api.request("DELETE", f"/deployments/{seg(name)}")
    out.emit(result if result is not None else {"name": name},
             lambda _: click.echo(f"deployment {name} is stopping"))


@deployments.command("predict")
@api_command
@click.argument("name")
@click.option("--input", "inputs", multiple=True, metavar="NAME=JSON_LIST", callback=_json_list_pairs,
              help="""A model input and its values as a JSON list, e.g. image_paths='["/a.png"]' (repeatable).""")
@click.option("--inputs-json", default=None, callback=_json_option_callback,
              help="All inputs as a JSON object {name: [values]} (inline or a file path).")
@click.option("--timeout", type=float, default=None,
              help="Seconds before the server gives up and answers 504 (default 60, at most 300).")
def deployments_predict(api: ApiClient, out: Output, name: str, inputs: dict, inputs_json: Any,
                        timeout: float | None) -> None:
    """Run online inference on a running deployment."""
    if inputs_json is not None and not isinstance(inputs_json, dict):
        raise click.BadParameter("must be a JSON object {input name: [values]}", param_hint="--inputs-json")
    payload = {**(inputs_json or {}), **inputs}
    if not payload:
        raise click.UsageError("give the model inputs with --input NAME=JSON_LIST or --inputs-json")
    body = {"inputs": payload, **_given(timeout_s=timeout)}
    out.emit(api.request("POST", f"/deployments/{seg(name)}/predict", json=body), render_outputs)


def render_outputs(result: dict) -> None:
    for output, values in (result.get("outputs") or {}).items():
        click.echo(f"{output}:")
        for value in values if isinstance(values, list) else [values]:
            click.echo("  " + cell(value))


# --------------------------------------------------------------------------- datasets

datasets = api_group("datasets", "Create datasets, add and list their samples.")
DATASET_KEYS = ("name", "description", "owner", "num_samples", "created_at")


@datasets.command("create")
@api_command
@click.argument("name")
@click.option("--description", default=None)
def datasets_create(api: ApiClient, out: Output, name: str, description: str | None) -> None:
    """Create a dataset."""
    body = {"name": name, **_given(description=description)}
    out.emit(api.request("POST", "/datasets", json=body), lambda d: click.echo(f"created dataset {d['name']}"))


@datasets.command("list")
@api_command
def datasets_list(api: ApiClient, out: Output) -> None:
    """List datasets."""
    out.emit(api.request("GET", "/datasets"), lambda page: echo_table(
        ["NAME", "OWNER", "SAMPLES", "CREATED_AT", "DESCRIPTION"],
        ([d.get("name"), d.get("owner"), d.get("num_samples"), d.get("created_at"), d.get("description")]
         for d in _items(page)), empty="no datasets"))


@datasets.command("show")
@api_command
@click.argument("name")
def datasets_show(api: ApiClient, out: Output, name: str) -> None:
    """Show a dataset."""
    out.emit(api.request("GET", f"/datasets/{seg(name)}"), record_renderer(*DATASET_KEYS))


@datasets.command("samples")
@api_command
@click.argument("name")
@click.option("--limit", type=click.IntRange(min=0), default=20, show_default=True)
@click.option("--offset", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--field", default=None, help="The field that --label / --min-confidence / --max-confidence read.")
@click.option("--label", default=None, help="Only samples whose --field has this label (classification or a detection).")
@click.option("--min-confidence", type=click.FloatRange(0, 1), default=None)
@click.option("--max-confidence", type=click.FloatRange(0, 1), default=None)
@click.option("--missing", default=None, metavar="FIELD", help="Only samples without this field.")
@click.option("--failed-job", default=None, metavar="JOB_ID", help="Only the samples this job failed.")
def datasets_samples(api: ApiClient, out: Output, name: str, limit: int, offset: int, **filters: Any) -> None:
    """List a dataset's samples (id, filepath, fields), optionally filtered."""
    params = {"limit": limit, "offset": offset, **_given(**filters)}
    page = api.request("GET", f"/datasets/{seg(name)}/samples", params=params)
    out.emit(page, lambda p: render_samples(p, offset))


@datasets.command("delete")
@api_command
@click.argument("name")
def datasets_delete(api: ApiClient, out: Output, name: str) -> None:
    """Delete a dataset with its samples, jobs and their ledgers (refused while a job runs on it)."""
    api.request("DELETE", f"/datasets/{seg(name)}")
    out.emit({"name": name, "deleted": True}, lambda _: click.echo(f"deleted dataset {name}"))


@datasets.command("remove-field")
@api_command
@click.argument("name")
@click.argument("field")
def datasets_remove_field(api: ApiClient, out: Output, name: str, field: str) -> None:
    """Take a field (and its lineage) off every sample: the undo of a run."""
    out.emit(api.request("DELETE", f"/datasets/{seg(name)}/fields/{seg(field)}"),
             lambda r: click.echo(f"removed {field} from {r['removed']} samples of {name}"))


@datasets.command("delete-samples")
@api_command
@click.argument("name")
@click.argument("ids", nargs=-1, required=True)
def datasets_delete_samples(api: ApiClient, out: Output, name: str, ids: tuple[str, ...]) -> None:
    """Delete samples by id."""
    out.emit(api.request("POST", f"/datasets/{seg(name)}/samples/delete", json={"ids": list(ids)}),
             lambda r: click.echo(f"deleted {r['deleted']} samples of {name}"))


@datasets.command("fields")
@api_command
@click.argument("name")
def datasets_fields(api: ApiClient, out: Output, name: str) -> None:
    """Each field on the dataset's samples: how many have it, its top labels, the jobs that wrote it."""
    out.emit(api.request("GET", f"/datasets/{seg(name)}/fields"), render_fields)


def render_fields(page: dict) -> None:
    def labels(field: dict) -> str:
        return ", ".join(f"{lab['label']} ×{lab['count']}" for lab in field.get("labels", [])[:8])

    def writer(field: dict) -> str:
        jobs = field.get("jobs") or []
        return f"{jobs[0]['model']} v{jobs[0]['version']} ({jobs[0]['deployment']}, job {jobs[0]['job_id']})" if jobs else ""

    echo_table(["FIELD", "SAMPLES", "TOP LABELS", "LAST WRITTEN BY"],
               ([f["name"], f["samples"], labels(f), writer(f)] for f in _items(page)), empty="no fields")


@datasets.command("export")
@click.option("--url", default=None, help=URL_HELP)
@click.argument("name")
@click.option("--format", "fmt", type=click.Choice(["jsonl", "csv"]), default="jsonl", show_default=True)
@click.option("--fields", default=None, help="Comma-separated field names (default: every field).")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write to this file (default: standard output).")
def datasets_export(url: str | None, name: str, fmt: str, fields: str | None, output: Path | None) -> None:
    """Export a dataset's samples and fields, streamed: JSON Lines or CSV."""
    params = {"format": fmt, **_given(fields=fields)}
    try:
        with ApiClient(url or click.get_current_context().meta.get("modelhub.url")) as api:
            if output is None:
                stdout = sys.stdout.buffer  # (click.get_binary_stream is deprecated)
                for chunk in api.download(f"/datasets/{seg(name)}/export", params):
                    stdout.write(chunk)
                return
            tmp = output.with_name(output.name + ".part")
            lines = 0
            with tmp.open("wb") as fh, tqdm(unit="B", unit_scale=True, desc="export", file=sys.stderr,
                                            disable=not sys.stderr.isatty()) as bar:
                for chunk in api.download(f"/datasets/{seg(name)}/export", params):
                    fh.write(chunk)
                    lines += chunk.count(b"\n")
                    bar.update(len(chunk))
            tmp.replace(output)
    except (ApiError, GatewayError) as exc:
        if output is not None:
            output.with_name(output.name + ".part").unlink(missing_ok=True)
        fail(str(exc))
        return
    samples = lines - 1 if fmt == "csv" else lines
    click.echo(f"exported {samples} samples of {name} to {output}", err=True)


def render_samples(page: dict, offset: int) -> None:
    items = page.get("items", [])
    echo_table(["ID", "FILEPATH", "FIELDS"],
               ([s.get("id"), s.get("filepath"), s.get("fields") or {}] for s in items), empty="no samples")
    if items:
        click.echo(f"samples {offset + 1}-{offset + len(items)} of {page.get('total', '?')}")


def collect_files(paths: Iterable[Path], pattern: str, recursive: bool) -> list[str]:
    """Absolute paths: files as given, directories expanded to their (non-hidden) files matching pattern."""
    files: list[str] = []
    for path in (Path(os.path.abspath(p)) for p in paths):
        if path.is_dir():
            matches = path.rglob(pattern) if recursive else path.glob(pattern)
            files.extend(sorted(str(m) for m in matches
                                if m.is_file() and not any(part.startswith(".") for part in m.relative_to(path).parts)))
        else:
            files.append(str(path))
    return list(dict.fromkeys(files))


def add_samples(api: ApiClient, name: str, files: list[str], chunk_size: int) -> int:
    added = 0
    with tqdm(total=len(files), unit="sample", desc=f"adding to {name}", file=sys.stderr) as bar:
        for start in range(0, len(files), chunk_size):
            chunk = files[start:start + chunk_size]
            try:
                result = api.request("POST", f"/datasets/{seg(name)}/samples",
                                     json={"samples": [{"filepath": f} for f in chunk]})
            except ApiError as exc:
                raise ApiError(exc.status, f"{exc.detail} ({added} samples were added before this error)") from exc
            added += (result or {}).get("added", len(chunk))
            bar.update(len(chunk))
    return added


@datasets.command("add")
@api_command
@click.argument("name")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--glob", "pattern", default="*", show_default=True, help="Files to take from directories.")
@click.option("--recursive", is_flag=True, help="Look into subdirectories too.")
@click.option("--chunk-size", type=click.IntRange(1, SAMPLES_PER_REQUEST), default=SAMPLES_PER_REQUEST,
              hidden=True)
def datasets_add(api: ApiClient, out: Output, name: str, paths: tuple[Path, ...], pattern: str,
                 recursive: bool, chunk_size: int) -> None:
    """Add files (PATH: a file or a directory) to dataset NAME as samples."""
    files = collect_files(paths, pattern, recursive)
    if not files:
        fail(f"Error: no files matching {pattern!r} found in {', '.join(map(str, paths))}")
    added = add_samples(api, name, files, chunk_size)
    out.emit({"added": added}, lambda r: click.echo(f"added {r['added']} samples to dataset {name}"))


# --------------------------------------------------------------------------- jobs and `run`

jobs = api_group("jobs", "Inspect, cancel and retry jobs (runs of a deployment over a dataset).")
JOB_KEYS = ("id", "dataset", "deployment", "model", "version", "outputs", "status", "total", "succeeded",
            "failed", "progress", "created_at", "started_at", "finished_at")


class JobProgress:
    """A tqdm bar over a job's processed samples, with succeeded/failed as postfix."""

    def __init__(self, job: dict):
        self.bar = tqdm(total=job.get("total") or 0, unit="sample", desc=f"job {job['id']}", file=sys.stderr)
        self.update(job)

    def update(self, job: dict) -> None:
        succeeded, failed = job.get("succeeded") or 0, job.get("failed") or 0
        self.bar.total = max(job.get("total") or 0, succeeded + failed)
        self.bar.n = succeeded + failed
        self.bar.set_postfix(succeeded=succeeded, failed=failed, refresh=False)
        self.bar.refresh()

    def close(self) -> None:
        self.bar.close()


def follow_job(api: ApiClient, job: dict) -> dict:
    """Show the job's progress until it ends: its event stream, else polling."""
    progress = JobProgress(job)
    try:
        if job.get("status") not in JOB_DONE:
            job = _follow_events(api, job, progress)
        while job.get("status") not in JOB_DONE:
            time.sleep(POLL_INTERVAL)
            job = api.request("GET", f"/jobs/{seg(job['id'])}")
            progress.update(job)
    except KeyboardInterrupt:
        progress.close()
        fail(f"stopped waiting; job {job['id']} goes on (see `modelhub jobs show {job['id']}`)", 130)
    progress.close()
    return job


def _follow_events(api: ApiClient, job: dict, progress: JobProgress) -> dict:
    try:
        with contextlib.closing(api.events(f"/jobs/{seg(job['id'])}/events")) as events:
            for event in events:
                if isinstance(event, dict):
                    job = {**job, **event}
                    progress.update(job)
                if job.get("status") in JOB_DONE:
                    break
    except (ApiError, GatewayError):
        pass  # the stream broke: the caller falls back to polling
    return job


def job_summary(job: dict) -> str:
    return f"job {job['id']} {job.get('status')}: {job.get('succeeded', 0)} succeeded, {job.get('failed', 0)} failed"


def render_job_result(api: ApiClient, job: dict) -> None:
    click.echo(job_summary(job))
    if job.get("failed"):
        failures = _items(api.request("GET", f"/jobs/{seg(job['id'])}/failures"))
        for failure in failures[:MAX_FAILURES_SHOWN]:
            click.echo(f"  sample {failure.get('sample_id')}: {cell(failure.get('error'))}")
        if len(failures) > MAX_FAILURES_SHOWN:
            click.echo(f"  ... and {len(failures) - MAX_FAILURES_SHOWN} more "
                       f"(see `modelhub jobs failures {job['id']}`)")


def finish_job(api: ApiClient, out: Output, job: dict, wait: bool) -> None:
    """Print a submitted job, or follow it to the end; exit 2 unless every sample succeeded."""
    if not wait:
        out.emit(job, lambda j: click.echo(f"job {j['id']} {j.get('status', 'submitted')} "
                                           f"(dataset {j.get('dataset')}, deployment {j.get('deployment')})"))
        return
    Output.note(f"job {job['id']} submitted")
    job = follow_job(api, job)
    out.emit(job, lambda j: render_job_result(api, j))
    if out.as_json:
        Output.note(job_summary(job))
    if job.get("status") != "completed" or job.get("failed"):
        click.get_current_context().exit(2)


@click.command("run")
@api_command
@click.argument("dataset")
@click.option("--deployment", required=True, help="A running deployment.")
@pairs_option("--output", "outputs", metavar="MODEL_OUTPUT=FIELD", required=True,
              help="Store a model output in a sample field (repeatable).")
@pairs_option("--input", "inputs", metavar="MODEL_INPUT=FIELD",
              help="Feed a sample field to a model input (default: `local` inputs read the filepath).")
@click.option("--wait/--no-wait", default=True, show_default=True, help="Follow the job until it ends.")
def run(api: ApiClient, out: Output, dataset: str, deployment: str, outputs: dict, inputs: dict,
        wait: bool) -> None:
    """Run a deployment over every sample of DATASET.

    With --wait, exits 0 only when every sample succeeded, 2 otherwise.
    """
    body = {"deployment": deployment, "outputs": outputs, **({"inputs": inputs} if inputs else {})}
    finish_job(api, out, api.request("POST", f"/datasets/{seg(dataset)}/jobs", json=body), wait)


@jobs.command("show")
@api_command
@click.argument("job_id", metavar="ID")
def jobs_show(api: ApiClient, out: Output, job_id: str) -> None:
    """Show a job."""
    out.emit(api.request("GET", f"/jobs/{seg(job_id)}"), record_renderer(*JOB_KEYS))


@jobs.command("list")
@api_command
@click.argument("dataset")
def jobs_list(api: ApiClient, out: Output, dataset: str) -> None:
    """List a dataset's jobs, newest first."""
    out.emit(api.request("GET", f"/datasets/{seg(dataset)}/jobs"), lambda page: echo_table(
        ["ID", "STATUS", "DEPLOYMENT", "SUCCEEDED", "FAILED", "TOTAL", "CREATED_AT"],
        ([j.get("id"), j.get("status"), j.get("deployment"), j.get("succeeded"), j.get("failed"), j.get("total"),
          j.get("created_at")] for j in _items(page)), empty="no jobs"))


@jobs.command("failures")
@api_command
@click.argument("job_id", metavar="ID")
def jobs_failures(api: ApiClient, out: Output, job_id: str) -> None:
    """List the samples a job failed on, with their errors."""
    out.emit(api.request("GET", f"/jobs/{seg(job_id)}/failures"), lambda page: echo_table(
        ["SAMPLE", "ERROR"], ([f.get("sample_id"), f.get("error")] for f in _items(page)), empty="no failures"))


@jobs.command("trace")
@api_command
@click.argument("job_id", metavar="ID")
@click.option("--telemetry-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where the stack writes spans (default DIR/telemetry).")
def jobs_trace(api: ApiClient, out: Output, job_id: str, telemetry_dir: Path | None) -> None:
    """Print the job's trace: its spans as a tree, with start offsets and durations (--json: the spans)."""
    api.request("GET", f"/jobs/{seg(job_id)}")  # the job exists and you may see it
    spans = trace.job_spans(trace.read_spans(telemetry_dir or data_dir() / "telemetry"), job_id)
    if not spans and not out.as_json:
        fail(f"no spans of job {job_id} under {telemetry_dir or data_dir() / 'telemetry'} (yet: spans are "
             "written every few seconds; with an OTLP exporter they are in your tracing backend)")
    out.emit(spans, lambda s: click.echo("\n".join(trace.render_tree(s))))


@jobs.command("cancel")
@api_command
@click.argument("job_id", metavar="ID")
def jobs_cancel(api: ApiClient, out: Output, job_id: str) -> None:
    """Cancel a job."""
    result = api.request("POST", f"/jobs/{seg(job_id)}/cancel")
    out.emit(result if result is not None else {"id": job_id},
             lambda _: click.echo(f"cancellation of job {job_id} requested"))


@jobs.command("retry")
@api_command
@click.argument("job_id", metavar="ID")
@click.option("--wait/--no-wait", default=False, show_default=True, help="Follow the job until it ends.")
def jobs_retry(api: ApiClient, out: Output, job_id: str, wait: bool) -> None:
    """Run a job again on its failed samples only."""
    job = api.request("POST", f"/jobs/{seg(job_id)}/retry")
    if not (isinstance(job, dict) and "id" in job):
        job = api.request("GET", f"/jobs/{seg(job_id)}")
    finish_job(api, out, job, wait)


# --------------------------------------------------------------------------- users

users = api_group("users", "Create, list and off-board users (admin) and show who you are.")


@users.command("create")
@api_command
@click.argument("username")
def users_create(api: ApiClient, out: Output, username: str) -> None:
    """Create a user (admin only) and print its token."""
    out.emit(api.request("POST", "/users", json={"username": username}), record_renderer("username", "token"))


@users.command("list")
@api_command
def users_list(api: ApiClient, out: Output) -> None:
    """List every user, disabled ones included (admin only)."""
    out.emit(api.request("GET", "/users"), lambda page: echo_table(
        ["USERNAME", "ADMIN", "DISABLED", "CREATED_AT"],
        ([u["username"], u["is_admin"], u["disabled"], u.get("created_at")] for u in _items(page))))


@users.command("delete")
@api_command
@click.argument("username")
def users_delete(api: ApiClient, out: Output, username: str) -> None:
    """Off-board a user (admin only): their tokens stop working at once; the name stays reserved
    and what they own stays."""
    api.request("DELETE", f"/users/{seg(username)}")
    out.emit({"username": username, "disabled": True}, lambda _: click.echo(f"disabled user {username}"))


@users.command("me")
@api_command
def users_me(api: ApiClient, out: Output) -> None:
    """Show the user the token belongs to."""
    out.emit(api.request("GET", "/users/me"), record_renderer("username"))


COMMANDS: list[click.Command] = [models, deployments, datasets, run, jobs, users]
