# Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
FMNIST := /usr/share/datasets/fashion-mnist

.PHONY: demo test lint docs fashion-mnist chromium mutate clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	# torch and torchvision first, pinned to the builds this project is tested with
	$(PY) -m pip install "torch==2.14.1" "torchvision==0.29.1"
	$(PY) -m pip install -e ".[dev]"
	touch $(STAMP)

fashion-mnist:
	@if [ ! -f $(FMNIST)/train-images-idx3-ubyte.gz ] && [ -z "$$KKTEXPLAIN_FASHION_MNIST" ]; then \
		echo "installing Debian's dataset-fashion-mnist"; \
		(apt-get update -q && apt-get install -y -q dataset-fashion-mnist) || \
		(sudo apt-get update -q && sudo apt-get install -y -q dataset-fashion-mnist); \
	fi

# Debian's chromium drives the report's browser test (tests/test_report.py, via Playwright);
# Playwright's own browser download is not used. Tolerant of failure: the test then skips.
chromium:
	@if [ ! -x /usr/bin/chromium ] && ! command -v chromium >/dev/null 2>&1; then \
		echo "installing Debian's chromium"; \
		(apt-get update -q && apt-get install -y -q chromium) || \
		(sudo apt-get update -q && sudo apt-get install -y -q chromium) || \
		echo "chromium not installed: the browser test of the report will be skipped"; \
	fi

demo: $(STAMP) fashion-mnist
	$(VENV)/bin/kktexplain demo --out kktexplain-demo

test: $(STAMP) fashion-mnist chromium
	$(PY) -m pytest

# mutation testing of kktexplain/kkt/ and the synthesis/selection loop (config: [tool.mutmut] in
# pyproject.toml); MUTANTS='kktexplain.kkt._conditions*' limits the run. Score and survivors in
# benchmarks/results/mutation.json; equivalent mutants are listed in docs/testing.md.
# `make mutate SAMPLE=150 SEED=12`: a random sample of the mutants (an estimate with a 95% CI);
# `make mutate [MUTANTS='glob ...']`: all of them (hours on two cores)
SEED ?= 12
mutate: $(STAMP)
ifdef SAMPLE
	nice -n 15 $(PY) benchmarks/mutation_score.py --sample $(SAMPLE) --seed $(SEED)
else
	nice -n 19 $(VENV)/bin/mutmut run --max-children 2 $(MUTANTS) || true
	$(PY) benchmarks/mutation_score.py $(MUTANTS)
endif

lint: $(STAMP)
	$(VENV)/bin/ruff check kktexplain tests benchmarks examples
	$(VENV)/bin/ruff format --check kktexplain

docs: $(STAMP)
	$(PY) -m pip install -e ".[docs]"
	$(VENV)/bin/mkdocs build --strict

clean:
	rm -rf $(VENV) kktexplain-demo site mutants
