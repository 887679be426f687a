#!/usr/bin/env bash
# Concurrency test of a running XQueue server: the per-type limits hold exactly.
#
# Sets example=3 and email=5, submits EXAMPLES example tasks and EMAILS email tasks that each
# take DURATION_MS, samples the running tasks per type every 100 ms, and checks that each
# type ran exactly at its limit at its busiest (never above). Restores the limits it found.
#
#   examples/concurrency_test.sh        # XQUEUE_URL, EXAMPLES=12, EMAILS=20, DURATION_MS=1000
#
# With several instances on one Redis, point XQUEUE_URL at any of them: the limits are
# cluster-wide. Needs curl and jq.
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

EXAMPLES=${EXAMPLES:-12}
EMAILS=${EMAILS:-20}
DURATION_MS=${DURATION_MS:-1000}
((EXAMPLES <= 1000 && EMAILS <= 1000)) || { echo "at most 1000 tasks per type" >&2; exit 2; }

before=$(curl -s -m 5 "$API/concurrency" | jq -c '.concurrency_limits')
restore() {
    for t in example email; do
        local n
        n=$(jq -r --arg t "$t" '.[$t] // empty' <<<"$before")
        [[ -n $n ]] && http POST /api/v1/concurrency "{\"task_type\":\"$t\",\"max_concurrency\":$n}" >/dev/null
    done
}
trap restore EXIT

expect_status "limit example=3" 200 "$(http POST /api/v1/concurrency '{"task_type":"example","max_concurrency":3}')"
expect_status "limit email=5" 200 "$(http POST /api/v1/concurrency '{"task_type":"email","max_concurrency":5}')"

batch=$(jq -nc --argjson n "$EXAMPLES" --argjson m "$EMAILS" --argjson d "$DURATION_MS" \
    '[range($n) | {type:"example",payload:{duration_ms:$d}}] + [range($m) | {type:"email",payload:{duration_ms:$d,to:"user@example.com"}}]')
r=$(http POST /api/v1/tasks/batch "$batch")
expect_status "submit $EXAMPLES example + $EMAILS email tasks" 201 "$r"
ids=$(jq -c .task_ids <<<"${r#* }")
total=$((EXAMPLES + EMAILS))

max_example=0
max_email=0
start=$(date +%s)
deadline=$((start + 30 + (EXAMPLES / 3 + EMAILS / 5 + 2) * DURATION_MS / 1000 * 2))
while (($(date +%s) < deadline)); do
    running=$(curl -s -m 5 "$API/tasks?status=processing&limit=1000")
    ex=$(jq --argjson ids "$ids" '[.tasks[] | select(.type=="example" and (.id as $i | $ids | index($i)))] | length' <<<"$running")
    em=$(jq --argjson ids "$ids" '[.tasks[] | select(.type=="email" and (.id as $i | $ids | index($i)))] | length' <<<"$running")
    ((ex > max_example)) && max_example=$ex
    ((em > max_email)) && max_email=$em
    printf '\r  running: example %d/3  email %d/5   ' "$ex" "$em"
    done_count=$(curl -s -m 5 "$API/tasks?status=success&limit=1000" |
        jq --argjson ids "$ids" '[.tasks[] | select(.id as $i | $ids | index($i))] | length')
    ((done_count == total)) && break
    sleep 0.1
done
echo
elapsed=$(($(date +%s) - start))

((done_count == total)) && pass "all $total tasks succeeded in ${elapsed}s" || fail "only $done_count of $total succeeded"
[[ $max_example == 3 ]] && pass "example ran 3 at once at most and at best" || fail "example peak $max_example (want 3)"
[[ $max_email == 5 ]] && pass "email ran 5 at once at most and at best" || fail "email peak $max_email (want 5)"
ideal=$(((EXAMPLES + 2) / 3 > (EMAILS + 4) / 5 ? (EXAMPLES + 2) / 3 : (EMAILS + 4) / 5))
echo "  ideal time with the limits: about $((ideal * DURATION_MS / 1000))s; took ${elapsed}s"

summary
