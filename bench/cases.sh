#!/usr/bin/env bash
# Lector's case benchmark: a department's queue and the service dashboard with CASES cases and
# INTERACTIONS interactions in SQLite, under concurrent load from wrk, side by side with a bare
# axum handler (the HTTP floor). Both as HTML pages (a staff session cookie) and as the REST API
# (a bearer token). Writes bench/RESULTS-cases.md. See bench/README.md.
set -euo pipefail

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$BENCH_DIR/.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/cache/lector-target}"

READERS="${READERS:-100000}"
CASES="${CASES:-100000}"
INTERACTIONS="${INTERACTIONS:-1000000}"
DURATION="${DURATION:-20s}"
WARMUP="${WARMUP:-3s}"
THREADS="${THREADS:-2}"
CONNECTIONS="${CONNECTIONS:-16}"
ROUNDS="${ROUNDS:-3}"
SKIP_BUILD="${SKIP_BUILD:-0}"
REUSE_DATA="${REUSE_DATA:-0}"
OUT="${OUT:-$BENCH_DIR/RESULTS-cases.md}"

P99_TARGET_MS=50

WORK="$BENCH_DIR/work"
DATA="$WORK/cases-$READERS-$CASES-$INTERACTIONS"
LECTOR="$CARGO_TARGET_DIR/release/lector"
FLOOR="$CARGO_TARGET_DIR/release/lector-bench-floor"
DEMO_PASSWORD="lector-demo-2026"   # crates/lector/src/demo.rs
DEPT_USER="circ"                   # demo staff of the circulation department
LEADER_USER="leader"
mkdir -p "$WORK"

# shellcheck source=bench/lib.sh
source "$BENCH_DIR/lib.sh"

need_tools_and_binaries

# ---------------------------------------------------------------------------------------------
# Seed: demo readers, departments and staff through `lector demo` (which migrates), then cases,
# their events and interactions straight into SQLite (no CLI command files cases in bulk).
DB="$DATA/lector.db"
SEED_FILE="$DATA.seed.txt"
if [[ "$REUSE_DATA" == 1 && -f "$DB" && -f "$SEED_FILE" ]]; then
  log "reusing $DATA (seeded earlier)"
else
  rm -rf "$DATA" "$SEED_FILE"
  log "seeding $READERS demo readers into $DATA…"
  "$LECTOR" --data-dir "$DATA" demo --readers "$READERS" >"$WORK/cases-demo.log" 2>&1 \
    || { cat "$WORK/cases-demo.log" >&2; die "lector demo failed"; }
  for table in cases case_events interactions departments; do
    [[ "$(sqlite3 "$DB" "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = '$table'")" == 1 ]] \
      || die "no table $table in $DB: the case store (migration 0003_cases.sql) is not in this build"
  done
  log "seeding $CASES cases and $INTERACTIONS interactions with sqlite3…"
  t0=$(date +%s.%N)
  sqlite3 "$DB" >/dev/null <<SQL || die "seeding SQL failed"
PRAGMA foreign_keys = ON;
PRAGMA journal_mode = WAL;
PRAGMA synchronous = OFF;
PRAGMA cache_size = -262144;
BEGIN;
CREATE TEMP TABLE dept AS SELECT row_number() OVER (ORDER BY id) - 1 AS i, id FROM departments;
CREATE TEMP TABLE staff AS SELECT row_number() OVER (ORDER BY id) - 1 AS i, id, username FROM users;
-- Readers by position: ids have gaps where identity resolution merged the demo's duplicates.
CREATE TEMP TABLE rd (i INTEGER PRIMARY KEY, id BIGINT NOT NULL);
INSERT INTO rd (i, id) SELECT row_number() OVER (ORDER BY id) - 1, id FROM readers;
CREATE TEMP TABLE rdn AS SELECT count(*) AS n FROM rd;
CREATE TEMP TABLE seq AS WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < max($CASES, 1)) SELECT n FROM s;
-- Created over the last 365 days. Cases of the last 30 days are spread over the statuses by
-- n % 20 (10 % received, 5 % triaged, 20 % assigned, 5 % awaiting approval, 10 % in progress,
-- 10 % resolved, 40 % closed); older ones are closed. Open cases past their deadline are
-- marked escalated, as a running server would have done, so that the server does not escalate
-- thousands of cases (with notifications) at start while it is being measured.
CREATE TEMP TABLE c AS
SELECT n,
  CASE n % 5 WHEN 0 THEN 'suggestion' WHEN 1 THEN 'complaint' WHEN 2 THEN 'inquiry' WHEN 3 THEN 'purchase' ELSE 'praise' END AS kind,
  CASE WHEN (n * 7919) % (365 * 24 * 60) >= 30 * 24 * 60 THEN 'closed'
       WHEN n % 20 < 2 THEN 'received' WHEN n % 20 < 3 THEN 'triaged' WHEN n % 20 < 7 THEN 'assigned'
       WHEN n % 20 < 8 THEN 'awaiting_approval' WHEN n % 20 < 10 THEN 'in_progress' WHEN n % 20 < 12 THEN 'resolved'
       ELSE 'closed' END AS status,
  CASE n % 10 WHEN 0 THEN 'high' WHEN 1 THEN 'low' WHEN 2 THEN 'urgent' ELSE 'normal' END AS priority,
  CASE n % 3 WHEN 0 THEN 'portal' WHEN 1 THEN 'staff' ELSE 'api' END AS source,
  (n * 7919) % (365 * 24 * 60) AS age_min
