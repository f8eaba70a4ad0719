#!/usr/bin/env bash
# Push benchmark: the release gateway's push routes (/push/connect, /push/devices,
# /push/publish, each behind auth.wasm with API keys) driven by bench/push_driver.py:
#   1. idle WebSocket connections: the gateway's RSS per connection at each of IDLE_COUNTS
#      (and, for comparison, idle HTTP/1.1 keep-alive connections that made one request);
#   2. fan-out: messages per second delivered to FANOUT live WebSocket devices that all
#      follow one topic (closed-loop publishers), then publish→deliver p50/p99 at about
#      half that rate; devices ack every ACK_EVERY messages and every ACK_PERIOD s;
#   3. durable publish: accepted (fsync'd) messages per second with PUBLISHERS concurrent
#      publishers, each message to one device.
#
#   bench/push.sh                    # defaults: IDLE_COUNTS=5000,15000 FANOUT=10000 RUN=15
#   SKIP_BUILD=1 FANOUT=5000 RUN=10 bench/push.sh
#
# Devices are registered once, on a gateway whose store is on tmpfs (registrations and the
# idle connections' connects are one fsync'd transaction each, which is not what the idle
# case measures); the store file is then copied to disk ($TMPDIR) for a second gateway that
# runs the HTTP, fan-out and publish cases with real fsyncs. Writes the results between
# <!-- push:begin --> and <!-- push:end --> in docs/benchmarks.md and prints them.

set -euo pipefail

IDLE_COUNTS=${IDLE_COUNTS:-5000,15000}
FANOUT=${FANOUT:-10000}
RUN=${RUN:-15}
ACK_EVERY=${ACK_EVERY:-32}
export ACK_PERIOD=${ACK_PERIOD:-5}
PUBLISHERS=${PUBLISHERS:-4}
PUBLISH_DEVICES=${PUBLISH_DEVICES:-64}
export SETTLE=${SETTLE:-11}
SKIP_BUILD=${SKIP_BUILD:-0}

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WEIR=${WEIR:-"$ROOT/target/release/weir"}
PLUGINS="$ROOT/target/plugins"
DOC="$ROOT/docs/benchmarks.md"
DRIVER="$ROOT/bench/push_driver.py"
COMMAND="IDLE_COUNTS=$IDLE_COUNTS FANOUT=$FANOUT RUN=$RUN ACK_EVERY=$ACK_EVERY ACK_PERIOD=$ACK_PERIOD PUBLISHERS=$PUBLISHERS bench/push.sh"
START_SECONDS=$SECONDS

NAME=push
# shellcheck source=bench/common.sh
source "$ROOT/bench/common.sh"

for tool in python3 curl sha256sum; do command -v "$tool" >/dev/null || die "$tool is missing"; done
if [[ $SKIP_BUILD != 1 ]]; then
    log "building weir (release)"
    (cd "$ROOT" && cargo build --release -p weir)
fi
[[ -x $WEIR ]] || die "$WEIR not found (build it, or unset SKIP_BUILD)"
[[ -f $PLUGINS/auth.wasm ]] || die "$PLUGINS/auth.wasm not found"

