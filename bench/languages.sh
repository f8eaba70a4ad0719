#!/usr/bin/env bash
# Per-language cost of a filter call: the filter `weir plugin new` writes (it sets one
# request header from its config), scaffolded and built in Rust, Python and JavaScript,
# each on a route of its own of one gateway, driven by wrk in turn. The per-call cost is
# the gateway's own measure, the mean of `weir_filter_call_duration_seconds` (sum / count
# in /metrics) per route; with each component's size, build time, and the gateway's compile
# time (its `compiled plugin` log line).
#
#   bench/languages.sh                      # defaults: DURATION=10s CONNECTIONS=16
#   SKIP_BUILD=1 DURATION=30s bench/languages.sh
#
# Needs wrk, componentize-py (pip install componentize-py==0.25.1) and npm (componentize-js
# is installed, pinned, into target/jstools as the test suite does). Writes the results
# between <!-- languages:begin --> and <!-- languages:end --> in docs/benchmarks.md and
# prints them.

set -euo pipefail

DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-16}
THREADS=${THREADS:-2}
WARMUP=${WARMUP:-2s}
# Every filter's memory cap (a Python component needs more than the default 32).
MEMORY_MIB=${MEMORY_MIB:-64}
SKIP_BUILD=${SKIP_BUILD:-0}
KEEP_TMP=${KEEP_TMP:-0}

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WEIR=${WEIR:-"${CARGO_TARGET_DIR:-$ROOT/target}/release/weir"}
DOC="$ROOT/docs/benchmarks.md"
COMMAND="DURATION=$DURATION CONNECTIONS=$CONNECTIONS MEMORY_MIB=$MEMORY_MIB bench/languages.sh"
COMPONENTIZE_JS=@bytecodealliance/componentize-js@0.23.0
JSTOOLS="$ROOT/target/jstools"

# The machine's load before the run: another process's work shows in every figure.
LOAD_BEFORE=$(cut -d' ' -f1 /proc/loadavg)

NAME=languages
# shellcheck source=bench/common.sh
source "$ROOT/bench/common.sh"

need wrk curl python3 npm
ensure_weir

# --- the filters ------------------------------------------------------------------------

if [[ ! -x $JSTOOLS/node_modules/.bin/componentize-js ]]; then
    log "installing $COMPONENTIZE_JS into $JSTOOLS"
    npm install --no-audit --no-fund --save-exact --prefix "$JSTOOLS" "$COMPONENTIZE_JS" >&2
fi
export PATH="$JSTOOLS/node_modules/.bin:$PATH"
# The Rust filter's build shares the scaffold tests' target directory.
export CARGO_TARGET_DIR="$ROOT/target/guest-scaffold"

