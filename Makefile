# The two commands of the README (`make run`, `make test`) work on a fresh machine with only
# Python 3.11, git and make: each creates .venv and installs what it needs first.
PYTHON ?= python3
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
# Stage commands call plain `python`/`torchrun`: put the project's environment first.
export PATH := $(BIN):$(PATH)
# Any tracking server's variables stay the user's own; by default the embedded store is used.
UI_PORT ?= 5000
# Exported: pipeline.tracking.ui.ui_address() reads it, so every printed link (make ui, make run,
# pipeline.compare run from here) follows the port the UI runs on.
export UI_PORT
STORE := "sqlite:///$(CURDIR)/mlflow.db"
# The experiment's runs in the Model training view (MLflow 3 opens experiments on GenAI traces);
# the UI's front page if that cannot be told.
UI_LINK = $(BIN)/python -m pipeline.tracking ui-link --tracking-uri $(STORE)
UI_LINK_OR_HOME = 2>/dev/null || echo $${MLFLOW_UI_URL:-http://127.0.0.1:$(UI_PORT)}
# `make server`: the team's tracking server (docs/team.md); e.g. SERVER_ARGS=--basic-auth
SERVER_PORT ?= 5050
SERVER_DIR ?= $(CURDIR)/.team
SERVER_ARGS ?=

.PHONY: run test lint ui server install dev

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

$(VENV)/.installed-team: $(VENV)/.installed
	$(BIN)/python -m pip install --quiet -e '.[team]'
	touch $@

install: $(VENV)/.installed
dev: $(VENV)/.installed-dev

run: $(VENV)/.installed
	$(BIN)/dvc repro
	@echo
	@$(BIN)/python -c "import json; t, e = (json.load(open(f'metrics/{n}.json')) for n in ('train', 'eval')); \
		print(f\"Accuracy: test {e['test_accuracy']:.4f}, train {e['train_accuracy']:.4f}  (MLflow run {t['mlflow_run_id']})\")"
	@echo "Model:    models/model.pth (state_dict) + models/model.json (architecture)"
	@echo "Metrics:  metrics/train.json, metrics/eval.json   (dvc metrics show)"
	@echo "Plots:    plots/                                   (dvc plots show)"
	@echo "Runs:     make ui, then open $$($(UI_LINK) --charts $(UI_LINK_OR_HOME))"

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: lint
	$(BIN)/python -m pytest --durations=15

# The link is printed once the UI answers (it can take a minute on a busy machine).
ui: $(VENV)/.installed
	$(BIN)/python -m pipeline.tracking ui --tracking-uri $(STORE)

server: $(VENV)/.installed-team
	$(BIN)/python scripts/team_server.py --dir "$(SERVER_DIR)" --port $(SERVER_PORT) $(SERVER_ARGS)