# Both the gateway and the driver hold every connection: each needs an fd per connection.
ulimit -n "$(ulimit -Hn)"
IDLE_MAX=${IDLE_COUNTS##*,}
NOFILE=$(ulimit -n)
if (( IDLE_MAX + 200 > NOFILE )); then
    die "IDLE_COUNTS up to $IDLE_MAX needs more open files than the hard limit ($NOFILE) allows"
fi
(( FANOUT <= IDLE_MAX )) || die "FANOUT ($FANOUT) must not exceed the largest idle count ($IDLE_MAX)"

SHM=/dev/shm
[[ -d $SHM && -w $SHM ]] || SHM=$TMP
FAST_STORE=$(mktemp -d "$SHM/weir-push.XXXXXX")
trap 'status=$?; rm -rf "$FAST_STORE"; (exit $status); cleanup' EXIT

# config FILE PORT ADMIN STORE
config() {
    cat > "$1" <<EOF
[server]
listen = ["127.0.0.1:$2"]
admin = "127.0.0.1:$3"
plugins_dir = "$PLUGINS"
cache_dir = "$TMP/cache"
watch = false

[server.limits]
max_connections = 100000
max_connections_per_ip = 100000
listen_backlog = 4096
# The idle HTTP/1.1 connections must outlive the measurement.
idle_timeout_ms = 600000

[push]
store = "$4"
EOF
    push_routes >> "$1"
}

# start NAME CONFIG: runs the gateway, sets WEIR_PID and PORT once it answers.
start() {
    local name=$1 file=$2
    RUST_LOG=${RUST_LOG:-warn} "$WEIR" run "$file" > "$TMP/$name.log" 2>&1 &
    WEIR_PID=$!
    PIDS+=("$WEIR_PID")
    for _ in $(seq 600); do
        kill -0 "$WEIR_PID" 2>/dev/null || die "$name exited during startup"
        # The devices route answers 401 without a key once the gateway serves.
        [[ $(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "http://127.0.0.1:$PORT/push/devices" || true) == 401 ]] && {
            log "$name is up (pid $WEIR_PID)"
            return 0
        }
        sleep 0.1
    done
    die "$name did not answer within 60 s"
}

stop() {
    kill -TERM "$WEIR_PID"
    for _ in $(seq 100); do kill -0 "$WEIR_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$WEIR_PID" 2>/dev/null || true
    wait "$WEIR_PID" 2>/dev/null || true
}

driver() { python3 "$DRIVER" "$@"; }

# --- gateway 1: store on tmpfs; registrations and idle WebSocket connections --------------

read -r PORT ADMIN_PORT < <(free_ports 2)
config "$TMP/fast.toml" "$PORT" "$ADMIN_PORT" "$FAST_STORE/push.redb"
start gateway-tmpfs "$TMP/fast.toml"
ADDR=127.0.0.1:$PORT

log "registering $IDLE_MAX devices ($FANOUT following topic \"all\") and $PUBLISH_DEVICES publish targets"
driver register "$ADDR" "$DEVICE_KEY" d 0 "$FANOUT" all > "$TMP/register-1.json"
driver register "$ADDR" "$DEVICE_KEY" d "$FANOUT" "$IDLE_MAX" > "$TMP/register-2.json"
driver register "$ADDR" "$DEVICE_KEY" p 0 "$PUBLISH_DEVICES" > "$TMP/register-3.json"
cat "$TMP"/register-*.json >&2

log "idle WebSocket connections: $IDLE_COUNTS (settling ${SETTLE}s before each RSS reading)"
driver idle-ws "$ADDR" "$DEVICE_KEY" d "$WEIR_PID" "$IDLE_COUNTS" "$SETTLE" > "$TMP/idle-ws.json"
cat "$TMP/idle-ws.json" >&2
stop

# --- gateway 2: the same store on disk; HTTP, fan-out, durable publish ---------------------

cp "$FAST_STORE/push.redb" "$TMP/push.redb"
rm -rf "$FAST_STORE"
read -r PORT ADMIN_PORT < <(free_ports 2)
config "$TMP/disk.toml" "$PORT" "$ADMIN_PORT" "$TMP/push.redb"
start gateway-disk "$TMP/disk.toml"
ADDR=127.0.0.1:$PORT

log "idle HTTP/1.1 keep-alive connections: $IDLE_COUNTS"
driver idle-http "$ADDR" "$WEIR_PID" "$IDLE_COUNTS" "$SETTLE" > "$TMP/idle-http.json"
cat "$TMP/idle-http.json" >&2

log "fan-out to $FANOUT devices (${RUN}s closed loop, then ${RUN}s at half the rate)"
curl -sf "http://127.0.0.1:$ADMIN_PORT/push" > "$TMP/push-before.json" || echo '{}' > "$TMP/push-before.json"
driver fanout "$ADDR" "$DEVICE_KEY" "$SERVER_KEY" d "$FANOUT" all "$RUN" "$ACK_EVERY" "$WEIR_PID" > "$TMP/fanout.json"
curl -sf "http://127.0.0.1:$ADMIN_PORT/push" > "$TMP/push-after.json" || echo '{}' > "$TMP/push-after.json"
cat "$TMP/fanout.json" >&2

log "durable publish: $PUBLISHERS publishers, ${RUN}s"
driver publish "$ADDR" "$SERVER_KEY" p "$PUBLISH_DEVICES" "$PUBLISHERS" "$RUN" "$WEIR_PID" > "$TMP/publish.json"
cat "$TMP/publish.json" >&2

# A one-transaction fsync baseline on the same disk: what redb's commits are bound by.
FSYNC=$(python3 - "$TMP" <<'PY'
import os, sys, time
path = os.path.join(sys.argv[1], "fsync-probe")
fd = os.open(path, os.O_WRONLY | os.O_CREAT)
n, start = 0, time.perf_counter()
while time.perf_counter() - start < 2:
    os.pwrite(fd, b"x" * 4096, (n % 64) * 4096)
    os.fsync(fd)
    n += 1
os.close(fd)
os.unlink(path)
print(round(n / (time.perf_counter() - start)))
PY
)

sed -i 's/\x1b\[[0-9;]*m//g' "$TMP"/gateway-*.log
WARNINGS=$(cat "$TMP"/gateway-*.log | grep -ciE 'warn|error' || true)
FIRST_WARNING=$(cat "$TMP"/gateway-*.log | grep -m1 -iE 'warn|error' | cut -c1-300 || true)

# --- docs/benchmarks.md -----------------------------------------------------------------

if REV=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null); then
    [[ -n $(git -C "$ROOT" status --porcelain --untracked-files=no 2>/dev/null) ]] && REV="$REV (with uncommitted changes)"
