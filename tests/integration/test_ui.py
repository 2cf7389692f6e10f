"""The web UI (services/gateway/modelhub_gateway/static/): served at /ui/ by the running gateway, and every API call
its JavaScript makes names a path and method that the gateway's OpenAPI document really has.

All HTTP calls in the UI go through one helper, `api("METHOD", `/path/${param}`...)`, with a string
literal method and a template-literal path; this test follows the module graph from index.html,
collects those calls, and fails on any call it cannot read that way."""

import re
from collections.abc import Iterator

import httpx
import pytest

API_CALL = re.compile(r'\bapi\(\s*"(GET|POST|PUT|PATCH|DELETE)"\s*,\s*`([^`]*)`')
ANY_API_CALL = re.compile(r"(?<![\w.])api\(")
IMPORT = re.compile(r"""\b(?:import|from)\s*["'](\./[\w\-./]+\.js)["']""")
MODULE_SCRIPT = re.compile(r'<script\s+type="module"\s+src="([^"]+)"')
PLACEHOLDER = re.compile(r"\$\{[^}]*\}")
PATH_PARAM = re.compile(r"\{[^}]*\}")


def _code_only(source: str) -> str:
    """Drop line and block comments (the UI keeps none inside strings that matter here)."""
    source = re.sub(r"/\*.*?\*/", "", source, flags=re.S)
    return "\n".join(line for line in source.splitlines() if not line.lstrip().startswith("//"))


def _ui_modules(client: httpx.Client) -> dict[str, str]:
    index = client.get("/ui/")
    assert index.status_code == 200, f"/ui/ answered {index.status_code}"
    assert "text/html" in index.headers["content-type"]
    entries = MODULE_SCRIPT.findall(index.text)
    assert entries, "index.html loads no module script"
    modules, todo = {}, list(entries)
    while todo:
        name = todo.pop().removeprefix("./")
        if name in modules:
            continue
        response = client.get(f"/ui/{name}")
        assert response.status_code == 200, f"/ui/{name} answered {response.status_code}"
        assert "javascript" in response.headers["content-type"], f"{name} served as {response.headers['content-type']}"
        modules[name] = response.text
        todo.extend(IMPORT.findall(response.text))
    return modules


def _normalise(path: str) -> str:
    return PATH_PARAM.sub("{}", path)


@pytest.fixture(scope="module")
def web(stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"http://127.0.0.1:{stack.port}", timeout=30) as client:
        yield client


def test_root_redirects_to_the_ui_and_its_files_are_served(web):
    root = web.get("/", follow_redirects=False)
    assert root.status_code in (301, 302, 307, 308) and root.headers["location"].endswith("/ui/")
    modules = _ui_modules(web)
    assert {"app.js", "api.js"} <= set(modules)
    assert web.get("/ui/style.css").status_code == 200


def test_every_api_call_in_the_ui_exists_in_the_openapi_document(web, stack):
    spec = web.get("/api/v1/openapi.json").json()
    prefix = "/api/v1"
    routes = {
        (method.upper(), _normalise(path.removeprefix(prefix))) for path, ops in spec["paths"].items() for method in ops
    }
    calls = []
    for name, source in _ui_modules(web).items():
        code = _code_only(source)
        found = API_CALL.findall(code)
        # every call of api( must be one this test can read (literal method, template path) ...
        helper_defs = len(re.findall(r"function\s+api\(", code))
        assert len(ANY_API_CALL.findall(code)) - helper_defs == len(found), (
            f"{name}: an api(...) call without a literal method and template-literal path"
        )
        # ... and nothing talks to the server behind the helper's back
        if name != "api.js":
            assert "fetch(" not in code and "XMLHttpRequest" not in code, f"{name} calls the server directly"
        calls += [(name, method, path) for method, path in found]
    assert len(calls) >= 15, calls  # the UI covers models, versions, sharing, deployments, datasets, jobs

    missing = []
    for name, method, template in calls:
        assert template.startswith("/"), f"{name}: {template!r} is not an absolute API path"
        path = PLACEHOLDER.sub("{}", template.split("?", 1)[0])
        if (method, _normalise(path)) not in routes:
            missing.append(f"{name}: {method} {template}")
    assert not missing, "UI calls with no such route in /api/v1/openapi.json:\n" + "\n".join(missing)

    used = {(method, _normalise(PLACEHOLDER.sub("{}", t.split("?", 1)[0]))) for _, method, t in calls}
    for needed in [
        ("POST", "/models"),
        ("PATCH", "/models/{}"),
        ("POST", "/models/{}/versions"),
        ("PUT", "/models/{}/sharing"),
        ("POST", "/models/{}/deployments"),
        ("DELETE", "/deployments/{}"),
        ("GET", "/datasets/{}/samples"),
        ("POST", "/datasets/{}/samples"),
        ("POST", "/datasets/{}/jobs"),
        ("GET", "/datasets/{}/jobs"),
        ("GET", "/jobs/{}"),
        ("POST", "/jobs/{}/cancel"),
        ("POST", "/jobs/{}/retry"),
        ("GET", "/jobs/{}/failures"),
        ("GET", "/users/me"),
    ]:
        assert needed in used, f"the UI never calls {needed[0]} {needed[1]}"
