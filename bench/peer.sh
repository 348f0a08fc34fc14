#!/usr/bin/env bash
# peer.sh - wsbroker next to nats-server, the same scenarios side by side in
# one run with one load generator (wsbench speaks ws://, wss:// and nats://),
# alternating the two brokers REPS times (default 3) so machine load hits
# both alike, a fresh server per row. Prints one summary table (medians of
# the reps, range in brackets, wsbroker / nats ratio), then every raw row.
#
#   fanout     1 publisher -> 1,000 subscribers, one topic, 64 B, window 64:
#              deliveries per broker CPU-second
#   topics     1,000 subscribers one topic each, 20,000 messages round robin
#              (window 64): messages per broker CPU-second
#   onehop     100 msg/s -> 1 subscriber for PEER_LAT_SECONDS (10): p50 / p99
#   lat100     100 msg/s -> 100 subscribers for PEER_LAT_SECONDS: p50 / p99
#   idle       PEER_IDLE_CONNS (10,000) idle subscribed connections: RSS per
#              connection; then both again over TLS (idle-wss: wsbroker's
#              wss://, nats-server with --tls and wsbench's nats+tls://)
#              fanout also runs wsbroker over wss:// right after ws:// (the
#              fanout-wss row: wss / ws per broker CPU-second)
#
# Usage: bench/peer.sh [fanout topics onehop lat100 idle]   (default: all)
# Environment: WSBROKER, WSBENCH (default build-release/), NATS_SERVER
# (default: nats-server on PATH or /usr/sbin; the Debian package is installed
# like `make deps` does when missing), REPS, PEER_LAT_SECONDS,
# PEER_IDLE_CONNS, BROKER_ARGS / WSBENCH_ARGS (as in scenarios/lib.sh; BROKER_ARGS
# goes to wsbroker only), RESULTS_FILE (also receives the output).
source "$(dirname "${BASH_SOURCE[0]}")/scenarios/lib.sh"
require_package nats-server nats-server
NATS_BIN=${NATS_SERVER:-$(command -v nats-server || echo /usr/sbin/nats-server)}
REPS=${REPS:-3}
LAT_SECONDS=${PEER_LAT_SECONDS:-10}
FORMAT=row
all=(fanout topics onehop lat100 idle)
if [ $# -gt 0 ]; then scenarios=("$@"); else scenarios=("${all[@]}"); fi
for s in "${scenarios[@]}"; do
  case " ${all[*]} " in *" $s "*) ;; *) echo "peer.sh: no scenario '$s' (${all[*]})" >&2; exit 2 ;; esac
done

NATS_PID=""
stop_nats() {
  if [ -n "$NATS_PID" ]; then
    kill -TERM "$NATS_PID" 2>/dev/null
    wait "$NATS_PID" 2>/dev/null
    NATS_PID=""
  fi
}
trap 'stop_nats; cleanup' EXIT
# start_nats [nats-server flags...]
start_nats() {
  stop_nats
  NATS_PORT=$(free_port)
  : >"$SCRATCH/nats.log"
  "$NATS_BIN" -a 127.0.0.1 -p "$NATS_PORT" "$@" >"$SCRATCH/nats.log" 2>&1 &
  NATS_PID=$!
  for _ in $(seq 100); do
    grep -q "Server is ready" "$SCRATCH/nats.log" && return 0
    sleep 0.1
  done
  echo "nats-server did not start:" >&2
  cat "$SCRATCH/nats.log" >&2
  exit 1
}

# The wsbench flags of each scenario (topic templates are NATS subjects too).
flags_of() {
  case $1 in
  fanout) echo "--subscribers 1000 --publishers 1 --topic bench.fanout --payload 64 --inflight 64 --duration 10" ;;
  topics) echo "--subscribers 1000 --publishers 1 --topics 1000 --topic bench.t.{n} --payload 64 --inflight 64 --messages 20000 --duration 60" ;;
  onehop) echo "--subscribers 1 --publishers 1 --topic bench.hop --payload 64 --rate 100 --duration $LAT_SECONDS" ;;
  lat100) echo "--subscribers 100 --publishers 1 --topic bench.lat --payload 64 --rate 100 --duration $LAT_SECONDS" ;;
  idle) echo "--subscribers $IDLE_CONNS --publishers 0 --topics $IDLE_CONNS --topic bench.idle.{n} --duration 0 --hold 2 --connect-rate 5000 --connect-timeout 300" ;;
  esac
}

