"""The web UI in a real browser (headless Chromium through Playwright), walking the seed page as a
user does: create a model, upload a version (a bad schema first: the dialog says why), deploy it,
share it, create a dataset of pictures, run the model from the suitcase dialog, watch the Execution
tab reach 100 %, see the labels and boxes on the grid's thumbnails, filter by a label, open a
sample and export. Any JavaScript error fails the test. With MODELHUB_SCREENSHOTS=DIR set, each
step's screenshot is written there.

Needs Debian's `chromium` (`.ci/run` installs it); without it the test is skipped, saying why.
"""

import json
import os
import shutil
from pathlib import Path

import pytest
from conftest import make_zip, unique
from PIL import Image

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
playwright = pytest.importorskip("playwright.sync_api")
pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed")

# A model of type local -> classification + detections: a picture's label is its colour, and one
# box covers its left half.
MODEL_PY = """
from PIL import Image

COLOURS = {(220, 30, 30): "red", (30, 160, 60): "green", (40, 60, 220): "blue"}


class Model:
    def __init__(self, model_dir):
        pass

    def predict(self, batch):
        labels = [COLOURS.get(Image.open(p).convert("RGB").getpixel((0, 0)), "other") for p in batch["image_paths"]]
        return {"predictions": [{"label": label, "confidence": 0.9} for label in labels],
                "objects": [{"detections": [{"label": f"{label} half", "confidence": 0.8,
                                             "bounding_box": [0.0, 0.0, 0.5, 1.0]}]} for label in labels]}
"""
SCHEMA = {
    "inputs": {"type": "object", "properties": {"image_paths": {"type": "local"}}},
    "outputs": {
        "type": "object",
        "properties": {"predictions": {"type": "classification"}, "objects": {"type": "detections"}},
    },
}
SHOTS = os.environ.get("MODELHUB_SCREENSHOTS")
WAIT_MS = 240_000


@pytest.fixture()
def page(stack):
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        context = browser.new_context(viewport={"width": 1400, "height": 900})
        page = context.new_page()
        page.errors = []
        page.on("pageerror", lambda exc: page.errors.append(f"pageerror: {exc}"))
        # a failed HTTP call shows as a console error too; those are checked one by one as responses
        page.on(
            "console",
            lambda msg: (
                page.errors.append(f"console.{msg.type}: {msg.text}")
                if msg.type == "error" and not msg.text.startswith("Failed to load resource")
                else None
            ),
        )
        page.calls = []
        page.on("request", lambda r: page.calls.append((r.method, r.url.split("/api/v1")[-1])))
        page.failed_calls = []
        page.on(
            "response",
            lambda r: (
                page.failed_calls.append((r.request.method, r.url.split("/api/v1")[-1], r.status))
                if r.status >= 400
                else None
            ),
        )
        page.goto(f"http://127.0.0.1:{stack.port}/ui/#token={stack.token}&next=/models")
        yield page
        browser.close()


def dialog(page, title: str):
    box = page.locator("dialog[open]")
    playwright.expect(box.get_by_role("heading", name=title)).to_be_visible()
    return box


def shot(page, name: str) -> None:
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SHOTS) / f"{name}.png"))


