#!/usr/bin/env bash
# payload: the fan-out of fanout.sh (1 -> 1,000, as fast as the window
# allows) at 16 B, 1 KiB and 16 KiB payloads: deliveries/s and bytes/s.
# Large payloads lower the lag bound (about 256 KiB of frames per subscriber)
# so no subscriber nears the broker's 1 MiB outbound limit.
source "$(dirname "$0")/lib.sh"
status=0
for size in 16 1024 16384; do
  start_broker
  run_wsbench "payload-$size" --subscribers 1000 --publishers 1 --topic bench.payload \
    --payload "$size" --duration 5 "$@" || status=$?
done
exit "$status"
