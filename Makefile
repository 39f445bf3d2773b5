# Two commands on a fresh machine: `make run` and `make test`. Both create .venv and install as needed.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test lint demo bench chaos image lock clean

# The runtime dependencies come from requirements.lock (pinned, with hashes): the exact files the image
# installs, so the tests run what production runs. Dev tools come from pyproject.toml's extras.
$(STAMP): pyproject.toml requirements.lock
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements.lock
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

# Seeded fault simulation (bench/chaos): each seed replays exactly with `python -m bench chaos --seed N`;
# the table of the runs is printed and kept in bench/chaos-seeds.json.
CHAOS_SEEDS ?= 1 2 3
CHAOS_MINUTES ?= 2
chaos: $(STAMP)
	@failed=""; for seed in $(CHAOS_SEEDS); do \
		$(PY) -m bench chaos --seed $$seed --minutes $(CHAOS_MINUTES) --out bench/results/chaos-$$seed.json \
			|| failed="$$failed $$seed"; \
	done; \
	$(PY) -m bench chaos-summary --code "$$(git rev-parse --short HEAD 2>/dev/null)" \
		$(foreach seed,$(CHAOS_SEEDS),bench/results/chaos-$(seed).json) || true; \
	if [ -n "$$failed" ]; then echo "chaos: invariants violated with seeds:$$failed"; exit 1; fi

# The production image (Dockerfile). Needs a Docker daemon; where Docker Hub is out of reach,
# `sudo bash sandbox/base_image.sh` first builds the python:3.11-slim-bookworm base from Debian's mirror.
IMAGE ?= tg-tenant-supervisor:local
image:
	DOCKER_BUILDKIT=0 docker build --network host -t $(IMAGE) .

# Re-resolve requirements.lock after a change to pyproject.toml's dependencies (needs PyPI).
lock: $(STAMP)
	$(PY) -m pip install -q --disable-pip-version-check uv
	$(PY) -c "import tomllib; print('\\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies'] + ['setuptools>=75', 'wheel']))" \
		| $(VENV)/bin/uv pip compile - --generate-hashes --python-version 3.11 --python-platform x86_64-manylinux_2_28 \
			--custom-compile-command 'make lock' -o requirements.lock

clean:
	rm -rf $(VENV) .data .pytest_cache .mypy_cache .ruff_cache .hypothesis
