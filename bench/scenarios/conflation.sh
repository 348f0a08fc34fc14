#!/usr/bin/env bash
# conflation: the same fan-out (1 publisher -> CF_SUBS subscribers, default
# 100, one topic, CF_RATE msg/s, default 200, for 10 s, no lag bound) on a
# broker without a topic rule and on one with {"conflate":true}, alternating
# REPS times (default 3): broker CPU per delivery. Then the slow case:
# CF_STALL (default 10) of the subscribers stop reading while publishing lasts
# (--stall), with 1 KiB payloads at 1,000 msg/s (10 MiB per stalled reader,
# more than the kernel's socket buffers and the broker's 1 MiB bound hold),
# without conflation (the stalled ones are closed 1013 as slow consumers) and
# with it (they are kept, their backlog conflated to the newest message);
# CF_STALL=0 skips these two rows. After each row, on stderr: the
# broker's wsbroker_conflated_total and slow-consumer closes.
source "$(dirname "$0")/lib.sh"
REPS=${REPS:-3}
CF_SUBS=${CF_SUBS:-100}
CF_RATE=${CF_RATE:-200}
CF_STALL=${CF_STALL:-10}
CONFLATE='[{"pattern":"bench.>","conflate":true}]'
report_metrics() {
  echo "conflation: $1: load $(loadavg), wsbroker_conflated_total $(broker_metric wsbroker_conflated_total)," \
    "wsbroker_slow_consumer_closes_total $(broker_metric wsbroker_slow_consumer_closes_total)," \
    "wsbroker_messages_delivered_total $(broker_metric wsbroker_messages_delivered_total)" >&2
}
status=0
common=(--subscribers "$CF_SUBS" --publishers 1 --topic bench.cf --payload 64 --rate "$CF_RATE"
        --duration 10 --max-lag 0 --drain 3)
for rep in $(seq "$REPS"); do
  start_broker
  run_wsbench conflation-off "${common[@]}" "$@" || status=$?
  report_metrics "conflation-off rep $rep"
  start_broker --topics "$CONFLATE"
  run_wsbench conflation-on "${common[@]}" "$@" || status=$?
  report_metrics "conflation-on rep $rep"
done
[ "$CF_STALL" -gt 0 ] || exit "$status"
slow=(--stall "$CF_STALL" --payload 1024 --rate 1000)
start_broker
run_wsbench "conflation-off-stall$CF_STALL" "${common[@]}" "${slow[@]}" "$@" || status=$?
report_metrics "conflation-off-stall$CF_STALL"
start_broker --topics "$CONFLATE"
run_wsbench "conflation-on-stall$CF_STALL" "${common[@]}" "${slow[@]}" "$@" || status=$?
report_metrics "conflation-on-stall$CF_STALL"
exit "$status"
