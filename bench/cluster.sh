#!/usr/bin/env bash
# Fleet benchmark: gateway instances sharing their rate limits through one Redis.
#
# 1. Cost of a shared decision: one instance, a rate-limited route whose limit is never
#    reached (every request is one decision), with the embedded backend and then with Redis:
#    req/s, the gateway's CPU per request, and Redis commands per request.
# 2. Accuracy across the fleet: three instances, a limit of LIMIT per second on the route
#    (one budget for everyone), for each algorithm; wrk loads the three instances at once for
#    DURATION seconds; the requests admitted in all, against what the limit allows.
# 3. Push across instances: PUSH_DEVICES devices following one topic hold their connections
#    to instance B, publishers publish to instance A (bench/push_driver.py's fan-out case):
#    deliveries per second, publish→deliver p50/p99 at about half that rate, B's CPU per
#    delivery, and Redis commands per delivery.
#
#   bench/cluster.sh                              # defaults: DURATION=10 LIMIT=2000 PUSH_DEVICES=500
#   SKIP_BUILD=1 DURATION=5 bench/cluster.sh
#
# Writes its results between <!-- cluster:begin --> and <!-- cluster:end --> in
# docs/benchmarks.md.

set -euo pipefail

DURATION=${DURATION:-10}
LIMIT=${LIMIT:-2000}
# The filter's deadline: the default 20 ms gives Redis half of it, and on a 2-core box that
# the load generator, Redis and the gateway share, a call now and then waits longer than
# that for a core (the backend is then marked down until the next probe). The figures are
# about the cost of a decision, not about that.
DEADLINE_MS=${DEADLINE_MS:-200}
PUSH_DEVICES=${PUSH_DEVICES:-500}

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WEIR="$ROOT/target/release/weir"
PLUGINS="$ROOT/target/plugins"
DOC="$ROOT/docs/benchmarks.md"
COMMAND="DURATION=$DURATION LIMIT=$LIMIT DEADLINE_MS=$DEADLINE_MS PUSH_DEVICES=$PUSH_DEVICES bench/cluster.sh"

NAME=cluster
# shellcheck source=bench/common.sh
source "$ROOT/bench/common.sh"

need wrk curl redis-server redis-cli python3 sha256sum
ensure_weir

read -r UPSTREAM_PORT REDIS_PORT < <(free_ports 2)
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no >"$TMP/redis.log" 2>&1 &
PIDS+=("$!")
"$WEIR" demo-upstream "127.0.0.1:$UPSTREAM_PORT" >"$TMP/upstream.log" 2>&1 &
PIDS+=("$!")
for _ in $(seq 100); do
    redis-cli -p "$REDIS_PORT" PING >/dev/null 2>&1 && break
    sleep 0.1
done
redis-cli -p "$REDIS_PORT" PING >/dev/null || die "redis-server did not start"

# route NAME LIMIT ALGORITHM: a route `/NAME` whose rate-limit filter allows LIMIT per
# second with ALGORITHM, keyed by route (one budget for every client).
route() {
    cat <<EOF

[[routes]]
name = "$1"
upstream = "up"
match = { path_prefix = "/$1" }
[[routes.filters]]
plugin = "rate-limit.wasm"
grants = ["limits"]
deadline_ms = $DEADLINE_MS
config = { limits = [{ limit = $2, window = "1s", algorithm = "$3" }], key = ["route"] }
EOF
}

# config BACKEND PORT ADMIN: a gateway config with the state backend BACKEND (local or
# redis): `/free` with a limit it never reaches, and `/<algorithm>` with LIMIT per second.
config() {
    local backend=$1 port=$2 admin=$3 algorithm
    cat <<EOF
[server]
listen = ["127.0.0.1:$port"]
admin = "127.0.0.1:$admin"
plugins_dir = "$PLUGINS"
watch = false

[server.limits]
max_connections_per_ip = 100000

[state]
backend = "$backend"
[state.redis]
url = { value = "redis://127.0.0.1:$REDIS_PORT" }
on_unavailable = "reject"
timeout_ms = 1000

[upstreams.up]
targets = ["127.0.0.1:$UPSTREAM_PORT"]
EOF
    route free 1000000000 token_bucket
    for algorithm in token_bucket sliding_window fixed_window; do
        route "$algorithm" "$LIMIT" "$algorithm"
    done
    # Push (in Redis with that backend), behind auth with the driver's keys.
    if [[ $backend == redis ]]; then
        push_routes push-
    fi
}