LANGS=(rust python js)
declare -A LABEL=([rust]=Rust [python]=Python [js]=JavaScript)
declare -A BUILD_S SIZE
mkdir -p "$TMP/src" "$TMP/plugins"
for lang in "${LANGS[@]}"; do
    extra=()
    [[ $lang == rust ]] && extra=(--sdk "$ROOT/plugin-sdk")
    "$WEIR" plugin new "bench-$lang" --lang "$lang" --dir "$TMP/src" "${extra[@]}" >&2
    log "building bench-$lang"
    started=$(date +%s.%N)
    (cd "$TMP/src/bench-$lang" && "$WEIR" plugin build > "$TMP/build-$lang.log" 2>&1) \
        || die "weir plugin build failed for $lang: $(tail -5 "$TMP/build-$lang.log")"
    BUILD_S[$lang]=$(python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" \
        "$started" "$(date +%s.%N)")
    cp "$TMP/src/bench-$lang/bench-$lang.wasm" "$TMP/plugins/"
    SIZE[$lang]=$(stat -c %s "$TMP/plugins/bench-$lang.wasm")
done

# --- the gateway ------------------------------------------------------------------------

read -r UPSTREAM_PORT WEIR_PORT ADMIN_PORT < <(free_ports 3)
{
    cat <<EOF
[server]
listen = ["127.0.0.1:$WEIR_PORT"]
admin = "127.0.0.1:$ADMIN_PORT"
plugins_dir = "$TMP/plugins"
cache_dir = "$TMP/cache"
watch = false

[upstreams.up]
targets = ["127.0.0.1:$UPSTREAM_PORT"]

# No filter: the gateway's own cost, for reference.
[[routes]]
name = "none"
upstream = "up"
match = { headers = { "x-lang" = "none" } }
EOF
    for lang in "${LANGS[@]}"; do
        cat <<EOF

[[routes]]
name = "$lang"
upstream = "up"
match = { headers = { "x-lang" = "$lang" } }
[[routes.filters]]
plugin = "bench-$lang.wasm"
config = { header = "x-bench", value = "$lang" }
memory_mib = $MEMORY_MIB
EOF
    done
} > "$TMP/weir.toml"

# wait_for NAME PID URL [curl args...]: until URL answers 200, the process dies, or 120 s.
wait_for() {
    local name=$1 pid=$2 url=$3; shift 3
    for _ in $(seq 1200); do
        kill -0 "$pid" 2>/dev/null || die "$name exited during startup"
        if [[ $(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "$@" "$url" || true) == 200 ]]; then
            return 0
        fi
        sleep 0.1
    done
    die "$name did not answer $url within 120 s"
}

RUST_LOG=warn "$WEIR" demo-upstream "127.0.0.1:$UPSTREAM_PORT" > "$TMP/upstream.log" 2>&1 &
PIDS+=($!)
wait_for upstream "$!" "http://127.0.0.1:$UPSTREAM_PORT/hello"

# info: the `compiled plugin` lines carry the compile times.
RUST_LOG=info "$WEIR" run "$TMP/weir.toml" > "$TMP/weir.log" 2>&1 &
PIDS+=($!)
wait_for weir "$!" "http://127.0.0.1:$WEIR_PORT/hello" -H 'x-lang: none'
for lang in "${LANGS[@]}"; do
    # The filter runs: the upstream (echo) sees its header.
    [[ $(curl -sf -H "x-lang: $lang" "http://127.0.0.1:$WEIR_PORT/echo" \
        | python3 -c 'import json, sys; print(json.load(sys.stdin)["headers"].get("x-bench", ""))') == "$lang" ]] \
        || die "the $lang filter did not set its header"
done

# --- load -------------------------------------------------------------------------------

# mean_us FAMILY ROUTE: the mean of the histogram FAMILY (`weir_filter_call_duration_seconds`,
# `weir_plugin_instantiate_duration_seconds`) on ROUTE so far in microseconds, and its count.
mean_us() {
    curl -sf "http://127.0.0.1:$ADMIN_PORT/metrics" | python3 -c '
import re, sys
family, route = sys.argv[1], sys.argv[2]
total = {"sum": 0.0, "count": 0.0}
for line in sys.stdin:
    m = re.match(family + r"_(sum|count)\{([^}]*)\} (\S+)", line)
    if m and f"route=\"{route}\"" in m.group(2):
        total[m.group(1)] += float(m.group(3))
s, n = total["sum"], total["count"]
print(f"{s / n * 1e6:.3f} {int(n)}" if n else "0 0")
' "$1" "$2"
}

# failures ROUTE: the failed filter calls on ROUTE so far, by kind (`memory=3 trap=1`), or
# `none`.
failures() {
    curl -sf "http://127.0.0.1:$ADMIN_PORT/metrics" | python3 -c '
import re, sys
route, kinds = sys.argv[1], {}
for line in sys.stdin:
    m = re.match(r"weir_plugin_failures_total\{([^}]*)\} (\S+)", line)
    if m and f"route=\"{route}\"" in m.group(1) and float(m.group(2)) > 0:
        kind = re.search(r"kind=\"([^\"]*)\"", m.group(1)).group(1)
        kinds[kind] = kinds.get(kind, 0) + int(float(m.group(2)))
print(" ".join(f"{k}={n}" for k, n in sorted(kinds.items())) or "none")
' "$1"
}

# retired ROUTE: the instances retired on ROUTE so far because their memory grew.
retired() {
    curl -sf "http://127.0.0.1:$ADMIN_PORT/metrics" \
        | awk -v r="route=\"$1\"" 'index($0, "weir_plugin_instances_retired_total{" r) == 1 { n += $2 } END { print n + 0 }'
}

# wrk_run LANG DURATION: requests/s and mean latency of wrk on the LANG route.
wrk_run() {
    wrk -t"$THREADS" -c"$CONNECTIONS" -d"$2" --latency -H "x-lang: $1" \
        "http://127.0.0.1:$WEIR_PORT/hello" > "$TMP/wrk-$1.log" 2>&1 \
        || die "wrk failed on $1: $(cat "$TMP/wrk-$1.log")"
}

declare -A RPS LATENCY CALL_US CALLS COMPILE_MS FAILED NON_2XX RETIRED MADE
for lang in none "${LANGS[@]}"; do
    log "$lang: warm-up $WARMUP, then $DURATION"
    wrk_run "$lang" "$WARMUP"
    before=$(mean_us weir_filter_call_duration_seconds "$lang")
    wrk_run "$lang" "$DURATION"
    RPS[$lang]=$(awk '/^Requests\/sec/ { printf "%.0f", $2 }' "$TMP/wrk-$lang.log")
    LATENCY[$lang]=$(awk '/^    Latency/ { print $2; exit }' "$TMP/wrk-$lang.log")
    NON_2XX[$lang]=$(awk '/Non-2xx/ { print $NF }' "$TMP/wrk-$lang.log")
    if [[ $lang != none ]]; then
        # The mean over the measured run alone: (sum - sum before) / (count - count before).
        read -r mean_all count_all < <(mean_us weir_filter_call_duration_seconds "$lang")
        read -r mean_before count_before <<< "$before"
        CALL_US[$lang]=$(python3 -c "import sys
m1, c1, m0, c0 = map(float, sys.argv[1:])
print(f'{(m1 * c1 - m0 * c0) / (c1 - c0):.1f}')" "$mean_all" "$count_all" "$mean_before" "$count_before")
        CALLS[$lang]=$((count_all - count_before))
        # Over warm-up and run: a failed call answers by the route's failure policy.
        FAILED[$lang]=$(failures "$lang")
        RETIRED[$lang]=$(retired "$lang")
        # Every instance made, the first at load included: instantiation and configure.
        read -r made_us made < <(mean_us weir_plugin_instantiate_duration_seconds "$lang")
        MADE[$lang]="$made ($(python3 -c "import sys; print(f'{float(sys.argv[1]) / 1e3:.1f}')" "$made_us") ms)"
        COMPILE_MS[$lang]=$(grep 'compiled plugin' "$TMP/weir.log" | grep "bench-$lang.wasm" \
            | sed -n 's/.*elapsed_ms=\([0-9]*\).*/\1/p' | head -1)
    fi
done

# --- report -----------------------------------------------------------------------------

CPU=$(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)
TOOLS="componentize-py $(componentize-py --version 2>/dev/null | awk '{print $2}' || echo '?'), componentize-js $(componentize-js --version), rustc $(rustc --version | awk '{print $2}')"
{
    echo "<!-- languages:begin -->"
    echo "Measured $(date -u +%Y-%m-%d) on $(nproc) cores ($CPU), loopback, one gateway (release build, worker per core), wrk -t$THREADS -c$CONNECTIONS for $DURATION per row after $WARMUP of warm-up, \`GET /hello\` of the demo upstream, load average $LOAD_BEFORE before the run; $TOOLS. Command: \`$COMMAND\`."
    echo
    echo "| filter (the scaffold's: set one header) | mean call | calls measured | failed calls | instances retired | instances made (mean time to ready) | requests/s | non-2xx | mean latency | component | build | gateway compile |"
    echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    echo "| none (the gateway alone) | – | – | – | – | – | ${RPS[none]} | ${NON_2XX[none]:-0} | ${LATENCY[none]} | – | – | – |"
    for lang in "${LANGS[@]}"; do
        size_kib=$(( SIZE[$lang] / 1024 ))
        echo "| ${LABEL[$lang]} | ${CALL_US[$lang]} µs | ${CALLS[$lang]} | ${FAILED[$lang]} | ${RETIRED[$lang]} | ${MADE[$lang]} | ${RPS[$lang]} | ${NON_2XX[$lang]:-0} | ${LATENCY[$lang]} | $size_kib KiB | ${BUILD_S[$lang]} s | ${COMPILE_MS[$lang]:-?} ms |"
    done
    echo
    echo "The mean call is the gateway's \`weir_filter_call_duration_seconds\` (sum / count over the measured run): one \`on-request\` through a pooled, warm instance, host calls included. Failed calls (\`weir_plugin_failures_total\` by kind, warm-up included) are answered by the route's failure policy (here \`fail_closed\`: a 500), which wrk counts as non-2xx. An instance whose memory grew through half the headroom it started with is retired between calls (\`weir_plugin_instances_retired_total\`, warm-up included) and a new one takes its place; instances made counts each new instance (the first at load, one per call that found none warm, one per retirement), and its time is \`weir_plugin_instantiate_duration_seconds\` (instantiation and \`configure\`); every filter has \`memory_mib = $MEMORY_MIB\`. The build is \`weir plugin build\` (Rust: an incremental release build with a warm dependency cache); the gateway compile is Cranelift's, once per component (then cached on disk)."
    echo "<!-- languages:end -->"
} > "$TMP/section.md"
replace_section "$DOC" languages "$TMP/section.md" '## Filter languages (`bench/languages.sh`)'
cat "$TMP/section.md"
