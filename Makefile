# customlabels — everything a developer runs goes through these targets (`make help`).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PROTOS := $(shell find protos -name '*.proto' 2>/dev/null)
GEN_STAMP := gen/.stamp
DATA_DIR ?= .data
WEB := services/console/web
WEB_SOURCES := $(shell find $(WEB)/src -type f 2>/dev/null) $(WEB)/index.html $(WEB)/vite.config.ts $(WEB)/tsconfig.json
WEB_MODULES := $(WEB)/node_modules/.package-lock.json
WEB_BUILD := $(WEB)/dist/index.html
K8S_TOOLS := tools/k8s/node_modules/.package-lock.json

.DEFAULT_GOAL := help

.PHONY: help install protos up down status demo test lint k8s-check bench screenshots clean

help: ## Show this help
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_-]+:.*## / {printf "  \033[36m%-10s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	# The stubs must exist before the editable install maps the generated `customlabels` package.
	$(VENV)/bin/pip install -q grpcio-tools==1.78.0 protobuf==6.33.6
	$(PY) scripts/gen_protos.py
	$(VENV)/bin/pip install -q -e '.[dev]'
	touch $(GEN_STAMP) $(STAMP)

$(GEN_STAMP): $(PROTOS) scripts/gen_protos.py | $(STAMP)
	$(PY) scripts/gen_protos.py
	touch $(GEN_STAMP)

# The console's front end: npm installs exactly the lockfile, Vite builds it into dist/ (served by the console).
$(WEB_MODULES): $(WEB)/package.json $(WEB)/package-lock.json
	cd $(WEB) && npm ci --no-audit --no-fund --loglevel=error
	touch $(WEB_MODULES)

$(WEB_BUILD): $(WEB_MODULES) $(WEB_SOURCES)
	cd $(WEB) && npm run --silent build

install: $(STAMP) $(GEN_STAMP) $(WEB_BUILD) ## Create .venv with every dependency, generate the gRPC stubs, build the console

protos: $(STAMP) ## Regenerate the gRPC stubs from protos/ (pinned grpcio-tools)
	$(PY) scripts/gen_protos.py
	touch $(GEN_STAMP)

up: install ## Start the embedded stack (Postgres, S3, Triton, services, HTTP edge); writes $(DATA_DIR)/stack.env
	$(PY) -m scripts.stack up --data-dir $(DATA_DIR)

down: ## Stop everything `make up` started
	@if [ -x $(PY) ]; then $(PY) -m scripts.stack down --data-dir $(DATA_DIR); fi

status: install ## Report each part of the embedded stack
	$(PY) -m scripts.stack status --data-dir $(DATA_DIR)

demo: up ## Set up, start the stack and run the workflow through the CLI
	$(PY) -m scripts.demo --data-dir $(DATA_DIR)

test: install $(K8S_TOOLS) ## Set up and run the whole test suite against real Postgres, S3, Triton and gRPC
	$(PY) -m pytest -q

lint: install ## ruff lint + format check, TypeScript check of the console
	$(VENV)/bin/ruff check services scripts tests bench
	$(VENV)/bin/ruff format --check services scripts tests bench
	cd $(WEB) && npm run --silent typecheck

# kubectl (built-in kustomize) and the CRD models, exactly as tools/k8s/package-lock.json pins them.
$(K8S_TOOLS): tools/k8s/package.json tools/k8s/package-lock.json
	cd tools/k8s && npm ci --no-audit --no-fund --loglevel=error
	touch $(K8S_TOOLS)

k8s-check: install $(K8S_TOOLS) ## Render every k8s overlay + component, validate all objects (K8s 1.35, CRDs) and compose
	$(PY) scripts/k8s_check.py

screenshots: install ## The README's console screenshots: the last test run's (build/screenshots) as JPEGs in docs/screenshots
	mkdir -p docs/screenshots
	$(PY) -c 'import pathlib; from PIL import Image; [Image.open(p).convert("RGB").save(pathlib.Path("docs/screenshots") / (p.stem + ".jpg"), quality=80, optimize=True) for p in sorted(pathlib.Path("build/screenshots").glob("workflow-*.png"))]'


bench: install ## Run the benchmarks; tables go to bench/results/
	$(PY) -m bench.run

clean: down ## Stop the stack and remove the venv, generated code, the console build and stack data
	rm -rf $(VENV) gen $(DATA_DIR) $(WEB)/node_modules $(WEB)/dist tools/k8s/node_modules build/k8s-tools build/k8s-check
