#!/usr/bin/env bash
# Instructions the server executes per cached `/history/last20` request, per
# `/history?offset=100` page (never cached: it reads the database every
# time), per fan-out delivery and per WebSocket handshake (upgrade, first
# event, close), counted by callgrind for each server binary given.
# A count is the same for the same binary and inputs whatever else the
# machine is doing, so two builds compare without the noise of a shared
# host; the cost is a run about fifty times slower, hence the small loads.
#
# Each figure is the difference between two runs that differ only in the
# load (5 000 and 25 000 requests, 2 000 and 6 000 offset pages; 100 and
# 300 messages to 200 clients; 1 000 and 3 000 handshakes),
# divided by the difference in requests or deliveries: start-up, sign-up
# and log-in cancel out. Fan-out counts move by a few percent from run to
# run (how many events a flush takes depends on timing); request counts
# much less. SEED_DB passes through to run.sh (it gives last20 its page).
#
# Usage: bench/scripts/instructions.sh SERVER_BIN...
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
out=$(mktemp -d "${TMPDIR:-/tmp}/instructions.XXXXXX")
trap 'rm -rf "$out"' EXIT
cat >"$out/server.sh" <<'WRAPPER'
#!/bin/sh
exec valgrind --tool=callgrind --callgrind-out-file="$CALLGRIND_OUT" "$CALLGRIND_SERVER" "$@"
WRAPPER
chmod +x "$out/server.sh"

# run_counted NAME run.sh-args...: runs one load against the counted server
# and prints the instructions it executed in all.
run_counted() {
    local name=$1
    shift
    CALLGRIND_OUT="$out/$name" SERVER_BIN="$out/server.sh" SERVER_FLAGS="--bcrypt-cost 4" \
        "$root/bench/scripts/run.sh" "$@" >/dev/null 2>&1
    sed -n 's/^summary: //p' "$out/$name"
}

for bin in "$@"; do
    export CALLGRIND_SERVER=$bin
    small=$(run_counted h5 history --mode last20 --connections 4 --requests 5000)
    large=$(run_counted h25 history --mode last20 --connections 4 --requests 25000)
    small_offset=$(run_counted o2 history --mode offset --depth 100 --connections 4 --requests 2000)
    large_offset=$(run_counted o6 history --mode offset --depth 100 --connections 4 --requests 6000)
    small_fan=$(run_counted f100 fanout --clients 200 --senders 1 --messages 100 --window 16)
    large_fan=$(run_counted f300 fanout --clients 200 --senders 1 --messages 300 --window 16)
    small_ws=$(run_counted w1 handshake --connections 1000 --concurrency 4)
    large_ws=$(run_counted w3 handshake --connections 3000 --concurrency 4)
    echo "$bin: $(((large - small) / 20000)) instructions per last20 request," \
        "$(((large_offset - small_offset) / 4000)) per offset page," \
        "$(((large_fan - small_fan) / 40000)) per fan-out delivery," \
        "$(((large_ws - small_ws) / 2000)) per handshake"
done
