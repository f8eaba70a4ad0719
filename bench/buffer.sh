#!/usr/bin/env bash
# Buffer benchmark: accepted writes per second on a buffered route (`[routes.buffer]`,
# every write stored durably before its 202) and the drain rate (buffered requests
# delivered to the upstream per second), with the embedded store and, when redis-server
# is installed, with Redis Streams.
#
#   bench/buffer.sh                              # defaults: DURATION=10 CONNECTIONS=64
#   SKIP_BUILD=1 DURATION=20 CONNECTIONS="16 64" STORES="embedded" bench/buffer.sh
#
# Phase 1 (accept): wrk POSTs a small JSON body for DURATION s while the drainer is held at
# `rate = 1` (so that accepting is measured alone). Phase 2 (drain): the config is rewritten
# with `rate = 0` and `concurrency = DRAIN_CONCURRENCY` and reloaded; the time until the
# admin API's `GET /buffers` shows nothing pending gives the drain rate to the built-in demo
# upstream. Writes the results between <!-- buffer:begin --> and <!-- buffer:end --> in
# docs/benchmarks.md and prints them.

set -euo pipefail

DURATION=${DURATION:-10}
CONNECTIONS=${CONNECTIONS:-64}
DRAIN_CONCURRENCY=${DRAIN_CONCURRENCY:-64}
STORES=${STORES:-embedded redis}
SKIP_BUILD=${SKIP_BUILD:-0}
KEEP_TMP=${KEEP_TMP:-0}

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WEIR=${WEIR:-"$ROOT/target/release/weir"}
DOC="$ROOT/docs/benchmarks.md"
COMMAND="DURATION=$DURATION CONNECTIONS=\"$CONNECTIONS\" DRAIN_CONCURRENCY=$DRAIN_CONCURRENCY STORES=\"$STORES\" bench/buffer.sh"
START_SECONDS=$SECONDS
LOAD_BEFORE=$(cut -d" " -f1-3 /proc/loadavg)

NAME=buffer
# shellcheck source=bench/common.sh
source "$ROOT/bench/common.sh"

need curl python3 wrk
ensure_weir

cat > "$TMP/post.lua" <<'EOF'
wrk.method = "POST"
wrk.body = '{"order":42,"items":["a","b","c"],"note":"a buffered write of about one hundred bytes"}'
wrk.headers["Content-Type"] = "application/json"
EOF

# config STORE RATE CONCURRENCY: the gateway's config.
config() {
    local store=$1 rate=$2 concurrency=$3
    cat <<EOF
[server]
listen = ["127.0.0.1:$WEIR_PORT"]
admin = "127.0.0.1:$ADMIN_PORT"
plugins_dir = "plugins"
demo_upstream = "127.0.0.1:$DEMO_PORT"
watch = false

[upstreams.demo]
targets = ["127.0.0.1:$DEMO_PORT"]

[[routes]]
name = "orders"
upstream = "demo"
[routes.match]
path_prefix = "/orders"
[routes.buffer]
rate = $rate
concurrency = $concurrency
max_pending = 100000000
EOF
    if [[ $store == redis ]]; then
        cat <<EOF

[state]
backend = "redis"
[state.redis]
url = { value = "redis://127.0.0.1:$REDIS_PORT" }
EOF
    fi
}

# pending: requests waiting, from the admin API.
pending() {
    curl -fsS "http://127.0.0.1:$ADMIN_PORT/buffers" |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["routes"].get("orders", {}).get("pending") or 0)'
}

ROWS=()
for store in $STORES; do
    if [[ $store == redis ]] && ! command -v redis-server >/dev/null; then
        log "redis-server is not installed: the Redis row is left out"
        continue
    fi
    for connections in $CONNECTIONS; do
        read -r WEIR_PORT ADMIN_PORT DEMO_PORT REDIS_PORT < <(free_ports 4)
        dir="$TMP/$store-$connections"
        mkdir -p "$dir/plugins"
        if [[ $store == redis ]]; then
            # Durable like the embedded store: every write fsync'd before Redis answers.
            redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly yes \
                --appendfsync always --dir "$dir" > "$TMP/redis-$connections.log" 2>&1 &
            PIDS+=($!)
            for _ in $(seq 50); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
        fi
        config "$store" 1 "$DRAIN_CONCURRENCY" > "$dir/weir.toml"
        "$WEIR" "$dir/weir.toml" > "$TMP/weir-$store-$connections.log" 2>&1 &
        weir_pid=$!
        PIDS+=("$weir_pid")
        for _ in $(seq 100); do curl -fsS "http://127.0.0.1:$ADMIN_PORT/live" >/dev/null 2>&1 && break; sleep 0.1; done

        log "$store, $connections connections: accepting for ${DURATION}s"
        before=$(cpu_ticks "$weir_pid")
        wrk -t2 -c"$connections" -d"${DURATION}s" --latency -s "$TMP/post.lua" \
            "http://127.0.0.1:$WEIR_PORT/orders/new" > "$TMP/wrk-$store-$connections.txt"
        after=$(cpu_ticks "$weir_pid")
        rps=$(awk '/Requests\/sec/ { print $2 }' "$TMP/wrk-$store-$connections.txt")
        p99=$(awk '/ 99%/ { print $2 }' "$TMP/wrk-$store-$connections.txt")
        refused=$(awk '/Non-2xx/ { print $5 }' "$TMP/wrk-$store-$connections.txt")
        total=$(pending)
        cpu_us=$(python3 -c "print(round(($after - $before) * 1e6 / $(getconf CLK_TCK) / max($total, 1), 1))")

        log "$store: draining $total requests (concurrency $DRAIN_CONCURRENCY, no rate limit)"
        config "$store" 0 "$DRAIN_CONCURRENCY" > "$dir/weir.toml"
        started=$(date +%s.%N)
        curl -fsS -X POST "http://127.0.0.1:$ADMIN_PORT/reload" >/dev/null
        while [[ $(pending) -gt 0 ]]; do sleep 0.05; done
        ended=$(date +%s.%N)
        drain=$(python3 -c "print(round($total / ($ended - $started)))")
        ROWS+=("| $store | $connections | **$(printf '%.0f' "$rps")** | $p99 | ${refused:-0} | $cpu_us | $total | **$drain** |")
        kill -TERM "$weir_pid"; wait "$weir_pid" 2>/dev/null || true
    done
done

section="$TMP/section.md"
{
    echo "<!-- buffer:begin -->"
    echo "Weir commit $(git -C "$ROOT" rev-parse --short HEAD)$(git -C "$ROOT" diff --quiet || echo ' (with uncommitted changes)'). Run on $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores ($(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)), $(free -g | awk '/Mem:/ { print $2 }') GiB RAM, Linux $(uname -r)."
    echo
    echo "Command: \`$COMMAND\` (the release binary; wrk -t2 on the same cores; a ~100-byte JSON"
    echo "POST to a buffered route, every write fsync'd before its \`202\`; the drain delivers to"
    echo "the built-in demo upstream on loopback; Redis with \`appendfsync always\`)."
    echo "Load average before the run: $LOAD_BEFORE (the cores may be shared with other work: one run, not a best of several)."
    echo
    echo "| store | connections | accepted writes/s | p99 | refused | gateway CPU µs/write | stored | drained/s |"
    echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    printf '%s\n' "${ROWS[@]}"
    echo
    echo "The whole script took $((SECONDS - START_SECONDS)) s."
    echo "<!-- buffer:end -->"
} > "$section"
replace_section "$DOC" buffer "$section" "## Buffer (\`bench/buffer.sh\`)"
cat "$section"
