#!/usr/bin/env bash
# Lector's import benchmark: READERS reader rows from a CSV file into a fresh SQLite store through
# `lector import readers` (validation, normalisation, search and matching keys), side by side in
# the same run with `sqlite3`'s own `.import` of the same file into a bare table; then a re-import
# of the unchanged file and identity resolution over the result. Writes bench/RESULTS-import.md.
set -euo pipefail

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$BENCH_DIR/.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/cache/lector-target}"

READERS="${READERS:-1000000}"
ROUNDS="${ROUNDS:-3}"
SKIP_BUILD="${SKIP_BUILD:-0}"
OUT="${OUT:-$BENCH_DIR/RESULTS-import.md}"
WORK="$BENCH_DIR/work"
LECTOR="$CARGO_TARGET_DIR/release/lector"
CSV="$WORK/readers-$READERS.csv"
mkdir -p "$WORK"

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
per_s() { awk -v n="$1" -v s="$2" 'BEGIN { printf "%.0f", n / s }'; }

for tool in sqlite3 python3; do command -v "$tool" >/dev/null || die "$tool is missing (apt-get install -y $tool)"; done
[[ -x /usr/bin/time ]] || die "/usr/bin/time is missing (apt-get install -y time)"
if [[ "$SKIP_BUILD" != 1 ]]; then
  log "building lector (release)…"
  (cd "$ROOT" && cargo build --release -p lector)
fi
[[ -x "$LECTOR" ]] || die "$LECTOR not built"
if [[ ! -s "$CSV" ]]; then
  log "writing $READERS rows to $CSV…"
  python3 "$BENCH_DIR/gen_readers.py" "$READERS" "$CSV"
fi
BYTES=$(stat -c %s "$CSV")

# timed CMD…: runs CMD, prints "seconds peak_kib" (GNU time), keeps CMD's output in $WORK/last.out.
timed() {
  /usr/bin/time -f '%e %M' -o "$WORK/time.out" "$@" >"$WORK/last.out" 2>"$WORK/last.err" || { cat "$WORK/last.err" >&2; die "failed: $*"; }
  cat "$WORK/time.out"
}

raw=() imp=() reimp=() resolve=() imp_kib=() reimp_kib=()
for ((round = 1; round <= ROUNDS; round++)); do
  rm -f "$WORK/raw.db"
  read -r s _ < <(timed sqlite3 "$WORK/raw.db" ".mode csv" ".import $CSV raw")
  raw+=("$s")
  log "round $round: sqlite3 .import ${s}s"

  DATA="$WORK/import-data"
  rm -rf "$DATA"
  "$LECTOR" --data-dir "$DATA" migrate >/dev/null
  read -r s kib < <(timed "$LECTOR" --data-dir "$DATA" import readers "$CSV" --source registrar --json)
  created=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["counts"]["created"])' "$WORK/last.out")
  [[ "$created" == "$READERS" ]] || die "import created $created readers, expected $READERS (see $WORK/last.out)"
  imp+=("$s") imp_kib+=("$kib")
  log "round $round: lector import ${s}s, peak $((kib / 1024)) MiB"

  read -r s kib < <(timed "$LECTOR" --data-dir "$DATA" import readers "$CSV" --source registrar --json)
  unchanged=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["counts"]["unchanged"])' "$WORK/last.out")
  [[ "$unchanged" == "$READERS" ]] || die "re-import left $unchanged unchanged, expected $READERS"
  reimp+=("$s") reimp_kib+=("$kib")
  log "round $round: lector re-import ${s}s"

  read -r s _ < <(timed "$LECTOR" --data-dir "$DATA" identity resolve --json)
  resolve+=("$s")
  log "round $round: identity resolution ${s}s"
done

RAW=$(printf '%s\n' "${raw[@]}" | median)
IMP=$(printf '%s\n' "${imp[@]}" | median)
REIMP=$(printf '%s\n' "${reimp[@]}" | median)
RESOLVE=$(printf '%s\n' "${resolve[@]}" | median)
IMP_MIB=$(( $(printf '%s\n' "${imp_kib[@]}" | sort -n | tail -n1) / 1024 ))
REIMP_MIB=$(( $(printf '%s\n' "${reimp_kib[@]}" | sort -n | tail -n1) / 1024 ))
RATIO=$(ratio "$IMP" "$RAW")
IMP_RATE=$(per_s "$READERS" "$IMP")
REIMP_RATE=$(per_s "$READERS" "$REIMP")
verdict() { if awk -v a="$1" -v b="$2" 'BEGIN { exit !(a <= b) }'; then echo PASS; else echo MISS; fi; }

cat >"$OUT" <<MD
# Lector import benchmark results

Written by \`bench/import.sh\` (see \`bench/README.md\`).

- date: $(date -u '+%Y-%m-%d %H:%M UTC')
- machine: $(nproc) cores ($(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -n1)), $(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo) memory
- commit: $(git -C "$ROOT" rev-parse --short HEAD)
- data: $READERS rows, $(awk -v b="$BYTES" 'BEGIN { printf "%.0f MB", b / 1e6 }') UTF-8 CSV with Chinese headers (\`bench/gen_readers.py\`: card number, name, gender, birth date, category, department, mobile, email, expiry)
- $ROUNDS rounds; each round imports into a fresh store; figures are medians (wall time of the whole command, start-up included)
- load average (1/5/15 min) at the end: $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine shares the cores)

| | time (s) | rows/s | peak memory | target |
|---|---:|---:|---:|---|
| \`sqlite3\` \`.import\` into a bare table (the peer) | $RAW | $(per_s "$READERS" "$RAW") | | |
| \`lector import readers\` into a fresh store | $IMP | $IMP_RATE | $IMP_MIB MiB | ≥ 150,000 rows/s: **$(verdict 150000 "$IMP_RATE")**; ≤ 1.5× sqlite3: **$(verdict "$RATIO" 1.5)** (${RATIO}×); < 500 MB: **$(verdict "$IMP_MIB" 476)** |
| re-import of the unchanged file | $REIMP | $REIMP_RATE | $REIMP_MIB MiB | ≥ 300,000 rows/s: **$(verdict 300000 "$REIMP_RATE")** |
| \`lector identity resolve\` over the imported readers | $RESOLVE | | | < 30 s: **$(verdict "$RESOLVE" 30)** |

Rounds (s): sqlite3 ${raw[*]}; import ${imp[*]}; re-import ${reimp[*]}; resolution ${resolve[*]}.

What Lector does that \`.import\` does not: detects the encoding, delimiter and header row, maps the
Chinese headers, validates and normalises every field (card number, name, dates, category, mobile,
email), computes pinyin, initials and search keys, writes readers, contact points, search keys and
source links (with their indexes) and records the job, its counts and provenance.
MD
log "wrote $OUT"
