#!/usr/bin/env bash
# Lector's messaging benchmark: an email campaign to RECIPIENTS readers (imported from the same
# generated registrar CSV as the import benchmark) sent by `lector serve`'s outbox worker to a
# local SMTP sink (`smtp-sink --count-only`), side by side in the same run with a minimal sender —
# Python's smtplib (bench/smtplib_sender.py) — writing to the same sink. Reports the sink's
# accepted rate for both (the clock starts at the first message), Lector's end-to-end rate (from
# pressing "send" until the last message is accepted, queueing included) and Lector's peak memory.
# Writes bench/RESULTS-messaging.md.
set -euo pipefail

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$BENCH_DIR/.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/cache/lector-target}"

RECIPIENTS="${RECIPIENTS:-100000}"
ROUNDS="${ROUNDS:-3}"
PEER_MESSAGES="${PEER_MESSAGES:-20000}"
PEER_THREADS="${PEER_THREADS:-4}"
SKIP_BUILD="${SKIP_BUILD:-0}"
OUT="${OUT:-$BENCH_DIR/RESULTS-messaging.md}"
WORK="$BENCH_DIR/work"
LECTOR="$CARGO_TARGET_DIR/release/lector"
SINK="$CARGO_TARGET_DIR/release/smtp-sink"
CSV="$WORK/readers-$RECIPIENTS.csv"
THREADS=1 CONNECTIONS=1
mkdir -p "$WORK"
source "$BENCH_DIR/lib.sh"

for tool in python3 curl; do command -v "$tool" >/dev/null || die "$tool is missing"; done
if [[ "$SKIP_BUILD" != 1 ]]; then
  log "building lector and smtp-sink (release)…"
  (cd "$ROOT" && cargo build --release -p lector -p smtp-sink)
