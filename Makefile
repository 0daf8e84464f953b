# mmcluster — two commands do everything on a fresh machine:
#   make demo   generate toy data, train a small model on CPU for a few minutes, evaluate, draw predictions
#   make test   the test suite (fast default: pytest -m "not slow")
# Both create .venv and install the pinned stack first (tools/setup/setup_env.sh; cheap when done).
#   make test-slow   the long end-to-end runs (mim train / mim test variants, longer toy trainings)
#   make test-all    both
#   make baselines   train the five baselines under the 15-minute toy protocol (docs/benchmark_protocol.md;
#                    records in docs/benchmark/protocol/)
PY := .venv/bin/python
DEMO_MINUTES ?= 4

.PHONY: setup demo test test-slow test-all baselines clean-venv

setup:
	@bash tools/setup/setup_env.sh

demo: setup
	@$(PY) tools/demo.py --minutes $(DEMO_MINUTES)

test: setup
	@$(PY) -m pytest tests -q -m "not slow" --durations=15

test-slow: setup
	@$(PY) -m pytest tests -q -m slow --durations=15

test-all: setup
	@$(PY) -m pytest tests -q --durations=25

baselines: setup
	@$(PY) -m mmcluster.benchmark.protocol --mode full --baselines-only

clean-venv:
	rm -rf .venv