# start BACKEND: starts an instance on free ports and waits until it serves; sets PID and
# PORT.
start() {
    local admin
    read -r PORT admin < <(free_ports 2)
    config "$1" "$PORT" "$admin" >"$TMP/weir-$PORT.toml"
    RUST_LOG=warn "$WEIR" run "$TMP/weir-$PORT.toml" >"$TMP/weir-$PORT.log" 2>&1 &
    PID=$!
    PIDS+=("$PID")
    for _ in $(seq 100); do
        curl -fs -o /dev/null "http://127.0.0.1:$PORT/free" && return
        sleep 0.1
    done
    die "the $1 instance did not start"
}

# redis_counts: "COMMANDS SCRIPTS": the commands Redis has run (those inside scripts
# included) and the scripts it was asked to run (each one round trip of the gateway's).
redis_counts() {
    local commands scripts
    commands=$(redis-cli -p "$REDIS_PORT" INFO stats | awk -F: '/^total_commands_processed/ { print $2 + 0 }')
    scripts=$(redis-cli -p "$REDIS_PORT" INFO commandstats \
        | awk -F'[:=,]' '/^cmdstat_(evalsha|eval):/ { n += $3 } END { print n + 0 }')
    echo "$commands $scripts"
}

# 1. One instance, every request one decision.
ROWS=()
for backend in local redis; do
    start "$backend"
    pid=$PID port=$PORT
    log "$backend backend: wrk -c64 ${DURATION}s"
    wrk -t2 -c64 -d2s "http://127.0.0.1:$port/free" >/dev/null
    cpu_before=$(cpu_ticks "$pid")
    read -r commands_before scripts_before < <(redis_counts)
    wrk -t2 -c64 -d"${DURATION}s" --latency "http://127.0.0.1:$port/free" >"$TMP/wrk-$backend.txt"
    cpu_after=$(cpu_ticks "$pid")
    read -r commands_after scripts_after < <(redis_counts)
    requests=$(awk '/requests in/ { print $1 }' "$TMP/wrk-$backend.txt")
    rps=$(awk '/^Requests\/sec:/ { printf "%.0f", $2 }' "$TMP/wrk-$backend.txt")
    p99=$(awk '$1 == "99%" { print $2 }' "$TMP/wrk-$backend.txt")
    non2xx=$(awk '/Non-2xx/ { n = $5 } END { print n + 0 }' "$TMP/wrk-$backend.txt")
    cpu=$(awk -v a="$cpu_after" -v b="$cpu_before" -v hz="$(getconf CLK_TCK)" -v n="$requests" \
        'BEGIN { printf "%.1f", (a - b) / hz * 1e6 / n }')
    per_request() {
        awk -v a="$1" -v b="$2" -v n="$requests" 'BEGIN { printf "%.2f", (a - b) / n }'
    }
    ROWS+=("| $backend | $rps | $p99 | $cpu | $(per_request "$scripts_after" "$scripts_before") | $(per_request "$commands_after" "$commands_before") | $non2xx |")
    # Left running, idle (the cleanup stops it): its PID stays its own.
done

# 2. Three instances, one budget of LIMIT per second.
INSTANCES=()
for _ in 1 2 3; do
    start redis
    INSTANCES+=("$PORT")
done
ACCURACY=()
for algorithm in token_bucket sliding_window fixed_window; do
    log "$algorithm: three instances at once, ${DURATION}s"
    wrks=()
    for port in "${INSTANCES[@]}"; do
        wrk -t1 -c16 -d"${DURATION}s" "http://127.0.0.1:$port/$algorithm" >"$TMP/acc-$algorithm-$port.txt" &
        wrks+=("$!")
    done
    wait "${wrks[@]}"
    total=0
    refused=0
    for port in "${INSTANCES[@]}"; do
        total=$((total + $(awk '/requests in/ { print $1 }' "$TMP/acc-$algorithm-$port.txt")))
        refused=$((refused + $(awk '/Non-2xx/ { n = $5 } END { print n + 0 }' "$TMP/acc-$algorithm-$port.txt")))
    done
    admitted=$((total - refused))
    # A run of D seconds starting inside a window meets D + 1 windows (the first and last in
    # part); a token bucket starts full: both allow up to LIMIT × (D + 1).
    ACCURACY+=("$(awk -v alg="$algorithm" -v a="$admitted" -v t="$total" -v l="$LIMIT" -v d="$DURATION" \
        'BEGIN { printf "| %s | %d | %d | %d | %.3f | %.3f |", alg, t, a, l * (d + 1), a / (l * d), a / (l * (d + 1)) }')")
