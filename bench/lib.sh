# Helpers shared by bench/run.sh and bench/cases.sh (sourced, not run).
#
# Expects BENCH_DIR, WORK, THREADS and CONNECTIONS to be set; run_wrk uses TOKEN as its default
# bearer token and BENCH_COOKIE / BENCH_SUFFIX from the environment (see pick.lua).

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

PIDS=()
cleanup() {
  local pid
  for pid in "${PIDS[@]:-}"; do
    [[ -n "$pid" ]] && kill "$pid" 2>/dev/null || true
  done
  for pid in "${PIDS[@]:-}"; do
    [[ -n "$pid" ]] && wait "$pid" 2>/dev/null || true
  done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# start_server NAME LOGFILE CMD… : starts CMD in the background, waits (bounded) for its ready
# line "… listening on http://ADDR", and sets SERVER_PID and SERVER_ADDR.
start_server() {
  local name="$1" logf="$2"; shift 2
  : >"$logf"   # empty before the start: never read an earlier run's ready line
  "$@" >>"$logf" 2>"$logf.err" &
  SERVER_PID=$!
  PIDS+=("$SERVER_PID")
  SERVER_ADDR=""
  local i
  for ((i = 0; i < 300; i++)); do
    SERVER_ADDR=$(sed -n 's#.*listening on http://\([0-9.]*:[0-9]*\).*#\1#p' "$logf" | head -n1)
    [[ -n "$SERVER_ADDR" ]] && break
    kill -0 "$SERVER_PID" 2>/dev/null || { cat "$logf.err" >&2; die "$name exited at start"; }
    sleep 0.2
  done
  [[ -n "$SERVER_ADDR" ]] || die "$name printed no ready line within 60 s"
  [[ "$SERVER_ADDR" == 127.0.0.1:* ]] || die "$name is not on 127.0.0.1: $SERVER_ADDR"
}

rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }
hwm_kib() { awk '/^VmHWM:/ { print $2 }' "/proc/$1/status"; }
mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }

# run_wrk ADDR LIST PREFIX DURATION [TOKEN] (default $TOKEN; an empty one sends none): prints "p50_us p99_us rps requests non2xx socket_errors".
run_wrk() {
  local addr="$1" list="$2" prefix="$3" dur="$4" token="${5-$TOKEN}" out line
  out=$(BENCH_LIST="$list" BENCH_PREFIX="$prefix" BENCH_TOKEN="$token" \
    timeout 300 wrk -t"$THREADS" -c"$CONNECTIONS" -d"$dur" --latency -s "$BENCH_DIR/pick.lua" "http://$addr") \
    || die "wrk failed against $addr"
  printf '%s\n' "$out" >>"${WRK_LOG:-$WORK/wrk.log}"
  line=$(printf '%s\n' "$out" | grep '^BENCH ' | tail -n1)
  [[ -n "$line" ]] || die "wrk printed no summary"
  printf '%s\n' "$line" | sed -E 's/^BENCH p50_us=([0-9]+) p99_us=([0-9]+) rps=([0-9.]+) requests=([0-9]+) non2xx=([0-9]+) socket_errors=([0-9]+)$/\1 \2 \3 \4 \5 \6/'
}

median() { sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

ms() { awk -v u="$1" 'BEGIN { printf "%.2f", u / 1000 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b <= 0) print "n/a"; else if (a / b < 1) printf "%.3f×", a / b; else printf "%.1f×", a / b }'; }

# Checks the tools a run needs and builds (unless SKIP_BUILD=1) the release binaries of Lector
# and the floor; the caller sets ROOT, BENCH_DIR, LECTOR, FLOOR and SKIP_BUILD.
need_tools_and_binaries() {
  local tool
  for tool in wrk sqlite3 curl; do
    command -v "$tool" >/dev/null || die "$tool is missing (apt-get install -y $tool)"
  done
  if [[ "$SKIP_BUILD" != 1 ]]; then
    log "building lector (release)…"
    (cd "$ROOT" && cargo build --release -p lector)
    log "building the floor (release)…"
    (cd "$BENCH_DIR/floor" && cargo build --release)
  fi
  [[ -x "$LECTOR" ]] || die "$LECTOR not built"
  [[ -x "$FLOOR" ]] || die "$FLOOR not built"
}

# start_servers TOKEN_LABEL LOG_PREFIX: creates an admin API token (TOKEN), starts `lector serve`
# on DATA and waits (bounded) until /healthz answers, then starts the floor; sets LECTOR_PID,
# LECTOR_ADDR, FLOOR_PID and FLOOR_ADDR. Logs go to LOG_PREFIX{lector,floor}.out.
start_servers() {
  local label="$1" prefix="$2" ok=0 i
  TOKEN=$("$LECTOR" --data-dir "$DATA" token create --user admin --name "$label-$(date +%s)" 2>/dev/null | tail -n1)
  [[ "$TOKEN" == lec_* ]] || die "token create did not print a token"
  start_server lector "${prefix}lector.out" "$LECTOR" --data-dir "$DATA" serve --bind 127.0.0.1:0
  LECTOR_PID=$SERVER_PID LECTOR_ADDR=$SERVER_ADDR
  for ((i = 0; i < 300; i++)); do
    if curl -fsS -m 5 -o /dev/null "http://$LECTOR_ADDR/healthz"; then ok=1; break; fi
    sleep 0.2
  done
  [[ "$ok" == 1 ]] || die "lector /healthz did not answer within 60 s"
  log "lector pid $LECTOR_PID on $LECTOR_ADDR"
  start_server floor "${prefix}floor.out" "$FLOOR" 127.0.0.1:0
  FLOOR_PID=$SERVER_PID FLOOR_ADDR=$SERVER_ADDR
  log "floor pid $FLOOR_PID on $FLOOR_ADDR"
}
