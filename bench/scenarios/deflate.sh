#!/usr/bin/env bash
# deflate: permessage-deflate, compressed once per message (issue 20 item 3).
# Fan-out 1 publisher -> 1,000 subscribers on one topic, 1 KiB payloads of
# ticker-like JSON text (--filler market), at a fixed rate, side by side:
#   plain    subscribers do not offer the extension
#   deflate  every subscriber negotiates it: one compression per message and
#            worker, the frame shared
# Then the broker's own deflate metrics (compressions, bytes before/after,
# time), from which the per-connection design's cost is estimated: there a
# message is compressed once per subscriber, so its zlib time is paid 1,000
# times instead of once.
source "$(dirname "$0")/lib.sh"
status=0
RATE=${RATE:-200}
DURATION=${DURATION:-10}
common=(--subscribers 1000 --publishers 1 --topic bench.deflate --payload 1024 --filler market
        --rate "$RATE" --duration "$DURATION")
start_broker
run_wsbench deflate-off "${common[@]}" "$@" || status=$?
start_broker
run_wsbench deflate-on "${common[@]}" --deflate "$@" || status=$?
if [ "$FORMAT" != row ]; then
  curl -s "http://127.0.0.1:$(cat "$SCRATCH/port")/metrics" | grep -E '^wsbroker_(deflate|messages_delivered)' >&2
fi
exit "$status"
