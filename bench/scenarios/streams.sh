#!/usr/bin/env bash
# streams: publish throughput of one publisher (window of 64, 10 s, 64 B) to
# 10 subscribers on topics bench.st.0..99 that keep a log, on one node
# ("local") and on a node federating through a redis-server of its own
# ("clustered": every publish takes its seq and log entry in Redis),
# alternating REPS times (default 2). The rule is RULE (a `topics` JSON list;
# default: a history rule of 1,000 messages per topic on bench.st.>), so a
# stream rule is measured with RULE='[{"pattern":"bench.st.>","stream":...}]'.
# Needs Debian's redis-server.
source "$(dirname "$0")/lib.sh"
require_package redis-server redis-server
REPS=${REPS:-2}
RULE=${RULE:-'[{"pattern":"bench.st.>","history":{"size":1000}}]'}
KIND=${KIND:-history}
REDIS_PORT=$(free_port)
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no --daemonize no \
  >"$SCRATCH/redis.log" 2>&1 &
REDIS_PID=$!
trap 'kill -TERM "$REDIS_PID" 2>/dev/null; wait "$REDIS_PID" 2>/dev/null; cleanup' EXIT
for _ in $(seq 100); do
  redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break
  sleep 0.05
done
common=(--subscribers 10 --publishers 1 --topics 100 --topic 'bench.st.{n}' --sub 'bench.st.>'
        --payload 64 --inflight 64 --duration 10)
status=0
for rep in $(seq "$REPS"); do
  start_broker --topics "$RULE"
  echo "streams: $KIND-local rep $rep, load $(loadavg)" >&2
  run_wsbench "$KIND-local" "${common[@]}" "$@" || status=$?
  redis-cli -p "$REDIS_PORT" flushall >/dev/null
  start_broker --topics "$RULE" --node-id bench-st --redis-url "redis://127.0.0.1:$REDIS_PORT"
  echo "streams: $KIND-clustered rep $rep, load $(loadavg)" >&2
  # --hold: the node's Redis subscription is made right after the subscribe acks.
  run_wsbench "$KIND-clustered" "${common[@]}" --hold 1 "$@" || status=$?
done
exit "$status"
