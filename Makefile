# The two commands of the README, and their helpers.
CARGO ?= cargo

.PHONY: demo demo-ci test lint check-tree fmt bench bench-python

## Start a local stack, push five commits through it, show the runs, keep serving.
## (Builds the dashboard first when npm is present; without it, / says how to build it.)
demo:
	@if command -v $(NPM) >/dev/null 2>&1; then $(MAKE) --no-print-directory dashboard; \
	  else echo "npm not found: the dashboard at / will say how to build it"; fi
	$(CARGO) run --quiet -p vaia -- demo

## The same, exiting after it has shown the runs (what CI runs). Built as `make test`
## builds (every member with its tests, so the same feature resolution): after the tests
## nothing is compiled again, where `cargo run -p vaia` would rebuild most of the tree.
TARGET_DIR ?= $(or $(CARGO_TARGET_DIR),target)
demo-ci:
	$(CARGO) test --quiet --workspace --no-run
	$(TARGET_DIR)/debug/vaia demo --exit --port 0

## Every test of the workspace.
test:
	$(CARGO) test --workspace --no-fail-fast

lint: check-tree
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

## No tracked symbolic link and no absolute path of this checkout (CI runs it in lint).
check-tree:
	.ci/check-tree

fmt:
	$(CARGO) fmt --all

## Criterion benchmarks (see bench/README.md).
bench:
	$(CARGO) bench -p vaia-bench

# ---------------------------------------------------------------- AWS (issue 3)
# Python tools live in virtualenvs under .venv/ (gitignored); each target creates its own.
PYTHON ?= python3
VENV := .venv
LAMBDA_FUNCTIONS := webhook api orchestrator sweeper registry gate-schema gate-prompt gate-eval gate-security gate-latency

.PHONY: venvs moto-venv lambda-venv sam-venv checkov-venv infra-check lambda-build sam-build lambda-build-x86 bench-lambda

# The moto release the AWS tests are written against (the tests check it; one home).
MOTO_VERSION := $(shell cat shared/aws/MOTO_VERSION)

$(VENV)/moto/bin/python: shared/aws/MOTO_VERSION
	$(PYTHON) -m venv $(VENV)/moto
	$(VENV)/moto/bin/pip install -q 'moto[server]==$(MOTO_VERSION)' boto3

$(VENV)/lambda/bin/cargo-lambda:
	$(PYTHON) -m venv $(VENV)/lambda
	$(VENV)/lambda/bin/pip install -q 'cargo-lambda==1.9.2'

$(VENV)/sam/bin/sam:
	$(PYTHON) -m venv $(VENV)/sam
	$(VENV)/sam/bin/pip install -q 'aws-sam-cli==1.170.*' 'cfn-lint==1.*'

$(VENV)/checkov/bin/checkov:
	$(PYTHON) -m venv $(VENV)/checkov
	$(VENV)/checkov/bin/pip install -q 'checkov==3.*'

## The local AWS-compatible server the AWS adapter tests start (moto).
moto-venv: $(VENV)/moto/bin/python
lambda-venv: $(VENV)/lambda/bin/cargo-lambda
sam-venv: $(VENV)/sam/bin/sam
checkov-venv: $(VENV)/checkov/bin/checkov
venvs: moto-venv lambda-venv sam-venv checkov-venv

## Validate infra/template.yaml offline: sam validate --lint, cfn-lint, checkov.
infra-check: sam-venv checkov-venv
	SAM_CLI_TELEMETRY=0 AWS_DEFAULT_REGION=us-east-1 AWS_ACCESS_KEY_ID=x AWS_SECRET_ACCESS_KEY=x \
	  AWS_EC2_METADATA_DISABLED=true $(VENV)/sam/bin/sam validate --lint -t infra/template.yaml
	$(VENV)/sam/bin/cfn-lint infra/template.yaml
	$(VENV)/checkov/bin/checkov --skip-download --quiet --compact --framework cloudformation -f infra/template.yaml

# As `sam build` builds each function (cargo lambda build --release --arm64 --bin <f> at the
# workspace root, whose default members are the functions), all at once; panic = "abort"
# is cargo lambda's default for release builds, stated here.
LAMBDA_BUILD = PATH="$(CURDIR)/$(VENV)/lambda/bin:$$PATH" $(CARGO) lambda build --release \
  --config 'profile.release.panic="abort"' $(addprefix --bin ,$(LAMBDA_FUNCTIONS))

## Every function for Lambda (arm64, release profile, provided.al2023) into target/lambda-arm64/.
lambda-build: lambda-venv
	rustup target list --installed | grep -q aarch64-unknown-linux-gnu || rustup target add aarch64-unknown-linux-gnu
	$(LAMBDA_BUILD) --arm64 --lambda-dir target/lambda-arm64
	@ls -l target/lambda-arm64/*/bootstrap

## What `sam build` makes for deployment (infra/.aws-sam/build): one `cargo lambda build
## --release --arm64 --bin <f>` per function. After `make lambda-build` nothing is compiled.
sam-build: lambda-venv sam-venv
	cd infra && PATH="$(CURDIR)/$(VENV)/lambda/bin:$(CURDIR)/$(VENV)/sam/bin:$$PATH" \
	  SAM_CLI_TELEMETRY=0 sam build
	@ls -l infra/.aws-sam/build/*/bootstrap

## The same for x86_64 (what the init/RSS benchmark runs here) into target/lambda-x86_64/.
lambda-build-x86: lambda-venv
	$(LAMBDA_BUILD) --x86-64 --lambda-dir target/lambda-x86_64

## Init time and max RSS of every function beside the Python/boto3 baseline (bench/README.md).
bench-lambda: lambda-build-x86 moto-venv
	$(CARGO) run -p vaia-bench --bin lambda-init -- --lambda-dir target/lambda-x86_64 \
	  --python $(VENV)/moto/bin/python --runs 10

## Leak scanning with Python's pyahocorasick on the data set `make bench` writes (for comparison).
bench-python:
	python3 -m venv target/bench-venv
	target/bench-venv/bin/pip install -q pyahocorasick
	target/bench-venv/bin/python bench/leak_scan_pyahocorasick.py target/bench-data/leak_responses.jsonl

# ---------------------------------------------------------------- dashboard (issue 13)
# dashboard/: React + Vite, built into dashboard/dist, which `vaia up` serves at /.
NPM ?= npm
.PHONY: dashboard dashboard-test bench-dashboard

dashboard/node_modules/.package-lock.json: dashboard/package-lock.json
	cd dashboard && $(NPM) ci --no-audit --no-fund

## Build the dashboard (type-check, then vite build into dashboard/dist).
dashboard: dashboard/node_modules/.package-lock.json
	cd dashboard && $(NPM) run build

## Component tests (vitest, jsdom), then the browser tests (Debian's chromium) against a
## real `vaia up`, built as `make test` builds it (so nothing is compiled again after it).
dashboard-test: dashboard
	cd dashboard && $(NPM) test
	$(CARGO) test --quiet --workspace --no-run
	cd dashboard && VAIA_BIN=$(abspath $(TARGET_DIR))/debug/vaia $(NPM) run e2e

## The dashboard's benchmark (bench/dashboard.md): bundle size, first paint with 10,000
## runs, update latency.
bench-dashboard: dashboard
	$(CARGO) test --quiet --workspace --no-run
	cd dashboard && VAIA_BIN=$(abspath $(TARGET_DIR))/debug/vaia node e2e/bench.mjs
