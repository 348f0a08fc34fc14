#!/usr/bin/env bash
# lastvalue: one message on each of LV_TOPICS (default 1,000) topics under a
# history rule, then the time of a subscribe to the wildcard `bench.lv.*` with
# history:1 until its ack and all LV_TOPICS replayed messages arrived (a fresh
# connection each time, LV_REPEAT times, default 20: the row's p50 is the
# median); then the same last values fetched with one history:1 subscribe per
# exact topic, pipelined (what a client does without wildcard last value);
# alternating REPS times (default 2).
source "$(dirname "$0")/lib.sh"
REPS=${REPS:-2}
LV_TOPICS=${LV_TOPICS:-1000}
LV_REPEAT=${LV_REPEAT:-20}
status=0
for rep in $(seq "$REPS"); do
  start_broker --history '[{"pattern":"bench.lv.>","size":1}]'
  echo "lastvalue: rep $rep, load $(loadavg)" >&2
  run_wsbench "lastvalue-wildcard-$LV_TOPICS" --probe lastvalue --topics "$LV_TOPICS" \
    --topic 'bench.lv.{n}' --sub 'bench.lv.*' --repeat "$LV_REPEAT" "$@" || status=$?
  run_wsbench "lastvalue-exact-$LV_TOPICS" --probe lastvalue-exact --topics "$LV_TOPICS" \
    --topic 'bench.lv.{n}' --repeat "$LV_REPEAT" "$@" || status=$?
done
exit "$status"
