#!/usr/bin/env bash
# The main job: servers up, the four services as separate processes, then (once the services
# exist, issue 7) cases carried from referral to outcome. Ctrl-C stops the services.
#   scripts/run.sh            run until Ctrl-C
#   scripts/run.sh --check    start everything, report readiness, stop
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
source scripts/venv.sh
eval "$(scripts/infra.sh)"
export RABBITMQ_URL MONGODB_URL

logs="$repo/.data/logs"
mkdir -p "$logs"
declare -A port=([referral]=8081 [scheduling]=8082 [plans]=8083 [followup]=8084)
pids=()
stop() {
    trap - INT TERM EXIT
    echo "[run] stopping services" >&2
    kill -TERM "${pids[@]}" 2>/dev/null || true
    wait "${pids[@]}" 2>/dev/null || true
}
trap stop INT TERM EXIT

for service in referral scheduling plans followup; do
    KRING_HTTP_HOST=127.0.0.1 KRING_HTTP_PORT="${port[$service]}" \
        "$venv/bin/python" -m "services.$service" >"$logs/$service.log" 2>&1 &
    pids+=($!)
done

for service in referral scheduling plans followup; do
    url="http://127.0.0.1:${port[$service]}/health/ready"
    for _ in $(seq 150); do
        curl -fsS "$url" >/dev/null 2>&1 && break
        sleep 0.2
    done
    if ! curl -fsS "$url" >/dev/null 2>&1; then
        echo "[run] $service did not become ready; last log lines:" >&2
        tail -20 "$logs/$service.log" >&2
        exit 1
    fi
    echo "[run] $service ready on ${url%/health/ready} (log: $logs/$service.log)" >&2
done

[ "${1:-}" = "--check" ] && exit 0
echo "[run] all services running; Ctrl-C stops them" >&2
wait "${pids[@]}"
