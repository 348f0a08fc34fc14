#!/usr/bin/env bash
# wildcards: 1,000 subscribers on 100 topics bench.w.N.x, a third each with an
# exact pattern, a '*' pattern and a '>' pattern (bench.w.N.x, bench.w.N.*,
# bench.w.N.>): every message reaches 10 subscribers through 3 kinds of
# trie walk. One publisher, round robin, as fast as the window allows.
source "$(dirname "$0")/lib.sh"
start_broker
run_wsbench wildcards --subscribers 1000 --publishers 1 --topics 100 --topic 'bench.w.{n}.x' \
  --sub 'bench.w.{n}.x' --sub 'bench.w.{n}.*' --sub 'bench.w.{n}.>' --payload 64 \
  --duration 10 "$@"
