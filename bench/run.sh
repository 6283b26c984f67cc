#!/usr/bin/env bash
# Lector's reader benchmark: card lookup and search over the REST API with READERS readers in
# SQLite, under concurrent load from wrk, side by side with a bare axum handler (the HTTP floor).
# Writes bench/RESULTS.md. See bench/README.md.
set -euo pipefail

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$BENCH_DIR/.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/cache/lector-target}"

READERS="${READERS:-1000000}"
DURATION="${DURATION:-20s}"       # per wrk run
WARMUP="${WARMUP:-3s}"            # one unmeasured wrk run per server and scenario
THREADS="${THREADS:-2}"
CONNECTIONS="${CONNECTIONS:-16}"
ROUNDS="${ROUNDS:-3}"             # measured runs per server and scenario; medians are reported
SAMPLES="${SAMPLES:-5000}"        # card numbers / queries drawn from the seeded data
SKIP_BUILD="${SKIP_BUILD:-0}"     # 1: use the binaries already in $CARGO_TARGET_DIR/release
REUSE_DATA="${REUSE_DATA:-0}"     # 1: keep bench/work/data-$READERS if it was seeded before
OUT="${OUT:-$BENCH_DIR/RESULTS.md}"

LOOKUP_P99_TARGET_MS=5
SEARCH_P99_TARGET_MS=50

WORK="$BENCH_DIR/work"
DATA="$WORK/data-$READERS"
LECTOR="$CARGO_TARGET_DIR/release/lector"
FLOOR="$CARGO_TARGET_DIR/release/lector-bench-floor"
mkdir -p "$WORK"

# shellcheck source=bench/lib.sh
source "$BENCH_DIR/lib.sh"

need_tools_and_binaries

# ---------------------------------------------------------------------------------------------
# Seed
SEED_FILE="$WORK/seed-$READERS.txt"
if [[ "$REUSE_DATA" == 1 && -f "$DATA/lector.db" && -f "$SEED_FILE" ]]; then
  log "reusing $DATA (seeded earlier)"
else
  rm -rf "$DATA" "$SEED_FILE"
  log "seeding $READERS readers into $DATA…"
  t0=$(date +%s.%N)
  "$LECTOR" --data-dir "$DATA" demo --readers "$READERS" >"$WORK/seed-$READERS.log" 2>&1 \
    || { cat "$WORK/seed-$READERS.log" >&2; die "lector demo failed"; }
  t1=$(date +%s.%N)
  wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
  rate=$(awk -v n="$READERS" -v s="$wall" 'BEGIN { printf "%.0f", n / s }')
  # The demo command's own figure (seeding only, without process start and migrations).
  own=$(grep -o '[0-9.]* readers/s' "$WORK/seed-$READERS.log" | head -n1 || true)
  printf 'wall_s=%s\nrate=%s\nown=%s\n' "$wall" "$rate" "$own" >"$SEED_FILE"
fi
SEED_WALL=$(sed -n 's/^wall_s=//p' "$SEED_FILE")
SEED_RATE=$(sed -n 's/^rate=//p' "$SEED_FILE")
SEED_OWN=$(sed -n 's/^own=//p' "$SEED_FILE")
DB_SIZE=$(du -sh "$DATA" | cut -f1)
log "seeded: ${SEED_WALL}s wall, ${SEED_RATE} readers/s (demo reports: ${SEED_OWN:-n/a}); data dir $DB_SIZE"

# ---------------------------------------------------------------------------------------------
# Inputs drawn from the seeded data (before the server opens the database).
DB="$DATA/lector.db"
COUNT=$(sqlite3 "$DB" 'SELECT count(*) FROM readers')
[[ "$COUNT" -ge "$READERS" ]] || die "expected $READERS readers in $DB, found $COUNT"
sqlite3 "$DB" "SELECT card_no FROM readers ORDER BY random() LIMIT $SAMPLES" >"$WORK/cards.txt"
sqlite3 "$DB" "SELECT initials FROM readers ORDER BY random() LIMIT $SAMPLES" >"$WORK/initials.txt"
# The given name of a three-character name (张晓明 → 晓明): a two-character name fragment.
sqlite3 "$DB" "SELECT substr(name, 2, 2) FROM readers WHERE length(name) = 3 ORDER BY random() LIMIT $SAMPLES" \
  >"$WORK/names.txt"
for f in cards initials names; do
  [[ -s "$WORK/$f.txt" ]] || die "no $f drawn from $DB"
done
log "drew $(wc -l <"$WORK/cards.txt") cards, $(wc -l <"$WORK/initials.txt") initials, $(wc -l <"$WORK/names.txt") name fragments"

# ---------------------------------------------------------------------------------------------
# Servers
start_servers bench "$WORK/"

