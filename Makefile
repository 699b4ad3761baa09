# Everyday commands. `make train` and `make test` install into .venv first if needed.
PY      ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
ARGS    ?=
HOST    ?= 127.0.0.1

.PHONY: install train test test-fast lint tensorboard benchmark reproduce clean

# The bytecode is compiled by compileall on every core rather than by pip on one (imports stay fast also
# where PYTHONDONTWRITEBYTECODE keeps Python from caching what it compiles; as with pip, a file that does
# not compile, such as a package's Python 2 example, is skipped).
$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip >/dev/null
	$(BIN)/python -m pip install --no-compile -c constraints.txt -e '.[test]'
	$(BIN)/python -m compileall -q -j 0 "$$($(BIN)/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')" >/dev/null || true
	touch $(STAMP)

install: $(STAMP) ## create .venv and install dlcourse with its test extras

train: $(STAMP) ## the course's default experiment (gaussian_mlp); ARGS replace it: make train ARGS="experiment=iris_mlp"
	$(BIN)/dlcourse-train $(or $(ARGS),experiment=gaussian_mlp)

test: $(STAMP) ## run the test suite
	$(BIN)/python -m pytest $(ARGS)

lint: $(STAMP) ## static checks
	$(BIN)/ruff check src tests scripts

tensorboard: $(STAMP) ## serve every run under outputs/ on this machine only; HOST=0.0.0.0 serves every network interface
	$(BIN)/tensorboard --logdir outputs --host $(HOST)

benchmark: $(STAMP) ## framework vs hand-written loop, seconds per epoch
	$(BIN)/python scripts/benchmark.py $(ARGS)

reproduce: $(STAMP) ## the course's experiments on real data, as a markdown table
	$(BIN)/python scripts/reproduce.py $(ARGS)

clean: ## remove run outputs and caches (keeps .venv)
	find outputs -mindepth 1 ! -name .gitkeep -exec rm -rf {} +
	rm -rf multirun .pytest_cache .ruff_cache
	find . -name __pycache__ -not -path './$(VENV)/*' -exec rm -rf {} +
