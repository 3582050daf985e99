#!/usr/bin/env bash
# The cluster figures of BENCHMARKS.md ("Cluster mode"): starts a throwaway
# PostgreSQL 15 (as the postgres user, initdb --locale=C --auth=trust, a free
# port, fsync and synchronous_commit ON, so that commit rates are honest),
# two release nodes built with --features postgres on it (ephemeral ports,
# one shared uploads directory) and one SQLite node of the same build for the
# comparison, then runs each measurement ROUNDS times, printing the 1-minute
# load before each run and every run's output, and at the end the median of
# each figure. Everything it started is stopped and removed at exit.
#
# Measurements (chat-bench against the two nodes, --url a,b, and the same
# command against the SQLite node):
#   fanout    fan-out deliveries/s, clients split over the nodes
#   latency   200 msg/s (20 senders x 10/s) to 1000 clients: latency across nodes
#   acked     20 senders, each waiting for its own message back: acked msg/s
#   pipelined the same with up to 16 messages in flight per sender
#   failover  a fan-out at 200 msg/s to 1000 clients, node b SIGKILLed 3 s in;
#             lost and duplicated deliveries (node b is started again after)
#   burst     the same kill during an unpaced fan-out (2 senders, window 64),
#             1 s in (not in the default list)
#
# Usage: bench/scripts/cluster.sh [ROUNDS] [MEASUREMENT...]   (default 3, all)
# BUILD=0 skips the release builds; SERVER_BIN and BENCH_BIN pick other binaries.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
rounds=${1:-3}
shift || true
measurements=${*:-fanout latency acked pipelined failover}
pgbin=/usr/lib/postgresql/15/bin
server=${SERVER_BIN:-$root/target/release/chat-server}
bench=${BENCH_BIN:-$root/target/release/chat-bench}

if [[ ${BUILD:-1} != 0 ]]; then
    (cd "$root" && cargo build --release --features postgres -p chat-server && cargo build --release -p chat-bench)
fi
[[ -x $pgbin/initdb ]] || { echo "needs PostgreSQL 15 in $pgbin (apt-get install postgresql-15)" >&2; exit 1; }
ulimit -n "$(ulimit -Hn)"

work=$(mktemp -d "${TMPDIR:-/tmp}/chat-cluster.XXXXXX")
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    [[ -d $work/pg ]] && (cd / && runuser -u postgres -- "$pgbin/pg_ctl" -s -m immediate -D "$work/pg" stop) || true
    rm -rf "$work"
}
trap cleanup EXIT
chown postgres "$work"
mkdir -p "$work/uploads" "$work/sqlite-uploads" "$work/results"

# initdb refuses root: PostgreSQL runs as the postgres user, from /.
as_postgres() { (cd / && runuser -u postgres -- "$@"); }
pgport=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
as_postgres "$pgbin/initdb" --locale=C --encoding=UTF8 --auth=trust --username=postgres -D "$work/pg" >/dev/null
as_postgres "$pgbin/pg_ctl" -w -s -l "$work/pg.log" -D "$work/pg" \
    -o "-p $pgport -k $work -c listen_addresses=127.0.0.1 -c fsync=on -c synchronous_commit=on" start
db="postgres://postgres@127.0.0.1:$pgport/postgres"
# WAL flushes to disk so far: how many commits the cluster's messages cost.
wal_syncs() { "$pgbin/psql" -h 127.0.0.1 -p "$pgport" -U postgres -Atc 'SELECT wal_sync FROM pg_stat_wal' postgres; }

# start_node NAME DB UPLOADS [PORT]: starts a node (port 0: the kernel picks
# one), waits for its "listening on" line; sets NAME_url and NAME_pid.
start_node() {
    local name=$1 log=$work/$1.log
    "$server" --addr "127.0.0.1:${4:-0}" --db "$2" --uploads-dir "$3" --ws-rate-limit 0 --log warn \
        --max-connections 20000 2>"$log" &
    local pid=$!
    pids+=("$pid")
    local url=
    for _ in $(seq 400); do
        url=$(sed -n 's/^listening on \(http:[^ ]*\).*/\1/p' "$log")
        [[ -n $url ]] && break
        kill -0 "$pid" 2>/dev/null || { cat "$log" >&2; exit 1; }
        sleep 0.05
    done
    [[ -n $url ]] || { echo "$name did not start" >&2; cat "$log" >&2; exit 1; }
    printf -v "${name}_url" %s "$url"
    printf -v "${name}_pid" %s "$pid"
}
start_node a "$db" "$work/uploads"
start_node b "$db" "$work/uploads"
start_node lite "$work/chat.db" "$work/sqlite-uploads"
echo "PostgreSQL 15 on port $pgport (fsync on); nodes $a_url $b_url; SQLite node $lite_url"
# What one WAL flush costs on this disk: the ceiling of commits a second.
fsync_test=$("$pgbin/pg_test_fsync" -s 1 -f "$work/fsync.test")
echo "disk (pg_test_fsync, one 8 kB write):$(grep -m1 -E '^\s+fdatasync' <<<"$fsync_test" | tr -s ' ')"
echo "machine: $(nproc) CPUs, $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1), kernel $(uname -r); commit $(git -C "$root" rev-parse --short HEAD)"

