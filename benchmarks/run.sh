#!/usr/bin/env bash
# Make the benchmark environment (horae + APScheduler 4.0.0a6 with anyio 4.13.0, whose
# asyncpg broker breaks on newer anyio; croniter; cronsim) and run one benchmark:
#   bash benchmarks/run.sh triggers [--quick]
set -euo pipefail
cd "$(dirname "$0")/.."
venv=.venv-bench
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --upgrade pip
    "$venv/bin/pip" install --quiet -e . "apscheduler==4.0.0a6" "anyio==4.13.0" croniter cronsim \
        "sqlalchemy[asyncio]" asyncpg psutil
fi
name=${1:-triggers}
shift || true
exec "$venv/bin/python" "benchmarks/$name.py" "$@"
