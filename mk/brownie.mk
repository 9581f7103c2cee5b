# eth-brownie project (brownie-config.yaml, tests/brownie/, scripts/brownie_deploy.py).
# Included from the main Makefile, which defines PY (the main venv's python) and the
# `node_modules` target (npm ci). Brownie lives in its own venv: eth-brownie 1.22.2 pins
# web3 7.16.0 and all its 83 requirements exactly, and the main venv runs web3 8 (docs/brownie.md).

PY ?= .venv/bin/python
# eth-brownie 1.22.2 is known to install on Python 3.11
BROWNIE_PYTHON ?= python3
BROWNIE_VENV := $(CURDIR)/.venv-brownie
BROWNIE_VERSION := 1.22.2
BROWNIE := $(BROWNIE_VENV)/bin/brownie
BROWNIE_STAMP := $(BROWNIE_VENV)/.installed-eth-brownie-$(BROWNIE_VERSION)

# Brownie launches `anvil` (networks `anvil`, `development`) and `ganache-cli` (network
# `ganache-cli`) by name. Anvil's platform binary goes first: the npm shim in node_modules/.bin leaves a
# zombie anvil behind when brownie stops it.
ANVIL_BIN_DIR := $(firstword $(wildcard $(CURDIR)/node_modules/@foundry-rs/anvil-*/bin))
BROWNIE_PATH := $(if $(ANVIL_BIN_DIR),$(ANVIL_BIN_DIR):)$(CURDIR)/node_modules/.bin:$(PATH)
BROWNIE_RUN := cd $(CURDIR) && PYTHONWARNINGS=ignore::FutureWarning PATH="$(BROWNIE_PATH)" $(BROWNIE)

.PHONY: brownie-venv brownie-solc brownie-compile brownie-test brownie-deploy brownie-clean

brownie-venv: $(BROWNIE_STAMP)

$(BROWNIE_STAMP):
	$(BROWNIE_PYTHON) -m venv $(BROWNIE_VENV)
	$(BROWNIE_VENV)/bin/pip install --quiet --disable-pip-version-check eth-brownie==$(BROWNIE_VERSION)
	touch $@

# The offline solc (npm solc 0.8.37 behind chain/toolchain/solc.js), registered as
# ~/.solcx/solc-v0.8.37 (or under $SOLCX_BINARY_PATH), where brownie finds it without a download.
brownie-solc: node_modules
	$(PY) -c "from chain.compiler import solc_executable; print(solc_executable())"

brownie-compile: brownie-venv brownie-solc
	$(BROWNIE_RUN) compile

# Brownie starts the chain and stops it when done: anvil on port 8565 with the shanghai EVM
# (network `anvil`, brownie-config.yaml). BROWNIE_TEST_NETWORK=ganache-cli runs the same suite
# on ganache (port 8545).
BROWNIE_TEST_NETWORK ?= anvil
brownie-test: brownie-compile
	$(BROWNIE_RUN) test tests/brownie --network $(BROWNIE_TEST_NETWORK)

# Deploys on the ganache listening on 127.0.0.1:8545 (the project's `loraledger chain up`)
# if there is one; otherwise brownie launches a ganache for the run and stops it afterwards.
brownie-deploy: brownie-compile
	$(BROWNIE_RUN) run scripts/brownie_deploy.py --network ganache-cli

# brownie's own outputs only (build/ may hold other tools' files)
brownie-clean:
	rm -rf $(BROWNIE_VENV) $(addprefix $(CURDIR)/build/,contracts interfaces deployments tests.json)
