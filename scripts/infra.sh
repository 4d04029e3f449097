#!/usr/bin/env bash
# Installs (when missing) and starts the servers Kring needs on this machine:
#   - RabbitMQ 3.10 from the Debian package, with the development parties' users and
#     permissions imported (deploy/rabbitmq/definitions.development.json; guest stays, for
#     the test harness's own administration only);
#   - the local MongoDB-protocol server: mongo-java-server with its H2 backend
#     (deploy/mongo-local), built with Maven into .data/ on first use;
#   - the development OpenID Connect issuer staff sign in at (deploy/oidc-local: navikt's
#     mock-oauth2-server with the demo people's login page), built the same way;
#   - Debian's chromium for the browser tests.
# Production and `docker compose up` use MongoDB 7; see docs/PERFORMANCE.md for why this one here.
# Servers already answering are left alone. Anything that does not come up stops the script
# with its log and a non-zero status.
#
#   scripts/infra.sh [start]      install/start both
#   scripts/infra.sh --print-env  print the environment to export (RABBITMQ_URL, MONGODB_URL, KRING_OIDC_ISSUER)
#   scripts/infra.sh stop         stop them
#
# Settings: KRING_DATA_DIR (.data), KRING_MONGO_PORT (27017), KRING_MONGO_HEAP (2g),
# KRING_MONGO_FSYNC=1 (force every write to the disk before acknowledging it), KRING_OIDC_PORT (8090).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
data="${KRING_DATA_DIR:-$repo/.data}"
mongo_port="${KRING_MONGO_PORT:-27017}"
mongo_heap="${KRING_MONGO_HEAP:-2g}"
rabbit_url="amqp://guest:guest@127.0.0.1:5672/"
mongo_url="mongodb://127.0.0.1:${mongo_port}/"
oidc_port="${KRING_OIDC_PORT:-8090}"
# The issuer names itself after the address it is called at: always 127.0.0.1, never localhost.
oidc_issuer="http://127.0.0.1:${oidc_port}/kring"
logs="$data/logs"
jar="$data/mongo-local/mongo-local.jar"
oidc_jar="$data/oidc-local/oidc-local.jar"

say() { echo "[infra] $*" >&2; }
fail() { say "$*"; exit 1; }
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

