"""The shared documents' status values live in `modelhub_contracts.documents` and nowhere else."""

import io
import tokenize
from pathlib import Path
from typing import get_args

from modelhub_contracts.documents import (
    ACTIVE_DEPLOYMENT_STATES,
    CLOSED,
    GONE,
    OPEN,
    REUSABLE,
    TERMINAL,
    DeploymentStatus,
    JobStatus,
)
from modelhub_gateway.schemas import DeploymentPublic, JobPublic

ROOT = Path(__file__).resolve().parents[2]
STATUS_VALUES = {s.value for s in JobStatus} | {s.value for s in DeploymentStatus}
# The HTTP models spell the values out (a Literal keeps the OpenAPI document as it is); the test
# below holds them to the enums instead.
HTTP_MODELS = ROOT / "services/gateway/modelhub_gateway/schemas.py"


def _sources() -> list[Path]:
    packages = [*ROOT.glob("services/*/modelhub_*"), *ROOT.glob("libs/*/modelhub_*")]
    return [p for pkg in packages for p in pkg.rglob("*.py") if p.name != "documents.py" and p != HTTP_MODELS]


def status_literals(source: str) -> list[tuple[int, str]]:
    """Quoted status values used as values (a comparison, a query, an assignment); a dict key or a
    subscript (`job["failed"]`, the count) is a field name, not a status."""
    tokens = [
        t
        for t in tokenize.generate_tokens(io.StringIO(source).readline)
        if t.type not in (tokenize.NL, tokenize.NEWLINE, tokenize.COMMENT, tokenize.INDENT, tokenize.DEDENT)
    ]
    found = []
    for i, tok in enumerate(tokens):
        if tok.type != tokenize.STRING or tok.string[0] not in "'\"":
            continue
        value = tok.string[1:-1]
        after = tokens[i + 1].string if i + 1 < len(tokens) else ""
        before = tokens[i - 1].string if i else ""
        key = after == ":" and before in ("{", ",")
        if value in STATUS_VALUES and not key and not (before == "[" and after == "]"):
            found.append((tok.start[0], value))
    return found


def test_no_status_literal_appears_outside_the_documents_module():
    offenders = [
        f"{path.relative_to(ROOT)}:{line}: {value!r}"
        for path in _sources()
        for line, value in status_literals(path.read_text())
    ]
    assert offenders == [], "use JobStatus/DeploymentStatus from modelhub_contracts.documents:\n" + "\n".join(offenders)


def test_the_check_finds_a_status_in_a_comparison_but_not_a_field_name():
    assert status_literals('if job["status"] == "cancelled":\n    pass\n') == [(1, "cancelled")]
    assert status_literals('q = {"status": {"$in": ["queued", "running"]}}\n') == [(1, "queued"), (1, "running")]
    assert status_literals('n = job["failed"] + 1\nd = {"failed": 0}\n') == []


def test_the_http_models_answer_exactly_the_stored_status_values():
    assert set(get_args(DeploymentPublic.model_fields["status"].annotation)) == {s.value for s in DeploymentStatus}
    assert set(get_args(JobPublic.model_fields["status"].annotation)) == {s.value for s in JobStatus}


def test_a_status_is_its_stored_string():
    assert JobStatus.CANCELLED == "cancelled" and f"{DeploymentStatus.RUNNING}" == "running"


def test_the_named_sets_agree_with_each_other():
    assert set(OPEN).isdisjoint(TERMINAL) and set(OPEN) | set(TERMINAL) == set(JobStatus)
    assert set(CLOSED) < set(TERMINAL)  # a failed job still takes a retry's writes
    assert set(REUSABLE).isdisjoint(ACTIVE_DEPLOYMENT_STATES)
    assert set(REUSABLE) | set(ACTIVE_DEPLOYMENT_STATES) == set(DeploymentStatus)
    assert set(REUSABLE) < set(GONE)
