# modelhub — `make demo` runs the whole mission, `make test` runs every test.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
DATA_DIR ?= $(CURDIR)/.modelhub-demo
PORT   ?= 8000

.PHONY: install demo test lint unit integration up down status bench clean asyncapi docs fiftyone-venv

install: $(VENV)/.installed

# Every part of the system is a package in its own folder with its own dependencies; development
# installs them all, editable, pinned by constraints.txt (name==version lines only).
PACKAGES := libs/contracts libs/runtime services/registry services/deployer services/scheduler \
            services/inference-worker services/gateway cli
PYPROJECTS := $(addsuffix /pyproject.toml,$(PACKAGES))

$(VENV)/.installed: $(PYPROJECTS) requirements-dev.txt constraints.txt
	bash scripts/system-packages.sh
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt $(foreach p,$(filter-out cli,$(PACKAGES)),-e $(p)) -e 'cli[embedded]' -r requirements-dev.txt
	touch $@

demo: install
	DATA_DIR=$(DATA_DIR) PORT=$(PORT) bash scripts/demo.sh

test: install lint unit integration

# The docs site (mkdocs, strict), the architecture (import-linter), style (ruff: lint and format) and
# types (pyright, basic); the configuration of each is in mkdocs.yml and the root pyproject.toml.
lint: install docs
	$(BIN)/lint-imports
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pyright

# The documentation site (mkdocs.yml over docs/) into .site/; --strict turns every warning, a broken
# link or a page missing from the nav among them, into a failure, so `make lint` (and CI) catch it.
docs: install
	$(BIN)/mkdocs build --strict --site-dir .site

# docs/asyncapi.yaml (and the gateway's copy) from the services' brokers; tests/unit/test_asyncapi.py
# fails while either is stale.
asyncapi: install
	$(BIN)/python scripts/asyncapi.py

unit: install
	$(BIN)/python -m pytest tests/unit -q

integration: install fiftyone-venv
	$(BIN)/python -m pytest tests/integration -q -x

# The real FiftyOne for tests/integration/test_fiftyone.py, in a virtualenv of its own (it pins
# pymongo and motor older than the hub's). Every package is pinned in the lock file and installed
# without resolving, which leaves out fiftyone-db (an sdist that downloads MongoDB at install): the
# test gives FiftyOne a mongod of its own. About 2 minutes with an empty pip cache, 1.1 GB.
FO_VENV := .venv-fiftyone
FO_LOCK := tests/integration/fiftyone-constraints.txt

fiftyone-venv: $(FO_VENV)/.installed

$(FO_VENV)/.installed: $(FO_LOCK)
	rm -rf $(FO_VENV)
	$(PYTHON) -m venv $(FO_VENV)
	$(FO_VENV)/bin/pip install -q --disable-pip-version-check --no-deps -r $(FO_LOCK)
	touch $@

up: install
	$(BIN)/modelhub up --detach --data-dir $(DATA_DIR) --port $(PORT)

down:
	$(BIN)/modelhub down --data-dir $(DATA_DIR)

status:
	$(BIN)/modelhub status --data-dir $(DATA_DIR)

bench: install
	$(BIN)/python bench/serve_calls.py
	$(BIN)/python bench/online_predict.py
	$(BIN)/python bench/jobs.py
	$(BIN)/python bench/onnx_classifier.py

clean: down
	rm -rf $(DATA_DIR) examples/digits/build examples/mlflow-sklearn/build
