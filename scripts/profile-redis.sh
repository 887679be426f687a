#!/usr/bin/env bash
# Profiles Redis itself while XQueue processes tasks: where Redis's CPU goes, by command and
# by what runs inside the `complete` script (BENCHMARKS.md, "Processing after the twelfth pass").
#
#   bash scripts/profile-redis.sh [TASKS]        # default 300000
#
# Needs `perf` and a host `redis-server` (Debian: apt-get install linux-perf redis-server).
# Starts its own redis-server on a free port (stopped by pid at the end), runs the bench's
# XQueue-Redis processing row against it, and samples Redis with `perf record --call-graph
# dwarf` for 2.5 s once the row has begun (its first `HMGET`). `redis-server` exports its
# symbols, so the report names Redis's functions; Lua's own are static and show as
# addresses, counted here as "Lua itself".
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

tasks="${1:-300000}"
if ! [[ "$tasks" =~ ^[1-9][0-9]*$ ]]; then
  echo "profile-redis: TASKS must be a positive whole number, got '$tasks'" >&2
  exit 2
fi
for tool in perf redis-server redis-cli python3; do
  if ! command -v "$tool" >/dev/null; then
    echo "profile-redis: '$tool' not found (Debian: apt-get install linux-perf redis-server)" >&2
    exit 2
  fi
done

work="$(mktemp -d)"
port=""
for p in $(seq 7390 7499); do
  if ! redis-cli -p "$p" ping >/dev/null 2>&1; then port="$p"; break; fi
done
[[ -n "$port" ]] || { echo "profile-redis: no free port in 7390-7499" >&2; exit 1; }

bench_pid=""
cleanup() {
  [[ -n "$bench_pid" ]] && kill "$bench_pid" 2>/dev/null || true
  if [[ -f "$work/redis.pid" ]]; then kill "$(cat "$work/redis.pid")" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

cargo build --release -p xqueue-tests --bin xqueue-bench
redis-server --port "$port" --save '' --appendonly no --daemonize yes \
  --pidfile "$work/redis.pid" --dir "$work" >/dev/null
for _ in $(seq 50); do [[ -s "$work/redis.pid" ]] && break; sleep 0.1; done
if [[ ! -s "$work/redis.pid" ]]; then
  echo "profile-redis: redis-server did not start on port $port" >&2
  exit 1
fi
redis_pid="$(cat "$work/redis.pid")"

target/release/xqueue-bench --redis-url "redis://127.0.0.1:$port" --phases redis \
  --measure processing --rounds 0 --tasks "$tasks" >"$work/bench.txt" 2>&1 &
bench_pid=$!
# Queueing the tasks comes first; the row begins with the first `begin` (`HMGET`).
for _ in $(seq 1200); do
  redis-cli -p "$port" info commandstats | grep -q '^cmdstat_hmget' && break
  kill -0 "$bench_pid" 2>/dev/null || break
  sleep 0.05
done
if ! redis-cli -p "$port" info commandstats | grep -q '^cmdstat_hmget'; then
  echo "profile-redis: the processing row never began; the bench said:" >&2
  cat "$work/bench.txt" >&2
  exit 1
fi
sleep 0.3
perf record -q -F 1000 --call-graph dwarf,16384 -p "$redis_pid" -o "$work/perf.data" \
  -- sleep 2.5 2>/dev/null
wait "$bench_pid"
bench_pid=""
grep -E '\| processing' "$work/bench.txt" | cut -c1-200

perf script -i "$work/perf.data" -F ip,sym 2>/dev/null | python3 -c '
import sys
from collections import Counter
# One sample per blank-line-separated stack, leaf first.
stacks = [[l.split(None, 1)[-1] for l in s.strip().splitlines() if l.strip()]
          for s in sys.stdin.read().split("\n\n")]
stacks = [s for s in stacks if s]
total = len(stacks)
def share(pred):
    return 100.0 * sum(1 for s in stacks if pred(s)) / max(total, 1)
def has(name):
    return lambda s: any(f == name for f in s)
rows = [
    ("complete script (evalGenericCommand)", has("evalGenericCommand")),
    ("  commands it calls (scriptCall)", has("scriptCall")),
    ("  Lua itself", lambda s: has("evalGenericCommand")(s) and not has("scriptCall")(s)),
    ("HMGET (begin)", has("hmgetCommand")),
    ("HSET, all (record from the script; marks at begin)", has("hsetCommand")),
    ("XREADGROUP", has("xreadCommand")),
    ("XACK", has("xackCommand")),
    ("ZREM", has("zremCommand")),
    ("HDEL", has("hdelCommand")),
    ("keyspace lookups (lookupKey)", has("lookupKey")),
    ("parsing requests (processMultibulkBuffer)", has("processMultibulkBuffer")),
    ("writing replies (handleClientsWithPendingWrites)", has("handleClientsWithPendingWrites")),
]
print(f"\nRedis CPU by piece ({total} samples at 1 kHz):")
for name, pred in rows:
    print(f"  {share(pred):5.1f} %  {name}")
'