def test_a_user_walks_the_seed_page_from_create_model_to_labelled_pictures(page, stack, tmp_path):
    model, deployment, dataset = unique("ui-model"), unique("ui-dep"), unique("ui-data")
    package = make_zip(tmp_path / "model.zip", {"model.py": MODEL_PY})
    files = []
    for i, colour in enumerate([(220, 30, 30), (30, 160, 60), (40, 60, 220)]):
        files.append(tmp_path / f"picture-{i}.png")
        Image.new("RGB", (64, 48), colour).save(files[-1])
    expect = playwright.expect

    # Models menu -> Create Model
    expect(page.get_by_role("heading", name="Models")).to_be_visible()
    page.get_by_role("button", name="Create Model").click()
    box = dialog(page, "Create Model")
    box.get_by_label("Name").fill(model)
    box.get_by_role("button", name="Create").click()
    expect(page.get_by_role("heading", name=model, exact=True)).to_be_visible()

    # Upload: a schema with an unknown type is refused inside the dialog; the right one makes v1
    page.get_by_role("button", name="Upload", exact=True).click()
    box = dialog(page, f"Upload a version of {model}")
    box.get_by_label("Model package (.zip)").set_input_files(str(package))
    bad = json.loads(json.dumps(SCHEMA))
    bad["outputs"]["properties"]["objects"]["type"] = "boxes"
    box.get_by_label("Model schema (JSON)").fill(json.dumps(bad))
    box.get_by_role("button", name="Upload").click()
    expect(box.locator(".form-error")).to_contain_text("boxes")
    shot(page, "01-upload-refused")
    box.get_by_label("Model schema (JSON)").fill(json.dumps(SCHEMA))
    box.get_by_role("button", name="Upload").click()
    expect(page.get_by_role("cell", name="v1", exact=True)).to_be_visible()

    # Share with everyone (run)
    page.get_by_role("button", name="Share").click()
    box = dialog(page, f"Share {model}")
    box.get_by_label("Everyone").select_option("run")
    box.get_by_role("button", name="Save").click()
    expect(page.get_by_text("sharing: everyone: run")).to_be_visible()
    shot(page, "02-model")

    # Deploy dialog (the seed's fields) -> Deployments page, live status until running
    page.get_by_role("button", name="Deploy").click()
    box = dialog(page, f"Deploy {model}")
    box.get_by_label("Deploy Name").fill(deployment)
    box.get_by_label("Mini Batch").fill("2")
    box.get_by_label("Num Replicas").fill("1")
    # the custom env box says what it would do with v1's package: nothing to build from, so it is off
    expect(
        box.get_by_label("Build the model's environment from its requirements.txt / environment.yml")
    ).to_be_disabled()
    expect(box.locator("#deploy-custom-env-help")).to_have_text(
        "v1's package has neither environment.yml nor requirements.txt."
    )
    shot(page, "03-deploy-dialog")
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
    expect(page.locator(".sample-card")).to_have_count(3)

    # The suitcase: run the deployment, both outputs mapped to fields
    page.get_by_role("button", name="Run model (submit job)").click()
    box = dialog(page, f"Run model on {dataset}")
    box.get_by_label("Deployment").select_option(deployment)
    target = box.locator("input[aria-label^='Sample field name']")
    expect(target).to_have_value("predictions")  # one mapping row, prefilled with the output's name
    target.fill("colour")
    box.get_by_role("button", name="Add", exact=True).click()
    expect(target.nth(1)).to_have_value("objects")
    shot(page, "04-run-model-dialog")
    box.get_by_role("button", name="Submit job").click()

    # The Execution tab follows the job to 100 %; the grid then shows labels and boxes
    expect(page.get_by_role("tab", name="Execution")).to_have_attribute("aria-selected", "true")
    job = page.locator("article.job").filter(has_text=deployment)
    expect(job.locator(".badge")).to_have_text("completed", timeout=WAIT_MS)
    expect(job.locator(".counts")).to_contain_text("100%")
    expect(job.locator(".counts")).to_contain_text("3 succeeded")
    job_id = job.locator(".tiny").inner_text().removeprefix("job ").strip()
    assert ("GET", f"/jobs/{job_id}/events") in page.calls  # followed on its event stream, not polled
    assert page.calls.count(("GET", f"/jobs/{job_id}")) <= 2
    cards = page.locator(".sample-card")
    for label in ["red", "green", "blue"]:
        expect(cards.filter(has_text=f"{label} 90%")).to_have_count(1)
    expect(page.locator(".sample-card .box")).to_have_count(3)
    expect(page.locator(".sample-card img[src^='blob:']")).to_have_count(3)  # thumbnails, re-encoded by the gateway
    shot(page, "05-grid-labelled")

    # Fields tab: counts per label; a label filters the grid
    page.get_by_role("tab", name="Fields").click()
    page.get_by_role("button", name="Show samples where colour is green").click()
    expect(cards).to_have_count(1)
    expect(page.get_by_text("1 sample match")).to_be_visible()
    shot(page, "06-filtered")

    # Open the sample: the picture large, boxes labelled, every field and who wrote it
    cards.first.click()
    box = dialog(page, "Sample")
    expect(box.locator(".box-label")).to_have_text("green half 80%")
    expect(box.locator(".sample-picture img[src^='blob:']")).to_have_count(1)
    expect(box.get_by_role("row").filter(has_text="colour")).to_contain_text("green (90%)")
    expect(box.get_by_role("row").filter(has_text="colour")).to_contain_text(f"{model} v1 on {deployment}")
    shot(page, "07-sample")
    page.keyboard.press("Escape")  # dialogs close on Escape
    expect(page.locator("dialog[open]")).to_have_count(0)

    # Table view, then export as CSV
    page.get_by_role("button", name="Table").click()
    expect(page.locator(".samples-table tbody tr")).to_have_count(1)
    with page.expect_download() as download:
        page.get_by_label("Export the dataset").select_option("csv")
    exported = Path(download.value.path()).read_text().splitlines()
    assert exported[0] == "id,filepath,colour,objects" and len(exported) == 4, exported

    # Undo part of the run: remove the detections field; the boxes leave the grid
    page.get_by_role("button", name="Clear filters").click()
    page.get_by_role("button", name="Grid").click()
    page.get_by_role("tab", name="Fields").click()
    page.get_by_role("button", name="Remove field objects").click()
    box = dialog(page, "Remove objects?")
    box.get_by_role("button", name="Remove field").click()
    expect(page.locator(".sample-card")).to_have_count(3)
    expect(page.locator(".sample-card .box")).to_have_count(0)

    # Users page (admin): create a user, whose token is shown once, then off-board them
    leaver = unique("ui-leaver")
    page.get_by_role("link", name="Users").click()
    page.get_by_role("button", name="Create user").click()
    box = dialog(page, "Create user")
    box.get_by_label("Username").fill(leaver)
    box.get_by_role("button", name="Create").click()
    token = box.locator("pre.token").inner_text().strip()
    assert stack.user_client(token).get("/users/me").json()["username"] == leaver
    box.get_by_role("button", name="Done").click()
    page.get_by_role("row").filter(has_text=leaver).get_by_role("button", name="Disable").click()
    dialog(page, f"Disable {leaver}?").get_by_role("button", name="Disable").click()
    expect(page.get_by_role("row").filter(has_text=leaver)).to_contain_text("disabled")
    assert stack.user_client(token).get("/users/me").status_code == 401
    shot(page, "08-users")

    # Delete the dataset: the confirmation says what goes
    page.goto(f"http://127.0.0.1:{stack.port}/ui/#/datasets/{dataset}")
    page.get_by_role("button", name="Delete", exact=True).click()
    box = dialog(page, f"Delete {dataset}?")
    expect(box).to_contain_text("3 samples")
    expect(box).to_contain_text("1 job")
    box.get_by_role("button", name="Delete dataset").click()
    expect(page.get_by_role("heading", name="Datasets")).to_be_visible()
    expect(page.get_by_role("link", name=dataset)).to_have_count(0)

    assert page.errors == [], page.errors
    assert page.failed_calls == [("POST", f"/models/{model}/versions", 422)], page.failed_calls  # the bad schema
