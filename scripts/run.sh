#!/usr/bin/env bash
# The main job: servers up, the four services as separate processes, then realistic cases
# carried from referral to outcome (scripts/demo.py), their timelines and the funder report.
# Ctrl-C stops everything at any moment; stored state stays consistent.
#   scripts/run.sh                 the demo with 12 cases, then stop
#   scripts/run.sh --cases 40      more cases (any scripts/demo.py option)
#   scripts/run.sh --keep          leave the services running after the demo (Ctrl-C stops)
#   scripts/run.sh --check         start everything, report readiness, stop
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
declare -A port=([referral]=8081 [scheduling]=8082 [plans]=8083 [followup]=8084 [portal]=8080)
# A second run beside a first would drive a second demo into the same databases.
for service in referral scheduling plans followup portal; do
    if (exec 3<>"/dev/tcp/127.0.0.1/${port[$service]}") 2>/dev/null; then
        echo "[run] port ${port[$service]} ($service) is taken: is Kring already running? Stop it first." >&2
        exit 1
    fi
done

source scripts/venv.sh
scripts/infra.sh start
eval "$(scripts/infra.sh --print-env)"

logs="$repo/.data/logs"
mkdir -p "$logs"
pids=()
stop() {
    trap - INT TERM EXIT
    echo "[run] stopping services" >&2
    kill -TERM "${pids[@]}" 2>/dev/null || true
    wait "${pids[@]}" 2>/dev/null || true
}
trap stop INT TERM EXIT

# Development services: tokens signed and verified with the key pair generated into
# .data/dev-keys (shared/auth.py DevelopmentKeys), API docs on (/docs), the form's cookie
# without Secure (plain HTTP). Never in production.
export KRING_ENVIRONMENT=development
# The demo cannot wait three months: the follow-up falls due seconds after a plan is accepted.
export KRING_FOLLOWUP_INTERVAL_DAYS="${KRING_FOLLOWUP_INTERVAL_DAYS:-0.0002}" KRING_FOLLOWUP_SWEEP_SECONDS="${KRING_FOLLOWUP_SWEEP_SECONDS:-2}"
# Each service as its own broker user (deploy/rabbitmq/definitions.development.json).
broker="${RABBITMQ_URL#*@}"
for service in referral scheduling plans followup; do
    RABBITMQ_URL="amqp://kring-$service:kring-$service-dev-password@$broker" \
        KRING_HTTP_HOST=127.0.0.1 KRING_HTTP_PORT="${port[$service]}" \
        "$venv/bin/python" -m "services.$service" >"$logs/$service.log" 2>&1 &
    pids+=($!)
done
# The people's portal (services/portal) in front of them: it calls their APIs, never their databases.
KRING_HTTP_HOST=127.0.0.1 KRING_HTTP_PORT="${port[portal]}" KRING_PORTAL_PUBLIC_URL="http://127.0.0.1:${port[portal]}" \
    KRING_PORTAL_REFERRAL_URL="http://127.0.0.1:${port[referral]}" KRING_PORTAL_SCHEDULING_URL="http://127.0.0.1:${port[scheduling]}" \
    KRING_PORTAL_PLANS_URL="http://127.0.0.1:${port[plans]}" KRING_PORTAL_FOLLOWUP_URL="http://127.0.0.1:${port[followup]}" \
    "$venv/bin/python" -m services.portal >"$logs/portal.log" 2>&1 &
pids+=($!)

for service in referral scheduling plans followup portal; do
    health=ready
    [ "$service" = portal ] && health=live
    url="http://127.0.0.1:${port[$service]}/health/$health"
    for _ in $(seq 150); do
        curl -fsS "$url" >/dev/null 2>&1 && break
        sleep 0.2
    done
    if ! curl -fsS "$url" >/dev/null 2>&1; then
        echo "[run] $service did not become ready; last log lines:" >&2
        tail -20 "$logs/$service.log" >&2
        exit 1
    fi
    echo "[run] $service ready on ${url%/health/$health} (log: $logs/$service.log)" >&2
done
cat >&2 <<EOF
[run] the portal for people: http://127.0.0.1:${port[portal]}  (watch the demo there while it runs; --keep leaves it up)
[run]   staff sign in at the development issuer ${KRING_OIDC_ISSUER:-(not configured)}, choosing one of:
[run]     coord-anna, coord-youssef, coord-elif, coord-bram   coordinators (the demo's cases are theirs)
[run]     gezinsvoogd-ut, gezinsvoogd-nh                      professionals responsible for the statutory cases
[run]     funder-utrecht, funder-noord-holland                funders (the province's report)
[run]     ops-demo                                            operations
[run]   families enter the one-time code their coordinator makes on the case page
EOF

[ "${1:-}" = "--check" ] && exit 0
keep=false
args=()
for arg in "$@"; do
    if [ "$arg" = "--keep" ]; then keep=true; else args+=("$arg"); fi
done
set +e
"$venv/bin/python" scripts/demo.py "${args[@]}"
status=$?
set -e
if $keep; then
    echo "[run] services keep running (logs in $logs); Ctrl-C stops them" >&2
    wait "${pids[@]}"
fi
exit "$status"
