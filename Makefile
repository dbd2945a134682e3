# The two commands of the README, and their helpers.
CARGO ?= cargo

.PHONY: demo demo-ci test lint fmt bench bench-python

## Start a local stack, push five commits through it, show the runs, keep serving.
demo:
	$(CARGO) run --quiet -p vaia -- demo

## The same, exiting after it has shown the runs (what CI runs).
demo-ci:
	$(CARGO) run --quiet -p vaia -- demo --exit --port 0

## Every test of the workspace.
test:
	$(CARGO) test --workspace --no-fail-fast

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

## Criterion benchmarks (see bench/README.md).
bench:
	$(CARGO) bench -p vaia-bench

## Leak scanning with Python's pyahocorasick on the data set `make bench` writes (for comparison).
bench-python:
	python3 -m venv target/bench-venv
	target/bench-venv/bin/pip install -q pyahocorasick
	target/bench-venv/bin/python bench/leak_scan_pyahocorasick.py target/bench-data/leak_responses.jsonl
