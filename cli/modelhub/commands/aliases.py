"""`modelhub models alias ...`: point a model's alias at a version, remove it, show its history.

A deploy names an alias as `modelhub models deploy NAME --name D --version @ALIAS`.
"""

from __future__ import annotations

import click

from modelhub.api import ApiClient
from modelhub.commands import complete
from modelhub.commands.base import api_command, confirm_delete, yes_option
from modelhub.render import Output, echo_table, items


@click.group("alias")
def alias() -> None:
    """Point a model's aliases (prod, staging, ...) at versions; see each one's history."""


@alias.command("set")
@api_command
@click.argument("name", shell_complete=complete.models)
@click.argument("alias_name", metavar="ALIAS")
@click.argument("version", type=click.IntRange(min=1))
def alias_set(api: ApiClient, out: Output, name: str, alias_name: str, version: int) -> None:
    """Point ALIAS of model NAME at VERSION (creating or moving it; needs edit)."""
    out.emit(
        api.set_alias(name, alias_name, version),
        lambda a: click.echo(f"{name}@{a.get('alias')} -> version {a.get('version')}"),
    )


@alias.command("rm")
@api_command
@click.argument("name", shell_complete=complete.models)
@click.argument("alias_name", metavar="ALIAS")
@yes_option
def alias_rm(api: ApiClient, out: Output, name: str, alias_name: str, yes: bool) -> None:
    """Remove ALIAS of model NAME (its history keeps the removal; needs edit)."""
    confirm_delete(f"alias {alias_name} of model {name}", yes)
    api.remove_alias(name, alias_name)
    out.emit({"name": name, "alias": alias_name, "deleted": True}, lambda _: click.echo(f"removed {name}@{alias_name}"))


@alias.command("history")
@api_command
@click.argument("name", shell_complete=complete.models)
@click.argument("alias_name", metavar="ALIAS")
def alias_history(api: ApiClient, out: Output, name: str, alias_name: str) -> None:
    """Every change of ALIAS of model NAME, oldest first (a removal shows as `removed`)."""
    out.emit(
        api.alias_history(name, alias_name),
        lambda page: echo_table(
            ["VERSION", "SET_BY", "SET_AT"],
            (
                ["removed" if c.get("version") is None else c.get("version"), c.get("set_by"), c.get("set_at")]
                for c in items(page)
            ),
            empty="no changes",
        ),
    )


def version_or_alias(_ctx: click.Context, _param: click.Parameter, value: str | None) -> int | str | None:
    """`--version` of a deploy: a number (1, 2, ...) or `@alias`, sent as the API takes it."""
    if value is None or value.startswith("@"):
        return value
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise click.BadParameter(f"{value!r} is neither a version number (1, 2, ...) nor @ALIAS")
    return number
