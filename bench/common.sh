# Shared by the benchmark scripts: logging, a temp dir cleaned up with every process the
# script started, free ports, and nginx's temp paths. Source it after setting NAME (the log
# prefix) and, optionally, KEEP_TMP=1.

log() { printf '[%s] %s\n' "$NAME" "$*" >&2; }
die() { log "error: $*"; exit 1; }

TMP=$(mktemp -d "${TMPDIR:-/tmp}/weir-$NAME.XXXXXX")
# Processes to stop on exit: append a PID when you start one.
PIDS=()

cleanup() {
    local status=$?
    set +e
    for pid in "${PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null
    done
    for pid in "${PIDS[@]}"; do
        # Give each process up to 5 s to exit, then kill it.
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
    done
    if [[ $status -ne 0 ]]; then
        for f in "$TMP"/*.log; do
            [[ -s $f ]] || continue
            log "--- tail of $f"
            tail -n 20 "$f" >&2
        done
    fi
    if [[ ${KEEP_TMP:-0} == 1 || $status -ne 0 ]]; then
        log "temp files kept in $TMP"
    else
        rm -rf "$TMP"
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Prints N distinct free ports on 127.0.0.1, picked by the kernel (all sockets held open
# until all are bound).
free_ports() {
    python3 - "$1" <<'PY'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
PY
}

# nginx's temp paths under $TMP/nginx/tmp, for an `http` block.
nginx_temp_paths() {
    mkdir -p "$TMP/nginx/tmp"
    for kind in client_body proxy fastcgi uwsgi scgi; do
        printf '    %s_temp_path %s;\n' "$kind" "$TMP/nginx/tmp/$kind"
    done
}

# need TOOL...: dies naming the first tool that is missing.
need() {
    local tool
    for tool in "$@"; do
        command -v "$tool" >/dev/null || die "$tool is missing (apt-get install nginx wrk nghttp2-client)"
    done
}

# ensure_weir: builds the release gateway unless SKIP_BUILD=1, then checks that $WEIR is
# there; raises the open-file limit to its hard limit for the many connections to come.
ensure_weir() {
    if [[ ${SKIP_BUILD:-0} != 1 ]]; then
        log "building weir (release)"
        (cd "$ROOT" && cargo build --release -p weir)
    fi
    [[ -x $WEIR ]] || die "$WEIR not found (build it, or unset SKIP_BUILD)"
    ulimit -n "$(ulimit -Hn)"
}

# cpu_ticks PID...: user + system CPU of the processes so far, in clock ticks.
cpu_ticks() {
    local pid total=0
    for pid in "$@"; do
        total=$((total + $(awk '{ print $14 + $15 }' "/proc/$pid/stat")))
    done
    echo "$total"
}

# The benchmarks' API key and the HMAC secret they sign with.
BENCH_API_KEY=bench-api-key
BENCH_HMAC_KEY=bench-hmac-secret

# sign_get AUTHORITY PATH: an RFC 9421 signature (hmac-sha256 under $BENCH_HMAC_KEY, key id
# `bench`) of `GET PATH` to AUTHORITY, over `@method`, `@authority` and `@path`, as the two
# headers `Signature-Input` and `Signature` separated by `^` (the benchmarks' header lists).
sign_get() {
    local authority=$1 path=$2 nl=$'\n' params base
    params="(\"@method\" \"@authority\" \"@path\");created=$(date +%s);keyid=\"bench\";alg=\"hmac-sha256\""
    base="\"@method\": GET$nl\"@authority\": $authority$nl\"@path\": $path$nl\"@signature-params\": $params"
    printf 'Signature-Input: sig1=%s^Signature: sig1=:%s:' "$params" \
        "$(printf '%s' "$base" | openssl dgst -sha256 -hmac "$BENCH_HMAC_KEY" -binary | openssl base64 -A)"
}

# security_chain_filters: the `[[routes.filters]]` of the benchmarks' security chain (auth by
# API key $BENCH_API_KEY as consumer `bench` → hmac-signature under the secret `bench_hmac`
# → rate-limit per consumer), for a route in a generated config; the config must define the
# secret `bench_hmac`.
security_chain_filters() {
    cat <<EOF
[[routes.filters]]
plugin = "auth.wasm"
config.api_key = { keys = [{ consumer = "bench", sha256 = "$(printf '%s' "$BENCH_API_KEY" | sha256sum | cut -d' ' -f1)" }] }

[[routes.filters]]
plugin = "hmac-signature.wasm"
grants = ["secrets:bench_hmac", "clock"]
# wrk repeats one signed request: no replay protection, a skew window longer than the run.
config = { keys = { bench = "bench_hmac" }, content_digest = "off", replay_protection = false, clock_skew_secs = 86400 }

[[routes.filters]]
plugin = "rate-limit.wasm"
grants = ["limits"]
# Keyed by the consumer auth set; high enough never to refuse during the run.
config = { limits = [{ limit = 1000000000, window = "1s" }], key = ["consumer"] }
EOF
}

# replace_section DOC NAME FILE [HEADING]: FILE's text, which runs from `<!-- NAME:begin -->`
# to `<!-- NAME:end -->`, replaces that section of DOC, or is appended (under HEADING, a
# Markdown heading line, when given).
replace_section() {
    python3 - "$@" <<'PY'
import os, re, sys
doc, name, path = sys.argv[1:4]
heading = sys.argv[4] + "\n\n" if len(sys.argv) > 4 else ""
section = open(path).read().strip()
text = open(doc).read() if os.path.exists(doc) else "# Benchmarks\n"
begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
if begin in text:
    pattern = re.escape(begin) + ".*?" + re.escape(end)
    text = re.sub(pattern, lambda _: section, text, flags=re.S)
else:
    text = text.rstrip() + "\n\n" + heading + section + "\n"
open(doc, "w").write(text)
PY
}

# The API keys of the push benchmarks' devices and business server.
DEVICE_KEY=bench-device-key
SERVER_KEY=bench-server-key

# push_routes [NAME_PREFIX]: the three push routes (connect, devices, publish), each behind
# auth.wasm with the devices' (consumer "bench") and the server's (consumer "server") keys.
push_routes() {
    local endpoint keys sha_device sha_server
    sha_device=$(printf '%s' "$DEVICE_KEY" | sha256sum | cut -d' ' -f1)
    sha_server=$(printf '%s' "$SERVER_KEY" | sha256sum | cut -d' ' -f1)
    keys="{ consumer = \"bench\", sha256 = \"$sha_device\" }, { consumer = \"server\", sha256 = \"$sha_server\" }"
    for endpoint in connect devices publish; do
        cat <<EOF

[[routes]]
name = "${1:-}$endpoint"
push = "$endpoint"
match.path_prefix = "/push/$endpoint"
[[routes.filters]]
plugin = "auth.wasm"
config.api_key = { keys = [$keys] }
EOF
    done
}