FROM seq;
INSERT INTO cases (id, number, kind, status, priority, category, subject, body, source, reader_id, card_no, contact_name, contact,
                   department_id, assignee_id, proposal, reply, due_at, escalated, created_at, created_local, updated_at,
                   first_response_at, resolved_at, resolved_local, closed_at, rating_satisfaction, rating_recommend, rating_comment,
                   rated_at, version)
SELECT (SELECT coalesce(max(id), 0) FROM cases) + n,
  printf('GD%s-%06d', strftime('%Y', 'now', '-' || age_min || ' minutes'), 500000 + n), kind, status, priority, NULL,
  '基准工单 bench case ' || n, '基准测试生成的工单内容。Generated for the benchmark.', source,
  CASE WHEN n % 2 = 0 THEN (SELECT id FROM rd WHERE i = (n * 31) % (SELECT n FROM rdn)) END, NULL,
  CASE WHEN source = 'portal' THEN '读者' || n END, CASE WHEN source = 'portal' THEN 'reader' || n || '@example.com' END,
  CASE WHEN status NOT IN ('received', 'triaged') THEN (SELECT id FROM dept WHERE i = n % (SELECT count(*) FROM dept)) END,
  NULL,
  CASE WHEN status IN ('awaiting_approval', 'in_progress', 'resolved', 'closed') THEN '处理方案 ' || n END,
  CASE WHEN status IN ('resolved', 'closed') THEN '答复 ' || n END,
  CASE WHEN status <> 'received' THEN strftime('%Y-%m-%d %H:%M', 'now', 'localtime', '-' || age_min || ' minutes', '+3 days') END,
  CASE WHEN status NOT IN ('received', 'resolved', 'closed') AND age_min > 3 * 24 * 60 THEN 1 ELSE 0 END,
  strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-' || age_min || ' minutes'),
  strftime('%Y-%m-%d %H:%M', 'now', 'localtime', '-' || age_min || ' minutes'),
  strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-' || max(age_min - 60, 0) || ' minutes'),
  CASE WHEN status <> 'received' THEN strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-' || max(age_min - 30, 0) || ' minutes') END,
  CASE WHEN status IN ('resolved', 'closed') THEN strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-' || max(age_min - 2000 - n % 3000, 0) || ' minutes') END,
  CASE WHEN status IN ('resolved', 'closed') THEN strftime('%Y-%m-%d %H:%M', 'now', 'localtime', '-' || max(age_min - 2000 - n % 3000, 0) || ' minutes') END,
  CASE WHEN status = 'closed' THEN strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-' || max(age_min - 6000, 0) || ' minutes') END,
  CASE WHEN status = 'closed' AND n % 2 = 0 THEN 1 + n % 5 END,
  CASE WHEN status = 'closed' AND n % 4 = 0 THEN n % 11 END,
  NULL,
  CASE WHEN status = 'closed' AND n % 2 = 0 THEN strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-' || max(age_min - 6000, 0) || ' minutes') END,
  1
FROM c;
-- History: every case was created; every case past receipt has one more event to its status.
INSERT INTO case_events (case_id, at, actor, action, from_status, to_status, comment)
SELECT id, created_at, CASE WHEN source = 'portal' THEN 'portal' ELSE 'librarian' END, 'create', NULL, 'received', NULL
FROM cases WHERE subject LIKE '基准工单 bench case %';
INSERT INTO case_events (case_id, at, actor, action, from_status, to_status, comment)
SELECT id, coalesce(closed_at, resolved_at, first_response_at, updated_at), 'librarian',
  CASE status WHEN 'triaged' THEN 'triage' WHEN 'assigned' THEN 'assign' WHEN 'awaiting_approval' THEN 'propose'
              WHEN 'in_progress' THEN 'approve' WHEN 'resolved' THEN 'resolve' ELSE 'close' END,
  'received', status, NULL
