#!/usr/bin/env bash
# reqrep: request/reply round trips, one at a time for RR_SECONDS (default 5)
# each: wsbroker's `request` over WebSocket, the same round trip through a
# nats-server on the same machine (NATS text protocol: PUB with a reply
# subject), the WebSocket request again on a broker with --workers 1, and
# POST /api/request against a WebSocket responder - alternating
# REPS times (default 3), so machine load hits every kind alike. Each row's
# latency is the round trip (p50/p90/p99), "broker CPU" is wsbroker's or
# nats-server's. Needs Debian's nats-server (installed here like `make deps`).
source "$(dirname "$0")/lib.sh"
require_package nats-server nats-server
NATS_BIN=$(command -v nats-server || echo /usr/sbin/nats-server)
REPS=${REPS:-3}
RR_SECONDS=${RR_SECONDS:-5}
NATS_PID=""
stop_nats() {
  if [ -n "$NATS_PID" ]; then
    kill -TERM "$NATS_PID" 2>/dev/null
    wait "$NATS_PID" 2>/dev/null
    NATS_PID=""
  fi
}
trap 'stop_nats; cleanup' EXIT
start_nats() {
  stop_nats
  NATS_PORT=$(free_port)
  : >"$SCRATCH/nats.log"
  "$NATS_BIN" -a 127.0.0.1 -p "$NATS_PORT" >"$SCRATCH/nats.log" 2>&1 &
  NATS_PID=$!
  for _ in $(seq 100); do
    grep -q "Server is ready" "$SCRATCH/nats.log" && return 0
    sleep 0.1
  done
  echo "nats-server did not start:" >&2
  cat "$SCRATCH/nats.log" >&2
  exit 1
}
status=0
for rep in $(seq "$REPS"); do
  start_broker
  echo "reqrep: rep $rep, load $(loadavg)" >&2
  run_wsbench "rr-wsbroker-ws" --probe request --topic bench.rr --payload 64 \
    --duration "$RR_SECONDS" "$@" || status=$?
  start_nats
  # shellcheck disable=SC2086 # WSBENCH_ARGS is word-split on purpose (lib.sh)
  "$WSBENCH" --url "nats://127.0.0.1:$NATS_PORT" --broker-pid "$NATS_PID" --label rr-nats \
    --format "$FORMAT" --probe nats-request --topic bench.rr --payload 64 \
    --duration "$RR_SECONDS" "$@" $WSBENCH_ARGS || status=$?
  stop_nats
  # One worker: requester and responder on the same event loop (with the
  # default one worker per core they may sit on two, one hop more each way).
  start_broker --workers 1
  run_wsbench "rr-wsbroker-ws-w1" --probe request --topic bench.rr --payload 64 \
    --duration "$RR_SECONDS" "$@" || status=$?
  start_broker
  run_wsbench "rr-wsbroker-http" --probe http-request --topic bench.rr --payload 64 \
    --duration "$RR_SECONDS" "$@" || status=$?
done
exit "$status"
