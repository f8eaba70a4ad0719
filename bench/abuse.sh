#!/usr/bin/env bash
# Abuse benchmark: hostile clients against the release gateway and, beside it, nginx as a
# reverse proxy to the same upstream — idle sockets, slow headers, slow bodies, aborted
# uploads — and, for the gateway alone, hostile plugins (one that loops to its deadline, one
# that returns 100k aliasing headers) hammered by 8 attackers, while wrk measures what a
# well-behaved client gets on a filterless route of the same gateway. Records
# the well-behaved client's req/s and p99, the gateway's peak RSS, and what the hostile
# connections saw (closed by the server, refused), in docs/benchmarks.md.
#
#   bench/abuse.sh                     # defaults: COUNT=2000 ATTACK=25s
#   SKIP_BUILD=1 COUNT=10000 bench/abuse.sh
#
# The gateway runs with its default limits (first byte 10 s, header 30 s, body idle 30 s);
# nginx with its own defaults (client_header_timeout 60 s, client_body_timeout 60 s).

set -euo pipefail

COUNT=${COUNT:-2000}
ATTACK=${ATTACK:-25}
MEASURE=${MEASURE:-10s}
SKIP_BUILD=${SKIP_BUILD:-0}

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WEIR="$ROOT/target/release/weir"
DOC="$ROOT/docs/benchmarks.md"
DRIVER="$ROOT/bench/abuse_driver.py"
COMMAND="COUNT=$COUNT ATTACK=$ATTACK bench/abuse.sh"

NAME=abuse
# shellcheck source=bench/common.sh
source "$ROOT/bench/common.sh"

need nginx wrk python3 curl
ensure_weir

read -r UP_PORT NGINX_PORT WEIR_PORT ADMIN_PORT < <(free_ports 4)

cat > "$TMP/weir.toml" <<CONF
[server]
listen = ["127.0.0.1:$WEIR_PORT"]
admin = "127.0.0.1:$ADMIN_PORT"
plugins_dir = "$TMP/plugins"
demo_upstream = "127.0.0.1:$UP_PORT"
watch = false

[upstreams.up]
targets = ["127.0.0.1:$UP_PORT"]

[[routes]]
name = "loop"
upstream = "up"
match = { path_prefix = "/loop" }
[[routes.filters]]
plugin = "hostile.wasm"
config = { mode = "loop" }

[[routes]]
name = "huge-results"
upstream = "up"
match = { path_prefix = "/huge" }
[[routes.filters]]
plugin = "hostile.wasm"
config = { mode = "headers" }

# The well-behaved client's route; anything else is a 404 (the cheapest refusal).
[[routes]]
name = "hello"
upstream = "up"
match = { path_prefix = "/hello" }
CONF
mkdir -p "$TMP/plugins" "$TMP/nginx/tmp"
# The hostile test plugin is built by the test suite's build script.
HOSTILE="$ROOT/target/guest/wasm32-wasip2/release/hostile.wasm"
if [[ ! -f $HOSTILE ]]; then
    log "building the test plugins"
    (cd "$ROOT" && cargo build -p weir-tests --tests)