# Sanity: each scenario answers 200 with the token, and 401 without it.
card=$(head -n1 "$WORK/cards.txt")
code=$(curl -s -o "$WORK/sample-lookup.json" -w '%{http_code}' -H "Authorization: Bearer $TOKEN" \
  "http://$LECTOR_ADDR/api/v1/readers/by-card/$card")
[[ "$code" == 200 ]] || die "GET /api/v1/readers/by-card/$card answered $code: $(head -c 300 "$WORK/sample-lookup.json")"
code=$(curl -s -o /dev/null -w '%{http_code}' "http://$LECTOR_ADDR/api/v1/readers/by-card/$card")
[[ "$code" == 401 ]] || die "GET without a token answered $code, expected 401"
code=$(curl -s -o "$WORK/sample-search.json" -w '%{http_code}' -G -H "Authorization: Bearer $TOKEN" \
  --data-urlencode "q=$(head -n1 "$WORK/names.txt")" "http://$LECTOR_ADDR/api/v1/readers")
[[ "$code" == 200 ]] || die "GET /api/v1/readers?q=… answered $code"

sleep 1
RSS_START=$(rss_kib "$LECTOR_PID")
FLOOR_RSS_START=$(rss_kib "$FLOOR_PID")
log "lector VmRSS after startup: $(mib "$RSS_START") MiB"

# ---------------------------------------------------------------------------------------------
# Load

: >"$WORK/wrk.log"
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
SCENARIOS=(lookup search_initials search_name lookup_full)
declare -A LIST PREFIX SUFFIX TARGET TITLE
LIST[lookup]="$WORK/cards.txt";         PREFIX[lookup]="/api/v1/readers/by-card/"
LIST[lookup_full]="$WORK/cards.txt";    PREFIX[lookup_full]="/api/v1/readers/by-card/"; SUFFIX[lookup_full]="?contacts=full"
LIST[search_initials]="$WORK/initials.txt"; PREFIX[search_initials]="/api/v1/readers?q="
LIST[search_name]="$WORK/names.txt";    PREFIX[search_name]="/api/v1/readers?q="
TARGET[lookup]=$LOOKUP_P99_TARGET_MS; TARGET[search_initials]=$SEARCH_P99_TARGET_MS; TARGET[search_name]=$SEARCH_P99_TARGET_MS
TITLE[lookup]="Card lookup (contact details masked: a pure read) — GET /api/v1/readers/by-card/{card_no}"
TITLE[lookup_full]="Card lookup with full contact details (each view audited: a write per request; no target) — GET /api/v1/readers/by-card/{card_no}?contacts=full"
TITLE[search_initials]="Search by pinyin initials — GET /api/v1/readers?q={initials}"
TITLE[search_name]="Search by Chinese name fragment — GET /api/v1/readers?q={2-character given name}"

declare -A RES
for sc in "${SCENARIOS[@]}"; do
  log "scenario $sc: warm-up $WARMUP each"
  tok=$TOKEN
  export BENCH_SUFFIX="${SUFFIX[$sc]:-}"
  run_wrk "$LECTOR_ADDR" "${LIST[$sc]}" "${PREFIX[$sc]}" "$WARMUP" "$tok" >/dev/null
  run_wrk "$FLOOR_ADDR" "${LIST[$sc]}" "${PREFIX[$sc]}" "$WARMUP" "$tok" >/dev/null
  for ((r = 1; r <= ROUNDS; r++)); do
    for srv in lector floor; do
      if [[ $srv == lector ]]; then addr=$LECTOR_ADDR; else addr=$FLOOR_ADDR; fi
      line=$(run_wrk "$addr" "${LIST[$sc]}" "${PREFIX[$sc]}" "$DURATION" "$tok")
      read -r p50 p99 rps reqs non2xx serr <<<"$line"
      log "  $sc round $r $srv: p50 ${p50} µs, p99 ${p99} µs, ${rps} req/s ($reqs requests, $non2xx non-2xx, $serr socket errors)"
      [[ "$non2xx" == 0 ]] || die "$srv answered $non2xx requests with an error status in $sc"
      RES[$sc.$srv.p50]+="$p50 "; RES[$sc.$srv.p99]+="$p99 "; RES[$sc.$srv.rps]+="$rps "
      RES[$sc.$srv.serr]=$(( ${RES[$sc.$srv.serr]:-0} + serr ))
    done
  done
done

sleep 1
RSS_AFTER=$(rss_kib "$LECTOR_PID")
HWM_AFTER=$(hwm_kib "$LECTOR_PID")
FLOOR_RSS_AFTER=$(rss_kib "$FLOOR_PID")
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
log "lector VmRSS after load: $(mib "$RSS_AFTER") MiB (peak VmHWM $(mib "$HWM_AFTER") MiB)"

# ---------------------------------------------------------------------------------------------
# Report
med() { printf '%s\n' ${RES[$1]} | median; }

