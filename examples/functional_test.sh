#!/usr/bin/env bash
# Functional test of a running XQueue server: every endpoint, the task lifecycle and bad input.
#
#   cargo run --release -p xqueue-server &      # or with --backend redis
#   examples/functional_test.sh                 # XQUEUE_URL=http://127.0.0.1:8080 by default
#
# Needs curl and jq. Ends with "N passed, N failed"; exits non-zero if any check failed.
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

echo "== health"
r=$(http GET /api/v1/health)
expect_status "GET /health" 200 "$r"
echo "   ${r#* }"

echo "== submit, get, result"
r=$(http POST /api/v1/tasks '{"type":"example","payload":{"message":"Hello XQueue!","duration_ms":200},"priority":1}')
expect_status "POST /tasks (example)" 201 "$r"
id=$(jq -r .task_id <<<"${r#* }")
[[ $id =~ ^[0-9a-f-]{36}$ ]] && pass "task_id is a UUID: $id" || fail "task_id: $id"
r=$(http GET "/api/v1/tasks/$id")
expect_status "GET /tasks/{id}" 200 "$r"
for f in id type payload priority status created_at; do
    jq -e "has(\"$f\")" <<<"${r#* }" >/dev/null && pass "task has $f" || fail "task lacks $f" "${r#* }"
done
wait_status "$id" success 20 && pass "example task succeeded" || fail "example task did not succeed"
r=$(http GET "/api/v1/tasks/$id")
[[ $(jq -r .result.message <<<"${r#* }") == "Hello XQueue!" ]] && pass "result stored" || fail "result" "${r#* }"

r=$(http POST /api/v1/tasks '{"type":"email","payload":{"to":"user@example.com","subject":"hi","duration_ms":100}}')
expect_status "POST /tasks (email)" 201 "$r"
email_id=$(jq -r .task_id <<<"${r#* }")
wait_status "$email_id" success 20 && pass "email task succeeded" || fail "email task did not succeed"

echo "== batch (all or nothing)"
r=$(http POST /api/v1/tasks/batch '[{"type":"noop"},{"type":"noop","priority":9},{"type":"email","payload":{"duration_ms":10}}]')
expect_status "POST /tasks/batch" 201 "$r"
[[ $(jq -r .count <<<"${r#* }") == 3 ]] && pass "batch count 3" || fail "batch count" "${r#* }"
r=$(http POST /api/v1/tasks/batch '[{"type":"noop"},{"type":"noop","priority":99}]')
expect_status "batch with one bad task" 400 "$r"
[[ $(jq -r .error.field <<<"${r#* }") == "[1].priority" ]] && pass "error names [1].priority" || fail "field" "${r#* }"

echo "== list"
r=$(http GET "/api/v1/tasks?status=success&limit=10")
expect_status "GET /tasks?status=success&limit=10" 200 "$r"
n=$(jq '.tasks | length' <<<"${r#* }")
((n >= 2)) && pass "listed $n successful tasks" || fail "listed $n" "${r#* }"

echo "== delayed task and cancel"
r=$(http POST /api/v1/tasks '{"type":"noop","delay_ms":500}')
expect_status "POST delayed task" 201 "$r"
delayed=$(jq -r .task_id <<<"${r#* }")
[[ $(jq -r .status <<<"${r#* }") == scheduled ]] && pass "delayed task is scheduled" || fail "status" "${r#* }"
wait_status "$delayed" success 10 && pass "delayed task ran" || fail "delayed task did not run"
in_an_hour=$(date -u -d '+1 hour' +%Y-%m-%dT%H:%M:%SZ 2>/dev/null || date -u -v+1H +%Y-%m-%dT%H:%M:%SZ)
r=$(http POST /api/v1/tasks "{\"type\":\"noop\",\"run_at\":\"$in_an_hour\"}")
expect_status "POST task with run_at in an hour" 201 "$r"
later=$(jq -r .task_id <<<"${r#* }")
r=$(http POST "/api/v1/tasks/$later/cancel")
expect_status "cancel a scheduled task" 200 "$r"
r=$(http POST "/api/v1/tasks/$later/cancel")
expect_status "cancel it again" 409 "$r"
r=$(http POST "/api/v1/tasks/$id/cancel")
expect_status "cancel a finished task" 409 "$r"

