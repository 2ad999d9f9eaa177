# Every target runs a script in scripts/, which echoes the commands it runs.
.DEFAULT_GOAL := help
PRESET ?= quick
# Only a full run replaces what docs/results holds (the README quotes it); others go to reports/.
RESULTS = $(if $(filter full,$(PRESET)),docs/results,reports/$(PRESET))
.PHONY: help install up down reset-db ps logs screenshot test test-slow stress-test lint lock format local-up local-down base-image bench claims sweep swarm-up swarm-scale swarm-bench swarm-down cluster-up cluster-down

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

install: ## create .venv from the lock (nothing to do when it is up to date)
	scripts/install.sh

up: ## build and start the stack, wait until healthy (SYNC_WORKERS=4 make up scales)
	scripts/up.sh

down: ## stop the stack and remove it (the archive's data stays for the next start)
	scripts/down.sh

reset-db: ## stop the stack and delete the archive's data: the next make up seeds it afresh
	scripts/down.sh --volumes

ps: ## show the stack's containers
	scripts/compose.sh ps

logs: ## follow the stack's logs
	scripts/compose.sh logs -f

screenshot: ## the README's console picture, by the browser test, into docs/results (about 2 minutes)
	scripts/screenshot.sh

test: ## unit tests, then integration tests against a fresh stack (about 8 minutes)
	scripts/test.sh

test-slow: ## the slow rest: the swarm, the bench's matrices, the fuzzing, the cluster (about 26 minutes)
	scripts/test.sh --slow

stress-test: ## the unit tests 5 times in a row beside 2 CPU hogs (RUNS=, HOGS=)
	scripts/stress-test.sh

bench: ## compare sync and async, the blog's claims, then the waiting sweep (PRESET=full: long)
	scripts/bench.sh compare --preset $(PRESET) --out reports/$(PRESET)
	$(if $(filter quick full,$(PRESET)),scripts/bench.sh claims --preset $(PRESET) --out reports/$(PRESET),@echo "claims and sweep have no $(PRESET) preset: only compare ran")
	$(if $(filter quick full,$(PRESET)),scripts/bench.sh sweep --preset $(PRESET) --out reports/$(PRESET))

sweep: ## waiting under Poisson arrivals against queueing theory (PRESET=full: into docs/results)
	scripts/bench.sh sweep --preset $(PRESET) --out $(RESULTS)/sweep

claims: ## the blog post's claims, measured: about 5 minutes (PRESET=full: 10, into docs/results)
	scripts/bench.sh claims --preset $(PRESET) --out $(RESULTS)

lint: ## ruff and strict mypy
	scripts/lint.sh

lock: ## resolve pyproject.toml into the hashed lock files (requirements*.txt)
	scripts/lock.sh

format: ## format the code with ruff
	scripts/format.sh

local-up: ## the same services as local processes, no Docker
	scripts/local.sh up

local-down: ## stop local mode
	scripts/local.sh down

base-image: ## build the offline Debian base image (no registry needed)
	scripts/base-image.sh

swarm-up: ## the stack on Docker Swarm (a one-node swarm if none), wait until healthy
	scripts/swarm.sh up

swarm-scale: ## replicas per service: make swarm-scale SCALE="upstream-wire=5 upstream-gazette=5"
	scripts/swarm.sh scale $(SCALE)

swarm-bench: ## replicas against workers on the swarm stack (PRESET=full for 1, 2 and 4)
	scripts/bench.sh compare --target swarm --preset $(PRESET) --out reports/swarm-$(PRESET)

swarm-down: ## remove the swarm stack; leave the swarm only if swarm-up created it
	scripts/swarm.sh down

NODES ?= 3
cluster-up: ## a NODES-node swarm on this machine (daemons in network namespaces), and the stack
	scripts/cluster.sh up $(NODES)

cluster-down: ## remove the cluster: its stack, daemons, namespaces, links, and the swarm it made
	scripts/cluster.sh down