fi
[[ -x "$LECTOR" && -x "$SINK" ]] || die "release binaries missing"
[[ -s "$CSV" ]] || { log "writing $RECIPIENTS rows to $CSV…"; python3 "$BENCH_DIR/gen_readers.py" "$RECIPIENTS" "$CSV"; }

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
now() { date +%s.%N; }
json_field() { python3 -c 'import json, sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }

# api METHOD PATH [BODY]: calls Lector's API with the bench token, fails on an HTTP error.
api() {
  local method="$1" path="$2" body="${3:-}"
  curl -fsS -m 120 -X "$method" -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
    ${body:+--data "$body"} "http://$LECTOR_ADDR$path" || die "$method $path failed"
}

# start_sink N LOG: a count-only sink that exits after N messages; sets SINK_PID and SINK_PORT.
start_sink() {
  SINK_PORT=$(free_port)
  "$SINK" --listen "127.0.0.1:$SINK_PORT" --count-only --report-every 0 --exit-after "$1" >"$2" 2>&1 &
  SINK_PID=$!
  PIDS+=("$SINK_PID")
  local i
  for ((i = 0; i < 100; i++)); do grep -q '^listening=' "$2" && return; sleep 0.1; done
  die "smtp-sink did not start (see $2)"
}

# sink_rate LOG: the sink's final "accepted=N seconds=S rate=R" as "N S R".
sink_rate() { tail -n1 "$1" | sed -E 's/^accepted=([0-9]+) seconds=([0-9.]+) rate=([0-9.]+).*/\1 \2 \3/'; }

# The prepared store: readers imported once, an admin and a token; each round sends from a copy.
BASE="$WORK/messaging-base"
if [[ ! -s "$BASE/.ready-$RECIPIENTS" ]]; then
  rm -rf "$BASE"
  log "importing $RECIPIENTS readers…"
  "$LECTOR" --data-dir "$BASE" migrate >/dev/null
  "$LECTOR" --data-dir "$BASE" import readers "$CSV" --source registrar --json >"$WORK/messaging-import.json"
  echo "bench-admin-password-2026" | "$LECTOR" --data-dir "$BASE" user add benchadmin --role admin >/dev/null
  touch "$BASE/.ready-$RECIPIENTS"
fi

lector_rate=() lector_e2e=() queue_s=() peak=() peer_rate=()
for ((round = 1; round <= ROUNDS; round++)); do
  DATA="$WORK/messaging-round"
  rm -rf "$DATA" && cp -r "$BASE" "$DATA"
  TOKEN=$("$LECTOR" --data-dir "$DATA" token create --user benchadmin --name "bench-$round" 2>/dev/null | tail -n1)
  [[ "$TOKEN" == lec_* ]] || die "token create did not print a token"

  start_sink "$RECIPIENTS" "$WORK/sink-lector.out"
  start_server lector "$WORK/messaging-lector.out" "$LECTOR" --data-dir "$DATA" serve --bind 127.0.0.1:0
  LECTOR_PID=$SERVER_PID LECTOR_ADDR=$SERVER_ADDR
  for ((i = 0; i < 300; i++)); do curl -fsS -m 5 -o /dev/null "http://$LECTOR_ADDR/healthz" && break; sleep 0.2; done

  api POST /api/v1/channels "{\"code\":\"email\",\"name\":\"bench email\",\"settings\":{\"kind\":\"email\",\"host\":\"127.0.0.1\",\"port\":$SINK_PORT,\"security\":\"plain\",\"username\":null,\"from_address\":\"library@example.edu.cn\",\"from_name\":\"图书馆\"},\"rate_per_second\":10000,\"enabled\":true}" >/dev/null
  tpl=$(api POST /api/v1/templates '{"code":"lecture","name":"讲座通知","purpose":"service","variants":[{"channel_kind":"email","lang":"zh","subject":"图书馆讲座通知：数字资源检索入门","body_text":"{{ reader.name }}，您好：\n\n本周四下午两点在图书馆三楼报告厅举行数字资源检索入门讲座，欢迎参加。\n","body_html":"<p>{{ reader.name }}，您好：</p><p>本周四下午两点在图书馆三楼报告厅举行数字资源检索入门讲座，欢迎参加。</p>"}]}' | json_field id)
  seg=$(api POST /api/v1/segments '{"name":"全部在籍读者","filter":{"all":[{"field":"status","op":"eq","value":"active"}]}}' | json_field id)
  camp=$(api POST /api/v1/campaigns "{\"name\":\"bench $round\",\"segment_id\":$seg,\"template_id\":$tpl,\"channels\":[\"email\"]}" | json_field id)

  t0=$(now)
  recipients=$(api POST "/api/v1/campaigns/$camp/start" | json_field recipients)
  t1=$(now)
  [[ "$recipients" == "$RECIPIENTS" ]] || die "the campaign queued $recipients recipients, expected $RECIPIENTS"
  hwm=0
  while kill -0 "$SINK_PID" 2>/dev/null; do
    kill -0 "$LECTOR_PID" 2>/dev/null || die "lector exited during the campaign (see $WORK/messaging-lector.out.err)"
    (( $(awk -v a="$(now)" -v b="$t0" 'BEGIN { print (a - b > 1200) }') )) && die "the campaign did not finish in 20 minutes"
    sleep 0.2
  done
  t2=$(now)
  hwm=$(hwm_kib "$LECTOR_PID")
  read -r n secs rate < <(sink_rate "$WORK/sink-lector.out")
  [[ "$n" == "$RECIPIENTS" ]] || die "the sink accepted $n messages, expected $RECIPIENTS"
  kill "$LECTOR_PID"; wait "$LECTOR_PID" 2>/dev/null || true
  e2e=$(awk -v n="$n" -v a="$t0" -v b="$t2" 'BEGIN { printf "%.0f", n / (b - a) }')
  q=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')
  lector_rate+=("$rate") lector_e2e+=("$e2e") queue_s+=("$q") peak+=("$hwm")
  log "round $round: lector ${rate}/s at the sink (${secs}s), ${e2e}/s end to end, queueing ${q}s, peak $(mib "$hwm") MiB"

  start_sink "$PEER_MESSAGES" "$WORK/sink-peer.out"
  python3 "$BENCH_DIR/smtplib_sender.py" "127.0.0.1:$SINK_PORT" "$PEER_MESSAGES" "$PEER_THREADS" >"$WORK/peer.out"
  wait "$SINK_PID" 2>/dev/null || true
  read -r pn psecs prate < <(sink_rate "$WORK/sink-peer.out")
  [[ "$pn" == "$PEER_MESSAGES" ]] || die "the sink accepted $pn peer messages, expected $PEER_MESSAGES"
  peer_rate+=("$prate")
  log "round $round: smtplib ($PEER_THREADS threads) ${prate}/s at the sink"
done

med() { printf '%s\n' "$@" | median; }
L=$(med "${lector_rate[@]}") E=$(med "${lector_e2e[@]}") Q=$(med "${queue_s[@]}") P=$(med "${peer_rate[@]}") M=$(med "${peak[@]}")
verdict=$(awk -v r="$L" 'BEGIN { print (r >= 1000 ? "PASS" : "MISS") }')
{
  echo "# Messaging benchmark"
  echo
  echo "Written by \`bench/messaging.sh\` on $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores; medians of $ROUNDS rounds."
  echo
  echo "An email campaign to $RECIPIENTS readers (imported from \`bench/gen_readers.py\`'s registrar CSV; one segment of"
  echo "all active readers; a zh template with the reader's name in text and HTML; unsubscribe link and headers on"
  echo "every message) sent by \`lector serve\`'s outbox worker (release build, SQLite, default \`[messaging]\`"
  echo "settings) to \`smtp-sink --count-only\` on loopback; in the same run, Python's smtplib"
  echo "(\`bench/smtplib_sender.py\`, $PEER_THREADS connections) sends $PEER_MESSAGES similar multipart messages to"
  echo "the same sink. The sink's clock starts at its first message."
  echo
  echo "| measure | Lector | smtplib | ratio |"
  echo "|---|---|---|---|"
  echo "| messages/s accepted by the sink (sustained) | $L | $P | $(ratio "$L" "$P") |"
  echo "| messages/s from \"send\" to the last message (queueing included) | $E | – | – |"
  echo "| queueing the $RECIPIENTS recipients (segment, consent, addresses → outbox) | ${Q} s | – | – |"
  echo "| peak memory of \`lector serve\` | $(mib "$M") MiB | – | – |"
  echo
  echo "Target: at least 1,000 messages/s sustained with bounded memory — **$verdict**."
  echo
  echo "Rounds (Lector sink rate / end-to-end / queueing / peak KiB; smtplib rate):"
  for ((i = 0; i < ROUNDS; i++)); do
    echo "- ${lector_rate[$i]} / ${lector_e2e[$i]} / ${queue_s[$i]} s / ${peak[$i]}; ${peer_rate[$i]}"
  done
} >"$OUT"
log "wrote $OUT"
cat "$OUT"