else
    REV=unknown
fi
MACHINE="$(nproc) cores ($(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')), $(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo) RAM, $(uname -sr)"
python3 - "$TMP" "$DOC" "$REV" "$MACHINE" "$COMMAND" "$FSYNC" "$WARNINGS" "$FIRST_WARNING" "$((SECONDS - START_SECONDS))" <<'PY'
import json, os, sys, time
tmp, doc, rev, machine, command, fsync, warnings, first_warning, took = sys.argv[1:]
load = lambda name: json.load(open(os.path.join(tmp, name)))
ws, http, fan, pub = load("idle-ws.json"), load("idle-http.json"), load("fanout.json"), load("publish.json")
regs = [load(f"register-{i}.json") for i in (1, 2, 3)]
before, after = load("push-before.json"), load("push-after.json")
counted = lambda k: after.get(k, 0) - before.get(k, 0)

def rows(r):
    out, prev_n, prev_rss = [], 0, r["rss_before_kb"]
    for s in r["stages"]:
        n, rss = s["connections"], s["rss_kb"]
        total = (rss - r["rss_before_kb"]) * 1024 / n
        step = (rss - prev_rss) * 1024 / (n - prev_n)
        out.append((n, s["ready"], rss, total, step, prev_n))
        prev_n, prev_rss = n, rss
    return out

