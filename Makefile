# Set-up and everyday commands. Every target creates .venv and installs textsae first if needed.
# TORCH_SPEC pins the CPU build of torch on CPU-only machines; on a GPU machine use
#   make TORCH_SPEC=torch quickstart      (or install your CUDA torch into .venv first).
# Set-up output goes to .venv/install.log; its tail is printed when a step fails.
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
# EleutherAI sparsify, the peer `textsae bench train` measures against, and what it imports; without its own
# dependency pins (it would pull another torch). Optional for users; the tests run the bench with it.
BENCH_PEERS := eai-sparsify==1.3.3 einops==0.8.2 accelerate==1.15.0 simple-parsing==0.1.9 docstring-parser==0.18.0 natsort==8.4.0 schedulefree==1.4.1
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip --disable-pip-version-check --no-input
INSTALL_LOG := $(VENV)/install.log
OFFLINE := HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=true

.PHONY: install quickstart test clean

$(BIN)/.installed: pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null || { \
	  echo "textsae needs Python >= 3.10; '$(PYTHON)' is $$($(PYTHON) -V 2>&1). Use e.g. make PYTHON=python3.11 ..." >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	@echo "Installing pip, $(TORCH_SPEC) and textsae[dev] into $(VENV) (about a minute; log: $(INSTALL_LOG))"
	@{ $(PIP) install --upgrade pip \
	  && $(PIP) install "$(TORCH_SPEC)" \
	  && $(PIP) install -e ".[dev]" \
	  && $(PIP) install --no-deps $(BENCH_PEERS); } > $(INSTALL_LOG) 2>&1 || { \
	  tail -n 30 $(INSTALL_LOG) >&2; echo "Set-up failed; full log: $(INSTALL_LOG)" >&2; exit 1; }
	@$(BIN)/python -c 'import torch, textsae; print(f"Installed textsae with torch {torch.__version__}")'
	@touch $@

install: $(BIN)/.installed

quickstart: install
	$(BIN)/textsae run recipes/quickstart.yaml

test: install
	$(BIN)/ruff check textsae tests benchmarks
	$(BIN)/ruff format --check textsae tests benchmarks
	$(BIN)/mypy textsae
	$(OFFLINE) $(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) runs .pytest_cache
