# Sourced by the benchmark scripts: start_server PORT [server flags...]
# starts the release server (or SERVER_BIN) on a fresh temp directory, set in
# $dir (its chat.db, copied from SEED_DB if set, and uploads/), waits until
# /healthz answers and sets $pid; the server is stopped and the directory
# removed when the script exits. Also json_field and new_user_token, below.
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

# json_field NAME: prints the top-level field NAME of the JSON on stdin.
json_field() { python3 -c "import json, sys; print(json.load(sys.stdin)['$1'])"; }

# new_user_token BASE NAME: registers NAME (password NAME-pass) on the server
# at BASE and prints a token for it.
new_user_token() {
    curl -sf -H 'Content-Type: application/json' -d "{\"username\":\"$2\",\"password\":\"$2-pass\"}" \
        "$1/register" >/dev/null
    curl -sf -d "username=$2&password=$2-pass" "$1/token" | json_field access_token
}
