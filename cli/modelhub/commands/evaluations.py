"""`modelhub datasets evaluate|evaluations|evaluation|delete-evaluation`: score a prediction field
against a ground-truth field, and list, show and delete the results. The commands belong to the
`datasets` group (`modelhub.commands.all_commands` adds them there)."""

from __future__ import annotations

import re

import click

from modelhub.api import ApiClient
from modelhub.commands import complete
from modelhub.commands.base import api_command, confirm_delete, yes_option
from modelhub.render import Output, echo_table, items

NOT_IN_NAMES = re.compile(r"[^A-Za-z0-9_.-]")


def default_name(prediction: str, ground_truth: str) -> str:
    """`<prediction>-vs-<ground truth>`, made a valid name (1–64 letters, digits, '-', '_', '.')."""
    return NOT_IN_NAMES.sub("_", f"{prediction}-vs-{ground_truth}")[:64]


@click.command("evaluate")
@api_command
@click.argument("name", shell_complete=complete.datasets)
@click.option("--prediction", required=True, metavar="FIELD", help="The field holding the predictions.")
@click.option("--ground-truth", required=True, metavar="FIELD", help="The field holding the ground truth.")
@click.option("--name", "evaluation", default=None, help="The evaluation's name (default: PREDICTION-vs-GROUND_TRUTH).")
@click.option(
    "--iou", type=click.FloatRange(0, 1, min_open=True), default=None, help="Detections: the IoU of a match (0.5)."
)
def evaluate(
    api: ApiClient,
    out: Output,
    name: str,
    prediction: str,
    ground_truth: str,
    evaluation: str | None,
    iou: float | None,
) -> None:
    """Evaluate field --prediction against field --ground-truth over dataset NAME's samples: prints
    the per-label scores and, for labels, the confusion matrix."""
    result = api.evaluate(name, evaluation or default_name(prediction, ground_truth), prediction, ground_truth, iou)
    out.emit(result, render_evaluation)


@click.command("evaluations")
@api_command
@click.argument("name", shell_complete=complete.datasets)
def evaluations_list(api: ApiClient, out: Output, name: str) -> None:
    """List dataset NAME's evaluations, newest first."""
    out.emit(
        api.list_evaluations(name),
        lambda page: echo_table(
            [
                "NAME",
                "TYPE",
                "PREDICTION",
                "GROUND_TRUTH",
                "SAMPLES",
                "SCORE",
                "WRITTEN_BY",
                "CREATED_BY",
                "CREATED_AT",
            ],
            (
                [e["name"], e["type"], e["prediction"], e["ground_truth"], e["samples"], headline(e), writer(e)]
                + [e["created_by"], e["created_at"]]
                for e in items(page)
            ),
            empty="no evaluations",
        ),
    )


@click.command("evaluation")
@api_command
@click.argument("name", shell_complete=complete.datasets)
@click.argument("evaluation")
def evaluation_show(api: ApiClient, out: Output, name: str, evaluation: str) -> None:
    """Show one evaluation of dataset NAME: scores per label and confusion matrix."""
    out.emit(api.get_evaluation(name, evaluation), render_evaluation)


@click.command("delete-evaluation")
@api_command
@click.argument("name", shell_complete=complete.datasets)
@click.argument("evaluation")
@yes_option
def evaluation_delete(api: ApiClient, out: Output, name: str, evaluation: str, yes: bool) -> None:
    """Delete an evaluation (its creator, the dataset's owner or the admin)."""
    confirm_delete(f"evaluation {evaluation} of dataset {name}", yes)
    api.delete_evaluation(name, evaluation)
    out.emit({"name": evaluation, "deleted": True}, lambda _: click.echo(f"deleted evaluation {evaluation}"))


COMMANDS = [evaluate, evaluations_list, evaluation_show, evaluation_delete]


def headline(evaluation: dict) -> str:
    if evaluation["type"] == "classification":
        return f"accuracy {_num(evaluation.get('accuracy'))}"
    return f"mAP@{evaluation.get('iou')} {_num(evaluation.get('map'))}"


def writer(evaluation: dict) -> str:
    lineage = evaluation.get("lineage")
    return f"{lineage['model']} v{lineage['version']}" if lineage else "-"


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def render_evaluation(e: dict) -> None:
    """The headline, the per-label table and, for labels, the confusion matrix."""
    click.echo(
        f"evaluation {e['name']} of dataset {e['dataset']}: {e['prediction']} against {e['ground_truth']} ({e['type']})"
    )
    click.echo(f"{headline(e)} over {e['samples']} samples ({e['missing']} without one of the fields)")
    if e.get("lineage"):
        click.echo(f"predictions written by {writer(e)} on {e['lineage']['samples']} of them")
    click.echo()
    scores = e.get("per_label") or {}
    if e["type"] == "classification":
        rows = (
            [label, _num(s["precision"]), _num(s["recall"]), _num(s["f1"]), s["support"]] for label, s in scores.items()
        )
        echo_table(["LABEL", "PRECISION", "RECALL", "F1", "SUPPORT"], rows, empty="no labels")
        render_matrix(e["confusion"])
    else:
        rows = (
            [label, _num(s["ap"]), _num(s["precision"]), _num(s["recall"]), s["support"]] for label, s in scores.items()
        )
        echo_table(["LABEL", "AP", "PRECISION", "RECALL", "SUPPORT"], rows, empty="no labels")


def render_matrix(confusion: dict) -> None:
    """Rows are the ground truth, columns the prediction; counts right-aligned."""
    labels, matrix = confusion["labels"], confusion["matrix"]
    if not labels:
        return
    click.echo()
    click.echo("confusion matrix (rows: ground truth, columns: prediction)")
    head = max(len("truth \\ predicted"), *(len(label) for label in labels))
    widths = [max(len(label), *(len(str(row[j])) for row in matrix)) for j, label in enumerate(labels)]
    click.echo(
        "  ".join(
            ["truth \\ predicted".ljust(head), *(label.rjust(w) for label, w in zip(labels, widths, strict=True))]
        )
    )
    for label, row in zip(labels, matrix, strict=True):
        click.echo("  ".join([label.ljust(head), *(str(n).rjust(w) for n, w in zip(row, widths, strict=True))]))
