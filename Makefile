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

# Each prints its RATIO against an anchor measured in the same run (BENCHMARKS.md). Quick sizes by default;
# `make bench BENCH_FLAGS=--full` for the full ones (video2dataset too, once
# benchmarks/anchors/setup_video2dataset.sh has run). Model-side benchmarks: their commands in BENCHMARKS.md.
BENCH_FLAGS ?=
bench: setup
	# each BOUND line: the most a contender could reach on this machine with what it must do
	$(PY) benchmarks/bench_first_shard.py $(BENCH_FLAGS) --floor
	for b in pseudo_video short_video long_video; do \
	  $(PY) benchmarks/bench_$$b.py $(BENCH_FLAGS) || exit 1; done
	# long videos again from an HD source, where decoding weighs more than at 640x360
	$(PY) benchmarks/bench_long_video.py $(BENCH_FLAGS) --source-size 1920x1080

clean:
	rm -rf out data/demo
