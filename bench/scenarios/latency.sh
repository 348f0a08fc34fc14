#!/usr/bin/env bash
# latency: 1,000 msg/s to 100 subscribers (100,000 deliveries/s, 10 s), then
# the design's reference point, 100 msg/s to 100 subscribers (20 s), both at a
# fixed rate far below saturation: p50/p99/p99.9 of publish-to-delivery time.
source "$(dirname "$0")/lib.sh"
status=0
start_broker
run_wsbench latency-1000 --subscribers 100 --publishers 1 --topic bench.latency --payload 64 \
  --rate 1000 --duration 10 "$@" || status=$?
start_broker
run_wsbench latency-100 --subscribers 100 --publishers 1 --topic bench.latency --payload 64 \
  --rate 100 --duration 20 "$@" || status=$?
exit "$status"
