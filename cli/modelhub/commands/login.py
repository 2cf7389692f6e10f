"""`modelhub login URL`: remember a gateway and its token as a named profile (modelhub.profiles),
so that the API commands need neither --url nor MODELHUB_TOKEN for it."""

from __future__ import annotations

import sys

import click

from modelhub import exitcodes, profiles
from modelhub.api import ApiClient, ApiError, GatewayError
from modelhub.commands import base
from modelhub.commands.base import current_settings, fail
from modelhub.settings import API_PREFIX


def read_token() -> str:
    """The token: asked for (hidden) on a terminal, else the first line of standard input, so that
    it never shows in the shell's history or the process list."""
    if base.stdin_is_terminal():
        return click.prompt("Token", hide_input=True, err=True).strip()
    return sys.stdin.readline().strip()


def check_token(url: str, token: str) -> str:
    """The user the token belongs to (GET /users/me); exits with the API error's code otherwise."""
    try:
        with ApiClient(url, token, transport=base.TRANSPORT_FACTORY()) as api:
            return str(api.me().get("username"))
    except ApiError as exc:
        fail(f"{exc}; nothing stored", exitcodes.exit_code_for_status(exc.status), exc.status)
    except GatewayError as exc:
        fail(f"{exc}; nothing stored", exitcodes.STACK_DOWN)
    return ""


@click.command("login")
@click.argument("url")
@click.option(
    "--profile",
    "profile_name",
    default=None,
    help="Store under this name (default: `modelhub --profile`, else MODELHUB_PROFILE, else `default`).",
)
@click.option("--no-verify", is_flag=True, help="Store without asking the gateway whether the token works.")
def login(url: str, profile_name: str | None, no_verify: bool) -> None:
    """Store URL and a token (asked for, or read from stdin) as a profile in the config file
    ($XDG_CONFIG_HOME/modelhub/config.toml, mode 0600). A command uses its profile when neither a
    flag nor the environment gives URL or token."""
    settings = current_settings()
    name = profile_name or settings.profile
    url = url.rstrip("/").removesuffix(API_PREFIX)
    token = read_token()
    if not token:
        raise click.UsageError("no token given")
    who = "" if no_verify else f" as {check_token(url, token)}"
    try:
        profiles.save(settings.config_path(), name, url, token)
    except (OSError, ValueError) as exc:
        fail(f"cannot store the profile: {exc}")
    click.echo(f"logged in to {url}{who}; profile {name!r} in {settings.config_path()}")
