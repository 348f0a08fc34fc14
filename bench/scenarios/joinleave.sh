#!/usr/bin/env bash
# joinleave: join/leave events per second. JL_CHURN subscribers (default 100)
# unsubscribe and resubscribe one topic in a loop (wsbench --churn, one
# request in flight each) for 10 s while JL_LISTENERS others (default 100)
# stay subscribed and count the join/leave frames. Once on a topic whose rule
# has "presence":true,"join_leave":true ("jl-on") and once on one without a
# rule ("jl-off": the same subscribes and unsubscribes, no events), so the
# difference in broker CPU per operation is what presence and join/leave add;
# alternating REPS times (default 2), a fresh broker per row.
# Churning pauses while the listeners are more than the usual lag bound behind
# on the frames owed to them (so nobody becomes a slow consumer), and loss =
# frames owed to the listeners - received. Row columns for these: published =
# unsubscribes + resubscribes acked, deliveries = join/leave frames received
# (listeners and churners).
source "$(dirname "$0")/lib.sh"
churn=${JL_CHURN:-100}
listeners=${JL_LISTENERS:-100}
subs=$((churn + listeners))
status=0
for _ in $(seq "${REPS:-2}"); do
  for jl in off on; do
    quiet=()
    if [ "$jl" = on ]; then
      start_broker --topics '[{"pattern":"bench.jl.>","presence":true,"join_leave":true}]' \
        --presence-max-members "$subs"
    else
      start_broker
      quiet=(--churn-quiet)
    fi
    run_wsbench "jl-$jl-c$churn-l$listeners" --subscribers "$subs" --publishers 0 \
      --churn "$churn" "${quiet[@]}" --topic bench.jl.0 --hold 1 --duration 10 "$@" || status=$?
  done
done
exit "$status"
