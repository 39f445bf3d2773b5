# Two commands on a fresh machine: `make run` and `make test`. Both create .venv and install as needed.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test lint demo bench chaos clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(PY) -m supervisor run

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

test: lint
	$(VENV)/bin/pytest -q --durations=30

demo: $(STAMP)
	$(PY) -m sandbox

bench: $(STAMP)
	$(PY) -m bench

# Seeded fault simulation (bench/chaos): each seed replays exactly with `python -m bench chaos --seed N`.
CHAOS_SEEDS ?= 1 2 3
CHAOS_MINUTES ?= 2
chaos: $(STAMP)
	@failed=""; for seed in $(CHAOS_SEEDS); do \
		$(PY) -m bench chaos --seed $$seed --minutes $(CHAOS_MINUTES) --out bench/results/chaos-$$seed.json \
			|| failed="$$failed $$seed"; \
	done; \
	if [ -n "$$failed" ]; then echo "chaos: invariants violated with seeds:$$failed"; exit 1; fi

clean:
	rm -rf $(VENV) .data .pytest_cache .mypy_cache .ruff_cache .hypothesis
