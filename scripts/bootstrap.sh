#!/usr/bin/env bash
# Create .venv (Python >= 3.11) and install the pinned dependencies from requirements.lock and
# Formicary itself (compiling its C extensions). Re-running is cheap: it reinstalls only when
# the lock file, the packaging or the C sources changed.
set -euo pipefail
cd "$(dirname "$0")/.."

python_bin=""
for candidate in python3.13 python3.12 python3.11 python3; do
    if command -v "$candidate" >/dev/null 2>&1 &&
        "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
        python_bin="$candidate"
        break
    fi
done
if [ -z "$python_bin" ]; then
    echo "formicary needs Python >= 3.11 (with venv); install it and re-run" >&2
    exit 1
fi

if [ ! -x .venv/bin/python ]; then
    "$python_bin" -m venv .venv
fi
stamp=.venv/.formicary-lock.sha256
wanted="$(sha256sum requirements.lock pyproject.toml setup.py formicary/ledger/_fastpath.c formicary/ledger/_sqlitewriter.c | sha256sum | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$wanted" ]; then
    .venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements.lock
    .venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
    echo "$wanted" > "$stamp"
fi
