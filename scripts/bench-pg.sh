#!/usr/bin/env bash
# The S-size benchmark on both stores, one command:
#   scripts/bench-pg.sh
# 1. SQLite, one node (the default store), seeded through the HTTP API;
# 2. PostgreSQL, one node, seeded the same way into a fresh database;
# 3. PostgreSQL, three nodes behind haproxy (balancing on the Authorization header, as in
#    docs/SCALE-OUT.md), on the same database.
# Each: read / write / mixed phases at 16 and 64 clients (tidepool bench load), and the CPU
# seconds the tidepool and postgres processes spent, so the split between nodes and the
# database is known. PostgreSQL: TIDEPOOL_BENCH_DATABASE_URL (default
# postgres://postgres@127.0.0.1:5432/postgres) must allow CREATE DATABASE; the database
# tidepool_bench_s is dropped and created. Reports: bench-results/pg-*.json and a summary
# on stdout. Traffic goes to 127.0.0.1 only; every phase is time-bounded.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=$ROOT/bench-results
WORK=$(mktemp -d)
ADMIN_URL=${TIDEPOOL_BENCH_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
DB_URL=${ADMIN_URL%/*}/tidepool_bench_s
DURATION=${BENCH_DURATION:-10}
SEED=(--agents 2000 --posts 20000 --comments 50000 --votes 100000)
PIDS=()
HAPROXY_PID=
cleanup() {
  for p in "${PIDS[@]}" $HAPROXY_PID; do kill -TERM "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
cargo build --release --manifest-path "$ROOT/Cargo.toml" -q
BIN=$ROOT/target/release/tidepool
mkdir -p "$OUT"
command -v haproxy >/dev/null || "$ROOT/scripts/install-haproxy.sh"

# CPU seconds (user + system, children included) used so far by the processes given.
cpu_of() {
  local hz total=0 pid
  hz=$(getconf CLK_TCK)
  for pid in "$@"; do
    if [ -r "/proc/$pid/stat" ]; then
      total=$((total + $(awk '{print $14 + $15 + $16 + $17}' "/proc/$pid/stat")))
    fi
  done
  python3 -c "print(round($total / $hz, 2))"
}

start_node() { # port data_dir [serve args...]
  local port=$1 dir=$2
  shift 2
  "$BIN" serve --data-dir "$dir" --listen "127.0.0.1:$port" --rate-limits off --auto-claim "$@" \
      >>"$WORK/node-$port.log" 2>&1 &
  PIDS+=($!)
  until curl -sf -o /dev/null "http://127.0.0.1:$port/ready"; do sleep 0.05; done
}
stop_nodes() {
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  PIDS=()
}

load() { # name url
  local name=$1 url=$2 t0 n0 d0 t1 n1 d1
  n0=$(cpu_of "${PIDS[@]}"); d0=$(cpu_of $(pgrep -x postgres)); t0=$(date +%s.%N)
  "$BIN" bench load --url "$url" --keys "$WORK/keys" --phases read,write,mixed --clients 16,64 \
      --duration "$DURATION" --warmup 2 --json-out "$OUT/pg-$name.json" | tee "$OUT/pg-$name.txt"
  n1=$(cpu_of "${PIDS[@]}"); d1=$(cpu_of $(pgrep -x postgres)); t1=$(date +%s.%N)
  echo "cpu $name: tidepool $(python3 -c "print(round($n1 - $n0, 1))") s, postgres $(python3 -c "print(round($d1 - $d0, 1))") s, wall $(python3 -c "print(round($t1 - $t0, 1))") s" \
      | tee -a "$OUT/pg-cpu.txt"
}

: >"$OUT/pg-cpu.txt"
echo "== SQLite, one node"
start_node 18991 "$WORK/sqlite"
"$BIN" bench seed --url http://127.0.0.1:18991 "${SEED[@]}" --keys-out "$WORK/keys" \
    --json-out "$OUT/pg-sqlite-seed.json"
load sqlite http://127.0.0.1:18991
stop_nodes

echo "== PostgreSQL, one node"
psql "$ADMIN_URL" -q -c "DROP DATABASE IF EXISTS tidepool_bench_s WITH (FORCE)" \
    -c "CREATE DATABASE tidepool_bench_s"
"$BIN" migrate --data-dir "$WORK/n1" --database "$DB_URL"
start_node 18991 "$WORK/n1" --database "$DB_URL" --node-id n1
"$BIN" bench seed --url http://127.0.0.1:18991 "${SEED[@]}" --keys-out "$WORK/keys" \
    --json-out "$OUT/pg-postgres-seed.json"
psql "$DB_URL" -q -c "VACUUM ANALYZE"
load postgres-1 http://127.0.0.1:18991

echo "== PostgreSQL, three nodes behind haproxy"
for n in 2 3; do
  mkdir -p "$WORK/n$n" && chmod 700 "$WORK/n$n"
  cp "$WORK/n1/server.secret" "$WORK/n$n/server.secret"
  start_node $((18990 + n)) "$WORK/n$n" --database "$DB_URL" --node-id "n$n"
done
cat >"$WORK/haproxy.cfg" <<EOF
defaults
  mode http
  timeout connect 2s
  timeout client 60s
  timeout server 60s
frontend api
  bind 127.0.0.1:18990
  default_backend nodes
backend nodes
  balance hdr(Authorization)
  hash-type consistent
  option httpchk GET /ready
  http-check expect status 200
  default-server inter 1s fall 2 rise 2
  server n1 127.0.0.1:18991 check
  server n2 127.0.0.1:18992 check
  server n3 127.0.0.1:18993 check
EOF
haproxy -c -q -f "$WORK/haproxy.cfg"
haproxy -f "$WORK/haproxy.cfg" -db >"$WORK/haproxy.log" 2>&1 &
HAPROXY_PID=$!
until curl -sf -o /dev/null http://127.0.0.1:18990/ready; do sleep 0.05; done
load postgres-3 http://127.0.0.1:18990
stop_nodes
echo "reports in $OUT/pg-*.json, CPU split in $OUT/pg-cpu.txt"