COMMIT=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
if [[ -n "$(git -C "$ROOT" status --porcelain 2>/dev/null)" ]]; then COMMIT="$COMMIT (working tree with uncommitted changes)"; fi
CPU=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
MEM=$(awk '/^MemTotal:/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
ALL_PASS=1

{
  echo "# Lector benchmark results"
  echo
  echo "Written by \`bench/run.sh\` (see \`bench/README.md\`)."
  echo
  echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "- machine: $(nproc) cores ($CPU), $MEM memory, $(uname -sr)"
  echo "- commit: $COMMIT"
  echo "- data: $READERS readers in SQLite (\`lector demo --readers $READERS\`), data dir $DB_SIZE"
  echo "- load: \`wrk -t$THREADS -c$CONNECTIONS -d$DURATION\` on 127.0.0.1, wrk on the same machine; each request"
  echo "  picks one of $SAMPLES card numbers / queries drawn at random from the seeded data and sends a bearer token"
  echo "- $ROUNDS rounds per scenario, Lector and the floor alternating, after a $WARMUP warm-up of each;"
  echo "  figures are medians of the rounds (each metric separately)"
  echo "- load average (1/5/15 min) before the load: $LOAD_BEFORE; after: $LOAD_AFTER (other work on the machine shares the cores)"
  echo "- floor: \`bench/floor\`, a bare axum 0.8 handler returning a constant 11-byte JSON body, same requests"
  echo
  for sc in "${SCENARIOS[@]}"; do
    lp50=$(med "$sc.lector.p50"); lp99=$(med "$sc.lector.p99"); lrps=$(med "$sc.lector.rps")
    fp50=$(med "$sc.floor.p50");  fp99=$(med "$sc.floor.p99");  frps=$(med "$sc.floor.rps")
    target=${TARGET[$sc]:-}
    if [[ -n "$target" ]]; then
      verdict=$(awk -v u="$lp99" -v t="$target" 'BEGIN { print (u / 1000 <= t) ? "PASS" : "FAIL" }')
      [[ "$verdict" == PASS ]] || ALL_PASS=0
    fi
    echo "## ${TITLE[$sc]}"
    echo
    echo "| | p50 (ms) | p99 (ms) | req/s |"
    echo "|---|---:|---:|---:|"
    echo "| Lector | $(ms "$lp50") | $(ms "$lp99") | ${lrps%.*} |"
    echo "| floor (bare axum) | $(ms "$fp50") | $(ms "$fp99") | ${frps%.*} |"
    echo "| Lector / floor | $(ratio "$lp50" "$fp50") | $(ratio "$lp99" "$fp99") | $(ratio "$lrps" "$frps") |"
    echo
    if [[ -n "$target" ]]; then echo "Target: p99 ≤ $target ms — **$verdict** (p99 $(ms "$lp99") ms)."; else echo "No target: shown for comparison."; fi
    echo "Rounds (Lector p50/p99 µs, req/s): $(paste -d/ <(printf '%s\n' ${RES[$sc.lector.p50]}) <(printf '%s\n' ${RES[$sc.lector.p99]}) | paste -sd' ') ; $(printf '%s\n' ${RES[$sc.lector.rps]} | awk '{ printf "%s%.0f", (NR > 1 ? " " : ""), $1 }')."
    echo "Socket errors: Lector ${RES[$sc.lector.serr]}, floor ${RES[$sc.floor.serr]}."
    echo
  done
  echo "## Seeding"
  echo
  echo "\`lector demo --readers $READERS\`: ${SEED_WALL} s wall clock (process start, migrations, seeding) →"
  echo "**${SEED_RATE} readers/s**; the command itself reports ${SEED_OWN:-n/a} for the seeding alone."
  echo
  echo "## Memory (VmRSS of \`lector serve\` with $READERS readers)"
  echo
  echo "| | Lector | floor |"
  echo "|---|---:|---:|"
  echo "| after startup, before load | $(mib "$RSS_START") MiB | $(mib "$FLOOR_RSS_START") MiB |"
  echo "| at rest after the load | $(mib "$RSS_AFTER") MiB | $(mib "$FLOOR_RSS_AFTER") MiB |"
  echo "| peak (VmHWM) | $(mib "$HWM_AFTER") MiB | |"
  echo
  echo "VmRSS counts the database pages SQLite maps into memory (\`mmap_size\` 1 GiB per connection):"
  echo "file-backed pages shared with the OS page cache, counted once per connection that touched them,"
  echo "not heap; the server's own memory is the at-rest figure."
  echo
  if [[ $ALL_PASS == 1 ]]; then echo "All targets met."; else echo "At least one target missed (see FAIL above)."; fi
  echo
  echo "Other benchmarks: service cases in \`RESULTS-cases.md\` (\`bench/cases.sh\`), importing readers and"
  echo "identity resolution in \`RESULTS-import.md\` (\`bench/import.sh\`), an email campaign in"
  echo "\`RESULTS-messaging.md\` (\`bench/messaging.sh\`)."
} >"$OUT"

log "wrote $OUT"
cat "$OUT"
