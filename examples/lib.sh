# Shared helpers for the example scripts (sourced, not run).
# Needs curl and jq. Talks only to a server on this machine (loopback).

XQUEUE_URL=${XQUEUE_URL:-http://127.0.0.1:8080}
API="$XQUEUE_URL/api/v1"
PASSED=0
FAILED=0

for tool in curl jq; do
    command -v "$tool" >/dev/null 2>&1 || {
        echo "error: $tool is required" >&2
        exit 2
    }
done

case "$XQUEUE_URL" in
http://127.* | http://localhost* | "http://[::1]"*) ;;
*)
    echo "error: XQUEUE_URL=$XQUEUE_URL is not on this machine; these scripts only talk to loopback" >&2
    exit 2
    ;;
esac

# http METHOD PATH [JSON BODY] -> prints "<status> <body>" on one line
http() {
    local method=$1 path=$2 body=${3-}
    local args=(-s -m 10 -X "$method" -w '\n%{http_code}')
    if [[ -n $body ]]; then
        args+=(-H 'Content-Type: application/json' --data-binary "$body")
    fi
    local out
    out=$(curl "${args[@]}" "$XQUEUE_URL$path") || {
        echo "000 {}"
        return
    }
    local code=${out##*$'\n'}
    local text=${out%$'\n'*}
    echo "$code $text"
}

# check NAME CONDITION-EXIT-STATUS
pass() {
    PASSED=$((PASSED + 1))
    printf '  \033[32mok\033[0m   %s\n' "$1"
}
fail() {
    FAILED=$((FAILED + 1))
    printf '  \033[31mFAIL\033[0m %s\n' "$1"
    [[ -n ${2-} ]] && printf '       %s\n' "$2"
}

# expect_status NAME WANT "<status> <body>"
expect_status() {
    local name=$1 want=$2 got=$3
    local code=${got%% *}
    if [[ $code == "$want" ]]; then pass "$name ($code)"; else fail "$name: want $want, got $code" "${got#* }"; fi
}

# wait_status TASK_ID STATUS SECONDS -> 0 when the task reached STATUS in time
wait_status() {
    local id=$1 want=$2 secs=${3:-30} i
    for ((i = 0; i < secs * 10; i++)); do
        local s
        s=$(curl -s -m 5 "$API/tasks/$id" | jq -r .status)
        [[ $s == "$want" ]] && return 0
        sleep 0.1
    done
    return 1
}

summary() {
    echo
    echo "$PASSED passed, $FAILED failed"
    ((FAILED == 0))
}
