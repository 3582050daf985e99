# Sourced by the benchmark scripts: start_server PORT [server flags...]
# starts the release server (or SERVER_BIN) on a fresh temp directory, set in
# $dir (its chat.db, copied from SEED_DB if set, and uploads/), waits until
# /healthz answers and sets $pid; the server is stopped and the directory
# removed when the script exits.
start_server() {
    local port=$1
    shift
    dir=$(mktemp -d "${TMPDIR:-/tmp}/chat-bench.XXXXXX")
    if [[ -n "${SEED_DB:-}" ]]; then cp "$SEED_DB" "$dir/chat.db"; fi
    mkdir -p "$dir/uploads"
    "${SERVER_BIN:-$root/target/release/chat-server}" --addr "127.0.0.1:$port" --db "$dir/chat.db" \
        --uploads-dir "$dir/uploads" "$@" 2>"$dir/server.log" &
    pid=$!
    trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$dir"' EXIT
    for _ in $(seq 200); do
        curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && return
        sleep 0.05
    done
}
