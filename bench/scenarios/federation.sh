#!/usr/bin/env bash
# federation: two nodes and a redis-server (free loopback port, no
# persistence). Publishers on node A (--pub-url), subscribers on node B, so
# every delivery crosses Redis: latency at 1,000 msg/s to 100 subscribers, then
# throughput with one publisher at full window to 10 subscribers.
# Needs Debian's redis-server. Broker CPU is node B's (the delivering node).
# HISTORY='[{"pattern":"bench.>","size":1000}]' runs both nodes with that
# history rule: the topic then has clustered history (seq and stream in Redis).
source "$(dirname "$0")/lib.sh"
HIST_ARGS=()
if [ -n "${HISTORY:-}" ]; then HIST_ARGS=(--history "$HISTORY"); fi
REDIS_PORT=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no --daemonize no \
  >"$SCRATCH/redis.log" 2>&1 &
REDIS_PID=$!
NODE_A_PID=""
stop_all() {
  [ -n "$NODE_A_PID" ] && kill -TERM "$NODE_A_PID" 2>/dev/null && wait "$NODE_A_PID" 2>/dev/null
  kill -TERM "$REDIS_PID" 2>/dev/null
  wait "$REDIS_PID" 2>/dev/null
  cleanup
}
trap stop_all EXIT
for _ in $(seq 100); do
  redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break
  sleep 0.05
done
start_node_a() {
  [ -n "$NODE_A_PID" ] && kill -TERM "$NODE_A_PID" 2>/dev/null && wait "$NODE_A_PID" 2>/dev/null
  rm -f "$SCRATCH/port_a"
  "$WSBROKER" --port 0 --port-file "$SCRATCH/port_a" --log-level warn --node-id bench-a \
    --redis-url "redis://127.0.0.1:$REDIS_PORT" "${HIST_ARGS[@]}" 2>>"$SCRATCH/broker_a.log" &
  NODE_A_PID=$!
  for _ in $(seq 100); do [ -s "$SCRATCH/port_a" ] && break; sleep 0.1; done
  PUB_URL="ws://127.0.0.1:$(cat "$SCRATCH/port_a")/ws"
}
status=0
start_node_a
start_broker --node-id bench-b --redis-url "redis://127.0.0.1:$REDIS_PORT" "${HIST_ARGS[@]}"
# --hold: B's Redis subscription is made right after the subscribe acks.
run_wsbench federation-latency-1000 --pub-url "$PUB_URL" --subscribers 100 --publishers 1 \
  --topic bench.fed --payload 64 --rate 1000 --duration 10 --hold 1 "$@" || status=$?
start_node_a
start_broker --node-id bench-b --redis-url "redis://127.0.0.1:$REDIS_PORT" "${HIST_ARGS[@]}"
run_wsbench federation-throughput --pub-url "$PUB_URL" --subscribers 10 --publishers 1 \
  --topic bench.fed --payload 64 --duration 10 --hold 1 "$@" || status=$?
exit "$status"
