#!/usr/bin/env bash
# tls: what TLS costs, plain vs wss:// side by side, alternating REPS times
# (default 3) so machine load hits both alike:
#   fanout-ws / fanout-wss  1 publisher -> 1,000 subscribers, 64 B, window 64
#                           (compare "M deliv / broker CPU-s")
#   idle-ws / idle-wss      TLS_IDLE_CONNS (5,000) idle subscribed connections
#                           (compare "RSS / conn B")
# Every row starts a fresh broker; wss rows get a certificate made by openssl.
source "$(dirname "$0")/lib.sh"
REPS=${REPS:-3}
conns=$(raise_nofile "${TLS_IDLE_CONNS:-5000}")
status=0
for rep in $(seq "$REPS"); do
  for tls in 0 1; do
    TLS=$tls
    kind=$([ "$tls" = 1 ] && echo wss || echo ws)
    echo "tls: rep $rep fanout-$kind, load $(loadavg)" >&2
    start_broker
    run_wsbench "fanout-$kind" --subscribers 1000 --publishers 1 --topic bench.fanout --payload 64 \
      --inflight 64 --duration 10 "$@" || status=$?
  done
  for tls in 0 1; do
    TLS=$tls
    kind=$([ "$tls" = 1 ] && echo wss || echo ws)
    echo "tls: rep $rep idle-$kind, load $(loadavg)" >&2
    start_broker
    run_wsbench "idle-$kind" --subscribers "$conns" --publishers 0 --topics "$conns" \
      --topic 'bench.idle.{n}' --duration 0 --hold 2 --connect-rate 5000 "$@" || status=$?
  done
done
exit "$status"
