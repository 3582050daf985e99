#!/usr/bin/env bash
# The history rows through another load generator: wrk (Debian package wrk,
# written in C, one thread by default) against a release server on a copy of
# SEED_DB (default /tmp/perf/seed1m.db), 32 keep-alive connections for SECS
# seconds per path. Prints wrk's rate and latency percentiles and the
# server's CPU time over each path's run.
#
# Usage: bench/scripts/wrk_history.sh [PATH...]
#        (default: /history/last20 and /history?before_id=500000&limit=20)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
port=${PORT:-18006}
base="http://127.0.0.1:$port"
SEED_DB=${SEED_DB:-/tmp/perf/seed1m.db}
# shellcheck source=bench/scripts/server.sh
source "$root/bench/scripts/server.sh"
start_server "$port" --log warn
token=$(new_user_token "$base" wrkbench)
ticks() { awk '{ print $14 + $15 }' "/proc/$pid/stat"; }
echo "load: $(cut -d' ' -f1-3 /proc/loadavg)"
paths=("$@")
[[ ${#paths[@]} -gt 0 ]] || paths=(/history/last20 "/history?before_id=500000&limit=20")
for path in "${paths[@]}"; do
    before=$(ticks)
    echo "wrk $path"
    wrk -t"${THREADS:-1}" -c32 -d"${SECS:-10}"s --latency -H "Authorization: Bearer $token" "$base$path" |
        grep -E 'Requests/sec|Latency|  (50|90|99)%'
    echo "server CPU $(( ($(ticks) - before) * 1000 / $(getconf CLK_TCK) )) ms"
done
