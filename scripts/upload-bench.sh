#!/usr/bin/env bash
# upload-bench.sh [MB] [debug|release]: how long a capture upload of MB
# megabytes (default 100) takes, end to end — POST the file to a fresh
# collector (text/plain body), then poll its status URL until `done` — and
# the collector's peak resident memory (VmHWM) before and after, which shows
# the upload is streamed, not held. The file: IPA version 1 lines over 40
# URLs, half of them matched by a filter rule, one in 1,000 malformed.
# Prints one line of figures. Uses loopback only; stops what it started.
set -euo pipefail
cd "$(dirname "$0")/.."
mb="${1:-100}"
config="${2:-release}"
swift build -c "$config" --product vigil-collector >/dev/null
B="$(swift build -c "$config" --show-bin-path)/vigil-collector"
DIR=$(mktemp -d /tmp/vigil-upload-bench.XXXXXX)
PID=
cleanup() { [ -n "$PID" ] && kill -TERM "$PID" 2>/dev/null; [ -n "$PID" ] && wait "$PID" 2>/dev/null; rm -rf "$DIR"; }
trap cleanup EXIT

python3 - "$DIR/capture.ipa" "$mb" <<'PY'
import sys
path, mb = sys.argv[1], int(sys.argv[2])
lines = []
for i in range(1000):
    if i == 999:
        lines.append("not an ipa line\n")
    else:
        kind = "cart" if i % 2 == 0 else "search"
        lines.append(f"1\tGET\thttps://shop.example/{kind}/{i % 40}?q={i}\t{(i * 7) % 500 + 0.25}\n")
block = "".join(lines).encode()
with open(path, "wb") as f:
    for _ in range(mb * 1024 * 1024 // len(block) + 1):
        f.write(block)
PY
SET=(--set "data_dir=$DIR/data" --set "listen=127.0.0.1:0" --set "http_listen=127.0.0.1:0" --set "upload_max_bytes=10000000000")
"$B" keys create --project shop --create-project "${SET[@]}" >/dev/null
"$B" run "${SET[@]}" 2> "$DIR/collector.log" &
PID=$!
until grep -q ' ready ' "$DIR/collector.log" 2>/dev/null; do sleep 0.05; done
PORT=$(sed -nE 's/.*http on 127\.0\.0\.1:([0-9]+).*/\1/p' "$DIR/collector.log" | head -1)
T=$(cat "$DIR/data/admin_token")
H=(-H "Authorization: Bearer $T")
curl -sf "${H[@]}" -X PUT "http://127.0.0.1:$PORT/api/v1/projects/shop/patterns" \
  -d '{"patterns":[{"method":"GET","host":"*","path":"/cart/*","monitor":"shop","check":"cart"}]}' >/dev/null
hwm() { awk '/VmHWM/ {print int($2/1024)}' "/proc/$PID/status"; }
before=$(hwm)
size=$(stat -c %s "$DIR/capture.ipa")
start=$(date +%s.%N)
url=$(curl -sf "${H[@]}" -H "Content-Type: text/plain" --data-binary @"$DIR/capture.ipa" \
  "http://127.0.0.1:$PORT/api/v1/projects/shop/uploads" | python3 -c 'import json,sys; print(json.load(sys.stdin)["url"])')
while :; do
  status=$(curl -sf "${H[@]}" "http://127.0.0.1:$PORT$url")
  case "$status" in *'"state":"running"'*) sleep 0.05 ;; *) break ;; esac
done
end=$(date +%s.%N)
after=$(hwm)
python3 - "$status" "$start" "$end" "$size" "$before" "$after" "$config" <<'PY'
import json, sys
s = json.loads(sys.argv[1]); t = float(sys.argv[3]) - float(sys.argv[2]); size = int(sys.argv[4])
dropped = {k: v for k, v in s["dropped"].items() if v}
print(f"upload ({sys.argv[7]}): {size / 1e6:.0f} MB, {s['read']:,} lines in {t:.2f} s ({size / 1e6 / t:.0f} MB/s, "
      f"{s['read'] / t:,.0f} lines/s); state {s['state']}, stored {s['stored']:,}, dropped {dropped}; "
      f"collector peak RSS {sys.argv[5]} MB before, {sys.argv[6]} MB after")
PY
