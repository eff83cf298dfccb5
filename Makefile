# paxid: `make run` starts a local cluster, `make test` runs every test this
# machine can run. `make verify` never changes the tree; `make fix` does.

SHELL := /bin/bash
# One target directory outside the checkout, shared by every build and kept
# across clones, so RocksDB's C++ is compiled once per machine.
export CARGO_TARGET_DIR ?= $(HOME)/.cache/paxid-target
CARGO ?= cargo
BIN_DIR := $(CARGO_TARGET_DIR)/release
SEEDS ?= 2000
# Compose v2 (`docker compose`) when the Docker CLI has it, else the v1
# `docker-compose`; override with COMPOSE_CMD=... Evaluated only when used.
COMPOSE_CMD ?= $(shell if docker compose version >/dev/null 2>&1; then echo docker compose; \
	elif command -v docker-compose >/dev/null 2>&1; then echo docker-compose; else echo docker compose; fi)
COMPOSE = $(COMPOSE_CMD) -p paxid -f deploy/docker-compose.yml

.PHONY: setup build test verify fix run sim planted-bugs bench image image-test compose-up compose-down k8s-validate soak clean-data

setup:
	@scripts/setup.sh

build: setup
	$(CARGO) build --release --workspace --bins

## Every test: unit, property, simulation, model check, services, end-to-end
## over real processes, manifests. One profile (release) for all of them.
test: build
	$(CARGO) test --release --workspace --no-fail-fast
	tests/schemathesis/run.py
	k8s/validate.sh
	scripts/container-tests.sh

verify: setup
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --release --workspace --all-targets -- -D warnings
	$(MAKE) test

fix:
	$(CARGO) fmt --all
	$(CARGO) clippy --release --workspace --all-targets --fix --allow-dirty --allow-staged

## A local cluster: 3 acceptors, 2 sequencers, 1 learner; data under ./data.
run: build
	scripts/run-local.sh

## More simulation seeds: make sim SEEDS=20000
sim:
	PAXID_SIM_SEEDS=$(SEEDS) $(CARGO) test --release -p paxos-core --test simulation -- --nocapture

## Plants each known bug (core and drivers) and shows the check that catches it.
planted-bugs: setup
	scripts/planted-bugs.sh

bench: build
	scripts/bench/run.sh

image: build
	deploy/build-image.sh $(BIN_DIR)

image-test:
	deploy/test-image.sh

compose-up: image
	$(COMPOSE) up -d

## Stops the compose cluster and keeps its data volumes (the acceptors'
## votes); `make compose-down VOLUMES=1` removes them too.
compose-down:
	$(COMPOSE) down$(if $(filter 1 yes true,$(VOLUMES)), -v)

k8s-validate:
	k8s/validate.sh

soak: build
	PAXID_SOAK=1 scripts/container-tests.sh

clean-data:
	rm -rf ./data
