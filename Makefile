# Set-up and everyday commands. Every target creates .venv and installs textsae first if needed.
# TORCH_SPEC pins the CPU build of torch on CPU-only machines; on a GPU machine use
#   make TORCH_SPEC=torch quickstart      (or install your CUDA torch into .venv first).
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
BIN := $(VENV)/bin
OFFLINE := HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=true

.PHONY: install quickstart test test-all clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@

install: $(BIN)/.installed

quickstart: install
	$(BIN)/textsae run recipes/quickstart.yaml

test: install
	$(OFFLINE) $(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) runs .pytest_cache
