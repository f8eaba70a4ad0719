#!/usr/bin/env bash
# L4 benchmark: TCP throughput through weir's `[[tcp]]` proxy and through nginx's `stream`
# module, both in front of one iperf3 server on loopback, through one connection and through
# many at once, with the proxy's CPU per MB moved. iperf3 straight to the server is the
# reference row.
#
#   bench/l4.sh                                 # defaults: DURATION=10 STREAMS="1 64"
#   SKIP_BUILD=1 DURATION=20 STREAMS="1 16 128" bench/l4.sh
#
# Writes the results between <!-- l4:begin --> and <!-- l4:end --> in docs/benchmarks.md
# and prints them. The nginx and weir configs are generated into a temp dir (KEEP_TMP=1
# keeps it).

set -euo pipefail

DURATION=${DURATION:-10}
STREAMS=${STREAMS:-1 64}
WARMUP=${WARMUP:-2}
SKIP_BUILD=${SKIP_BUILD:-0}
KEEP_TMP=${KEEP_TMP:-0}

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WEIR=${WEIR:-"$ROOT/target/release/weir"}
DOC="$ROOT/docs/benchmarks.md"
COMMAND="DURATION=$DURATION STREAMS=\"$STREAMS\" bench/l4.sh"
START_SECONDS=$SECONDS
# Debian's nginx builds the stream module as a dynamic module (libnginx-mod-stream).
STREAM_MODULE=/usr/lib/nginx/modules/ngx_stream_module.so

NAME=l4
# shellcheck source=bench/common.sh
source "$ROOT/bench/common.sh"

# --- tools ------------------------------------------------------------------------------

if ! command -v nginx >/dev/null || ! command -v iperf3 >/dev/null || [[ ! -f $STREAM_MODULE ]]; then
    log "installing nginx, its stream module and iperf3"
    SUDO=; [[ $(id -u) -ne 0 ]] && SUDO=sudo
    $SUDO apt-get update
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y nginx libnginx-mod-stream iperf3
fi
need curl python3 nginx iperf3 ss
[[ -f $STREAM_MODULE ]] || die "$STREAM_MODULE not found (apt-get install libnginx-mod-stream)"
ensure_weir

# --- ports and configs ------------------------------------------------------------------

read -r IPERF_PORT NGINX_PORT WEIR_TCP_PORT WEIR_PORT ADMIN_PORT < <(free_ports 5)

mkdir -p "$TMP/nginx/logs" "$TMP/plugins"
cat > "$TMP/nginx/nginx.conf" <<EOF
load_module $STREAM_MODULE;
daemon off;
master_process on;
worker_processes auto;
pid $TMP/nginx/nginx.pid;
error_log $TMP/nginx.log warn;

events {
    worker_connections 16384;
    multi_accept on;
}

# proxy_buffer_size 16k (its default) is weir's default buffer_bytes; TCP_NODELAY is on in
# both.
stream {
    upstream iperf {
        server 127.0.0.1:$IPERF_PORT;
    }
    server {
        listen 127.0.0.1:$NGINX_PORT;
        proxy_pass iperf;
        proxy_buffer_size 16k;
    }
}
EOF

cat > "$TMP/weir-l4.toml" <<EOF
[server]
listen = ["127.0.0.1:$WEIR_PORT"]
admin = "127.0.0.1:$ADMIN_PORT"
plugins_dir = "$TMP/plugins"
watch = false

[upstreams.iperf]
targets = ["127.0.0.1:$IPERF_PORT"]

[[tcp]]
name = "iperf"
listen = "127.0.0.1:$WEIR_TCP_PORT"
upstream = "iperf"
max_connections = 100000
EOF

# --- servers ----------------------------------------------------------------------------

# wait_port NAME PID PORT: until something listens on PORT of 127.0.0.1, the process dies,
# or 60 s. Checked with `ss`, not by connecting: a connection through a proxy would reach
# the iperf3 server as a test that never starts.
wait_port() {
    local name=$1 pid=$2 port=$3
    for _ in $(seq 600); do
        kill -0 "$pid" 2>/dev/null || die "$name exited during startup"
        if [[ -n $(ss -Hltn "sport = :$port") ]]; then
            log "$name is up (port $port)"
            return 0
        fi
        sleep 0.1
    done
    die "$name did not listen on $port within 60 s"
}

iperf3 -s -p "$IPERF_PORT" > "$TMP/iperf-server.log" 2>&1 &
PIDS+=($!)
wait_port iperf3 "$!" "$IPERF_PORT"

nginx -e "$TMP/nginx.log" -p "$TMP/nginx" -c "$TMP/nginx/nginx.conf" > "$TMP/nginx-stdout.log" 2>&1 &
PIDS+=($!)
NGINX_PID=$!
wait_port nginx "$NGINX_PID" "$NGINX_PORT"

RUST_LOG=${RUST_LOG:-warn} "$WEIR" run "$TMP/weir-l4.toml" > "$TMP/weir.log" 2>&1 &
PIDS+=($!)
WEIR_PID=$!
wait_port weir "$WEIR_PID" "$WEIR_TCP_PORT"

