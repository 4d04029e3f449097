#!/usr/bin/env bash
# Installs (when missing) and starts the servers Kring needs on this machine:
# RabbitMQ from the Debian package and FerretDB v1 (a MongoDB-protocol server on SQLite).
# Idempotent: servers already answering are left alone.
#
#   scripts/infra.sh            install/start, then print the environment to export
#   scripts/infra.sh --print-env  only print the environment
#   scripts/infra.sh stop       stop what this script started
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
data="${KRING_DATA_DIR:-$repo/.data}"
ferret_version="v1.24.2"
ferret_port="${KRING_MONGO_PORT:-27017}"
rabbit_url="amqp://guest:guest@127.0.0.1:5672/"
mongo_url="mongodb://127.0.0.1:${ferret_port}/"

say() { echo "[infra] $*" >&2; }
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

print_env() {
    echo "export RABBITMQ_URL=${rabbit_url}"
    echo "export MONGODB_URL=${mongo_url}"
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() {
    local port="$1" what="$2" seconds="${3:-60}"
    for _ in $(seq "$((seconds * 5))"); do
        port_open "$port" && return 0
        sleep 0.2
    done
    say "$what did not open port $port within ${seconds}s"
    return 1
}

start_rabbitmq() {
    if ! command -v rabbitmq-server >/dev/null 2>&1; then
        say "installing rabbitmq-server (Debian package)"
        as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rabbitmq-server >&2
    fi
    if as_root rabbitmqctl -q status >/dev/null 2>&1; then
        say "RabbitMQ already running"
    else
        say "starting RabbitMQ"
        as_root rabbitmq-server -detached >&2
    fi
    # await_startup fails at once while the freshly started node is not yet known to epmd.
    for _ in $(seq 60); do
        as_root rabbitmqctl -q await_startup --timeout 120 >/dev/null 2>&1 && break
        sleep 2
    done
    as_root rabbitmqctl -q await_startup --timeout 10 >&2
    wait_port 5672 RabbitMQ 60
}

ferret_binary() {
    local candidate
    for candidate in "${KRING_FERRETDB:-}" "$data/bin/ferretdb" "$(command -v ferretdb || true)" \
        "$(go env GOPATH 2>/dev/null || echo "$HOME/go")/bin/ferretdb"; do
        if [ -n "$candidate" ] && [ -x "$candidate" ]; then
            echo "$candidate"
            return 0
        fi
    done
    return 1
}

build_ferretdb() {
    command -v go >/dev/null || { say "Go is needed to build FerretDB"; return 1; }
    mkdir -p "$data/bin"
    say "building FerretDB $ferret_version (first run only, about a minute)"
    if GOBIN="$data/bin" go install "github.com/FerretDB/FerretDB/cmd/ferretdb@${ferret_version}" >&2 2>"$data/go-install.log"; then
        return 0
    fi
    # The module proxy may refuse the version list `go install` asks for; downloading the exact
    # version and building from its source works in that case.
    local work src
    work="$(mktemp -d)"
    (cd "$work" && go mod init kring-ferretdb-build >/dev/null 2>&1)
    src="$(cd "$work" && go mod download -json "github.com/FerretDB/FerretDB@${ferret_version}" \
        | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
    [ -d "$src" ] || { say "could not download FerretDB source"; return 1; }
    cp -r "$src/." "$work/src"
    chmod -R u+w "$work/src"
    # FerretDB reads its version from this file and panics when it is empty.
    echo "$ferret_version" >"$work/src/build/version/version.txt"
    (cd "$work/src" && go build -o "$data/bin/ferretdb" ./cmd/ferretdb) >&2
    rm -rf "$work"
}

start_ferretdb() {
    if port_open "$ferret_port"; then
        say "MongoDB-protocol server already listening on $ferret_port"
        return 0
    fi
    local bin
    bin="$(ferret_binary)" || { build_ferretdb; bin="$data/bin/ferretdb"; }
    mkdir -p "$data/ferret"
    say "starting FerretDB ($bin)"
    nohup setsid "$bin" --handler=sqlite --sqlite-url="file:$data/ferret/" \
        --state-dir="$data/ferret" --listen-addr="127.0.0.1:${ferret_port}" \
        --telemetry=disable --debug-addr=- --log-level=warn \
        >"$data/ferret.log" 2>&1 &
    echo $! >"$data/ferret.pid"
    wait_port "$ferret_port" FerretDB 60 || { tail -20 "$data/ferret.log" >&2; return 1; }
}

stop_all() {
    if [ -f "$data/ferret.pid" ]; then
        kill "$(cat "$data/ferret.pid")" 2>/dev/null || true
        rm -f "$data/ferret.pid"
        say "FerretDB stopped"
    fi
    if command -v rabbitmqctl >/dev/null && as_root rabbitmqctl -q status >/dev/null 2>&1; then
        as_root rabbitmqctl -q stop >&2 && say "RabbitMQ stopped"
    fi
}

case "${1:-start}" in
    --print-env) print_env ;;
    stop) stop_all ;;
    start | "")
        mkdir -p "$data"
        start_time=$SECONDS
        start_rabbitmq
        start_ferretdb
        say "servers ready in $((SECONDS - start_time))s"
        print_env
        ;;
    *) say "usage: $0 [start|stop|--print-env]"; exit 2 ;;
esac
