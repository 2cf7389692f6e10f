"""The web UI's module graph (services/gateway/modelhub_gateway/static/): the router imports the
views, views import dialogs and the shared helpers, and nothing points back up — no cycles, and the
shared modules (api.js, dom.js, ui.js) import no view, panel or dialog."""

import re
from pathlib import Path

STATIC = Path(__file__).resolve().parents[2] / "services/gateway/modelhub_gateway/static"
IMPORT = re.compile(r"""\bfrom\s*["']\./([\w\-]+\.js)["']""")
SHARED = {"api.js", "dom.js", "ui.js"}


def graph() -> dict[str, set[str]]:
    return {f.name: set(IMPORT.findall(f.read_text())) for f in STATIC.glob("*.js")}


def test_every_import_names_a_module_that_exists():
    modules = graph()
    missing = {(name, dep) for name, deps in modules.items() for dep in deps if dep not in modules}
    assert not missing, missing


def test_the_module_graph_has_no_cycle():
    modules, state = graph(), {}

    def visit(name: str, path: list[str]) -> None:
        if state.get(name) == "done":
            return
        assert state.get(name) != "open", "import cycle: " + " -> ".join([*path, name])
        state[name] = "open"
        for dep in modules.get(name, ()):
            visit(dep, [*path, name])
        state[name] = "done"

    for name in modules:
        visit(name, [])


def test_shared_helpers_import_no_view_and_only_the_router_imports_views():
    modules = graph()
    for name in SHARED:
        assert modules[name] <= SHARED, f"{name} imports {modules[name] - SHARED}"
    assert not any("app.js" in deps for deps in modules.values()), "app.js is the router: nothing imports it"
    for name, deps in modules.items():
        views = {d for d in deps if d.startswith("view-")}
        assert name == "app.js" or not views, f"{name} imports views {views}: only the router does"