# nginx's processes: the master and its workers (forked once it has bound its listener).
for _ in $(seq 100); do pgrep -P "$NGINX_PID" >/dev/null && break; sleep 0.1; done
NGINX_PIDS=("$NGINX_PID" $(pgrep -P "$NGINX_PID"))
[[ ${#NGINX_PIDS[@]} -gt 1 ]] || die "nginx started no worker"

# --- runs -------------------------------------------------------------------------------

# The rows: name|port|processes whose CPU counts.
TARGETS=(
    "iperf3 direct (no proxy)|$IPERF_PORT|"
    "nginx stream|$NGINX_PORT|${NGINX_PIDS[*]}"
    "weir [[tcp]]|$WEIR_TCP_PORT|$WEIR_PID"
)

# run_iperf OUT PORT STREAMS SECONDS: one iperf3 run (client to server) as JSON.
run_iperf() {
    iperf3 -c 127.0.0.1 -p "$2" -P "$3" -t "$4" --json > "$1" 2>&1 \
        || die "iperf3 failed: $(cat "$1")"
}

# received OUT: the bytes the server received and over how many seconds.
received() {
    python3 - "$1" <<'PY'
import json, sys
end = json.load(open(sys.argv[1]))["end"]["sum_received"]
print(end["bytes"], end["seconds"])
PY
}

SECTION="$TMP/section.md"
if REV=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null); then
    if [[ -n $(git -C "$ROOT" status --porcelain --untracked-files=no 2>/dev/null) ]]; then
        REV="$REV (with uncommitted changes)"
    fi
else
    REV=${BENCH_REV:-unknown}
fi
{
    echo "<!-- l4:begin -->"
    echo "Weir commit $REV. Run on $(date -u '+%Y-%m-%d %H:%M:%S UTC'), on $(nproc) cores ($(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')), $(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo) RAM."
    echo
    echo "Command: \`$COMMAND\`, that is \`iperf3 -c 127.0.0.1 -p <port> -P <streams> -t $DURATION\`"
    echo "per row after a ${WARMUP} s warm-up run: iperf3 sends as fast as it can through the proxy to"
    echo "\`iperf3 -s\`, and the MB/s are what the server received (1 MB = 10⁶ bytes). \"proxy CPU"
    echo "µs/MB\" is the proxy's user + system CPU time over the run (\`/proc/PID/stat\`: the weir"
    echo "process; nginx's master and workers) divided by the MB moved: what moving data costs the"
    echo "proxy. nginx: \`stream\` module (dynamic, \`libnginx-mod-stream\`), \`worker_processes auto\`,"
    echo "\`proxy_buffer_size 16k\`. weir: release build, one \`[[tcp]]\` listener with the defaults"
    echo "(\`buffer_bytes\` 16 KiB, one proxy worker thread per core), \`RUST_LOG=warn\`."
    echo
    echo "iperf3, nginx, weir and the server share the same $(nproc) cores over loopback: the numbers"
    echo "compare the proxies with each other on this machine; they are not absolute capacity."
} > "$SECTION"

for streams in $STREAMS; do
    declare -A MBPS=() CPU=()
    for entry in "${TARGETS[@]}"; do
        IFS='|' read -r name port pids <<< "$entry"
        log "$streams stream(s): $name (warm-up ${WARMUP} s, then ${DURATION} s)"
        run_iperf "$TMP/warmup.json" "$port" "$streams" "$WARMUP"
        out="$TMP/iperf-p$streams-$(echo "$name" | tr -c 'a-z0-9' '-').json"
        read -ra pid_list <<< "$pids"
        cpu_before=0 cpu_after=0
        if [[ ${#pid_list[@]} -gt 0 ]]; then cpu_before=$(cpu_ticks "${pid_list[@]}"); fi
        run_iperf "$out" "$port" "$streams" "$DURATION"
        if [[ ${#pid_list[@]} -gt 0 ]]; then cpu_after=$(cpu_ticks "${pid_list[@]}"); fi
        read -r bytes seconds < <(received "$out")
        [[ -n $bytes && $bytes -gt 0 ]] || die "no bytes received: $(cat "$out")"
        MBPS[$name]=$(awk -v b="$bytes" -v s="$seconds" 'BEGIN { printf "%.0f", b / s / 1e6 }')
        if [[ ${#pid_list[@]} -gt 0 ]]; then
            CPU[$name]=$(awk -v a="$cpu_after" -v b="$cpu_before" -v hz="$(getconf CLK_TCK)" -v n="$bytes" \
                'BEGIN { printf "%.1f", (a - b) / hz * 1e6 / (n / 1e6) }')
        else
            CPU[$name]="–"
        fi
    done
    nginx_mbps=${MBPS["nginx stream"]}
    {
        echo
        echo "### $streams connection(s) (\`-P $streams\`)"
        echo
        echo "| target | MB/s | vs nginx | proxy CPU µs/MB |"
        echo "|---|---:|---:|---:|"
        for entry in "${TARGETS[@]}"; do
            IFS='|' read -r name _ _ <<< "$entry"
            ratio=$(awk -v a="${MBPS[$name]}" -v b="$nginx_mbps" 'BEGIN { printf "%.2f×", a / b }')
            echo "| $name | ${MBPS[$name]} | $ratio | ${CPU[$name]} |"
        done
    } >> "$SECTION"
    unset MBPS CPU
done

# The proxy's own count of what it moved, as a check that the rows went through it.
moved=$(curl -sf "http://127.0.0.1:$ADMIN_PORT/metrics" \
    | awk '/^weir_tcp_received_bytes_total\{listener="iperf"\}/ { print $2 }')
[[ -n $moved && $moved -gt 0 ]] || die "weir's metrics show no bytes through the [[tcp]] listener"
{
    echo
    echo "weir's \`weir_tcp_received_bytes_total{listener=\"iperf\"}\` after the runs: $moved bytes"
    echo "(warm-ups included). The whole script took $((SECONDS - START_SECONDS)) s."
    echo "<!-- l4:end -->"
} >> "$SECTION"

# --- docs/benchmarks.md -----------------------------------------------------------------

replace_section "$DOC" l4 "$SECTION" "## L4 TCP proxy (\`bench/l4.sh\`)"
log "wrote $DOC"

cat "$SECTION"
