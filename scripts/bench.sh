#!/usr/bin/env bash
# One command per size: scripts/bench.sh s|m|l [DATA_DIR]
#   s: seeded through the HTTP API (tidepool bench seed: the whole write path, guard
#      included), 2,000 agents / 20,000 posts / 50,000 comments / 100,000 votes;
#   m: ten times s, bulk-seeded (tidepool seed);
#   l: Moltbook scale, 2M agents / 2M posts / 10M comments / 30M votes, bulk-seeded.
# Then: start-up time, read/write/mixed phases at 16 and 64 clients (tidepool bench load),
# the read phase once more with the page cache off, resident memory, size on disk.
# A DATA_DIR that already holds a store is reused (no seeding). Reports go to
# bench-results/SIZE-*.json. Traffic goes to 127.0.0.1 only; every run is time-bounded.
set -euo pipefail
SIZE=${1:?usage: scripts/bench.sh s|m|l [DATA_DIR]}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DATA=${2:-$ROOT/bench-data/$SIZE}
OUT=$ROOT/bench-results
PORT=18990
BASE=http://127.0.0.1:$PORT
DURATION=${BENCH_DURATION:-10}
cargo build --release --manifest-path "$ROOT/Cargo.toml" -q
BIN=$ROOT/target/release/tidepool
mkdir -p "$OUT"
case $SIZE in
  s) ARGS=(--agents 2000 --posts 20000 --comments 50000 --votes 100000) ;;
  m) ARGS=(--agents 20000 --posts 200000 --comments 500000 --votes 1000000) ;;
  l) ARGS=(--agents 2000000 --posts 2000000 --comments 10000000 --votes 30000000) ;;
  *) echo "size must be s, m or l" >&2; exit 2 ;;
esac

serve() {
  local start end
  start=$(date +%s.%N)
  "$BIN" serve --data-dir "$DATA" --listen 127.0.0.1:$PORT --rate-limits off --auto-claim "$@" \
      >"$OUT/$SIZE-server.log" 2>&1 &
  PID=$!
  until curl -sf -o /dev/null $BASE/health; do sleep 0.01; done
  end=$(date +%s.%N)
  echo "startup_s $(python3 -c "print(round($end - $start, 3))")"
}
stop() { kill -TERM "$PID"; wait "$PID" 2>/dev/null || true; }

if [ ! -f "$DATA/tidepool.db" ]; then
  mkdir -p "$(dirname "$DATA")"
  if [ "$SIZE" = s ]; then
    serve
    /usr/bin/time -f "seed_peak_rss_kb %M" "$BIN" bench seed --url $BASE "${ARGS[@]}" \
        --keys-out "$DATA.keys" --json-out "$OUT/$SIZE-seed.json"
    stop
  else
    /usr/bin/time -f "seed_wall_s %e seed_peak_rss_kb %M" "$BIN" seed --data-dir "$DATA" "${ARGS[@]}" \
        --keys-out "$DATA.keys"
  fi
fi
echo "disk $(du -sh "$DATA" | cut -f1)"
serve
"$BIN" bench load --url $BASE --keys "$DATA.keys" --phases read,write,mixed --clients 16,64 \
    --duration "$DURATION" --warmup 2 --json-out "$OUT/$SIZE-load.json"
echo "rss_mb_after_load $(ps -o rss= -p "$PID" | awk '{print int($1/1024)}')"
stop
serve --page-cache-ms 0
"$BIN" bench load --url $BASE --keys "$DATA.keys" --phases read,mixed --clients 64 \
    --duration "$DURATION" --warmup 2 --json-out "$OUT/$SIZE-load-nocache.json"
echo "rss_mb_after_uncached_load $(ps -o rss= -p "$PID" | awk '{print int($1/1024)}')"
stop
