"""What every API command shares: `--url` / `--json`, turning API errors into a message and an exit
code, and KEY=VALUE / JSON option parsing.

`api_command` gives a command `--url` (env MODELHUB_URL) and `--json`, builds the `ApiClient`, calls
the command as fn(api, out, **params), and prints `ApiError` / `GatewayError` as one line on stderr
with exit code 1. A command group made by `api_group` takes `--url` too; a `--url` given on the
command wins over the group's, which wins over the environment.
"""

from __future__ import annotations

import contextlib
import functools
import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import click
import httpx
from click.core import ParameterSource

from modelhub.api import ApiClient, ApiError, GatewayError
from modelhub.render import Output
from modelhub.settings import TOKEN_ENV, URL_ENV, CliSettings

POLL_INTERVAL = 0.5  # seconds between polls (deployments, jobs)
URL_HELP = "Gateway URL (default: the running stack's URL, or http://127.0.0.1:8000)."
URL_META = "modelhub.url"


def default_transport() -> httpx.BaseTransport | None:
    """The HTTP transport the commands' ApiClient uses; None means httpx's real network transport."""
    return None


# Tests replace this with e.g. `lambda: httpx.MockTransport(handler)`.
TRANSPORT_FACTORY: Callable[[], httpx.BaseTransport | None] = default_transport


def fail(message: str, code: int = 1) -> None:
    click.echo(message, err=True)
    click.get_current_context().exit(code)


def url_option() -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    return click.option("--url", default=None, envvar=URL_ENV, show_envvar=True, help=URL_HELP)


def _given_on_command_line(ctx: click.Context, name: str) -> bool:
    return ctx.get_parameter_source(name) is ParameterSource.COMMANDLINE


def command_url(url: str | None) -> str | None:
    """--url on the command, else on its group, else MODELHUB_URL (None: CliSettings decides)."""
    ctx = click.get_current_context()
    if _given_on_command_line(ctx, "url"):
        return url
    return ctx.meta.get(URL_META) or url


def api_group(name: str, help: str) -> click.Group:
    """A command group with a `--url` option that its commands inherit."""

    @click.group(name=name, help=f"{help}\n\nThe token comes from ${TOKEN_ENV}, else DIR/admin-token.")
    @url_option()
    @click.pass_context
    def group(ctx: click.Context, url: str | None) -> None:
        if url and _given_on_command_line(ctx, "url"):
            ctx.meta[URL_META] = url

    return group


def connect(url: str | None) -> ApiClient:
    return ApiClient(command_url(url), transport=TRANSPORT_FACTORY())


def api_command(fn: Callable[..., None]) -> Callable[..., None]:
    """Give a command `--url` and `--json`, call it as fn(api, out, **params), and report API errors."""

    @click.option("--json", "as_json", is_flag=True, help="Print the raw JSON response.")
    @url_option()
    @functools.wraps(fn)
    def wrapper(url: str | None, as_json: bool, **params: Any) -> None:
        api = connect(url)
        try:
            with api:
                fn(api, Output(as_json), **params)
        except ApiError as exc:
            fail(str(exc) + auth_hint(api, exc))
        except GatewayError as exc:
            fail(str(exc))

    # list --url/--json after the command's own options in --help; click's option decorators keep
    # them on the function, an attribute its types do not declare
    params = wrapper.__click_params__  # pyright: ignore[reportAttributeAccessIssue]
    params[:] = params[-2:] + params[:-2]
    return wrapper


def auth_hint(api: ApiClient, exc: ApiError) -> str:
    if exc.status == 401 and not api.token:
        return f"\n(no token found: set {TOKEN_ENV} or start the stack so that {CliSettings().token_file()} exists)"
    return ""


def parse_pairs(values: Iterable[str], metavar: str) -> dict[str, str]:
    pairs = {}
    for value in values:
        key, sep, rest = value.partition("=")
        if not sep or not key.strip() or not rest.strip():
            raise click.BadParameter(f"expected {metavar}, got {value!r}")
        pairs[key.strip()] = rest.strip()
    return pairs


def pairs_option(*decls: str, metavar: str, **kw: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """A repeatable KEY=VALUE option collected into a dict."""
    return click.option(
        *decls, multiple=True, metavar=metavar, callback=lambda _ctx, _param, values: parse_pairs(values, metavar), **kw
    )


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


def json_option(_ctx: click.Context, _param: click.Parameter, value: str | None) -> Any:
    """A click callback: the option's value read by `load_json`."""
    return load_json(value)


def json_list_pairs(_ctx: click.Context, _param: click.Parameter, values: Iterable[str]) -> dict[str, list]:
    """A click callback: NAME=JSON_LIST options into {name: [values]} (a scalar becomes a list of one)."""
    result = {}
    for key, text in parse_pairs(values, "NAME=JSON_LIST").items():
        try:
            value = json.loads(text)
        except ValueError as exc:
            raise click.BadParameter(f"{key}: the value is not valid JSON ({exc}); e.g. {key}='[\"a\"]'") from exc
        result[key] = value if isinstance(value, list) else [value]
    return result
