"""`modelhub models ...`: create, list, show, update and delete models; upload and delete versions;
deploy a version (and wait for it to run); show and change sharing; `models alias ...` (aliases.py)."""

from __future__ import annotations

import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import click

from modelhub.api import ApiClient, given
from modelhub.commands import base, complete
from modelhub.commands.aliases import alias, version_or_alias
from modelhub.commands.base import (
    api_command,
    api_group,
    confirm_delete,
    fail,
    json_option,
    pairs_option,
    parse_pairs,
    yes_option,
)
from modelhub.render import Output, echo_record, echo_table, human_size

DEPLOYMENT_DONE = frozenset({"running", "failed", "stopping", "stopped"})
MODEL_KEYS = ("name", "description", "tags", "owner", "created_at", "updated_at")

models = api_group("models", "Create, upload, deploy and share models.")


def render_model_list(page: dict) -> None:
    echo_table(
        ["NAME", "OWNER", "LATEST", "TAGS", "DESCRIPTION"],
        (
            [m.get("name"), m.get("owner"), _latest_version(m), m.get("tags"), m.get("description")]
            for m in page.get("items", [])
        ),
        empty="no models",
    )


def _latest_version(model: dict) -> Any:
    versions = [v.get("version") for v in model.get("versions") or []]
    return max(versions) if versions else None


def render_model(model: dict) -> None:
    aliases = ", ".join(f"{a}={v}" for a, v in sorted((model.get("aliases") or {}).items()))
    echo_record(
        {**model, "sharing": sharing_text(model.get("sharing") or {}), "aliases": aliases},
        (*MODEL_KEYS, "sharing", "aliases"),
    )
    click.echo("versions:")
    echo_table(
        ["  VERSION", "FORMAT", "SIZE", "SHA256", "CREATED_AT", "CREATED_BY"],
        (
            [
                f"  {v.get('version')}",
                v.get("format", "python"),
                human_size(v.get("size_bytes")),
                v.get("sha256"),
                v.get("created_at"),
                v.get("created_by"),
            ]
            for v in model.get("versions") or []
        ),
        empty="  (none: upload one with `modelhub models upload`)",
    )


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
    out.emit(
        api.create_model(name, description, list(tags) or None), lambda m: click.echo(f"created model {m['name']}")
    )


@models.command("list")
@api_command
def models_list(api: ApiClient, out: Output) -> None:
    """List the models you may see."""
    out.emit(api.list_models(), render_model_list)


@models.command("show")
@api_command
@click.argument("name", shell_complete=complete.models)
def models_show(api: ApiClient, out: Output, name: str) -> None:
    """Show a model with its versions and sharing."""
    out.emit(api.get_model(name), render_model)


@models.command("update")
@api_command
@click.argument("name", shell_complete=complete.models)
@click.option("--description", default=None, help="New description.")
@click.option("--tag", "tags", multiple=True, help="Replace the tags (repeatable).")
def models_update(api: ApiClient, out: Output, name: str, description: str | None, tags: tuple[str, ...]) -> None:
    """Change a model's description and/or tags."""
    if description is None and not tags:
        raise click.UsageError("nothing to update: pass --description and/or --tag")
    out.emit(api.update_model(name, description, list(tags) or None), render_model)


@models.command("delete")
@api_command
@click.argument("name", shell_complete=complete.models)
@yes_option
def models_delete(api: ApiClient, out: Output, name: str, yes: bool) -> None:
    """Delete a model and its versions."""
    confirm_delete(f"model {name} and all its versions", yes)
    api.delete_model(name)
    out.emit({"name": name, "deleted": True}, lambda _: click.echo(f"deleted model {name}"))


@models.command("delete-version")
@api_command
@click.argument("name", shell_complete=complete.models)
@click.argument("version", type=click.IntRange(min=1))
@yes_option
def models_delete_version(api: ApiClient, out: Output, name: str, version: int, yes: bool) -> None:
    """Delete one version and its package (refused while a deployment uses it)."""
    confirm_delete(f"version {version} of model {name}", yes)
    api.delete_version(name, version)
    out.emit(
        {"name": name, "version": version, "deleted": True}, lambda _: click.echo(f"deleted {name} version {version}")
    )


@models.command("upload")
@api_command
@click.argument("name", shell_complete=complete.models)
@click.argument("zipfile", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--schema",
    default=None,
    callback=json_option,
    help="The model schema: a path to a JSON file, or inline JSON text. May be left out for an MLflow "
    "model with a signature (the schema is derived from it).",
)
@click.option(
    "--local-input",
    "local_inputs",
    multiple=True,
    metavar="NAME",
    help="Without --schema: an MLflow signature's string input that holds file paths (type local). Repeatable.",
)
@pairs_option(
    "--output-type",
    "output_types",
    metavar="NAME=TYPE",
    help="Without --schema: the type of an MLflow signature's output (else json), e.g. predictions=number. Repeatable.",
)
def models_upload(
    api: ApiClient,
    out: Output,
    name: str,
    zipfile: Path,
    schema: Any,
    local_inputs: tuple[str, ...],
    output_types: dict[str, str],
) -> None:
    """Upload ZIPFILE (the packed model) as a new version of model NAME."""
    out.emit(
        api.upload_version(name, zipfile, schema, local_inputs=local_inputs, output_types=output_types),
        lambda v: (
            click.echo(f"uploaded {name} version {v.get('version')}"),
            echo_record({**v, "size": human_size(v.get("size_bytes"))}, ("format", "sha256", "size", "size_bytes")),
        ),
    )