lines = ["<!-- push:begin -->",
         f"Weir commit {rev}. Run on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {machine}.",
         "",
         f"Command: `{command}` (the release binary; driver `bench/push_driver.py`, Python asyncio",
         "over raw sockets, on the same cores). The three push routes are behind `auth.wasm` (API",
         "keys); every device belongs to one user and the fan-out devices follow one topic. The box",
         "was shared with other builds while this ran: figures are one run, not a best of several.",
         "",
         "**Idle connections** (gateway VmRSS before and after; per connection = growth / count, and",
         "the step from the previous count, which leaves out one-off growth; the target is ≤ 8 KB per",
         f"WebSocket connection in user space; the baseline is read after {ws['warmup']:,} connections were opened and",
         f"closed, each reading {os.environ.get('SETTLE', '11')} s after the last connection is up):",
         "",
         "| kind | connections | ready | RSS before MB | RSS after MB | per connection KB | step KB/conn |",
         "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
for name, r in (("WebSocket (push session)", ws), ("HTTP/1.1 keep-alive (one 404 served)", http)):
    for n, ready, rss, total, step, prev in rows(r):
        lines.append(f"| {name} | {n:,} | {ready:,} | {r['rss_before_kb']/1024:.1f} | {rss/1024:.1f} | "
                     f"{total/1024:.2f} | {step/1024:.2f} ({prev:,}→{n:,}) |")
t, l = fan["throughput"], fan["latency"]
lines += ["",
          f"**Fan-out** to {fan['connected']:,} connected WebSocket devices (of {fan['devices']:,}), every",
          f"publish to the topic all follow; devices ack every {fan['ack_every']} messages and every {os.environ['ACK_PERIOD']} s (cumulative",
          "acks, each a redb write without its own fsync; the window and the 10 s ack timeout are the defaults);",
          "publishers stay at most 8 messages per device ahead of the deliveries:",
          "",
          f"- closed loop, {t['publishers']} publishers, {t['seconds']} s: {t['published']} publishes accepted "
          f"({t['publishes_per_second']}/s), **{t['delivered_per_second']:,} messages delivered per second** "
          f"during the run; all delivered after another {t['backlog_drain_seconds']} s "
          f"({t['delivered_incl_backlog_per_second']:,}/s counting the drain; everything arrived: {t['all_delivered']});",
          f"- gateway CPU {t['gateway_cpu_us_per_delivery']} µs per delivery ({t['gateway_cpu_cores']} cores busy); "
          f"driver {t['driver_cpu_cores']} cores; {t['acks_answered_per_second']:,} acks answered per second;",
          f"- the gateway's counters over both phases (admin `GET /push`): {counted('sent'):,} messages sent, "
          f"{counted('redelivered'):,} of them resent after an ack timeout, {counted('slow_closed')} connections closed as slow;",
          f"- at {l['publishes_per_second']} publishes/s ({l['target_deliveries_per_second']:,} deliveries/s), "
          f"publish→deliver (POST sent → frame read by the device, {l['samples']:,} samples): "
          f"**p50 {l['p50_ms']} ms, p99 {l['p99_ms']} ms** (max {l['max_ms']} ms).",
          "",
          f"**Durable publish**: {pub['publishers']} concurrent publishers, each message to one device "
          f"(one fsync'd redb transaction each), {pub['seconds']} s: **{pub['accepted_per_second']:,} accepted messages "
          f"per second** ({pub['accepted']:,} accepted, {pub['refused']} refused; gateway CPU "
          f"{pub['gateway_cpu_us_per_publish']} µs per publish). A plain 4 KiB write + fsync loop on the same disk "
          f"does {int(fsync):,}/s.",
          "",
          "Registrations (tmpfs store, 8 connections): " + ", ".join(
              f"{r['count']:,} in {r['seconds']} s" for r in regs) + "; refused: "
          + str(sum(r["refused"] for r in regs)) + ".",
          "",
          f"Gateway log lines at warn or above: {warnings}" + (f", e.g. `{first_warning}`" if int(warnings) else "") + ".",
          f"The whole script took {took} s.",
          "<!-- push:end -->"]
section = "\n".join(lines)
open(os.path.join(tmp, "section.md"), "w").write(section + "\n")
text = open(doc).read() if os.path.exists(doc) else "# Benchmarks\n"
begin, end = "<!-- push:begin -->", "<!-- push:end -->"
i, j = text.find(begin), text.find(end)
if i != -1 and j > i:
    text = text[:i] + section + text[j + len(end):]
else:
    text = text.rstrip("\n") + "\n\n## Push (`bench/push.sh`)\n\n" + section + "\n"
open(doc, "w").write(text)
PY
log "wrote $DOC"
cat "$TMP/section.md"
