#!/usr/bin/env bash
# Runs one chat-bench subcommand against a fresh release server.
# The server gets a temp directory (its db and uploads), --ws-rate-limit 0,
# --log warn and the open-file hard limit; SEED_DB=path starts it on a copy of
# that database, SERVER_FLAGS adds flags, SERVER_BIN picks another server binary and BENCH_BIN
# another generator. Prints the load, then the bench output.
#
# Usage: bench/scripts/run.sh <subcommand> [chat-bench flags...]
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
port=${PORT:-18001}
ulimit -n "$(ulimit -Hn)"
# shellcheck source=bench/scripts/server.sh
source "$root/bench/scripts/server.sh"
# shellcheck disable=SC2086
start_server "$port" --ws-rate-limit 0 --log warn --max-connections 20000 ${SERVER_FLAGS:-}
echo "load: $(cut -d' ' -f1-3 /proc/loadavg)"
"${BENCH_BIN:-$root/target/release/chat-bench}" "$@" --url "http://127.0.0.1:$port" --server-pid "$pid"
