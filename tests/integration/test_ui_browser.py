"""The web UI in a real browser (headless Chromium through Playwright), walking the seed page as a
user does: create a model, upload a version with its schema, deploy it, share it, create a
dataset, add samples, run the model from the suitcase dialog and watch the Execution tab until the
job completes and the samples show the model's labels. Any JavaScript error fails the test.

Needs Debian's `chromium` (`.ci/run` installs it); without it the test is skipped, saying why.
"""

import json
import shutil
from pathlib import Path

import pytest

from conftest import SCHEMA_LOCAL_TO_CLASS, make_zip, unique

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
playwright = pytest.importorskip("playwright.sync_api")
pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed")

# A model of type local -> classification: each file's label is its own first line.
MODEL_PY = '''
class Model:
    def __init__(self, model_dir):
        pass

    def predict(self, batch):
        labels = [open(path).readline().strip() for path in batch["image_paths"]]
        return {"predictions": [{"label": label, "confidence": 1.0} for label in labels]}
'''
WAIT_MS = 240_000


@pytest.fixture()
def page(stack):
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        context = browser.new_context(viewport={"width": 1400, "height": 900})
        page = context.new_page()
        page.errors = []
        page.on("pageerror", lambda exc: page.errors.append(f"pageerror: {exc}"))
        page.on("console", lambda msg: page.errors.append(f"console.{msg.type}: {msg.text}")
                if msg.type == "error" else None)
        page.goto(f"http://127.0.0.1:{stack.port}/ui/#token={stack.token}&next=/models")
        yield page
        browser.close()


def dialog(page, title: str):
    box = page.locator("dialog[open]")
    playwright.expect(box.get_by_role("heading", name=title)).to_be_visible()
    return box


def test_a_user_walks_the_seed_page_from_create_model_to_labelled_samples(page, stack, tmp_path):
    model, deployment, dataset = unique("ui-model"), unique("ui-dep"), unique("ui-data")
    package = make_zip(tmp_path / "model.zip", {"model.py": MODEL_PY})
    files = []
    for i, label in enumerate(["cat", "dog", "bird"]):
        path = tmp_path / f"sample-{i}.txt"
        path.write_text(f"{label}\n")
        files.append(path)
    expect = playwright.expect

    # Models menu -> Create Model
    expect(page.get_by_role("heading", name="Models")).to_be_visible()
    page.get_by_role("button", name="Create Model").click()
    box = dialog(page, "Create Model")
    box.get_by_label("Name").fill(model)
    box.get_by_role("button", name="Create").click()
    expect(page.get_by_role("heading", name=model, exact=True)).to_be_visible()

    # Upload: the package and its schema make version 1
    page.get_by_role("button", name="Upload", exact=True).click()
    box = dialog(page, f"Upload a version of {model}")
    box.get_by_label("Model package (.zip)").set_input_files(str(package))
    box.get_by_label("Model schema (JSON)").fill(json.dumps(SCHEMA_LOCAL_TO_CLASS))
    box.get_by_role("button", name="Upload").click()
    expect(page.get_by_role("cell", name="v1", exact=True)).to_be_visible()

    # Share with everyone (run)
    page.get_by_role("button", name="Share").click()
    box = dialog(page, f"Share {model}")
    box.get_by_label("Everyone").select_option("run")
    box.get_by_role("button", name="Save").click()
    expect(page.get_by_text("sharing: everyone: run")).to_be_visible()

    # Deploy dialog -> Deployments page, live status until running
    page.get_by_role("button", name="Deploy").click()
    box = dialog(page, f"Deploy {model}")
    box.get_by_label("Deploy Name").fill(deployment)
    box.get_by_label("Mini Batch").fill("2")
    box.get_by_role("button", name="Deploy").click()
    expect(page.get_by_role("heading", name="Deployments")).to_be_visible()
    row = page.get_by_role("row").filter(has_text=deployment)
    expect(row.locator(".badge")).to_have_text("running", timeout=WAIT_MS)

    # Datasets -> Create Dataset -> Add samples
    page.get_by_role("link", name="Datasets").click()
    page.get_by_role("button", name="Create Dataset").click()
    box = dialog(page, "Create Dataset")
    box.get_by_label("Name").fill(dataset)
    box.get_by_role("button", name="Create").click()
    expect(page.get_by_role("heading", name=dataset, exact=True)).to_be_visible()
    page.get_by_role("button", name="Add samples").click()
    box = dialog(page, f"Add samples to {dataset}")
    box.get_by_label("Absolute file paths, one per line").fill("\n".join(str(f) for f in files))
    box.get_by_role("button", name="Add").click()
    expect(page.get_by_text("3 samples", exact=True)).to_be_visible()

    # The suitcase: run the deployment, outputs mapped to a field
    page.get_by_role("button", name="Run model (submit job)").click()
    box = dialog(page, f"Run model on {dataset}")
    box.get_by_label("Deployment").select_option(deployment)
    target = box.locator("input[aria-label^='Sample field name']")
    expect(target).to_have_value("predictions")  # one mapping row, prefilled with the output's name
    target.fill("animal")
    box.get_by_role("button", name="Submit job").click()

    # The Execution tab follows the job to the end; the samples then carry the labels
    expect(page.get_by_role("tab", name="Execution")).to_have_attribute("aria-selected", "true")
    job = page.locator("article.job").filter(has_text=deployment)
    expect(job.locator(".badge")).to_have_text("completed", timeout=WAIT_MS)
    expect(job.locator(".counts")).to_contain_text("3 succeeded")
    for label in ["cat", "dog", "bird"]:
        expect(page.locator(".samples-table").get_by_text(f"{label} (100%)")).to_be_visible()
    page.get_by_role("tab", name="Fields").click()
    expect(page.locator(".field-list")).to_contain_text("animal")

    assert page.errors == [], page.errors
