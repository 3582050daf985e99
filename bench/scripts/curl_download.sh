#!/usr/bin/env bash
# Download speed as curl sees it, without chat-bench's SHA-256 check (which
# bounds its own download figure at what one core hashes): starts a release
# server on a temp directory, uploads SIZE bytes of zeros with curl, then
# downloads the file RUNS times to /dev/null and prints curl's speed.
#
# Usage: bench/scripts/curl_download.sh [SIZE_MIB] [RUNS]
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
size_mib=${1:-1024}
runs=${2:-3}
port=${PORT:-18002}
base="http://127.0.0.1:$port"
# shellcheck source=bench/scripts/server.sh
source "$root/bench/scripts/server.sh"
start_server "$port" --log warn
token=$(new_user_token "$base" curlbench)
head -c "$((size_mib * 1024 * 1024))" /dev/zero >"$dir/file.bin"
id=$(curl -sf -H "Authorization: Bearer $token" -F "file=@$dir/file.bin" "$base/files/upload" | json_field id)
rm "$dir/file.bin"
echo "load: $(cut -d' ' -f1-3 /proc/loadavg)"
for _ in $(seq "$runs"); do
    curl -sf -o /dev/null -H "Authorization: Bearer $token" -w '%{size_download} %{speed_download}\n' "$base/files/$id" |
        awk '{ printf "curl download: %d bytes at %.0f MiB/s\n", $1, $2 / 1048576 }'
done
