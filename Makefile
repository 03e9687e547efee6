# The two commands of the README: `make demo` and `make test`. Each sets up what it needs.
VENV ?= .venv
PY := $(VENV)/bin/python
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export RAY_DEDUP_LOGS := 0

.PHONY: setup demo test bench clean

setup:
	bash scripts/setup.sh

demo: setup
	$(VENV)/bin/vidrd-data build --manifest manifests/demo.yaml
	$(VENV)/bin/vidrd-data inspect out/demo
	bash scripts/demo_model.sh

test: setup
	$(PY) -m pytest -q -p no:cacheprovider tests

bench: setup
	for b in benchmarks/bench_*.py; do $(PY) $$b || exit 1; done

clean:
	rm -rf out data/demo
