"""Shell completion of model, deployment and dataset names, asked of the gateway as the user types
(click's own completion: `eval "$(_MODELHUB_COMPLETE=bash_source modelhub)"`, docs/API.md).

A completion runs inside the user's shell on every Tab: it asks with a short timeout, and a gateway
that is down or refuses the token completes nothing rather than printing an error into the prompt.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click
import httpx
from click.core import ParameterSource
from click.shell_completion import CompletionItem

from modelhub.api import ApiClient, ApiError, GatewayError
from modelhub.commands.base import connect
from modelhub.render import items

COMPLETION_TIMEOUT = httpx.Timeout(3.0)


def _url(ctx: click.Context | None) -> str | None:
    """The --url typed on the command or its group (click has parsed them before completing; the
    group's callback, which passes its --url down, has not run)."""
    while ctx is not None:
        if ctx.params.get("url") and ctx.get_parameter_source("url") is ParameterSource.COMMANDLINE:
            return ctx.params["url"]
        ctx = ctx.parent
    return None


def _names(ctx: click.Context, incomplete: str, listing: Callable[[ApiClient], Any]) -> list[CompletionItem]:
    try:
        # connect() reads --profile and --url off the current context, which completion does not push
        with ctx.scope(cleanup=False), connect(_url(ctx), timeout=COMPLETION_TIMEOUT) as api:
            names = [row.get("name") for row in items(listing(api)) if isinstance(row, dict)]
    except (ApiError, GatewayError, ValueError):
        return []
    return [
        CompletionItem(name) for name in sorted(n for n in names if isinstance(n, str) and n.startswith(incomplete))
    ]


def models(ctx: click.Context, _param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    return _names(ctx, incomplete, ApiClient.list_models)


def deployments(ctx: click.Context, _param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    return _names(ctx, incomplete, ApiClient.list_deployments)


def datasets(ctx: click.Context, _param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    return _names(ctx, incomplete, ApiClient.list_datasets)
