#!/usr/bin/env bash
# The test command: sets up the virtualenv and the servers, then runs pytest.
#   scripts/test.sh                 everything
#   scripts/test.sh tests/unit -x   any pytest arguments
# Servers: RABBITMQ_URL / MONGODB_URL when set; else testcontainers when a Docker engine answers;
# else the local RabbitMQ and MongoDB-protocol server started by scripts/infra.sh. The unit
# tests alone (scripts/test.sh tests/unit) start none: they run on the in-memory store.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"

source scripts/venv.sh

# Only the unit tests asked for (scripts/test.sh tests/unit …): they need no server.
only_unit=false
for arg in "$@"; do
    case "$arg" in
        tests/unit | tests/unit/*) only_unit=true ;;
        -*) ;;
        *) only_unit=false; break ;;
    esac
done

if ! $only_unit && { [ -z "${RABBITMQ_URL:-}" ] || [ -z "${MONGODB_URL:-}" ]; }; then
    if docker info >/dev/null 2>&1; then
        echo "[test] Docker engine found: tests start servers with testcontainers" >&2
    else
        scripts/infra.sh start
        eval "$(scripts/infra.sh --print-env)"
    fi
fi

# promtool for the alert rules' tests (tests/unit/test_alert_rules.py); without it they skip.
scripts/promtool.sh >/dev/null 2>&1 || echo "[test] promtool unavailable: the alert rules' promtool test skips" >&2

set +e
"$venv/bin/python" -m pytest "$@"
status=$?
set -e
# pytest exits 5 when it collected nothing: a test command that tested nothing has failed.
[ "$status" -eq 5 ] && echo "[test] no tests were collected" >&2 && exit 1
exit "$status"
