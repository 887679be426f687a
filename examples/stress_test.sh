#!/usr/bin/env bash
# Stress test of a running XQueue server: submit TASKS tasks as fast as CONCURRENCY parallel
# clients can, then wait until all have run; reports submit and processing rates.
#
#   examples/stress_test.sh                     # TASKS=2000 CONCURRENCY=20 TYPE=noop MODE=single
#   MODE=batch BATCH=100 TASKS=20000 examples/stress_test.sh
#
# TYPE=noop returns at once (no limit); example/email sleep DURATION_MS under their limits.
# Bounded: at most 100000 tasks and TIMEOUT seconds (default 300). Needs curl and jq.
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

TASKS=${TASKS:-2000}
CONCURRENCY=${CONCURRENCY:-20}
TYPE=${TYPE:-noop}
MODE=${MODE:-single}
BATCH=${BATCH:-100}
DURATION_MS=${DURATION_MS:-0}
TIMEOUT=${TIMEOUT:-300}
((TASKS >= 1 && TASKS <= 100000)) || { echo "TASKS must be 1..100000" >&2; exit 2; }
((CONCURRENCY >= 1 && CONCURRENCY <= 200)) || { echo "CONCURRENCY must be 1..200" >&2; exit 2; }

expect_status "server healthy" 200 "$(http GET /api/v1/health)"
base_success=$(curl -s -m 5 "$API/stats" | jq .success_tasks)
body=$(jq -nc --arg t "$TYPE" --argjson d "$DURATION_MS" '{type:$t,payload:{duration_ms:$d}}')
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

t0=$(date +%s.%N)
if [[ $MODE == batch ]]; then
    requests=$(((TASKS + BATCH - 1) / BATCH))
    jq -nc --argjson n "$BATCH" --argjson b "$body" '[range($n) | $b]' >"$tmp/batch.json"
    seq "$requests" | xargs -P "$CONCURRENCY" -I{} curl -s -m 30 -o /dev/null -w '%{http_code}\n' \
        -X POST -H 'Content-Type: application/json' --data-binary @"$tmp/batch.json" "$API/tasks/batch" >"$tmp/codes"
    submitted=$(($(grep -c '^201$' "$tmp/codes") * BATCH))
else
    seq "$TASKS" | xargs -P "$CONCURRENCY" -I{} curl -s -m 30 -o /dev/null -w '%{http_code}\n' \
        -X POST -H 'Content-Type: application/json' --data-binary "$body" "$API/tasks" >"$tmp/codes"
    submitted=$(grep -c '^201$' "$tmp/codes")
fi
t1=$(date +%s.%N)
rejected=$(grep -vc '^201$' "$tmp/codes")
submit_secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN{print b-a}')
printf '  submitted %d tasks in %.2fs: %.0f tasks/s (%d requests rejected)\n' \
    "$submitted" "$submit_secs" "$(awk -v n="$submitted" -v s="$submit_secs" 'BEGIN{print n/s}')" "$rejected"
((rejected == 0)) && pass "every submit accepted" || fail "$rejected submits rejected: $(sort "$tmp/codes" | uniq -c | tr '\n' ' ')"

want=$((base_success + submitted))
deadline=$(($(date +%s) + TIMEOUT))
while (($(date +%s) < deadline)); do
    stats=$(curl -s -m 5 "$API/stats")
    done_now=$(jq .success_tasks <<<"$stats")
    printf '\r  success %d/%d  pending %s  processing %s  stream length %s   ' \
        "$((done_now - base_success))" "$submitted" "$(jq .pending_tasks <<<"$stats")" \
        "$(jq .processing_tasks <<<"$stats")" "$(jq .stream_info.length <<<"$stats")"
    ((done_now >= want)) && break
    sleep 0.5
done
echo
t2=$(date +%s.%N)
total_secs=$(awk -v a="$t0" -v b="$t2" 'BEGIN{print b-a}')
((done_now >= want)) && pass "all $submitted tasks processed" || fail "only $((done_now - base_success)) of $submitted processed within ${TIMEOUT}s"
printf '  end to end: %.2fs, %.0f tasks/s\n' "$total_secs" "$(awk -v n="$submitted" -v s="$total_secs" 'BEGIN{print n/s}')"
curl -s -m 5 "$API/workers" | jq -c .

summary
