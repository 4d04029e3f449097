#!/usr/bin/env bash
# promtool (Prometheus's rule checker) for tests/unit/test_alert_rules.py, from Debian's
# `prometheus` package, unpacked into .data/tools (no Prometheus server installed or started).
#   scripts/promtool.sh            # prints the path, fetching it the first time
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tools="${KRING_DATA_DIR:-$repo/.data}/tools"
if command -v promtool >/dev/null 2>&1; then command -v promtool; exit 0; fi
if [ ! -x "$tools/promtool" ]; then
    mkdir -p "$tools/deb"
    # A fresh machine may have no package lists yet: fetch them once and try again.
    (cd "$tools/deb" && { apt-get download prometheus >/dev/null 2>&1 \
        || { apt-get update -qq >/dev/null 2>&1 && apt-get download prometheus >/dev/null 2>&1; }; }) \
        || { echo "promtool: apt-get download prometheus failed" >&2; exit 1; }
    dpkg-deb -x "$tools"/deb/prometheus_*.deb "$tools/deb/x"
    cp "$tools/deb/x/usr/bin/promtool" "$tools/promtool"
    rm -rf "$tools/deb"
fi
echo "$tools/promtool"
