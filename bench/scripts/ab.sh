#!/usr/bin/env bash
# Back-to-back comparison of two server builds: runs the same chat-bench
# subcommand against OLD_BIN and NEW_BIN in turn, ROUNDS times, each through
# run.sh on a fresh server, so that both see the same machine at nearly the
# same moment. The order alternates (old then new, then new then old, ...):
# the second run of a pair was seen to come out slower whichever build it
# was, and alternating spreads that over both. Every run's output is printed under
# a line naming the build and the round; SEED_DB, SERVER_FLAGS and BENCH_BIN
# pass through to run.sh. OLD_FLAGS and NEW_FLAGS add server flags for one
# build only: one that the other build does not know, or the same binary
# twice with and without a flag.
#
# Usage: bench/scripts/ab.sh OLD_BIN NEW_BIN ROUNDS <subcommand> [chat-bench flags...]
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
old=$1 new=$2 rounds=$3
shift 3
for round in $(seq "$rounds"); do
    order="old new"
    ((round % 2 == 0)) && order="new old"
    for build in $order; do
        bin=$old flags=${OLD_FLAGS:-}
        [[ $build == new ]] && bin=$new flags=${NEW_FLAGS:-}
        echo "=== $build ($bin${flags:+ $flags}), round $round: $*"
        SERVER_BIN=$bin SERVER_FLAGS="${SERVER_FLAGS:-} $flags" "$root/bench/scripts/run.sh" "$@"
    done
done
