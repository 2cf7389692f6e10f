# modelhub — `make demo` runs the whole mission, `make test` runs every test.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
DATA_DIR ?= $(CURDIR)/.modelhub-demo
PORT   ?= 8000

.PHONY: install demo test unit integration up down status bench clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[embedded,dev]'
	touch $@

demo: install
	DATA_DIR=$(DATA_DIR) PORT=$(PORT) bash scripts/demo.sh

test: install unit integration

unit: install
	$(BIN)/python -m pytest tests/unit -q

integration: install
	$(BIN)/python -m pytest tests/integration -q -x

up: install
	$(BIN)/modelhub up --detach --data-dir $(DATA_DIR) --port $(PORT)

down:
	$(BIN)/modelhub down --data-dir $(DATA_DIR)

status:
	$(BIN)/modelhub status --data-dir $(DATA_DIR)

bench: install
	$(BIN)/python bench/serve_calls.py

clean: down
	rm -rf $(DATA_DIR) examples/digits/build