fi
cp "$HOSTILE" "$TMP/plugins/hostile.wasm"
cat > "$TMP/nginx/nginx.conf" <<CONF
daemon off;
worker_processes 2;
pid $TMP/nginx/nginx.pid;
error_log $TMP/nginx.log crit;
worker_rlimit_nofile 65536;
events { worker_connections 65536; }
http {
    access_log off;
$(nginx_temp_paths)
    upstream up { server 127.0.0.1:$UP_PORT; keepalive 64; }
    server {
        listen 127.0.0.1:$NGINX_PORT;
        location / { proxy_pass http://up; proxy_http_version 1.1; proxy_set_header Connection ""; }
    }
}
CONF

"$WEIR" run "$TMP/weir.toml" >"$TMP/weir.log" 2>&1 &
WEIR_PID=$!; PIDS+=("$WEIR_PID")
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$WEIR_PORT/hello" >/dev/null && break; sleep 0.1; done
nginx -c "$TMP/nginx/nginx.conf" -p "$TMP/nginx" >"$TMP/nginx.out" 2>&1 &
PIDS+=("$!")
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$NGINX_PORT/hello" >/dev/null && break; sleep 0.1; done

rss_kb() { # summed VmRSS of a process and its children
    local total=0
    for pid in "$1" $(pgrep -P "$1" || true); do
        total=$((total + $(awk '/VmRSS/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)))
    done
    echo "$total"
}
to_ms() { awk '{v=$1; if (v ~ /us$/) {sub(/us/,"",v); v/=1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v*=1000}; printf "%.2f", v}'; }

ROWS=()
run_case() { # target-name port pid case
    local name=$1 port=$2 pid=$3 case=$4 driver=
    case $case in
        none) ;;
        plugin-* | no-route)
            local path=/loop
            [[ $case == plugin-huge-results ]] && path=/huge
            [[ $case == no-route ]] && path=/nowhere
            wrk -t1 -c8 -d"${ATTACK}s" -H 'x-attack: 1' "http://127.0.0.1:$port$path" >"$TMP/attack.out" 2>&1 &
            driver=$!
            sleep 3 ;;
        *)
            python3 "$DRIVER" "$case" "127.0.0.1:$port" "$COUNT" "$ATTACK" >"$TMP/driver.json" &
            driver=$!
            sleep 3 ;;
    esac
    local peak=0
    ( while kill -0 "$pid" 2>/dev/null; do rss_kb "$pid"; sleep 0.5; done ) >"$TMP/rss" &
    local sampler=$!
    wrk -t2 -c16 -d"$MEASURE" --latency "http://127.0.0.1:$port/hello" >"$TMP/wrk.out" 2>&1 || true
    kill "$sampler" 2>/dev/null; wait "$sampler" 2>/dev/null || true
    peak=$(sort -n "$TMP/rss" | tail -1)
    local rps p99 seen=-
    rps=$(awk '/Requests\/sec/ {printf "%.0f", $2}' "$TMP/wrk.out")
    p99=$(awk '$1=="99%" {print $2}' "$TMP/wrk.out" | to_ms)
    if [[ -n $driver ]]; then
        wait "$driver" || true
        if [[ $case == plugin-* || $case == no-route ]]; then
            seen="$(awk '/requests in/ {print $1}' "$TMP/attack.out") attack requests answered, $(awk '/Non-2xx/ {print $5}' "$TMP/attack.out") of them refused"
        else
            seen=$(python3 -c 'import json,sys; print("%(opened)s opened, %(closed_by_server)s closed by the server, %(refused)s refused" % json.load(open(sys.argv[1])))' "$TMP/driver.json")
        fi
    fi
    ROWS+=("| $name | $case | ${rps:-0} | ${p99:-?} | $((peak / 1024)) | $seen |")
    log "$name $case: ${rps:-0} req/s, p99 ${p99:-?} ms, peak RSS $((peak / 1024)) MB; $seen"
}

NGINX_MASTER=$(cat "$TMP/nginx/nginx.pid")
for case in none idle slow-headers slow-body abort; do
    run_case weir "$WEIR_PORT" "$WEIR_PID" "$case"
    run_case nginx "$NGINX_PORT" "$NGINX_MASTER" "$case"
done
# 8 attackers on a plain 404 first: the cost of the same attack without any plugin.
for case in no-route plugin-loop plugin-huge-results; do
    run_case weir "$WEIR_PORT" "$WEIR_PID" "$case"
done

DATE=$(date -u +%Y-%m-%d)
MACHINE="$(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -sr)"
{
    echo "<!-- abuse:begin -->"
    echo "### Abuse: $DATE"
    echo
    echo "Machine: $MACHINE. Command: \`$COMMAND\`. A well-behaved client (wrk -t2 -c16, $MEASURE)"
    echo "measures each target while $COUNT hostile connections of the given kind attack the same"
    echo "target for ${ATTACK}s (from 127.0.0.2; the plugin and no-route attacks are wrk -t1 -c8"
    echo 'sending `x-attack: 1`). Weir runs its default limits; nginx its defaults.'
    echo
    echo "| target | attack | req/s | p99 ms | peak RSS MB | hostile connections saw |"
    echo "| --- | --- | ---: | ---: | ---: | --- |"
    printf '%s\n' "${ROWS[@]}"
    echo "<!-- abuse:end -->"
} >"$TMP/section.md"
replace_section "$DOC" abuse "$TMP/section.md"
cat "$TMP/section.md"
