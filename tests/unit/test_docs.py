"""The documents name only files that exist, and the README fits a screenful.

Checked files: README.md, docs/*.md and bench/README.md. In each:

- a relative link (`[text](path)`, `![alt](path)`) must point at a file or folder that exists,
  relative to the document; a `#anchor` into a Markdown file must be one of its headings (GitHub's
  and MkDocs' ways of making heading ids are both accepted) or an `<a id="...">`;
- a repository path written in backticks must exist. A span counts as a path only when it is one
  word of path characters (no spaces, no placeholders such as `<service>`, `*` or `…`) that starts
  with one of the repository's top-level folders (`ROOTS`) or is one of its root files
  (`ROOT_FILES`); paths are read from the repository's root, whichever document names them. Bare
  file names (`deps.py`) and module paths (`modelhub_worker/direct.py`) are not checked.

What a run makes rather than the repository holds is allowed by rule (`GENERATED`): the example's
build output, the benchmarks' scratch folders, the demo's data dir and the docs site. Paths under a
data dir are written `DIR/...`, which starts with no top-level folder and so is never checked.
Fenced and indented code blocks are skipped: they hold commands and output, not references.

When this fails after files moved, it names each document, line and path: rename them there.
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README_MAX_LINES = 300
ROOTS = ("libs/", "services/", "cli/", "docs/", "bench/", "scripts/", "tests/", "deploy/", "examples/", ".ci/")
ROOT_FILES = {
    "README.md",
    "LICENSE",
    "Makefile",
    "mkdocs.yml",
    "pyproject.toml",
    "constraints.txt",
    "requirements-dev.txt",
    ".gitignore",
}
# Made by a run, not kept in git (see .gitignore): allowed without existing.
GENERATED = (
    "examples/digits/build/",
    "examples/mlflow-sklearn/build/",
    "bench/.raydata-venv",
    "bench/jail-cost/",
    ".modelhub-demo",
    ".site/",
)

PATH_CHARS = re.compile(r"^[A-Za-z0-9_.\-/]+$")
CODE_SPAN = re.compile(r"`([^`\n]+)`")
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
HEADING = re.compile(r"^#{1,6}\s+(.*?)\s*#*\s*$")
HTML_ID = re.compile(r"""<a\s+id=["']([^"']+)["']""")


def documents() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "bench" / "README.md"]


def prose_lines(text: str) -> list[tuple[int, str]]:
    """(line number, line) outside fenced and indented code blocks."""
    lines, fenced = [], False
    for number, line in enumerate(text.splitlines(), start=1):
        if line.lstrip().startswith("```"):
            fenced = not fenced
            continue
        if fenced or line.startswith(("    ", "\t")):
            continue
        lines.append((number, line))
    return lines


def repository_path(span: str) -> str | None:
    """The repository path a code span names, or None when it names none (see the module doc)."""
    span = span.strip()
    if not PATH_CHARS.match(span) or ".." in span.split("/"):
        return None
    if span in ROOT_FILES or span.startswith(ROOTS):
        return span.rstrip("/") or None
    return None


def is_generated(path: str) -> bool:
    return path.startswith(GENERATED) or (path + "/").startswith(GENERATED)


def slugs(heading: str) -> set[str]:
    """The ids GitHub and MkDocs give a heading."""
    text = re.sub(r"`|\*\*|\*|_(?=\w)|\[([^\]]*)\]\([^)]*\)", lambda m: m.group(1) or "", heading).lower()
    github = re.sub(r"[^\w\- ]", "", text).replace(" ", "-")
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    mkdocs = re.sub(r"[-\s]+", "-", re.sub(r"[^\w\s-]", "", ascii_text).strip())
    return {github, mkdocs}


def anchors(document: Path) -> set[str]:
    text = document.read_text()
    found = set(HTML_ID.findall(text))
    for _, line in prose_lines(text):
        match = HEADING.match(line)
        if match:
            found |= slugs(match.group(1))
    return found


def link_problems(document: Path) -> list[str]:
    problems = []
    for number, line in prose_lines(document.read_text()):
        for target in LINK.findall(line):
            if re.match(r"^[a-z][a-z0-9+.-]*:", target):
                continue  # http:, https:, mailto:
            path, _, anchor = target.partition("#")
            file = (document.parent / path).resolve() if path else document
            where = f"{document.relative_to(ROOT)}:{number}: link {target}"
            if not file.exists():
                problems.append(f"{where}: no such file")
            elif anchor and file.suffix == ".md" and anchor not in anchors(file):
                problems.append(f"{where}: no heading or <a id> '{anchor}' in {file.relative_to(ROOT)}")
    return problems


def path_problems(document: Path) -> list[str]:
    problems = []
    for number, line in prose_lines(document.read_text()):
        for span in CODE_SPAN.findall(line):
            path = repository_path(span)
            if path and not is_generated(path) and not (ROOT / path).exists():
                problems.append(f"{document.relative_to(ROOT)}:{number}: `{span}` does not exist")
    return problems


def test_readme_fits_a_screenful_of_300_lines():
    lines = len((ROOT / "README.md").read_text().splitlines())
    assert lines <= README_MAX_LINES, (
        f"README.md has {lines} lines; move detail into docs/ (at most {README_MAX_LINES})"
    )


def test_relative_links_point_at_files_and_headings_that_exist():
    problems = [problem for document in documents() for problem in link_problems(document)]
    assert not problems, "broken links:\n" + "\n".join(problems)


def test_repository_paths_in_backticks_exist():
    problems = [problem for document in documents() for problem in path_problems(document)]
    assert not problems, "documents name files that are not in the tree:\n" + "\n".join(problems)


def test_what_counts_as_a_repository_path():
    assert repository_path("cli/modelhub/stack.py") == "cli/modelhub/stack.py"
    assert repository_path("services/gateway/modelhub_gateway/static/") == "services/gateway/modelhub_gateway/static"
    assert repository_path("LICENSE") == "LICENSE"
    for not_a_path in ("DIR/logs/gateway.log", "modelhub_worker/direct.py", "deps.py", "make test", "view-*.js"):
        assert repository_path(not_a_path) is None, not_a_path
    assert repository_path("services/<service>/app.py") is None
    assert is_generated("examples/digits/build/digits-classifier.zip")
    assert not is_generated("examples/digits/build.py")


def test_headings_make_the_ids_both_renderers_make():
    assert "the-models-jail" in slugs("The model's jail")
    assert "many-jobs-at-once-flow-control" in slugs("Many jobs at once (flow control)")
    assert "i-want-to-change-x-open-y" in slugs("I want to change X: open Y")