done

# 3. Push: devices on instance B, publishers on instance A.
publisher=${INSTANCES[0]}
start redis
holder_pid=$PID holder=$PORT
log "push: registering $PUSH_DEVICES devices through A"
python3 "$ROOT/bench/push_driver.py" register "127.0.0.1:$publisher" "$DEVICE_KEY" fleet 0 "$PUSH_DEVICES" all >"$TMP/register.json"
read -r commands_before _ < <(redis_counts)
log "push: $PUSH_DEVICES devices on B, publishing on A, ${DURATION}s each for throughput and latency"
python3 "$ROOT/bench/push_driver.py" fanout "127.0.0.1:$holder" "$DEVICE_KEY" "$SERVER_KEY" fleet \
    "$PUSH_DEVICES" all "$DURATION" 32 "$holder_pid" "127.0.0.1:$publisher" >"$TMP/push.json"
read -r commands_after _ < <(redis_counts)
PUSH_ROW=$(python3 - "$TMP/push.json" "$commands_before" "$commands_after" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
t, l = r["throughput"], r["latency"]
delivered = t["delivered"] + l["published"] * r["connected"]
commands = (int(sys.argv[3]) - int(sys.argv[2])) / max(1, delivered)
print(f"| {r['connected']} | {t['delivered_per_second']} | {t['all_delivered']} | {t['gateway_cpu_us_per_delivery']} "
      f"| {l['target_deliveries_per_second']} | {l['p50_ms']} | {l['p99_ms']} | {commands:.1f} | {r['errors']} |")
PY
)

REV=$(git -C "$ROOT" rev-parse --short HEAD)
DIRTY=$(git -C "$ROOT" diff --quiet HEAD -- host plugins 2>/dev/null || echo " (with uncommitted changes)")
{
    echo "<!-- cluster:begin -->"
    echo "Weir commit $REV$DIRTY. Run on $(date -u '+%Y-%m-%d %H:%M:%S UTC'), on $(nproc) cores, everything on loopback (Redis $(redis-server --version | awk '{ print $3 }' | cut -d= -f2), one server)."
    echo
    echo "Command: \`$COMMAND\`."
    echo
    echo "**One decision per request** (one instance, \`wrk -t2 -c64 -d${DURATION}s\`, a rate-limit"
    echo "filter whose limit is never reached, deadline $DEADLINE_MS ms): the embedded backend against Redis. Per request:"
    echo "the scripts Redis ran (\`EVALSHA\` and \`EVAL\` calls: the gateway's round trips) and"
    echo "all the commands it ran (\`total_commands_processed\`, those inside the scripts included)."
    echo
    echo "| backend | req/s | p99 | gateway CPU µs/req | Redis round trips/req | Redis commands/req | non-2xx |"
    echo "|---|---:|---:|---:|---:|---:|---:|"
    printf '%s\n' "${ROWS[@]}"
    echo
    echo "**Accuracy across three instances** (\`wrk -t1 -c16\` against each at once for ${DURATION} s,"
    echo "one budget of $LIMIT per second on the route): admitted requests against what the limit"
    echo "allows, $LIMIT × ${DURATION} s, and $LIMIT × ($DURATION + 1) for a run that meets a partial window"
    echo "at each end (a token bucket starts full)."
    echo
    echo "| algorithm | requests | admitted | allowed at most | admitted / (limit × D) | admitted / (limit × (D + 1)) |"
    echo "|---|---:|---:|---:|---:|---:|"
    printf '%s\n' "${ACCURACY[@]}"
    echo
    echo "**Push across instances** ($PUSH_DEVICES devices following one topic, connected to instance B;"
    echo "closed-loop publishers on instance A for ${DURATION} s, then one paced publisher at about half"
    echo "the delivery rate for the latency): deliveries per second, B's CPU per delivery (the"
    echo "stream read, the frame, the ack), publish→deliver latency, and Redis commands per delivery"
    echo "(the publish's appends, the reads, the acks and the presence refreshes, all included)."
    echo
    echo "| devices | delivered/s | all delivered | B's CPU µs/delivery | latency run deliveries/s | p50 ms | p99 ms | Redis commands/delivery | device errors |"
    echo "|---:|---:|---|---:|---:|---:|---:|---:|---:|"
    echo "$PUSH_ROW"
    echo "<!-- cluster:end -->"
} >"$TMP/section.md"
replace_section "$DOC" cluster "$TMP/section.md" "## Fleet (\`bench/cluster.sh\`)"
cat "$TMP/section.md"