IDLE_CONNS=$(raise_nofile "${PEER_IDLE_CONNS:-10000}")
rows=$SCRATCH/rows
: >"$rows"
status=0
for rep in $(seq "$REPS"); do
  for s in "${scenarios[@]}"; do
    # shellcheck disable=SC2046 # flags are word-split on purpose
    read -r -a f <<<"$(flags_of "$s")"
    echo "peer: rep $rep $s wsbroker, load $(loadavg)" >&2
    TLS=0 start_broker
    run_wsbench "$s-wsbroker" "${f[@]}" >>"$rows" || status=1
    stop_broker
    if [ "$s" = idle ] || [ "$s" = fanout ]; then
      echo "peer: rep $rep $s wsbroker wss, load $(loadavg)" >&2
      TLS=1 start_broker
      TLS=1 run_wsbench "$s-wss-wsbroker" "${f[@]}" >>"$rows" || status=1
      TLS=0
      stop_broker
    fi
    echo "peer: rep $rep $s nats, load $(loadavg)" >&2
    start_nats
    # shellcheck disable=SC2086 # WSBENCH_ARGS is word-split on purpose (lib.sh)
    "$WSBENCH" --url "nats://127.0.0.1:$NATS_PORT" --broker-pid "$NATS_PID" --label "$s-nats" \
      --format row --threads "$THREADS" "${f[@]}" $WSBENCH_ARGS >>"$rows" || status=1
    stop_nats
    if [ "$s" = idle ]; then
      echo "peer: rep $rep $s nats tls, load $(loadavg)" >&2
      tls_cert
      # A config file for the TLS handshake timeout: the default (0.5 s)
      # drops connections of a 10,000-handshake ramp on a busy machine.
      printf 'tls {\n  cert_file: "%s"\n  key_file: "%s"\n  timeout: 30\n}\n' \
        "$SCRATCH/tls.crt" "$SCRATCH/tls.key" >"$SCRATCH/nats-tls.conf"
      start_nats -c "$SCRATCH/nats-tls.conf"
      # shellcheck disable=SC2086
      "$WSBENCH" --url "nats+tls://127.0.0.1:$NATS_PORT" --cafile "$SCRATCH/tls.crt" \
        --broker-pid "$NATS_PID" --label "$s-wss-nats" --format row --threads "$THREADS" \
        "${f[@]}" $WSBENCH_ARGS >>"$rows" || status=1
      stop_nats
    fi
  done
done

