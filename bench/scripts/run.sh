#!/usr/bin/env bash
# Runs one chat-bench subcommand against a fresh release server.
# The server gets a temp directory (its db and uploads), --ws-rate-limit 0,
# --log warn and the open-file hard limit; SEED_DB=path starts it on a copy of
# that database, SERVER_FLAGS adds flags, SERVER_BIN picks another binary. Prints the load, then the bench output.
#
# Usage: bench/scripts/run.sh <subcommand> [chat-bench flags...]
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
dir=$(mktemp -d "${TMPDIR:-/tmp}/chat-bench.XXXXXX")
port=${PORT:-18001}
ulimit -n "$(ulimit -Hn)"
if [[ -n "${SEED_DB:-}" ]]; then cp "$SEED_DB" "$dir/chat.db"; fi
mkdir -p "$dir/uploads"
# shellcheck disable=SC2086
"${SERVER_BIN:-$root/target/release/chat-server}" --addr "127.0.0.1:$port" --db "$dir/chat.db" --uploads-dir "$dir/uploads" \
    --ws-rate-limit 0 --log warn --max-connections 20000 ${SERVER_FLAGS:-} 2>"$dir/server.log" &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 200); do
    curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break
    sleep 0.05
done
echo "load: $(cut -d' ' -f1-3 /proc/loadavg)"
"$root/target/release/chat-bench" "$@" --url "http://127.0.0.1:$port" --server-pid "$pid"