echo "== dead letters"
r=$(http POST /api/v1/tasks '{"type":"noop","payload":{"fail":"fatal"}}')
dead=$(jq -r .task_id <<<"${r#* }")
wait_status "$dead" failed 10 && pass "fatal task dead-lettered" || fail "not dead-lettered"
r=$(http POST /api/v1/tasks '{"type":"noop","payload":{"fail":"retry"},"max_retries":1}')
retried=$(jq -r .task_id <<<"${r#* }")
wait_status "$retried" failed 20 && pass "retried task dead-lettered after its retries" || fail "retries"
r=$(http GET "/api/v1/tasks/$retried")
[[ $(jq -r .attempts <<<"${r#* }") == 2 ]] && pass "2 attempts recorded" || fail "attempts" "${r#* }"
r=$(http GET "/api/v1/dead-letters?limit=100")
expect_status "GET /dead-letters" 200 "$r"
jq -e --arg id "$dead" '[.tasks[].id] | index($id) != null' <<<"${r#* }" >/dev/null && pass "dead letter listed" || fail "not listed"
r=$(http POST /api/v1/dead-letters/requeue "{\"task_ids\":[\"$dead\"]}")
expect_status "requeue one" 200 "$r"
[[ $(jq -r .requeued <<<"${r#* }") == 1 ]] && pass "requeued 1" || fail "requeued" "${r#* }"
sleep 1
r=$(http DELETE /api/v1/dead-letters "{\"task_ids\":[\"$dead\",\"$retried\"]}")
expect_status "purge two" 200 "$r"
r=$(http GET "/api/v1/tasks/$retried")
expect_status "purged task is gone" 404 "$r"

echo "== monitoring"
r=$(http GET /api/v1/stream)
expect_status "GET /stream" 200 "$r"
jq -e '.stream_info | has("length") and has("groups") and has("consumers")' <<<"${r#* }" >/dev/null && pass "stream_info shape" || fail "stream_info" "${r#* }"
r=$(http GET /api/v1/workers)
expect_status "GET /workers" 200 "$r"
jq -e 'has("total_workers") and has("active_workers") and has("processed_tasks") and has("failed_tasks") and has("uptime")' <<<"${r#* }" >/dev/null && pass "workers shape" || fail "workers" "${r#* }"
r=$(http GET /api/v1/stats)
expect_status "GET /stats" 200 "$r"
jq -e 'has("pending_tasks") and has("processing_tasks") and has("success_tasks") and has("failed_tasks") and has("stream_info") and has("instance_id") and has("is_running")' <<<"${r#* }" >/dev/null && pass "stats shape" || fail "stats" "${r#* }"
echo "   ${r#* }"
code=$(curl -s -o /dev/null -w '%{http_code}' "$XQUEUE_URL/metrics")
[[ $code == 200 ]] && curl -s "$XQUEUE_URL/metrics" | grep -q '^xqueue_tasks{status="success"}' && pass "GET /metrics" || fail "GET /metrics ($code)"
r=$(http GET /api/v1/openapi.json)
expect_status "GET /openapi.json" 200 "$r"

echo "== concurrency"
r=$(http GET /api/v1/concurrency)
expect_status "GET /concurrency" 200 "$r"
echo "   ${r#* }"
old=$(jq -r '.concurrency_limits.example // 3' <<<"${r#* }")
r=$(http POST /api/v1/concurrency '{"task_type":"example","max_concurrency":4}')
expect_status "POST /concurrency" 200 "$r"
r=$(http GET /api/v1/concurrency)
[[ $(jq -r .concurrency_limits.example <<<"${r#* }") == 4 ]] && pass "limit changed" || fail "limit" "${r#* }"
http POST /api/v1/concurrency "{\"task_type\":\"example\",\"max_concurrency\":$old}" >/dev/null

echo "== bad input (4xx with a JSON error)"
bad() { # NAME WANT METHOD PATH [BODY]
    local r
    r=$(http "$3" "$4" "${5-}")
    expect_status "$1" "$2" "$r"
    jq -e '.error.code and .error.message' <<<"${r#* }" >/dev/null 2>&1 || fail "$1: no JSON error" "${r#* }"
}
bad "malformed JSON" 400 POST /api/v1/tasks '{"type":'
bad "missing type" 400 POST /api/v1/tasks '{"payload":{}}'
bad "empty type" 400 POST /api/v1/tasks '{"type":""}'
bad "type without handler" 400 POST /api/v1/tasks '{"type":"nope"}'
bad "priority out of range" 400 POST /api/v1/tasks '{"type":"example","priority":10}'
bad "unknown field" 400 POST /api/v1/tasks '{"type":"example","dealy_ms":5}'
bad "unknown status" 400 GET "/api/v1/tasks?status=done"
bad "limit out of range" 400 GET "/api/v1/tasks?limit=0"
bad "bad task id" 400 GET /api/v1/tasks/not-a-uuid
bad "unknown task" 404 GET /api/v1/tasks/01936f3e-8f6a-7c3b-9d2e-1a2b3c4d5e6f
bad "max_concurrency < 1" 400 POST /api/v1/concurrency '{"task_type":"example","max_concurrency":0}'
bad "unknown route" 404 GET /api/v1/nothing
bad "wrong method" 405 PUT /api/v1/tasks
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST -H 'Content-Type: text/plain' -d '{"type":"example"}' "$API/tasks")
[[ $code == 415 ]] && pass "wrong content type (415)" || fail "wrong content type: $code"
code=$(head -c 2000000 /dev/zero | tr '\0' 'x' | jq -Rs '{type:"example",payload:{blob:.}}' |
    curl -s -o /dev/null -w '%{http_code}' -X POST -H 'Content-Type: application/json' --data-binary @- "$API/tasks")
[[ $code == 413 ]] && pass "payload over the limit (413)" || fail "oversize payload: $code"

summary
