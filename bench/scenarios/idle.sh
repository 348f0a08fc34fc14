#!/usr/bin/env bash
# idle: 10,000 connections, each subscribed to its own topic, doing nothing.
# Reports the broker's RSS per connection: (RSS with every connection
# subscribed, after 2 s to settle) - (RSS before the first), / connections.
source "$(dirname "$0")/lib.sh"
conns=$(raise_nofile 10000)
start_broker
run_wsbench idle --subscribers "$conns" --publishers 0 --topics "$conns" \
  --topic 'bench.idle.{n}' --duration 0 --hold 2 --connect-rate 5000 "$@"