FROM cases WHERE subject LIKE '基准工单 bench case %' AND status <> 'received';
-- Interactions: spread over readers, staff, channels and the last two years.
INSERT INTO interactions (reader_id, channel, direction, subject, notes, occurred_at, staff_id, created_at)
SELECT (SELECT id FROM rd WHERE i = (n * 7) % (SELECT n FROM rdn)),
  CASE n % 8 WHEN 0 THEN 'visit' WHEN 1 THEN 'phone' WHEN 2 THEN 'email' WHEN 3 THEN 'qq' WHEN 4 THEN 'wechat'
             WHEN 5 THEN 'chat' WHEN 6 THEN 'consultation' ELSE 'training' END,
  CASE n % 3 WHEN 0 THEN 'outbound' ELSE 'inbound' END,
  '基准联系 bench interaction ' || n, NULL,
  strftime('%Y-%m-%d %H:%M', 'now', 'localtime', '-' || ((n * 104729) % (730 * 24 * 60)) || ' minutes'),
  (SELECT id FROM staff WHERE i = n % (SELECT count(*) FROM staff)),
  strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-' || ((n * 104729) % (730 * 24 * 60)) || ' minutes')
FROM (WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < max($INTERACTIONS, 1)) SELECT n FROM s);
COMMIT;
ANALYZE;
PRAGMA wal_checkpoint(TRUNCATE);
SQL
  t1=$(date +%s.%N)
  wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
  printf 'wall_s=%s\n' "$wall" >"$SEED_FILE"
fi
SEED_WALL=$(sed -n 's/^wall_s=//p' "$SEED_FILE")
NCASES=$(sqlite3 "$DB" 'SELECT count(*) FROM cases')
NEVENTS=$(sqlite3 "$DB" 'SELECT count(*) FROM case_events')
NINTER=$(sqlite3 "$DB" 'SELECT count(*) FROM interactions')
NREADERS=$(sqlite3 "$DB" 'SELECT count(*) FROM readers')
[[ "$NCASES" -ge "$CASES" ]] || die "expected $CASES cases in $DB, found $NCASES"
[[ "$NINTER" -ge "$INTERACTIONS" ]] || die "expected $INTERACTIONS interactions in $DB, found $NINTER"
DB_SIZE=$(du -sh "$DATA" | cut -f1)
log "data: $NREADERS readers, $NCASES cases ($NEVENTS events), $NINTER interactions; SQL seeding ${SEED_WALL}s; data dir $DB_SIZE"

DEPT_CODE=$(sqlite3 "$DB" "SELECT d.code FROM users u JOIN departments d ON d.id = u.department_id WHERE u.username = '$DEPT_USER'")
[[ -n "$DEPT_CODE" ]] || die "demo user $DEPT_USER has no department"
QUEUE_OPEN=$(sqlite3 "$DB" "SELECT count(*) FROM cases c JOIN departments d ON d.id = c.department_id WHERE d.code = '$DEPT_CODE' AND c.status <> 'closed'")
TODAY=$(date +%F)
printf '%s\n' "$DEPT_CODE" >"$WORK/cases-dept.txt"
printf '1\n' >"$WORK/cases-page.txt"
printf '%s\n' "$TODAY" >"$WORK/cases-today.txt"

# ---------------------------------------------------------------------------------------------
# Servers
start_servers bench-cases "$WORK/cases-"

# sign_in USER: signs in through the sign-in form like a browser and prints the session cookie.
sign_in() {
  local user="$1" jar="$WORK/cases-jar-$1.txt" csrf code session
  rm -f "$jar"
  csrf=$(curl -fsS -c "$jar" "http://$LECTOR_ADDR/login" | sed -n 's/.*name="csrf" value="\([0-9a-f]*\)".*/\1/p' | head -n1)
  [[ -n "$csrf" ]] || die "no CSRF token on /login"
  code=$(curl -s -o /dev/null -w '%{http_code}' -b "$jar" -c "$jar" --data-urlencode "username=$user" \
    --data-urlencode "password=$DEMO_PASSWORD" --data-urlencode "csrf=$csrf" --data-urlencode "next=/" "http://$LECTOR_ADDR/login")
  [[ "$code" == 303 ]] || die "signing in as $user answered $code"
  session=$(awk '$6 == "lector_session" { print $7 }' "$jar")
  [[ -n "$session" ]] || die "no session cookie for $user"
  printf 'lector_session=%s' "$session"
}
DEPT_COOKIE=$(sign_in "$DEPT_USER")
LEADER_COOKIE=$(sign_in "$LEADER_USER")