@models.command("deploy")
@api_command
@click.argument("name", shell_complete=complete.models)
@click.option("--name", "deployment", required=True, help="The deployment name.")
@click.option(
    "--version",
    default=None,
    callback=version_or_alias,
    help="Model version: a number, or @ALIAS (the version the alias points to now; default: the latest).",
)
@click.option("--mini-batch", type=int, default=1, show_default=True, help="Samples per predict call.")
@click.option("--num-replicas", type=int, default=1, show_default=True)
@click.option(
    "--num-gpus",
    type=click.FloatRange(0, 1),
    default=0,
    show_default=True,
    help="GPUs per replica, 0 to 1 (0.5: two replicas share a GPU).",
)
@click.option(
    "--min-replicas",
    type=int,
    default=None,
    help="Autoscaling (with --max-replicas): fewest replicas (default 1); 0 scales to zero when idle.",
)
@click.option(
    "--max-replicas",
    type=int,
    default=None,
    help="Autoscaling: Serve adds replicas up to this many while calls queue, and removes idle ones.",
)
@click.option(
    "--scale-down-delay",
    "scale_down_delay_s",
    type=float,
    default=None,
    help="Autoscaling: seconds idle before a replica goes, the last one too with --min-replicas 0 (default 600).",
)
@click.option("--custom-env", is_flag=True, help="Build the replicas' environment from the package.")
@click.option(
    "--batch-wait-ms",
    type=float,
    default=None,
    help="Online predict: how long a batch that is not full may wait for more samples while "
    "the deployment is busy (default 2).",
)
@click.option(
    "--max-in-flight",
    type=int,
    default=None,
    help="Online predict: samples taken at once; past it, 429 with Retry-After (default 256).",
)
@click.option("--model-type", default="inference", show_default=True)
@click.option("--wait/--no-wait", default=True, show_default=True, help="Wait until the deployment runs.")
@click.option("--timeout", type=float, default=600, show_default=True, help="Seconds to wait.")
def models_deploy(
    api: ApiClient,
    out: Output,
    name: str,
    deployment: str,
    version: int | str | None,
    mini_batch: int,
    num_replicas: int,
    num_gpus: float,
    min_replicas: int | None,
    max_replicas: int | None,
    scale_down_delay_s: float | None,
    custom_env: bool,
    batch_wait_ms: float | None,
    max_in_flight: int | None,
    model_type: str,
    wait: bool,
    timeout: float,
) -> None:
    """Deploy model NAME as deployment --name."""
    body = {
        "name": deployment,
        "model_type": model_type,
        "mini_batch": mini_batch,
        "num_replicas": num_replicas,
        "num_gpus": num_gpus,
        "custom_env": custom_env,
        **given(
            version=version,
            batch_wait_ms=batch_wait_ms,
            max_in_flight=max_in_flight,
            min_replicas=min_replicas,
            max_replicas=max_replicas,
            scale_down_delay_s=scale_down_delay_s,
        ),
    }
    dep = api.deploy(name, body)
    if not wait:
        out.emit(dep, lambda d: click.echo(f"deployment {d['name']} created (status: {d.get('status')})"))
        return
    dep = wait_for_deployment(api, dep, timeout)
    out.emit(
        dep,
        lambda d: click.echo(
            f"deployment {d['name']} is running ({d.get('ready_replicas')}/{d.get('num_replicas')} replicas ready)"
        ),
    )
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
        time.sleep(base.POLL_INTERVAL)
        dep = api.get_deployment(dep["name"])


def _user_access(values: Iterable[str]) -> dict[str, str]:
    access = parse_pairs(values, "USER=run|edit|none")
    bad = {user: level for user, level in access.items() if level not in ("none", "run", "edit")}
    if bad:
        raise click.BadParameter(f"access must be run, edit or none, got {bad}")
    return access


@models.command("share")
@api_command
@click.argument("name", shell_complete=complete.models)
@click.option(
    "--everyone",
    type=click.Choice(["none", "run", "edit"]),
    default=None,
    help="What every user may do with the model.",
)
@click.option(
    "--user",
    "users",
    multiple=True,
    metavar="USER=run|edit|none",
    callback=lambda _ctx, _param, values: _user_access(values),
    help="Grant a user run/edit (none removes them); repeatable.",
)
def models_share(api: ApiClient, out: Output, name: str, everyone: str | None, users: dict[str, str]) -> None:
    """Show or change who may run/edit model NAME.

    Changes are merged into the current sharing; with no options it is only shown.
    """
    current = api.get_model(name).get("sharing") or {}
    if everyone is None and not users:
        out.emit(current, render_sharing)
        return
    merged = {**(current.get("users") or {}), **users}
    sharing = {
        "everyone": everyone or current.get("everyone") or "none",
        "users": {user: level for user, level in merged.items() if level != "none"},
    }
    out.emit(api.set_sharing(name, sharing), render_sharing)


models.add_command(alias)
