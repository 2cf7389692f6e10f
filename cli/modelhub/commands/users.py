"""`modelhub users ...`: create, list and off-board users (admin), and show who you are."""

from __future__ import annotations

import click

from modelhub.api import ApiClient
from modelhub.commands.base import api_command, api_group, confirm_delete, yes_option
from modelhub.render import Output, echo_table, items, record_renderer

users = api_group("users", "Create, list and off-board users (admin) and show who you are.")


@users.command("create")
@api_command
@click.argument("username")
def users_create(api: ApiClient, out: Output, username: str) -> None:
    """Create a user (admin only) and print its token."""
    out.emit(api.create_user(username), record_renderer("username", "token"))


@users.command("list")
@api_command
def users_list(api: ApiClient, out: Output) -> None:
    """List every user, disabled ones included (admin only)."""
    out.emit(
        api.list_users(),
        lambda page: echo_table(
            ["USERNAME", "ADMIN", "DISABLED", "CREATED_AT"],
            ([u["username"], u["is_admin"], u["disabled"], u.get("created_at")] for u in items(page)),
        ),
    )


@users.command("delete")
@api_command
@click.argument("username")
@yes_option
def users_delete(api: ApiClient, out: Output, username: str, yes: bool) -> None:
    """Off-board a user (admin only): their tokens stop working at once; the name stays reserved
    and what they own stays."""
    confirm_delete(f"user {username} (their tokens stop working)", yes)
    api.delete_user(username)
    out.emit({"username": username, "disabled": True}, lambda _: click.echo(f"disabled user {username}"))


@users.command("me")
@api_command
def users_me(api: ApiClient, out: Output) -> None:
    """Show the user the token belongs to."""
    out.emit(api.me(), record_renderer("username"))
