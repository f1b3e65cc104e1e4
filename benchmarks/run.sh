#!/usr/bin/env bash
# Make the benchmark environment (horae + APScheduler 4.0.0a6 with anyio 4.13.0, whose
# asyncpg broker breaks on newer anyio; croniter; cronsim; the store drivers) and run one
# benchmark:
#   bash benchmarks/run.sh triggers [--quick]
#   bash benchmarks/run.sh scheduler [--quick]
#   bash benchmarks/run.sh stores [--quick]
# The environment is (re)installed whenever the package list below changes.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=.venv-bench
packages=(
    -e . "apscheduler==4.0.0a6" "anyio==4.13.0" croniter cronsim
    "sqlalchemy[asyncio]" asyncpg aiosqlite sniffio psutil
    "redis[hiredis]>=5.0.1" "pymongo>=4.13" "secantusdb==0.7.0b3"
)
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --upgrade pip
fi
if [ "$(cat "$venv/.bench-packages" 2>/dev/null)" != "${packages[*]}" ]; then
    "$venv/bin/pip" install --quiet "${packages[@]}"
    echo "${packages[*]}" >"$venv/.bench-packages"
fi
name=${1:-triggers}
shift || true
exec "$venv/bin/python" "benchmarks/$name.py" "$@"
