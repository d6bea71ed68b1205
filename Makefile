# Two commands are all the set-up on a fresh machine with Python 3.11+:
#   make demo   -- install into .venv and run the example on the embedded defaults
#   make test   -- install into .venv and run the test suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PIP_FLAGS ?= -q --disable-pip-version-check

.PHONY: demo test bench faults lint clean

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "accord needs Python 3.11+")'
	$(BIN)/python -m pip install $(PIP_FLAGS) -c constraints.txt -e '.[dev,bench]' 2>&1 | grep -v "^WARNING: Location" || true
	@$(BIN)/python -P -c "import accord.graphs, accord.checkpoints" 
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/accord run support "I was charged twice for INV-1004. Please refund \$$150." --no-input

test: $(STAMP)
	$(BIN)/python -P -m pytest $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python -P benchmarks/run.py $(BENCH_ARGS)

faults: $(STAMP)
	$(BIN)/python -P benchmarks/faults.py $(FAULTS_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) .accord
