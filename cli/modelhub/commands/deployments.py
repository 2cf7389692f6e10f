"""`modelhub deployments ...`: list, show, stop and query (online predict) deployments."""

from __future__ import annotations

from typing import Any

import click

from modelhub.api import ApiClient
from modelhub.commands import complete
from modelhub.commands.base import (
    api_command,
    api_group,
    confirm_delete,
    json_list_pairs,
    json_option,
    yes_option,
)
from modelhub.render import Output, cell, echo_record, echo_table, items

DEPLOYMENT_KEYS = (
    "name",
    "model",
    "version",
    "model_type",
    "mini_batch",
    "num_replicas",
    "num_gpus",
    "min_replicas",
    "max_replicas",
    "scale_down_delay_s",
    "custom_env",
    "environment",
    "batch_wait_ms",
    "max_in_flight",
    "status",
    "ready_replicas",
    "error",
    "created_by",
    "created_at",
    "updated_at",
)

deployments = api_group("deployments", "List, inspect, stop and query deployments.")


def replicas(d: dict) -> str:
    """Ready of the target ("1/2"), or "scaled to zero" for a running min_replicas-0 deployment
    that has none (idle; a predict or a job starts one)."""
    ready = d.get("ready_replicas", 0)
    if d.get("status") == "running" and d.get("max_replicas") and d.get("min_replicas") == 0 and not ready:
        return "scaled to zero"
    return f"{ready}/{d.get('num_replicas')}"


@deployments.command("list")
@api_command
def deployments_list(api: ApiClient, out: Output) -> None:
    """List deployments."""
    out.emit(
        api.list_deployments(),
        lambda page: echo_table(
            ["NAME", "MODEL", "VERSION", "STATUS", "REPLICAS", "GPUS", "ERROR"],
            (
                [
                    d.get("name"),
                    d.get("model"),
                    d.get("version"),
                    d.get("status"),
                    replicas(d),
                    d.get("num_gpus"),
                    d.get("error"),
                ]
                for d in items(page)
            ),
            empty="no deployments",
        ),
    )


@deployments.command("show")
@api_command
@click.argument("name", shell_complete=complete.deployments)
def deployments_show(api: ApiClient, out: Output, name: str) -> None:
    """Show a deployment (with custom_env: the route its environment took, and why)."""
    out.emit(
        api.get_deployment(name), lambda d: echo_record({**d, "environment": environment_line(d)}, DEPLOYMENT_KEYS)
    )


def environment_line(deployment: dict) -> str | None:
    """`pip from environment.yml: roman==5.2 (skipped: python, pip) - <why>`: one readable line."""
    env = deployment.get("environment")
    if not isinstance(env, dict):
        return None
    line = f"{env.get('route')} from {env.get('file')}: {cell(env.get('packages'))}"
    if env.get("skipped"):
        line += f" (skipped: {cell(env['skipped'])})"
    return f"{line} - {env['reason']}" if env.get("reason") else line


@deployments.command("delete")
@api_command
@click.argument("name", shell_complete=complete.deployments)
@yes_option
def deployments_delete(api: ApiClient, out: Output, name: str, yes: bool) -> None:
    """Stop and remove a deployment."""
    confirm_delete(f"deployment {name}", yes)
    result = api.delete_deployment(name)
    out.emit(result if result is not None else {"name": name}, lambda _: click.echo(f"deployment {name} is stopping"))


@deployments.command("predict")
@api_command
@click.argument("name", shell_complete=complete.deployments)
@click.option(
    "--input",
    "inputs",
    multiple=True,
    metavar="NAME=JSON_LIST",
    callback=json_list_pairs,
    help="""A model input and its values as a JSON list, e.g. image_paths='["/a.png"]' (repeatable).""",
)
@click.option(
    "--inputs-json",
    default=None,
    callback=json_option,
    help="All inputs as a JSON object {name: [values]} (inline or a file path).",
)
@click.option(
    "--timeout",
    type=float,
    default=None,
    help="Seconds before the server gives up and answers 504 (default 60, at most 300).",
)
def deployments_predict(
    api: ApiClient, out: Output, name: str, inputs: dict, inputs_json: Any, timeout: float | None
) -> None:
    """Run online inference on a running deployment."""
    if inputs_json is not None and not isinstance(inputs_json, dict):
        raise click.BadParameter("must be a JSON object {input name: [values]}", param_hint="--inputs-json")
    payload = {**(inputs_json or {}), **inputs}
    if not payload:
        raise click.UsageError("give the model inputs with --input NAME=JSON_LIST or --inputs-json")
    out.emit(api.predict(name, payload, timeout), render_outputs)


def render_outputs(result: dict) -> None:
    for output, values in (result.get("outputs") or {}).items():
        click.echo(f"{output}:")
        for value in values if isinstance(values, list) else [values]:
            click.echo("  " + cell(value))