# Sanity: every scenario answers 200 (and the API 401 without a token).
check() {
  local what="$1" url="$2" out="$WORK/cases-sample-$1"; shift 2
  local code
  code=$(curl -s -o "$out" -w '%{http_code}' "$@" "$url")
  [[ "$code" == 200 ]] || die "$what: GET $url answered $code: $(head -c 300 "$out")"
}
check queue_page "http://$LECTOR_ADDR/cases?view=dept&page=1" -H "Cookie: $DEPT_COOKIE"
check dashboard_page "http://$LECTOR_ADDR/cases/dashboard?to=$TODAY" -H "Cookie: $LEADER_COOKIE"
check queue_api "http://$LECTOR_ADDR/api/v1/cases?status=open&department=$DEPT_CODE" -H "Authorization: Bearer $TOKEN"
check stats_api "http://$LECTOR_ADDR/api/v1/cases/stats?to=$TODAY" -H "Authorization: Bearer $TOKEN"
code=$(curl -s -o /dev/null -w '%{http_code}' "http://$LECTOR_ADDR/api/v1/cases/stats")
[[ "$code" == 401 ]] || die "GET /api/v1/cases/stats without a token answered $code, expected 401"
grep -q "$DEPT_CODE\|GD" "$WORK/cases-sample-queue_page" || log "warning: the queue page shows no case number"

sleep 1
RSS_START=$(rss_kib "$LECTOR_PID")

# ---------------------------------------------------------------------------------------------
# Load
export WRK_LOG="$WORK/cases-wrk.log"
: >"$WRK_LOG"
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
SCENARIOS=(queue_page dashboard_page queue_api stats_api)
declare -A LIST PREFIX COOKIE TOK TITLE
LIST[queue_page]="$WORK/cases-page.txt";     PREFIX[queue_page]="/cases?view=dept&page=";       COOKIE[queue_page]=$DEPT_COOKIE;   TOK[queue_page]=""
LIST[dashboard_page]="$WORK/cases-today.txt"; PREFIX[dashboard_page]="/cases/dashboard?to=";    COOKIE[dashboard_page]=$LEADER_COOKIE; TOK[dashboard_page]=""
LIST[queue_api]="$WORK/cases-dept.txt";      PREFIX[queue_api]="/api/v1/cases?status=open&department="; COOKIE[queue_api]="";   TOK[queue_api]=$TOKEN
LIST[stats_api]="$WORK/cases-today.txt";     PREFIX[stats_api]="/api/v1/cases/stats?to=";       COOKIE[stats_api]="";             TOK[stats_api]=$TOKEN
TITLE[queue_page]="Department queue page (HTML, signed in as \`$DEPT_USER\` of $DEPT_CODE) — GET /cases?view=dept"
TITLE[dashboard_page]="Service dashboard page (HTML, signed in as \`$LEADER_USER\`; default 30-day period) — GET /cases/dashboard"
TITLE[queue_api]="Department queue over the API — GET /api/v1/cases?status=open&department=$DEPT_CODE"
TITLE[stats_api]="Dashboard figures over the API (default 30-day period) — GET /api/v1/cases/stats"

declare -A RES
for sc in "${SCENARIOS[@]}"; do
  export BENCH_COOKIE="${COOKIE[$sc]}" BENCH_SUFFIX=""
  # run_wrk's TOKEN argument: an empty one means "no Authorization header".
  log "scenario $sc: warm-up $WARMUP each"
  run_wrk "$LECTOR_ADDR" "${LIST[$sc]}" "${PREFIX[$sc]}" "$WARMUP" "${TOK[$sc]}" >/dev/null
  run_wrk "$FLOOR_ADDR" "${LIST[$sc]}" "${PREFIX[$sc]}" "$WARMUP" "${TOK[$sc]}" >/dev/null
  for ((r = 1; r <= ROUNDS; r++)); do
    for srv in lector floor; do
      if [[ $srv == lector ]]; then addr=$LECTOR_ADDR; else addr=$FLOOR_ADDR; fi
      line=$(run_wrk "$addr" "${LIST[$sc]}" "${PREFIX[$sc]}" "$DURATION" "${TOK[$sc]}")
      read -r p50 p99 rps reqs non2xx serr <<<"$line"
      log "  $sc round $r $srv: p50 ${p50} µs, p99 ${p99} µs, ${rps} req/s ($reqs requests, $non2xx non-2xx, $serr socket errors)"
      [[ "$non2xx" == 0 ]] || die "$srv answered $non2xx requests with an error status in $sc"
      RES[$sc.$srv.p50]+="$p50 "; RES[$sc.$srv.p99]+="$p99 "; RES[$sc.$srv.rps]+="$rps "
      RES[$sc.$srv.serr]=$(( ${RES[$sc.$srv.serr]:-0} + serr ))
    done
  done
