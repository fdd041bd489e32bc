#!/usr/bin/env bash
# measure.sh DATA_DIR LABEL: start-up time, feed throughput/latency, RSS.
set -u
DIR=$1; LABEL=$2; PORT=18990
BIN=${TIDEPOOL_BIN:-target/release/tidepool}
start=$(date +%s.%N)
$BIN serve --data-dir "$DIR" --listen 127.0.0.1:$PORT --rate-limits off > /tmp/measure-$LABEL.log 2>&1 &
PID=$!
until curl -s -o /dev/null http://127.0.0.1:$PORT/health; do sleep 0.02; done
end=$(date +%s.%N)
echo "$LABEL startup_s $(echo "$end - $start" | bc)"
B=http://127.0.0.1:$PORT/api/v1
POST=$(curl -s "$B/posts?sort=hot&limit=1" | python3 -c 'import sys,json;print(json.load(sys.stdin)["posts"][0]["id"])')
for path in "posts?sort=hot&limit=25" "posts?sort=new&limit=25" "submolts/general/feed?sort=hot&limit=25" "posts/$POST?limit=35"; do
  r=$(wrk -t2 -c64 -d8s --latency "$B/$path" 2>&1)
  echo "$LABEL $(echo "$path" | cut -c1-40) rps=$(echo "$r" | awk '/Requests\/sec/{print $2}') p50=$(echo "$r" | awk '/ 50%/{print $2}') p99=$(echo "$r" | awk '/ 99%/{print $2}') errors=$(echo "$r" | grep -c 'Non-2xx\|Socket errors')"
done
echo "$LABEL rss_mb $(ps -o rss= -p $PID | awk '{print $1/1024}')"
kill -TERM $PID; wait $PID 2>/dev/null
