#!/usr/bin/env bash
# Quickstart 2: install everything, then run the whole test suite (SQLite and PostgreSQL).
# PostgreSQL tests use postgresql://postgres@127.0.0.1:5432 (override: FORMICARY_TEST_POSTGRES_URL).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
exec .venv/bin/python -m pytest "$@"
