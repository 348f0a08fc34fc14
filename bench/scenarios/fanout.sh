#!/usr/bin/env bash
# fanout: 1 publisher -> 1,000 subscribers on one topic, 64-byte payloads, as
# fast as a window of 64 unacknowledged publishes allows (the setting of the
# design's reference figures), then with a deeper window of 1,024.
# Reports deliveries/s, latency under saturation and broker CPU per delivery.
source "$(dirname "$0")/lib.sh"
status=0
start_broker
run_wsbench fanout --subscribers 1000 --publishers 1 --topic bench.fanout --payload 64 \
  --inflight 64 --duration 10 "$@" || status=$?
start_broker
run_wsbench fanout-w1024 --subscribers 1000 --publishers 1 --topic bench.fanout --payload 64 \
  --inflight 1024 --duration 10 "$@" || status=$?
exit "$status"
