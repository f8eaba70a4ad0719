#!/usr/bin/env bash
# Soak benchmark: the security chain (auth API key → hmac-signature → rate-limit) under
# wrk at 256 connections for 10 minutes, the gateway's resident memory sampled every 10 s.
# The target: RSS after 10 minutes within 10% of RSS after the first minute (no growth
# under steady load: no leak, no unbounded cache).
#
#   bench/soak.sh                          # defaults: MINUTES=10 CONNECTIONS=256
#   SKIP_BUILD=1 MINUTES=3 bench/soak.sh
#
# Writes the result between <!-- soak:begin --> and <!-- soak:end --> in docs/benchmarks.md.

set -euo pipefail

MINUTES=${MINUTES:-10}
CONNECTIONS=${CONNECTIONS:-256}

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WEIR="$ROOT/target/release/weir"
PLUGINS="$ROOT/target/plugins"
DOC="$ROOT/docs/benchmarks.md"
COMMAND="MINUTES=$MINUTES CONNECTIONS=$CONNECTIONS bench/soak.sh"

NAME=soak
# shellcheck source=bench/common.sh
source "$ROOT/bench/common.sh"

need wrk curl openssl sha256sum
ensure_weir

read -r UPSTREAM_PORT WEIR_PORT ADMIN_PORT < <(free_ports 3)
cat > "$TMP/weir.toml" <<EOF
[server]
listen = ["127.0.0.1:$WEIR_PORT"]
admin = "127.0.0.1:$ADMIN_PORT"
plugins_dir = "$PLUGINS"
watch = false

[upstreams.up]
targets = ["127.0.0.1:$UPSTREAM_PORT"]

[[routes]]
name = "chain"
upstream = "up"

$(security_chain_filters)

[secrets]
bench_hmac = { value = "$BENCH_HMAC_KEY" }
EOF

"$WEIR" demo-upstream "127.0.0.1:$UPSTREAM_PORT" >"$TMP/upstream.log" 2>&1 &
PIDS+=("$!")
RUST_LOG=warn "$WEIR" run "$TMP/weir.toml" >"$TMP/weir.log" 2>&1 &
WEIR_PID=$!
PIDS+=("$WEIR_PID")
HEADERS=(-H "x-api-key: $BENCH_API_KEY")
IFS='^' read -ra signature <<< "$(sign_get "127.0.0.1:$WEIR_PORT" /hello)"
for h in "${signature[@]}"; do HEADERS+=(-H "$h"); done
for _ in $(seq 100); do
    curl -fs "${HEADERS[@]}" "http://127.0.0.1:$WEIR_PORT/hello" >/dev/null && break
    sleep 0.1
done
curl -fs -D - -o /dev/null "${HEADERS[@]}" "http://127.0.0.1:$WEIR_PORT/hello" | grep -qi '^ratelimit:' \
    || die "the request did not pass the chain"

rss_mb() { awk '/VmRSS/ { printf "%.1f", $2 / 1024 }' "/proc/$WEIR_PID/status"; }
log "wrk -c$CONNECTIONS for $MINUTES min through the chain"
wrk -t2 -c"$CONNECTIONS" -d"${MINUTES}m" "${HEADERS[@]}" "http://127.0.0.1:$WEIR_PORT/hello" >"$TMP/wrk.txt" 2>&1 &
WRK=$!
START=$SECONDS
: > "$TMP/rss"
while kill -0 "$WRK" 2>/dev/null; do
    sleep 10
    kill -0 "$WRK" 2>/dev/null || break
    echo "$((SECONDS - START)) $(rss_mb)" >> "$TMP/rss"
done
wait "$WRK" || die "wrk failed: $(cat "$TMP/wrk.txt")"

# RSS at the first sample at or past one minute, and at the last sample.
read -r first_at first < <(awk '$1 >= 60 { print; exit }' "$TMP/rss")
read -r last_at last < <(tail -1 "$TMP/rss")
peak=$(sort -k2 -n "$TMP/rss" | tail -1 | cut -d' ' -f2)
growth=$(awk -v a="$first" -v b="$last" 'BEGIN { printf "%+.1f", (b - a) / a * 100 }')
rps=$(awk '/^Requests\/sec:/ { printf "%.0f", $2 }' "$TMP/wrk.txt")
non2xx=$(awk '/Non-2xx/ { print $5 }' "$TMP/wrk.txt")
met=$(awk -v g="$growth" 'BEGIN { print (g <= 10 && g >= -10) ? "met" : "not met" }')
{
    echo "<!-- soak:begin -->"
    echo "### Soak: $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo
    echo "Weir commit $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown), $(nproc) cores. Command: \`$COMMAND\`"
    echo "(wrk -t2 -c$CONNECTIONS through auth → hmac-signature → rate-limit; VmRSS every 10 s)."
    echo
    echo "| RSS after ${first_at} s | RSS after ${last_at} s | change | peak | req/s | non-2xx | target (±10%) |"
    echo "| ---: | ---: | ---: | ---: | ---: | ---: | --- |"
    echo "| ${first} MB | ${last} MB | ${growth}% | ${peak} MB | $rps | ${non2xx:-0} | $met |"
    echo
    echo "Samples (seconds, MB): $(awk '{ printf "%s%s:%s", (NR > 1 ? ", " : ""), $1, $2 }' "$TMP/rss")."
    echo "<!-- soak:end -->"
} >"$TMP/section.md"
replace_section "$DOC" soak "$TMP/section.md" '## Soak (`bench/soak.sh`)'
cat "$TMP/section.md"
