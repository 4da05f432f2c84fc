#!/bin/bash
# /health throughput with and without the /metrics counters: alternating wrk
# runs against `medimg serve` (2 workers x 2 threads) of two builds.
#   bench/metrics_wrk.sh BASELINE_MEDIMG CANDIDATE_MEDIMG DATA_ROOT [ROUNDS]
# Each BUILD is a `medimg` binary of a build tree (its medimg-fcgi beside).
set -eu
base=$1 cand=$2 data=$3 rounds=${4:-3}
free_port() { python3 -c "import socket;s=socket.socket();s.bind(('127.0.0.1',0));print(s.getsockname()[1])"; }
log=$(mktemp -d)
trap 'rm -rf "$log"' EXIT
for round in $(seq "$rounds"); do
  for bin in "$base" "$cand"; do
    port=$(free_port)
    (cd "$log" && setsid "$bin" serve --host 127.0.0.1 --port "$port" --data-root "$data" \
       --workers 2 --threads 2 >"$log/serve.log" 2>&1 & echo $! >"$log/pid")
    for _ in $(seq 150); do curl -sf -o /dev/null "http://127.0.0.1:$port/health" && break; sleep 0.1; done
    wrk -t2 -c8 -d3s "http://127.0.0.1:$port/health" >/dev/null
    rps=$(wrk -t2 -c8 -d8s "http://127.0.0.1:$port/health" | awk '/Requests\/sec/ {print $2}')
    echo "round $round $bin $rps"
    kill -TERM "$(cat "$log/pid")"; sleep 1.5
  done
done
