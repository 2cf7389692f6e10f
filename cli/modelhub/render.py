"""How the CLI prints: aligned tables, `key: value` records, sizes, a job's progress bar, and
`--json` (the raw response instead of the readable form).

Results go to standard output; progress and notes to standard error, so that `--json` output can be
piped. Nothing here talks to the gateway.
"""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Callable, Iterable
from typing import Any

import click
from tqdm import tqdm


def terminal_width() -> int:
    return shutil.get_terminal_size((120, 24)).columns


def truncate(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(width - 1, 0)] + "…"


def cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return ", ".join(value) or "-"
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"), default=str)
    return str(value).replace("\n", " ")


def items(page: Any) -> list:
    """The rows of a list response: its `items`, or the list itself."""
    return page.get("items", []) if isinstance(page, dict) else list(page or [])


def echo_table(headers: list[str], rows: Iterable[list[Any]], empty: str = "(none)") -> None:
    """Aligned columns; each line cut to the terminal width (so the last column is truncated)."""
    cells = [headers] + [[cell(value) for value in row] for row in rows]
    if len(cells) == 1:
        click.echo(empty)
        return
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    width = terminal_width()
    for row in cells:
        click.echo(truncate("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip(), width))


def echo_record(record: dict, keys: Iterable[str]) -> None:
    keys = list(keys)
    pad = max(len(key) for key in keys) + 1
    for key in keys:
        click.echo(f"{key + ':':<{pad}} {cell(record.get(key))}")


def record_renderer(*keys: str) -> Callable[[dict], None]:
    return lambda record: echo_record(record, keys)


def human_size(size: Any) -> str:
    if not isinstance(size, (int, float)):
        return cell(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return str(size)


class Output:
    """Prints a result readably, or as raw JSON with --json; `note` is for progress (stderr)."""

    def __init__(self, as_json: bool):
        self.as_json = as_json

    def emit(self, data: Any, render: Callable[[Any], Any]) -> None:
        if self.as_json:
            click.echo(json.dumps(data, indent=2, default=str))
        else:
            render(data)

    @staticmethod
    def note(message: str) -> None:
        click.echo(message, err=True)


class JobProgress:
    """A tqdm bar over a job's processed samples, with succeeded/failed as postfix."""

    def __init__(self, job: dict):
        self.bar = tqdm(total=job.get("total") or 0, unit="sample", desc=f"job {job['id']}", file=sys.stderr)
        self.update(job)

    def update(self, job: dict) -> None:
        succeeded, failed = job.get("succeeded") or 0, job.get("failed") or 0
        self.bar.total = max(job.get("total") or 0, succeeded + failed)
        self.bar.n = succeeded + failed
        self.bar.set_postfix(succeeded=succeeded, failed=failed, refresh=False)
        self.bar.refresh()

    def close(self) -> None:
        self.bar.close()


def byte_progress(desc: str) -> tqdm:
    """A bytes bar on stderr, shown only on a terminal (exports)."""
    return tqdm(unit="B", unit_scale=True, desc=desc, file=sys.stderr, disable=not sys.stderr.isatty())


def count_progress(total: int, desc: str) -> tqdm:
    """A counting bar on stderr (samples added)."""
    return tqdm(total=total, unit="sample", desc=desc, file=sys.stderr)
