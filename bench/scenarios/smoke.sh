#!/usr/bin/env bash
# smoke: a few seconds against a fresh broker - 20 subscribers, 200 messages,
# and wsbench --strict fails unless every connection succeeded and all 4,000
# deliveries arrived; once over ws://, once over wss:// (TLS=1, see lib.sh);
# then --churn on a join_leave topic (every join/leave frame owed arrives);
# then the --probe modes request and lastvalue (every reply and every
# replayed last value arrives).
# Registered in ctest (label bench), so `make test` runs it.
# Usage: smoke.sh WSBROKER WSBENCH
set -u
WSBROKER=${1:?usage: smoke.sh WSBROKER WSBENCH}
WSBENCH=${2:?usage: smoke.sh WSBROKER WSBENCH}
export WSBROKER WSBENCH
source "$(dirname "$0")/lib.sh"
for TLS in 0 1; do
  start_broker
  out=$(run_wsbench smoke --subscribers 20 --publishers 1 --messages 200 --topic bench.smoke \
    --format json --threads 2 --strict --no-progress --drain 10)
  status=$?
  echo "$out"
  if [ "$status" -ne 0 ]; then
    echo "smoke (TLS=$TLS): wsbench exited with $status" >&2
    exit "$status"
  fi
  # The strict check passed; also make sure the report says what we asked for.
  for want in '"subscribers_ready":20' '"publishers_ready":1' '"acked":200' \
              '"expected":4000' '"received":4000' '"loss":0'; do
    if [[ "$out" != *"$want"* ]]; then
      echo "smoke (TLS=$TLS): the report lacks $want" >&2
      exit 1
    fi
  done
done
# --churn: 5 of 20 subscribers unsubscribe/resubscribe for 1 s on a
# join_leave topic; the 15 listeners must get every join/leave frame owed to
# them (loss <= 0: a join of the ramp arriving late only makes it negative)
# and nobody may be dropped.
TLS=0
start_broker --topics '[{"pattern":"bench.>","join_leave":true}]'
out=$(run_wsbench smoke-churn --subscribers 20 --publishers 0 --churn 5 --topic bench.smoke \
  --format json --threads 2 --no-progress --hold 1 --duration 1 --drain 10)
status=$?
echo "$out"
if [ "$status" -ne 0 ]; then
  echo "smoke (churn): wsbench exited with $status" >&2
  exit "$status"
fi
for want in '"subscribers_ready":20' '"disconnects":0' '"errors":0' '"failures":{"total":0'; do
  if [[ "$out" != *"$want"* ]]; then
    echo "smoke (churn): the report lacks $want" >&2
    exit 1
  fi
done
if ! [[ "$out" =~ \"loss\":(-[0-9]+|0), ]] || ! [[ "$out" =~ \"ops\":[1-9][0-9]*, ]] ||
  ! [[ "$out" =~ \"listener_events\":[1-9][0-9]*, ]]; then
  echo "smoke (churn): no churn, no join/leave frames, or frames owed to the listeners lost" >&2
  exit 1
fi
# --probe: request/reply round trips for half a second (each one answered),
# then the last value of 50 topics through one wildcard subscribe with
# history:1, twice (all 100 replayed messages arrive); --strict fails on an
# error, a timeout or a missing message.
start_broker --history '[{"pattern":"bench.lv.>","size":1}]'
out=$(run_wsbench smoke-request --probe request --topic bench.rr --duration 0.5 --format json \
  --strict)
status=$?
echo "$out"
if [ "$status" -ne 0 ] || ! [[ "$out" =~ \"received\":[1-9][0-9]*, ]] ||
  [[ "$out" != *'"errors":0,'* ]]; then
  echo "smoke (probe request): wsbench exited with $status or no round trip completed" >&2
  exit 1
fi
out=$(run_wsbench smoke-lastvalue --probe lastvalue --topics 50 --topic 'bench.lv.{n}' \
  --sub 'bench.lv.*' --repeat 2 --format json --strict)
status=$?
echo "$out"
for want in '"acked":2,' '"expected":100,' '"received":100,' '"errors":0,'; do
  if [ "$status" -ne 0 ] || [[ "$out" != *"$want"* ]]; then
    echo "smoke (probe lastvalue): wsbench exited with $status or the report lacks $want" >&2
    exit 1
  fi
done
echo "smoke: ok"
