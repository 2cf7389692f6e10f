"""What every API command shares: `--url` / `--json`, the connection (flag, environment, login
profile), turning API errors into a message and an exit code, confirmation of deletes, and
KEY=VALUE / JSON option parsing.

`api_command` gives a command `--url` (env MODELHUB_URL) and `--json`, builds the `ApiClient`, calls
the command as fn(api, out, **params), and prints `ApiError` / `GatewayError` as one line on stderr
(under --json, one JSON object `{"error", "status"}`) with the exit code modelhub.exitcodes gives its
class. A command group made by `api_group` takes `--url` too; a `--url` given on the command wins
over the group's, which wins over the environment, which wins over the `modelhub login` profile.
"""

from __future__ import annotations

import contextlib
import functools
import json
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import click
import httpx
from click.core import ParameterSource

from modelhub import exitcodes
from modelhub.api import ApiClient, ApiError, GatewayError
from modelhub.render import Output
from modelhub.settings import TOKEN_ENV, URL_ENV, CliSettings

POLL_INTERVAL = 0.5  # seconds between polls (deployments, jobs)
URL_HELP = "Gateway URL (default: the running stack's URL, or http://127.0.0.1:8000)."
URL_META = "modelhub.url"
JSON_META = "modelhub.json"


def default_transport() -> httpx.BaseTransport | None:
    """The HTTP transport the commands' ApiClient uses; None means httpx's real network transport."""
    return None


# Tests replace this with e.g. `lambda: httpx.MockTransport(handler)`.
TRANSPORT_FACTORY: Callable[[], httpx.BaseTransport | None] = default_transport


def fail(message: str, code: int = exitcodes.ERROR, status: int | None = None) -> None:
    """Print the error on stderr (a JSON object `{"error", "status"}` under --json) and exit with `code`."""
    ctx = click.get_current_context()
    if ctx.meta.get(JSON_META):
        click.echo(json.dumps({"error": message, "status": status}), err=True)
    else:
        click.echo(message, err=True)
    ctx.exit(code)


def current_settings() -> CliSettings:
    """CliSettings for the profile `modelhub --profile` (or MODELHUB_PROFILE) chose."""
    ctx = click.get_current_context(silent=True)
    profile = ctx.find_root().params.get("profile") if ctx else None
    return CliSettings(profile=profile) if profile else CliSettings()


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

    @click.group(
        name=name,
        help=f"{help}\n\nThe token comes from ${TOKEN_ENV}, else the `modelhub login` profile, else DIR/admin-token.",
    )
    @url_option()
    @click.pass_context
    def group(ctx: click.Context, url: str | None) -> None:
        if url and _given_on_command_line(ctx, "url"):
            ctx.meta[URL_META] = url

    return group


def connect(url: str | None, timeout: httpx.Timeout | None = None) -> ApiClient:
    """A client of the gateway the flags, the environment or the login profile name (in that order)."""
    settings = current_settings()
    gateway = settings.gateway_url(command_url(url))
    # "" rather than None: no token anywhere means none, not "look again without the profile"
    token = settings.api_token(gateway) or ""
    return ApiClient(gateway, token, transport=TRANSPORT_FACTORY(), timeout=timeout)


def api_command(fn: Callable[..., None]) -> Callable[..., None]:
    """Give a command `--url` and `--json`, call it as fn(api, out, **params), and report API errors."""

    @click.option("--json", "as_json", is_flag=True, help="Print the raw JSON response.")
    @url_option()
    @functools.wraps(fn)
    def wrapper(url: str | None, as_json: bool, **params: Any) -> None:
        click.get_current_context().meta[JSON_META] = as_json
        try:
            api = connect(url)
        except ValueError as exc:  # an unreadable config.toml
            fail(str(exc))
            return
        try:
            with api:
                fn(api, Output(as_json), **params)
        except ApiError as exc:
            fail(str(exc) + auth_hint(api, exc), exitcodes.exit_code_for_status(exc.status), exc.status)
        except GatewayError as exc:
            fail(str(exc), exitcodes.STACK_DOWN)

    # list --url/--json after the command's own options in --help; click's option decorators keep
    # them on the function, an attribute its types do not declare
    params = wrapper.__click_params__  # pyright: ignore[reportAttributeAccessIssue]
    params[:] = params[-2:] + params[:-2]
    return wrapper


def yes_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    """`--yes` / `-y` on a delete: do it without asking."""
    return click.option("--yes", "-y", is_flag=True, help="Do not ask (needed when stdin is not a terminal).")(fn)


def stdin_is_terminal() -> bool:
    return sys.stdin.isatty()


def confirm_delete(what: str, yes: bool) -> None:
    """Go on with deleting `what` when --yes was given or the user says so on a terminal; without a
    terminal to ask on, refuse (a usage error) rather than delete unasked."""
    if yes:
        return
    if not stdin_is_terminal():
        raise click.UsageError(f"refusing to delete {what} without --yes (standard input is not a terminal)")
    if not click.confirm(f"Delete {what}?", default=False, err=True):
        fail(f"{what} not deleted", exitcodes.ERROR)


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