print_env() {
    echo "export RABBITMQ_URL=${rabbit_url}"
    echo "export MONGODB_URL=${mongo_url}"
    echo "export KRING_OIDC_ISSUER=${oidc_issuer}"
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Show the end of a log and stop the script.
fail_with_log() {
    local log="$1"
    shift
    say "$*; last lines of $log:"
    tail -25 "$log" >&2 || true
    exit 1
}

# Debian's Chromium for the portal's browser tests (Playwright's own browser download fails here).
install_chromium() {
    [ -x /usr/bin/chromium ] && return 0
    say "installing chromium (Debian package, for the browser tests; output in $logs/install.log)"
    {
        as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium
    } >>"$logs/install.log" 2>&1 || fail_with_log "$logs/install.log" "could not install chromium"
}

start_rabbitmq() {
    if ! command -v rabbitmq-server >/dev/null 2>&1; then
        say "installing rabbitmq-server (Debian package; output in $logs/install.log)"
        {
            as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
            as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rabbitmq-server
        } >>"$logs/install.log" 2>&1 || fail_with_log "$logs/install.log" "could not install rabbitmq-server"
    fi
    if as_root rabbitmqctl -q status >/dev/null 2>&1; then
        say "RabbitMQ already running"
    else
        say "starting RabbitMQ"
        # 9>&-: a server must not inherit the start lock, or it holds it for as long as it runs
        as_root rabbitmq-server -detached >>"$logs/rabbitmq-start.log" 2>&1 9>&- \
            || fail_with_log "$logs/rabbitmq-start.log" "rabbitmq-server -detached failed"
    fi
    # await_startup fails at once while the freshly started node is not yet known to epmd.
    local _
    for _ in $(seq 60); do
        as_root rabbitmqctl -q await_startup --timeout 120 >/dev/null 2>&1 && break
        sleep 2
    done
    as_root rabbitmqctl -q await_startup --timeout 10 >>"$logs/rabbitmq-start.log" 2>&1 \
        || fail_with_log /var/log/rabbitmq/rabbit@"$(hostname -s)".log "RabbitMQ did not start"
    wait_port 5672 60 || fail "RabbitMQ runs but does not listen on 5672"
    load_definitions
}

# Idempotent: importing the same definitions again changes nothing (and is skipped).
load_definitions() {
    local definitions="$repo/deploy/rabbitmq/definitions.development.json"
    as_root rabbitmqctl -q import_definitions --skip-if-unchanged "$definitions" >>"$logs/rabbitmq-start.log" 2>&1 \
        || fail_with_log "$logs/rabbitmq-start.log" "could not import $definitions"
}

# wait_until_up PID LOG WHAT COMMAND...: COMMAND succeeds within 30 s, or the script stops with
# the end of LOG, at once when the server (PID) died (a port taken, a bad configuration).
wait_until_up() {
    local pid="$1" log="$2" what="$3" _
    shift 3
    for _ in $(seq 150); do
        "$@" && return 0
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.2
    done
    fail_with_log "$log" "$what did not come up"
}

# stop_pid PID SECONDS WHAT: SIGTERM, and SIGKILL if it is still there after SECONDS.
stop_pid() {
    local pid="$1" seconds="$2" what="$3" _
    kill -TERM "$pid"
    for _ in $(seq "$((seconds * 5))"); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.2
    done
    if kill -0 "$pid" 2>/dev/null; then
        say "$what did not stop in $seconds s: killing it"
        kill -KILL "$pid"
    fi
    say "$what stopped"
}

wait_port() {
    local port="$1" seconds="$2" _
    for _ in $(seq "$((seconds * 5))"); do
        port_open "$port" && return 0
        sleep 0.2
    done
    return 1
}

# A jar of deploy/<name> is rebuilt whenever its pom.xml or sources change.
sources_digest() {
    (cd "$repo/deploy/$1" && find pom.xml $(ls -d src 2>/dev/null) -type f -print0 | sort -z | xargs -0 sha256sum) | sha256sum | cut -d' ' -f1
}

# build_jar NAME WHAT: deploy/NAME built with Maven into .data/NAME/NAME.jar (first use only).
build_jar() {
    local name="$1" what="$2" digest
    digest="$(sources_digest "$name")"
    if [ -f "$data/$name/$name.jar" ] && [ "$(cat "$data/$name/sources.sha256" 2>/dev/null)" = "$digest" ]; then
        return 0
    fi
    command -v java >/dev/null || fail "Java 17 is needed for $what"
    command -v mvn >/dev/null || fail "Maven is needed to build $what"
    say "building $what with Maven (first run only, under a minute; output in $logs/$name-build.log)"
    mkdir -p "$data/$name"
    mvn -B -q -f "$repo/deploy/$name/pom.xml" package \
        -Dkring.build.directory="$data/$name/build" >"$logs/$name-build.log" 2>&1 \
        || fail_with_log "$logs/$name-build.log" "the Maven build of deploy/$name failed"
    cp "$data/$name/build/$name.jar" "$data/$name/$name.jar"
    echo "$digest" >"$data/$name/sources.sha256"
}

start_mongo_local() {
    if port_open "$mongo_port"; then
        say "MongoDB-protocol server already listening on $mongo_port (left as it is; scripts/infra.sh stop restarts it)"
        return 0
    fi
    build_jar mongo-local "the local MongoDB-protocol server"
    mkdir -p "$data/mongo"
    local fsync=()
    [ "${KRING_MONGO_FSYNC:-0}" = 1 ] && fsync=(--fsync)
    say "starting the local MongoDB-protocol server (mongo-java-server/H2, heap $mongo_heap, log $logs/mongo-local.log)"
    nohup setsid java "-Xms256m" "-Xmx$mongo_heap" -XX:+ExitOnOutOfMemoryError \
        -jar "$jar" --host 127.0.0.1 --port "$mongo_port" --file "$data/mongo/kring.mv" "${fsync[@]}" \
        >>"$logs/mongo-local.log" 2>&1 9>&- &
    wait_until_up "$!" "$logs/mongo-local.log" "the local MongoDB-protocol server on $mongo_port" port_open "$mongo_port"
}

# The server on our port, whoever started it (a fault run restarts it with the same command).
mongo_local_pid() { pgrep -f -- "mongo-local\.jar .*--port $mongo_port( |$)" | head -1 || true; }

stop_mongo_local() {
    local pid
    pid="$(mongo_local_pid)"
    [ -n "$pid" ] || return 0
    # SIGTERM closes the data file cleanly; give it the time it needs
    stop_pid "$pid" 30 "the local MongoDB-protocol server"
}

# The development issuer: a new signing key at every start, under the same kid ("kring"): the
# services fetch its keys again when the cached one does not verify a signature (shared/auth.py).
# Its login page and settings: deploy/oidc-local.
start_oidc_local() {
    if port_open "$oidc_port"; then
        say "OpenID Connect issuer already listening on $oidc_port (left as it is)"
        return 0
    fi
    build_jar oidc-local "the development OpenID Connect issuer"
    say "starting the development OpenID Connect issuer at $oidc_issuer (log $logs/oidc-local.log)"
    # its config names the login page relative to deploy/oidc-local: here with the full path
    local config
    config="$(sed "s|\"./login.html\"|\"$repo/deploy/oidc-local/login.html\"|" "$repo/deploy/oidc-local/config.json")"
    SERVER_HOSTNAME=127.0.0.1 SERVER_PORT="$oidc_port" JSON_CONFIG="$config" \
        nohup setsid java -Xms64m -Xmx256m -XX:+ExitOnOutOfMemoryError -jar "$oidc_jar" >>"$logs/oidc-local.log" 2>&1 9>&- &
    wait_until_up "$!" "$logs/oidc-local.log" "the development OpenID Connect issuer on $oidc_port" issuer_answers
}

issuer_answers() { curl -fsS "$oidc_issuer/.well-known/openid-configuration" >/dev/null 2>&1; }

# The issuer of this data directory's jar: not another checkout's (each runs its own jar).
oidc_local_pid() { pgrep -f -- "-jar $oidc_jar\$" | head -1 || true; }

stop_oidc_local() {
    local pid
    pid="$(oidc_local_pid)"
    [ -n "$pid" ] || return 0
    stop_pid "$pid" 10 "the development OpenID Connect issuer"
}

stop_all() {
    stop_oidc_local
    stop_mongo_local
    if command -v rabbitmqctl >/dev/null && as_root rabbitmqctl -q status >/dev/null 2>&1; then
        as_root rabbitmqctl -q stop >&2 && say "RabbitMQ stopped"
    fi
}

case "${1:-start}" in
    --print-env) print_env ;;
    stop) stop_all ;;
    start)
        mkdir -p "$logs"
        # one start at a time: two scripts starting together must not start two servers
        exec 9>"$data/infra.lock"
        flock 9
        start_time=$SECONDS
        start_rabbitmq
        start_mongo_local
        start_oidc_local
        install_chromium
        say "servers ready in $((SECONDS - start_time))s"
        ;;
    *) say "usage: $0 [start|stop|--print-env]"; exit 2 ;;
esac