done
unset BENCH_COOKIE

sleep 1
RSS_AFTER=$(rss_kib "$LECTOR_PID")
HWM_AFTER=$(hwm_kib "$LECTOR_PID")
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

# ---------------------------------------------------------------------------------------------
# Report
med() { printf '%s\n' ${RES[$1]} | median; }
COMMIT=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
if [[ -n "$(git -C "$ROOT" status --porcelain 2>/dev/null)" ]]; then COMMIT="$COMMIT (working tree with uncommitted changes)"; fi
CPU=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
MEM=$(awk '/^MemTotal:/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
ALL_PASS=1
{
  echo "# Lector case benchmark results"
  echo
  echo "Written by \`bench/cases.sh\` (see \`bench/README.md\`). The target (from the issue): with 100,000 cases and"
  echo "1,000,000 interactions, a department queue page and the dashboard each p99 ≤ $P99_TARGET_MS ms under concurrent load on"
  echo "loopback, reported beside the bare-handler floor."
  echo
  echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "- machine: $(nproc) cores ($CPU), $MEM memory, $(uname -sr)"
  echo "- commit: $COMMIT"
  echo "- data: $NREADERS readers (\`lector demo --readers $READERS\`), $NCASES cases with $NEVENTS events and $NINTER"
  echo "  interactions (inserted with \`sqlite3\`, ${SEED_WALL} s); $QUEUE_OPEN open cases in $DEPT_CODE's queue; data dir $DB_SIZE"
  echo "- load: \`wrk -t$THREADS -c$CONNECTIONS -d$DURATION\` on 127.0.0.1, wrk on the same machine; pages with a session cookie"
  echo "  from the sign-in form, the API with a bearer token (admin)"
  echo "- $ROUNDS rounds per scenario, Lector and the floor alternating, after a $WARMUP warm-up of each; medians of the rounds"
  echo "- load average before: $LOAD_BEFORE; after: $LOAD_AFTER"
  echo "- floor: \`bench/floor\`, a bare axum handler returning a constant, same requests"
  echo
  for sc in "${SCENARIOS[@]}"; do
    lp50=$(med "$sc.lector.p50"); lp99=$(med "$sc.lector.p99"); lrps=$(med "$sc.lector.rps")
    fp50=$(med "$sc.floor.p50");  fp99=$(med "$sc.floor.p99");  frps=$(med "$sc.floor.rps")
    verdict=$(awk -v u="$lp99" -v t="$P99_TARGET_MS" 'BEGIN { print (u / 1000 <= t) ? "PASS" : "FAIL" }')
    [[ "$verdict" == PASS ]] || ALL_PASS=0
    echo "## ${TITLE[$sc]}"
    echo
    echo "| | p50 (ms) | p99 (ms) | req/s |"
    echo "|---|---:|---:|---:|"
    echo "| Lector | $(ms "$lp50") | $(ms "$lp99") | ${lrps%.*} |"
    echo "| floor (bare axum) | $(ms "$fp50") | $(ms "$fp99") | ${frps%.*} |"
    echo "| Lector / floor | $(ratio "$lp50" "$fp50") | $(ratio "$lp99" "$fp99") | $(ratio "$lrps" "$frps") |"
    echo
    echo "Target: p99 ≤ $P99_TARGET_MS ms — **$verdict** (p99 $(ms "$lp99") ms)."
    echo "Rounds (Lector p99 µs): ${RES[$sc.lector.p99]}; socket errors: Lector ${RES[$sc.lector.serr]}, floor ${RES[$sc.floor.serr]}."
    echo
  done
  echo "## Memory (VmRSS of \`lector serve\`)"
  echo
  echo "after startup $(mib "$RSS_START") MiB; at rest after the load $(mib "$RSS_AFTER") MiB; peak (VmHWM) $(mib "$HWM_AFTER") MiB."
  echo
  if [[ $ALL_PASS == 1 ]]; then echo "All targets met."; else echo "At least one target missed (see FAIL above)."; fi
} >"$OUT"
log "wrote $OUT"
cat "$OUT"
