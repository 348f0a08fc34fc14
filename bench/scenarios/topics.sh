#!/usr/bin/env bash
# topics: 1,000 subscribers each on its own topic; one publisher goes round
# robin over the 1,000 topics, as fast as the window allows (fan-out of 1).
source "$(dirname "$0")/lib.sh"
start_broker
run_wsbench topics --subscribers 1000 --publishers 1 --topics 1000 --topic 'bench.t.{n}' \
  --payload 64 --duration 10 "$@"