# measure NAME TARGET SUBCOMMAND FLAGS...: one run; its JSON line goes to
# results/NAME-TARGET.jsonl with the load added. TARGET cluster is both nodes;
# cluster-a is both nodes with only a's CPU and memory read (b is killed).
measure() {
    local name=$1 target=$2 urls pids_flag load out
    shift 2
    case $target in
        cluster) urls="$a_url,$b_url" pids_flag="$a_pid,$b_pid" ;;
        cluster-a) urls="$a_url,$b_url" pids_flag=$a_pid ;;
        sqlite) urls=$lite_url pids_flag=$lite_pid ;;
    esac
    load=$(cut -d' ' -f1 /proc/loadavg)
    echo "=== $name on $target, round $round, load $load: chat-bench $* --url $urls"
    local syncs_before syncs=None
    syncs_before=$(wal_syncs)
    out=$("$bench" "$@" --url "$urls" --server-pid "$pids_flag" --timeout 300) || echo "(the run failed)"
    echo "$out"
    if [[ $target != sqlite ]]; then
        syncs=$(($(wal_syncs) - syncs_before))
        echo "  PostgreSQL WAL flushes (pg_stat_wal.wal_sync) over the run: $syncs"
    fi
    tail -n 1 <<<"$out" | python3 -c "import json, sys; d = json.load(sys.stdin); d['load'] = $load; d['wal_syncs'] = $syncs; print(json.dumps(d))" \
        >>"$work/results/$name-$target.jsonl" || true
}

# both NAME SUBCOMMAND FLAGS...: the same run on the cluster, then on SQLite.
both() {
    local name=$1
    shift
    measure "$name" cluster "$@"
    measure "$name" sqlite "$@"
}

for round in $(seq "$rounds"); do
    for m in $measurements; do
        case $m in
            fanout) both fanout fanout --clients 1000 --senders 2 --messages 1000 --window 64 --users 10 ;;
            latency) both latency fanout --clients 1000 --senders 20 --messages 100 --rate 10 --users 10 ;;
            acked) both acked fanout --clients 20 --senders 20 --messages 500 --window 1 --users 10 ;;
            pipelined) both pipelined fanout --clients 20 --senders 20 --messages 2000 --window 16 --users 10 ;;
            failover | burst)
                if [[ $m == failover ]]; then
                    measure failover cluster-a failover --clients 1000 --senders 10 --messages 200 --rate 20 \
                        --users 10 --kill-pid "$b_pid" --kill-after 3
                else
                    measure burst cluster-a failover --clients 1000 --senders 2 --messages 1000 --window 64 \
                        --users 10 --kill-pid "$b_pid" --kill-after 1
                fi
                wait "$b_pid" 2>/dev/null || true
                start_node b "$db" "$work/uploads" "${b_url##*:}" ;;
            *) echo "unknown measurement $m" >&2; exit 2 ;;
        esac
    done
done

echo
echo "=== medians over $rounds rounds (load: the 1-minute load average before each run)"
python3 - "$work/results" <<'EOF'
import json, pathlib, statistics, sys
keys = {
    "fanout": ["deliveries_per_s", "acked_per_s", "server_cpu_us_per_delivery", "client_cpu_pct", "lost",
               "reordered"],
    "latency": ["latency_ms.p50", "latency_ms.p99", "latency_ms.max", "cross_node_latency_ms.p50",
                "cross_node_latency_ms.p99", "cross_node_latency_ms.max", "client_cpu_pct", "wal_syncs", "lost",
                "reordered"],
    "acked": ["acked_per_s", "latency_ms.p50", "latency_ms.p99", "client_cpu_pct", "wal_syncs", "lost", "reordered"],
    "pipelined": ["acked_per_s", "latency_ms.p50", "latency_ms.p99", "client_cpu_pct", "wal_syncs", "lost",
                  "reordered"],
    "burst": ["lost", "duplicated", "out_of_order", "ids_unseen", "acked_missing", "reconnected_clients",
              "last_resumed_after_kill_ms", "acked", "unconfirmed", "wal_syncs"],
    "failover": ["lost", "duplicated", "out_of_order", "ids_unseen", "acked_missing", "reconnected_clients",
                 "last_resumed_after_kill_ms", "acked", "unconfirmed"],
}
def get(d, key):
    for part in key.split("."):
        d = d.get(part) if isinstance(d, dict) else None
    return d
for path in sorted(pathlib.Path(sys.argv[1]).glob("*.jsonl")):
    runs = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    if not runs:
        continue
    name = path.stem.split("-")[0]
    loads = [r["load"] for r in runs]
    print(f"{path.stem}: {len(runs)} runs, load {min(loads)}-{max(loads)}")
    for key in keys.get(name, []):
        values = [v for v in (get(r, key) for r in runs) if isinstance(v, (int, float))]
        if values:
            print(f"  {key}: median {statistics.median(values)}  (runs: {', '.join(str(v) for v in values)})")
EOF
