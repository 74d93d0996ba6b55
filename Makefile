# Two commands do everything on a fresh machine with Python 3.11 + pip:
#   make demo   set up .venv and run the whole workflow on the embedded digits data
#   make test   set up .venv and run the test suite
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test venv lint

venv: $(STAMP)

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found (set PYTHON=/path/to/python3.11)"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,slurm]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/snakemake --snakefile workflow/Snakefile --configfile config/demo.yaml --cores 2 --resources gpu=1 --profile workflow/profiles/default
	$(BIN)/snakemake --snakefile workflow/Snakefile --configfile config/demo.yaml --report results/demo/report.html

test: $(STAMP)
	$(BIN)/ruff check .                     # rules in pyproject.toml [tool.ruff]
	$(BIN)/python -m pytest -q -n 2 tests   # two workers: the suite is mostly single-threaded

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/snakemake --snakefile workflow/Snakefile --configfile config/paper.yaml --lint