# Summary: per scenario and server, the median (and range) of the reps.
# Row columns: 2 scenario, 6 deliveries, 7 loss, 11 p50, 13 p99, 16 broker CPU s, 20 RSS/conn.
summary() {
  awk -F'|' '
    function trim(s) { gsub(/^ +| +$/, "", s); return s }
    function med(key,   n, i, j, t, a) {
      n = split(vals[key], a, " ")
      for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j-1] + 0 > a[j] + 0; j--) { t = a[j]; a[j] = a[j-1]; a[j-1] = t }
      lo[key] = a[1]; hi[key] = a[n]
      return n % 2 ? a[(n+1)/2] : (a[n/2] + a[n/2+1]) / 2
    }
    function put(key, v) { vals[key] = vals[key] " " v }
    function fmt(v, d) { return d == 0 ? sprintf("%.0f", v) : sprintf("%." d "f", v) }
    function cell(key, d,   m) { if (!(key in vals)) return "-"; m = med(key); return fmt(m, d) " (" fmt(lo[key], d) "–" fmt(hi[key], d) ")" }
    function ratio(a, b,   x, y) { if (!(a in vals) || !(b in vals)) return "-"; x = med(a); y = med(b); return y > 0 ? sprintf("%.2f×", x / y) : "-" }
    { name = trim($2) }
    name ~ /-(wsbroker|nats)$/ {
      srv = name; sub(/.*-/, "", srv); sc = name; sub(/-(wsbroker|nats)$/, "", sc)
      cpu = trim($16) + 0; dl = trim($6) + 0
      loss[sc "," srv] += trim($7) + 0
      if (sc ~ /^fanout/ || sc == "topics") { if (cpu > 0) put(sc "," srv, dl / cpu / (sc ~ /^fanout/ ? 1e6 : 1e3)) }
      else if (sc == "onehop" || sc == "lat100") { put(sc ",p50," srv, trim($11)); put(sc ",p99," srv, trim($13)) }
      else put(sc "," srv, trim($20))
    }
    END {
      print "| scenario | wsbroker | nats | wsbroker / nats |"
      print "|---|--:|--:|--:|"
      if ("fanout,wsbroker" in vals || "fanout,nats" in vals)
        print "| fan-out 1 → 1,000, 64 B, window 64: M deliveries per broker CPU-s | " cell("fanout,wsbroker", 2) " | " cell("fanout,nats", 2) " | " ratio("fanout,wsbroker", "fanout,nats") " |"
      if ("fanout-wss,wsbroker" in vals)
        print "| the same fan-out, wsbroker over wss:// (last column: wss / ws) | " cell("fanout-wss,wsbroker", 2) " | - | " ratio("fanout-wss,wsbroker", "fanout,wsbroker") " |"
      if ("topics,wsbroker" in vals || "topics,nats" in vals)
        print "| 1,000 topics round robin, 20,000 msgs: k messages per broker CPU-s | " cell("topics,wsbroker", 1) " | " cell("topics,nats", 1) " | " ratio("topics,wsbroker", "topics,nats") " |"
      split("onehop lat100", L, " ")
      label["onehop"] = "one hop, 100 msg/s → 1 subscriber"; label["lat100"] = "100 msg/s → 100 subscribers"
      for (i = 1; i <= 2; i++) { s = L[i]
        if ((s ",p50,wsbroker") in vals || (s ",p50,nats") in vals) {
          print "| " label[s] ": p50 µs | " cell(s ",p50,wsbroker", 0) " | " cell(s ",p50,nats", 0) " | " ratio(s ",p50,wsbroker", s ",p50,nats") " |"
          print "| " label[s] ": p99 µs | " cell(s ",p99,wsbroker", 0) " | " cell(s ",p99,nats", 0) " | " ratio(s ",p99,wsbroker", s ",p99,nats") " |"
        } }
      if ("idle,wsbroker" in vals || "idle,nats" in vals) {
        print "| idle subscribed connection: RSS B per connection | " cell("idle,wsbroker", 0) " | " cell("idle,nats", 0) " | " ratio("idle,wsbroker", "idle,nats") " |"
        print "| idle subscribed connection over TLS: RSS B per connection | " cell("idle-wss,wsbroker", 0) " | " cell("idle-wss,nats", 0) " | " ratio("idle-wss,wsbroker", "idle-wss,nats") " |"
      }
      tl = 0; for (k in loss) tl += loss[k]
      print ""
      print "Loss over all rows: " tl " (every row counts every expected delivery)."
    }' "$rows"
}

{
  commit=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
  dirty=$(git -C "$ROOT" status --porcelain -- broker protocol 2>/dev/null | head -1)
  echo "peer.sh $(date -u +%Y-%m-%dT%H:%MZ), commit $commit${dirty:+ (broker/ or protocol/ modified)}," \
    "$("$NATS_BIN" --version 2>/dev/null | head -1), $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg)," \
    "REPS=$REPS"
  echo
  summary
  echo
  "$WSBENCH" --table-header
  cat "$rows"
} | tee ${RESULTS_FILE:+"$RESULTS_FILE"}
exit "$status"
