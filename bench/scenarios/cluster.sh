#!/usr/bin/env bash
# cluster: messages/s through one Redis vs a Redis Cluster of 3 masters (each
# with a replica), 1,000 topics, three broker nodes (A, B, C), all on loopback.
# One wsbench publishes on node A round robin over the 1,000 topics at full
# window and subscribes on node B (one subscriber per topic); a second wsbench
# holds the same 1,000 subscriptions on node C, so every message crosses Redis
# to two nodes. MODE=single (one redis-server, redis.url) or MODE=cluster
# (6 redis-server --cluster-enabled + redis-cli --cluster create,
# redis.cluster). HISTORY=1: every topic has a history rule (size 100), so
# each publish is a Lua script on the topic's (slot's) master instead of a
# PUBLISH. Broker CPU is node B's. Needs Debian's redis-server/redis-cli.
source "$(dirname "$0")/lib.sh"
MODE=${MODE:-cluster}
DURATION=${DURATION:-10}
HISTORY=${HISTORY:-0}
REDIS_PIDS=()
NODE_PIDS=()
stop_all() {
  for p in "${NODE_PIDS[@]}"; do kill -TERM "$p" 2>/dev/null && wait "$p" 2>/dev/null; done
  for p in "${REDIS_PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
  for p in "${REDIS_PIDS[@]}"; do wait "$p" 2>/dev/null; done
  cleanup
}
trap stop_all EXIT
# cluster_port: a free port whose cluster bus port (+10000) is free too.
cluster_port() {
  /usr/bin/python3 - <<'PY'
import socket
while True:
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close()
    if p + 10000 > 65535:
        continue
    t = socket.socket()
    try:
        t.bind(("127.0.0.1", p + 10000)); t.close(); print(p); break
    except OSError:
        t.close()
PY
}
start_redis() { # port [extra flags]
  local port=$1
  shift
  mkdir -p "$SCRATCH/redis-$port"
  redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --daemonize no \
    --dir "$SCRATCH/redis-$port" "$@" >"$SCRATCH/redis-$port/log" 2>&1 &
  REDIS_PIDS+=($!)
  for _ in $(seq 200); do redis-cli -p "$port" ping >/dev/null 2>&1 && return 0; sleep 0.05; done
  echo "redis-server $port did not start" >&2
  exit 1
}
if [ "$MODE" = cluster ]; then
  PORTS=()
  for _ in 1 2 3 4 5 6; do
    p=$(cluster_port)
    PORTS+=("$p")
    start_redis "$p" --cluster-enabled yes --cluster-config-file nodes.conf \
      --cluster-node-timeout 1000
  done
  redis-cli --cluster create $(printf '127.0.0.1:%s ' "${PORTS[@]}") --cluster-replicas 1 \
    --cluster-yes >"$SCRATCH/create.log" 2>&1 || { cat "$SCRATCH/create.log" >&2; exit 1; }
  for _ in $(seq 400); do
    ok=0
    for p in "${PORTS[@]}"; do
      redis-cli -p "$p" cluster info | grep -q 'cluster_state:ok' && ok=$((ok + 1))
    done
    [ "$ok" = 6 ] && break
    sleep 0.05
  done
  REDIS_ARGS=(--redis-cluster "127.0.0.1:${PORTS[0]},127.0.0.1:${PORTS[1]},127.0.0.1:${PORTS[2]}")
else
  p=$(free_port)
  start_redis "$p"
  REDIS_ARGS=(--redis-url "redis://127.0.0.1:$p")
fi
if [ "$HISTORY" = 1 ]; then
  REDIS_ARGS+=(--history '[{"pattern": "bench.>", "size": 100}]')
fi
start_node() { # name -> prints its ws URL
  local name=$1
  "$WSBROKER" --port 0 --port-file "$SCRATCH/port_$name" --log-level warn --node-id "bench-$name" \
    --sys-stats-interval 0 --sys-conn-events false "${REDIS_ARGS[@]}" 2>>"$SCRATCH/broker_$name.log" &
  NODE_PIDS+=($!)
  for _ in $(seq 100); do [ -s "$SCRATCH/port_$name" ] && break; sleep 0.1; done
  local port
  port=$(cat "$SCRATCH/port_$name")
  for _ in $(seq 200); do
    curl -s "http://127.0.0.1:$port/healthz" | grep -q '"redis":"ok"' && break
    sleep 0.05
  done
}
start_node a
start_node c
PUB_URL="ws://127.0.0.1:$(cat "$SCRATCH/port_a")/ws"
C_URL="ws://127.0.0.1:$(cat "$SCRATCH/port_c")/ws"
start_broker --node-id bench-b --sys-stats-interval 0 --sys-conn-events false "${REDIS_ARGS[@]}"
for _ in $(seq 200); do
  curl -s "http://127.0.0.1:$(cat "$SCRATCH/port")/healthz" | grep -q '"redis":"ok"' && break
  sleep 0.05
done
# Node C's subscribers: the same 1,000 topics, held a little longer than the run.
"$WSBENCH" --url "$C_URL" --subscribers 1000 --publishers 0 --topics 1000 --topic 'bench.c.{n}' \
  --duration $((DURATION + 4)) --threads 1 --format row --label "cluster-$MODE-node-c" \
  >"$SCRATCH/c.out" 2>&1 &
C_PID=$!
C_HTTP="http://127.0.0.1:$(cat "$SCRATCH/port_c")"
for _ in $(seq 600); do # until node C wants the 1,000 channels in Redis
  n=$(curl -s "$C_HTTP/metrics" | awk '$1 == "wsbroker_redis_subscriptions" {print $2}')
  [ "${n:-0}" -ge 1000 ] && break
  sleep 0.05
done
status=0
run_wsbench "cluster-$MODE" --pub-url "$PUB_URL" --subscribers 1000 --publishers 1 --topics 1000 \
  --topic 'bench.c.{n}' --payload 64 --duration "$DURATION" --hold 1 "$@" || status=$?
wait "$C_PID" 2>/dev/null
for n in a c; do
  d=$(curl -s "http://127.0.0.1:$(cat "$SCRATCH/port_$n")/metrics" |
    awk '$1 == "wsbroker_redis_dropped_total" {print $2}')
  echo "node $n: wsbroker_redis_dropped_total $d"
done
echo "node b: wsbroker_redis_dropped_total $(broker_metric wsbroker_redis_dropped_total)"
echo "node c: $(grep -E '^\|' "$SCRATCH/c.out" | tail -1)"
echo "load average: $(loadavg)"
exit "$status"
