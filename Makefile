# Entry points: `make demo` (the main job) and `make test` (the test suite).
PYTHON ?= python3
VENV ?= .venv
# CPU build by default; on a GPU machine: make setup TORCH=torch
TORCH ?= torch==2.13.0
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup test lint format demo bench bench-memory bench-bleu bench-profile bench-gpu stress clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet "$(TORCH)"
	$(BIN)/pip install --quiet -e ".[test]"
	touch $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/pip install --quiet ruff
	$(BIN)/ruff check nmt cli tests recipes

format: $(STAMP)
	$(BIN)/ruff format nmt cli tests recipes

demo: $(STAMP)
	$(MAKE) -f recipes/demo.mk NMT=$(abspath $(BIN))/nmt PYTHON=$(abspath $(BIN))/python

bench: $(STAMP)
	$(BIN)/python recipes/bench/bench.py $(if $(PEERS),--peers $(PEERS)) $(BENCH_ARGS)

bench-memory: $(STAMP)
	$(BIN)/python recipes/bench/memory.py $(MEMORY_ARGS)

bench-bleu: $(STAMP)
	$(BIN)/python recipes/bench/time_to_bleu.py $(if $(PEERS),--peers $(PEERS)) $(BLEU_ARGS)

bench-profile: $(STAMP)
	$(BIN)/python recipes/bench/hotspots.py $(PROFILE_ARGS)

bench-gpu: $(STAMP)
	$(BIN)/python recipes/bench/gpu.py $(GPU_ARGS)

# SIGKILL `nmt train` at 20 random moments; each resumed run must match a straight one bit for bit.
stress: $(STAMP)
	$(BIN)/python recipes/stress/kill_resume.py $(STRESS_ARGS)

clean:
	rm -rf $(VENV) runs out bench-out
