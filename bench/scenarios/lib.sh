# lib.sh - sourced by every scenario script: starts a broker of its own on a
# free port of 127.0.0.1, runs wsbench against it, and stops the broker (by
# its PID) however the script ends.
#
# Environment:
#   WSBROKER   broker binary (default: build-release/broker/wsbroker)
#   WSBENCH    wsbench binary (default: build-release/bench/wsbench)
#   FORMAT     human, json or row (default human)
#   THREADS    wsbench worker threads (default 2)
#   BROKER_ARGS extra broker flags, e.g. "--workers 2" (word-split)
#   WSBENCH_ARGS extra wsbench flags for every run of the scenario (word-split)
#   TLS        1: the broker also gets a TLS listener with a certificate made
#              here by the openssl CLI, and wsbench connects to it over wss://
#              (--cafile that certificate); default 0 (ws://)

set -u
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
WSBROKER=${WSBROKER:-$ROOT/build-release/broker/wsbroker}
WSBENCH=${WSBENCH:-$ROOT/build-release/bench/wsbench}
FORMAT=${FORMAT:-human}
THREADS=${THREADS:-2}
BROKER_ARGS=${BROKER_ARGS:-}
WSBENCH_ARGS=${WSBENCH_ARGS:-}
TLS=${TLS:-0}
BROKER_PID=""
BROKER_URL=""
SCRATCH=$(mktemp -d "${TMPDIR:-/tmp}/wsbench.XXXXXX")

for bin in "$WSBROKER" "$WSBENCH"; do
  if [ ! -x "$bin" ]; then
    echo "$(basename "$0"): $bin is not built (run: make bench)" >&2
    exit 1
  fi
done

stop_broker() {
  if [ -n "$BROKER_PID" ]; then
    kill -TERM "$BROKER_PID" 2>/dev/null
    # Graceful shutdown is bounded by the broker's shutdown_timeout (5 s).
    for _ in $(seq 100); do
      kill -0 "$BROKER_PID" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$BROKER_PID" 2>/dev/null; then
      echo "broker $BROKER_PID did not stop on SIGTERM; killing it" >&2
      kill -KILL "$BROKER_PID" 2>/dev/null
    fi
    wait "$BROKER_PID" 2>/dev/null
    BROKER_PID=""
  fi
}

cleanup() {
  stop_broker
  rm -rf "$SCRATCH"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# tls_cert: a self-signed EC P-256 certificate for 127.0.0.1 in $SCRATCH (once).
tls_cert() {
  [ -s "$SCRATCH/tls.crt" ] && return 0
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout "$SCRATCH/tls.key" -out "$SCRATCH/tls.crt" -days 2 -subj /CN=127.0.0.1 \
    -addext subjectAltName=IP:127.0.0.1 >/dev/null 2>&1 || {
    echo "openssl could not make a test certificate" >&2
    exit 1
  }
}

# start_broker [broker flags...]: a fresh broker, so RSS figures start clean.
start_broker() {
  stop_broker
  rm -f "$SCRATCH/port" "$SCRATCH/tlsport"
  local tls_args=()
  if [ "$TLS" = 1 ]; then
    tls_cert
    tls_args=(--tls-cert "$SCRATCH/tls.crt" --tls-key "$SCRATCH/tls.key" --tls-port 0
              --tls-port-file "$SCRATCH/tlsport")
  fi
  # shellcheck disable=SC2086
  "$WSBROKER" --port 0 --port-file "$SCRATCH/port" --host 127.0.0.1 --log-level warn \
    "${tls_args[@]}" $BROKER_ARGS "$@" 2>>"$SCRATCH/broker.log" &
  BROKER_PID=$!
  for _ in $(seq 100); do
    [ -s "$SCRATCH/port" ] && break
    if ! kill -0 "$BROKER_PID" 2>/dev/null; then
      echo "the broker exited at start:" >&2
      cat "$SCRATCH/broker.log" >&2
      BROKER_PID=""
      exit 1
    fi
    sleep 0.1
  done
  if [ ! -s "$SCRATCH/port" ]; then
    echo "the broker wrote no port file within 10 s" >&2
    exit 1
  fi
  BROKER_URL="ws://127.0.0.1:$(cat "$SCRATCH/port")/ws"
  if [ "$TLS" = 1 ]; then
    for _ in $(seq 100); do
      [ -s "$SCRATCH/tlsport" ] && break
      sleep 0.1
    done
    BROKER_URL="wss://127.0.0.1:$(cat "$SCRATCH/tlsport")/ws"
  fi
}

# raise_nofile N: lifts the soft open-file limit to the hard one and prints
# how many connections fit (N at most), leaving room for other descriptors.
raise_nofile() {
  local want=$1 hard
  hard=$(ulimit -Hn)
  if [ "$hard" != unlimited ]; then
    ulimit -n "$hard"
    if [ $((hard - 64)) -lt "$want" ]; then
      echo "hard open-file limit $hard: using $((hard - 64)) connections instead of $want" >&2
      want=$((hard - 64))
    fi
  else
    ulimit -n 1048576 2>/dev/null || ulimit -n 65536
  fi
  echo "$want"
}

# run_wsbench LABEL [wsbench flags...]: against the broker started last.
run_wsbench() {
  local label=$1
  shift
  # shellcheck disable=SC2086
  local tls_args=()
  if [[ "$BROKER_URL" == wss://* ]]; then
    tls_args=(--cafile "$SCRATCH/tls.crt")
  fi
  "$WSBENCH" --url "$BROKER_URL" "${tls_args[@]}" --broker-pid "$BROKER_PID" --label "$label" \
    --format "$FORMAT" --threads "$THREADS" "$@" $WSBENCH_ARGS
}

# require_package CMD PACKAGE: installs the Debian PACKAGE when CMD is missing,
# the way `make deps` does (root: apt-get; otherwise the command to run).
require_package() {
  command -v "$1" >/dev/null 2>&1 && return 0
  [ -x "/usr/sbin/$1" ] && return 0
  if [ "$(id -u)" -ne 0 ]; then
    echo "$(basename "$0"): $1 is missing; run: sudo apt-get update && sudo apt-get install -y $2" >&2
    exit 1
  fi
  echo "$(basename "$0"): installing Debian package $2" >&2
  DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$2" >/dev/null || exit 1
}

# free_port: a free TCP port of 127.0.0.1 (for servers without a port file).
free_port() {
  /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# broker_metric NAME: the value of a counter in the last broker's /metrics.
broker_metric() {
  local port=${BROKER_URL#*127.0.0.1:}
  port=${port%%/*}
  curl -s "http://127.0.0.1:$port/metrics" | awk -v n="$1" '$1 == n {print $2}'
}

# loadavg: the 1-minute load average, noted with every number.
loadavg() {
  cut -d' ' -f1 /proc/loadavg
}
