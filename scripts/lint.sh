#!/usr/bin/env bash
# Lint, format check, strict type check, the lock files against pyproject.toml, the k8s
# manifests against Kubernetes' schemas, and the Dockerfiles.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

"$ROOT/scripts/install.sh"
cd "$ROOT"
run .venv/bin/ruff check .
run .venv/bin/ruff format --check .
run .venv/bin/mypy .
run "$ROOT/scripts/lock.sh" --check
run .venv/bin/kubernetes-validate --quiet --strict k8s/*.yaml
run .venv/bin/hadolint Dockerfile db/Dockerfile db/offline/Dockerfile
