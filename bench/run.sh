#!/usr/bin/env bash
# run.sh - runs benchmark scenarios (default: all), each against brokers it
# starts itself on 127.0.0.1, and prints one Markdown table of the results.
# `make bench` builds build-release/ and runs this.
#
# Usage: bench/run.sh [fanout|topics|wildcards|idle|latency|payload ...]
# (any bench/scenarios/NAME.sh, e.g. reqrep lastvalue conflation streams)
# Environment: WSBROKER, WSBENCH, THREADS, BROKER_ARGS, WSBENCH_ARGS (see
# scenarios/lib.sh); RESULTS_FILE also receives the table.
set -u
dir=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$dir/.." && pwd)
WSBENCH=${WSBENCH:-$root/build-release/bench/wsbench}
WSBROKER=${WSBROKER:-$root/build-release/broker/wsbroker}
export WSBENCH WSBROKER
all=(fanout topics wildcards idle latency payload)
if [ $# -gt 0 ]; then
  scenarios=("$@")
else
  scenarios=("${all[@]}")
fi
for s in "${scenarios[@]}"; do
  if [ ! -f "$dir/scenarios/$s.sh" ]; then
    echo "run.sh: no scenario '$s' (default: ${all[*]}; see bench/scenarios/)" >&2
    exit 2
  fi
done

rows=$(mktemp "${TMPDIR:-/tmp}/wsbench-rows.XXXXXX")
trap 'rm -f "$rows"' EXIT
status=0
for s in "${scenarios[@]}"; do
  echo "== $s (load average before: $(cut -d' ' -f1-3 /proc/loadavg))" >&2
  start=$(date +%s)
  FORMAT=row bash "$dir/scenarios/$s.sh" >>"$rows" || {
    echo "== $s failed" >&2
    status=1
  }
  echo "== $s took $(($(date +%s) - start)) s" >&2
done

{
  commit=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)
  dirty=$(git -C "$root" status --porcelain -- broker protocol 2>/dev/null | head -1)
  echo "wsbench $(date -u +%Y-%m-%dT%H:%MZ), commit $commit${dirty:+ (broker/ or protocol/ modified)}," \
    "$(nproc) CPUs, $(uname -sr), load average $(cut -d' ' -f1-3 /proc/loadavg)"
  echo
  "$WSBENCH" --table-header
  cat "$rows"
} | tee ${RESULTS_FILE:+"$RESULTS_FILE"}
exit "$status"
