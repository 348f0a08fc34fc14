#!/usr/bin/env bash
# publisher: fan-out (1 publisher -> 1,000 subscribers, 64 B, a window of 64,
# as fanout.sh) on a topic whose rule has "publisher":false, then
# "publisher":true (the broker stamps "from":{"client":…,"user":…} on every
# message: a larger frame, still serialized once), alternating REPS times
# (default 2), a fresh broker per row. Compare M deliveries per broker CPU-s.
source "$(dirname "$0")/lib.sh"
status=0
for _ in $(seq "${REPS:-2}"); do
  for p in false true; do
    start_broker --topics "[{\"pattern\":\"bench.>\",\"publisher\":$p}]"
    run_wsbench "publisher-$p" --subscribers 1000 --publishers 1 --topic bench.fanout \
      --payload 64 --inflight 64 --duration 10 "$@" || status=$?
  done
done
exit "$status"
