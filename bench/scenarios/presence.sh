#!/usr/bin/env bash
# presence: the memory a presence member costs. The same N idle subscribed
# connections (default 10,000: 10 topics x 1,000, presence.max_members), once
# on topics whose rule has "presence":false and once "presence":true,
# alternating REPS times (default 2), a fresh broker per row. RSS per
# connection is (RSS with every connection subscribed, after 2 s to settle -
# RSS before the first) / connections, as in idle.sh; the difference between
# the presence rows and the plain rows is the cost of a member.
#   PRESENCE_CONNS  connections (default 10000)
#   PRESENCE_TOPICS topics they spread over (default 10)
source "$(dirname "$0")/lib.sh"
conns=$(raise_nofile "${PRESENCE_CONNS:-10000}")
topics=${PRESENCE_TOPICS:-10}
per_topic=$(((conns + topics - 1) / topics))
status=0
for _ in $(seq "${REPS:-2}"); do
  for p in false true; do
    start_broker --topics "[{\"pattern\":\"bench.p.>\",\"presence\":$p}]" \
      --presence-max-members "$per_topic" --presence-max-topics "$((topics + 1))"
    run_wsbench "presence-$p" --subscribers "$conns" --publishers 0 --topics "$topics" \
      --topic 'bench.p.{n}' --duration 0 --hold 2 --connect-rate 5000 "$@" || status=$?
  done
done
exit "$status"
