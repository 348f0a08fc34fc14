#!/usr/bin/env bash
# streams: publish throughput of one publisher (window of 64, 10 s, 64 B) to
# 10 subscribers of `bench.st.>` over topics bench.st.0..99 that keep a log:
# under a history rule (a log per topic) and under a stream rule (one log and
# one seq for all of them), each on one node ("local") and on a node that
# federates through a redis-server of its own ("clustered"), alternating REPS
# times (default 2). Clustered history takes every publish's seq and log entry
# in Redis; a stream is kept per node in this version, so "stream-clustered"
# is the local stream plus the federation publish. HISTORY_RULE and
# STREAM_RULE are the `topics` JSON lists (STREAM_RULE= skips the stream
# rows). Needs Debian's redis-server.
source "$(dirname "$0")/lib.sh"
require_package redis-server redis-server
REPS=${REPS:-2}
HISTORY_RULE=${HISTORY_RULE-'[{"pattern":"bench.st.>","history":{"size":1000}}]'}
STREAM_RULE=${STREAM_RULE-'[{"pattern":"bench.st.>","stream":{"size":1000}}]'}
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
  for kind in history stream; do
    rule=$HISTORY_RULE
    [ "$kind" = stream ] && rule=$STREAM_RULE
    [ -n "$rule" ] || continue
    start_broker --topics "$rule"
    echo "streams: $kind-local rep $rep, load $(loadavg)" >&2
    run_wsbench "$kind-local" "${common[@]}" "$@" || status=$?
    redis-cli -p "$REDIS_PORT" flushall >/dev/null
    start_broker --topics "$rule" --node-id bench-st --redis-url "redis://127.0.0.1:$REDIS_PORT"
    echo "streams: $kind-clustered rep $rep, load $(loadavg)" >&2
    # --hold: the node's Redis subscription is made right after the subscribe acks.
    run_wsbench "$kind-clustered" "${common[@]}" --hold 1 "$@" || status=$?
  done
done
exit "$status"
