#!/usr/bin/env bash
# Quickstart 1: install everything, then run the demo on the embedded SQLite default.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
exec .venv/bin/formicary demo "$@"
