"""The `modelhub` commands, one module per resource; `modelhub.cli` adds them to the group.

stack.py        up, down, status (the embedded stack; the plan is modelhub.stack / modelhub.plan)
models.py       models create/list/show/update/delete/upload/delete-version/deploy/share
aliases.py      models alias set/rm/history
deployments.py  deployments list/show/delete/predict
datasets.py     datasets create/list/show/samples/add/delete/delete-samples/fields/remove-field/export
evaluations.py  datasets evaluate/evaluations/evaluation/delete-evaluation
jobs.py         run, jobs show/list/follow/failures/trace/cancel/retry
users.py        users create/list/delete/me
login.py        login URL (a named profile of URL and token)
complete.py     shell completion of model, deployment and dataset names
base.py         what the API commands share (--url, --json, errors, option parsing)
"""

from __future__ import annotations

import click


def all_commands() -> list[click.Command]:
    """Every top-level command, in the order `modelhub --help` lists them."""
    from modelhub.commands import datasets, deployments, evaluations, jobs, login, models, stack, users

    for command in evaluations.COMMANDS:  # `modelhub datasets evaluate ...`
        datasets.datasets.add_command(command)
    return [
        *stack.COMMANDS,
        login.login,
        models.models,
        deployments.deployments,
        datasets.datasets,
        jobs.run,
        jobs.jobs,
        users.users,
    ]
