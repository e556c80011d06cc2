# Dossier: `make run` starts the whole system locally, `make test` runs every test.
# Both install what they need first (scripts/bootstrap.sh) and skip what is already there.

SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

export DOSSIER_CACHE ?= $(HOME)/.cache/dossier
# Build outputs live outside the clone so a fresh clone (CI) reuses compiled dependencies.
export CARGO_TARGET_DIR ?= $(DOSSIER_CACHE)/target
export DOSSIER_NATS_PORT ?= 14222
export CARGO_TERM_COLOR ?= never

# Rust tests: sqlx::test creates a fresh database per test on this server; NATS is the
# project's own (>= 2.11) server.
TEST_ENV := DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres \
	DOSSIER_MODEL_DIR=$(DOSSIER_CACHE)/models/all-MiniLM-L6-v2 \
	DOSSIER_TEST_NATS_URL=nats://127.0.0.1:$(DOSSIER_NATS_PORT) \
	DOSSIER_TEST_NATS_BIN=$$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))')/nats-server \
	DOSSIER_TEST_MOTO_BIN=$$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))')/moto_server

NATIVE_PACKAGES := -p app -p server -p bot -p tgemu -p testkit -p vecscan -p prom -p chaos
# The native clippy run, the same in `lint` and `check` (so they share its build).
CLIPPY_NATIVE := cargo clippy $(NATIVE_PACKAGES) --features app/ssr --all-targets -- -D warnings

.PHONY: help bootstrap services build run test check lint test-rust e2e faults soak bench clean-e2e manifests

help:
	@echo "make run    build and start Dossier on http://localhost:3000 (with a local Telegram emulator when no TELEGRAM_BOT_TOKEN)"
	@echo "make test   formatting, clippy (ssr, hydrate, bot), Rust tests, Playwright end-to-end"
	@echo "make check  the fast tier for every change: formatting, clippy (native), Rust unit and server tests; no browser, no fault run"
	@echo "make lint   formatting and clippy only"
	@echo "make manifests  render and validate the deployment files (deploy/, compose, CI workflow)"
	@echo "make faults the fault run (processes killed while 200 documents flow) and the overload run"
	@echo "make soak   the long variants of the fault run"
	@echo "make bench  benchmarks that print figures"

bootstrap:
	@scripts/bootstrap.sh

services: bootstrap
	@scripts/services.sh up

build: bootstrap
	cargo leptos build
	cargo build -p bot -p tgemu

run: build
	@scripts/stack.sh

lint: bootstrap
	cargo fmt --all --check
	$(CLIPPY_NATIVE)
	cargo clippy -p frontend --target wasm32-unknown-unknown -- -D warnings

# The fast tier: what every change should pass before it is committed. The same packages and
# features as `lint` and `test-rust`, so it shares their build; no wasm, browser or fault run.
check: services
	cargo fmt --all --check
	$(CLIPPY_NATIVE)
	$(TEST_ENV) cargo test $(NATIVE_PACKAGES) --features app/ssr

test-rust: services
	$(TEST_ENV) cargo test --no-fail-fast $(NATIVE_PACKAGES) --features app/ssr

e2e: build services
	scripts/e2e.sh

# Only what it needs (kubectl and a venv of validators, which the script installs when
# missing), not the whole bootstrap: seconds, so it runs first.
manifests:
	@scripts/manifests.sh

# Real processes (with their own PostgreSQL and NATS): killed and restarted while documents
# flow; then overloaded at ten times the normal rate.
faults: build
	scripts/chaos.sh faults
	scripts/chaos.sh overload

# The long variants: five rounds of faults over 1,000 documents, a minute at each rate.
soak: build
	FAULTS_ROUNDS=5 FAULTS_DOCUMENTS=1000 FAULTS_SEND_SECS=150 scripts/chaos.sh faults
	OVERLOAD_SECS=60 scripts/chaos.sh overload

test: manifests lint test-rust e2e faults

bench: services
	$(TEST_ENV) cargo bench -p server --features app/ssr --bench auth --bench bot --bench documents --bench rag
