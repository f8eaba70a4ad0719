#!/usr/bin/env bash
# Load benchmark: wrk against the demo upstream (reference), nginx as a reverse proxy,
# weir passthrough, weir + the headers filter, and weir + the security chain (auth API key,
# hmac-signature, rate-limit on the local backend), each other filter alone, and nginx and
# weir terminating TLS with the same certificate (keep-alive, and a handshake per request),
# all on loopback on this machine.
#
#   bench/load.sh                               # defaults: DURATION=10s CONNECTIONS="64 256"
#   SKIP_BUILD=1 DURATION=30s CONNECTIONS="32 128 512" IDLE_CONNECTIONS=10000 bench/load.sh
#
# Writes the results between <!-- load:begin --> and <!-- load:end --> in
# docs/benchmarks.md (creating the file if needed) and prints them.
# The nginx and weir configs are generated into a temp dir (KEEP_TMP=1 keeps it).

set -euo pipefail

DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-64 256}
THREADS=${THREADS:-2}
WARMUP=${WARMUP:-2s}
IDLE_CONNECTIONS=${IDLE_CONNECTIONS:-5000}
SKIP_BUILD=${SKIP_BUILD:-0}
KEEP_TMP=${KEEP_TMP:-0}

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WEIR=${WEIR:-"$ROOT/target/release/weir"}
PLUGINS="$ROOT/target/plugins"
DOC="$ROOT/docs/benchmarks.md"
COMMAND="DURATION=$DURATION CONNECTIONS=\"$CONNECTIONS\" IDLE_CONNECTIONS=$IDLE_CONNECTIONS bench/load.sh"
START_SECONDS=$SECONDS

NAME=load
# shellcheck source=bench/common.sh
source "$ROOT/bench/common.sh"

# --- tools ------------------------------------------------------------------------------

if ! command -v nginx >/dev/null || ! command -v wrk >/dev/null || ! command -v h2load >/dev/null; then
    log "installing nginx, wrk and h2load"
    SUDO=; [[ $(id -u) -ne 0 ]] && SUDO=sudo
    $SUDO apt-get update
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y nginx wrk nghttp2-client
fi
need curl python3 nginx wrk h2load openssl sha256sum
ensure_weir
for plugin in headers auth hmac-signature rate-limit ip-restriction request-validation bot-rules cache gray-release degradation protocol-convert; do
    [[ -f $PLUGINS/$plugin.wasm ]] || die "$PLUGINS/$plugin.wasm not found"
done

# --- ports ------------------------------------------------------------------------------

# Distinct free ports, picked by the kernel (all sockets held open until all are bound).
read -r UPSTREAM_PORT NGINX_PORT WEIR_PORT ADMIN_PORT NGINX_H2_PORT NGINX_TLS_PORT WEIR_TLS_PORT \
    OTLP_PORT < <(free_ports 8)

# One certificate for both TLS servers: ECDSA P-256, as most sites now serve.
mkdir -p "$TMP/tls"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30 \
    -subj /CN=localhost -addext 'subjectAltName=DNS:localhost,IP:127.0.0.1' \
    -keyout "$TMP/tls/key.pem" -out "$TMP/tls/cert.pem" 2> "$TMP/openssl.log" \
    || die "openssl could not make the certificate: $(cat "$TMP/openssl.log")"

# --- configs ----------------------------------------------------------------------------

mkdir -p "$TMP/nginx/logs" "$TMP/nginx/tmp"
cat > "$TMP/nginx/nginx.conf" <<EOF
daemon off;
master_process on;
worker_processes auto;
pid $TMP/nginx/nginx.pid;
error_log $TMP/nginx.log warn;

events {
    worker_connections 16384;
    multi_accept on;
}

http {
    access_log off;
$(nginx_temp_paths)
    keepalive_requests 1000000;
    keepalive_timeout 75s;

    upstream up {
        server 127.0.0.1:$UPSTREAM_PORT;
        keepalive 256;
        keepalive_requests 1000000;
    }

    server {
        listen 127.0.0.1:$NGINX_PORT;
        location / {
            proxy_pass http://up;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }

    # TLS 1.2/1.3 with the same certificate as weir's, a session cache as weir has.
    server {
        listen 127.0.0.1:$NGINX_TLS_PORT ssl;
        ssl_certificate $TMP/tls/cert.pem;
        ssl_certificate_key $TMP/tls/key.pem;
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_session_cache shared:SSL:10m;
        location / {
            proxy_pass http://up;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }

    # HTTP/2 without TLS (prior knowledge), for the h2c row.
    server {
        listen 127.0.0.1:$NGINX_H2_PORT http2;
        location / {
            proxy_pass http://up;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
EOF

# The degradation filter as the static-fallback rows run it.
DEGRADATION_STATIC='[[routes.filters]]
plugin = "degradation.wasm"
grants = ["upstreams", "clock"]
config.breaker = { window_ms = 10000, min_calls = 20, failure_rate = 0.5 }
config.fallback = { kind = "static", status = 200, body = "fallback" }
config.shedding = { class = "non-core", max_in_flight = 100000 }'
cat > "$TMP/weir-bench.toml" <<EOF
[server]
listen = ["127.0.0.1:$WEIR_PORT"]
admin = "127.0.0.1:$ADMIN_PORT"
plugins_dir = "$PLUGINS"
watch = false

# The access-log row: its route alone logs, to a file (the cost of the log on against off).
[access_log]
path = "$TMP/access.log"

# The traced row: its requests carry a sampled \`traceparent\`; no other request is sampled
# (\`sample = 0\`). Spans go to bench/otlp_sink.py.
[tracing]
otlp_endpoint = "http://127.0.0.1:$OTLP_PORT/v1/traces"
sample = 0.0
max_queue_spans = 65536
max_batch_spans = 2048

# The TLS rows: the same certificate as nginx's.
[tls]
listen = ["127.0.0.1:$WEIR_TLS_PORT"]
certificates = [{ cert_file = "$TMP/tls/cert.pem", key_file = "$TMP/tls/key.pem" }]

# The idle-connection row opens IDLE_CONNECTIONS from one address.
[server.limits]
max_connections_per_ip = 100000

[upstreams.up]
targets = ["127.0.0.1:$UPSTREAM_PORT"]

# The same server under a second name: the canary of the gray-release route.
[upstreams.up-canary]
targets = ["127.0.0.1:$UPSTREAM_PORT"]

[bulkheads.bench]
max_concurrent = 100000

# Requests with "x-bench: filtered" go through the headers filter ...
[[routes]]
name = "headers"
upstream = "up"
match = { headers = { "x-bench" = "filtered" } }

[[routes.filters]]
plugin = "headers.wasm"
config.request = { set = { "x-gateway" = "weir" } }
config.response = { set = { "x-served-by" = "weir" } }

# ... "x-bench: chain" through auth (API key) + hmac-signature (RFC 9421) + rate-limit ...
[[routes]]
name = "chain"
upstream = "up"
match = { headers = { "x-bench" = "chain" } }

$(security_chain_filters)

[secrets]
bench_hmac = { value = "$BENCH_HMAC_KEY" }

# ... the same three and degradation (breaker, static fallback, shedding): four filters ...
[[routes]]
name = "chain4"
upstream = "up"
match = { headers = { "x-bench" = "chain4" } }

$(security_chain_filters)

$DEGRADATION_STATIC

# ... a POST whose 4 KiB body hmac-signature reads and checks against its content-digest ...
[[routes]]
name = "hmac-body"
upstream = "up"
match = { headers = { "x-bench" = "hmac-body" } }

[[routes.filters]]
plugin = "hmac-signature.wasm"
grants = ["secrets:bench_hmac", "clock"]
config = { keys = { bench = "bench_hmac" }, content_digest = "when_body", replay_protection = false, clock_skew_secs = 86400 }

# ... passthrough with its requests in the access log (a file) ...
[[routes]]
name = "access-log"
upstream = "up"
access_log = true
match = { headers = { "x-bench" = "access-log" } }

# ... and each of the three alone, for its own cost.
[[routes]]
name = "auth-only"
upstream = "up"
match = { headers = { "x-bench" = "auth" } }

[[routes.filters]]
plugin = "auth.wasm"
config.api_key = { keys = [{ consumer = "bench", sha256 = "$(printf '%s' "$BENCH_API_KEY" | sha256sum | cut -d' ' -f1)" }] }

[[routes]]
name = "hmac-only"
upstream = "up"
match = { headers = { "x-bench" = "hmac" } }

[[routes.filters]]
plugin = "hmac-signature.wasm"
grants = ["secrets:bench_hmac", "clock"]
config = { keys = { bench = "bench_hmac" }, content_digest = "off", replay_protection = false, clock_skew_secs = 86400 }

[[routes]]
name = "rate-limit-only"
upstream = "up"
match = { headers = { "x-bench" = "rate-limit" } }

[[routes.filters]]
plugin = "rate-limit.wasm"
grants = ["limits"]
config = { limits = [{ limit = 1000000000, window = "1s" }] }

# ip-restriction: the client (loopback) is judged against a deny list and passes.
[[routes]]
name = "ip-restriction-only"
upstream = "up"
match = { headers = { "x-bench" = "ip-restriction" } }

[[routes.filters]]
plugin = "ip-restriction.wasm"
config = { deny = ["192.0.2.0/24", "2001:db8::/32"] }

# request-validation: a GET whose query and header are checked against typed rules.
[[routes]]
name = "request-validation-only"
upstream = "up"
match = { headers = { "x-bench" = "request-validation" } }

[[routes.filters]]
plugin = "request-validation.wasm"
config = { query = { limit = { type = "integer", minimum = 1, maximum = 100 } }, headers = { x-bench = { required = true, pattern = "^[a-z-]+$" } } }

# bot-rules: a browser-like request passes the User-Agent and header rules and a budget
# it never reaches.
[[routes]]
name = "bot-rules-only"
upstream = "up"
match = { headers = { "x-bench" = "bot-rules" } }

[[routes.filters]]
plugin = "bot-rules.wasm"
grants = ["limits", "kv"]
config = { deny_user_agents = ["^curl/"], require_headers = ["browser"], budget = { limit = 1000000000, window = "1s" }, escalation = { strikes = 5, deny_for = "1m" } }

# httpdns: a text answer of the "up" upstream's targets, served by the gateway (no upstream
# call).
[[routes]]
name = "httpdns-only"
httpdns = true
match = { headers = { "x-bench" = "httpdns" } }

# cache: /hello is stored once (ttl_ms: the upstream sends no caching fields) and every
# request after is a hit, answered without the upstream.
[[routes]]
name = "cache-hit"
upstream = "up"
match = { headers = { "x-bench" = "cache-hit" } }

[[routes.filters]]
plugin = "cache.wasm"
grants = ["cache", "clock"]
config = { ttl_ms = 3600000 }

# cache on responses it cannot store (no caching fields, no default TTL): every request
# looks the key up, goes upstream, and has its response read by the filter. A namespace of
# its own: the hit route's entry for /hello must not answer it.
[[routes]]
name = "cache-pass"
upstream = "up"
match = { headers = { "x-bench" = "cache-pass" } }

[[routes.filters]]
plugin = "cache.wasm"
grants = ["cache", "clock"]
namespace = "cache-pass"

# gray-release: the client (one loopback address) is hashed to a side at 5%; the canary is
# the same server under a second name.
[[routes]]
name = "gray-release-only"
upstream = "up"
match = { headers = { "x-bench" = "gray-release" } }

[[routes.filters]]
plugin = "gray-release.wasm"
config = { canary = "up-canary", weight = 5, sticky = "client_ip" }

# A bulkhead that is never full: the cost of taking and giving back a place.
[[routes]]
name = "bulkhead"
upstream = "up"
match = { headers = { "x-bench" = "bulkhead" } }
bulkhead = "bench"

# The degradation filter on a healthy upstream: the breaker reads the circuit and the record
# on every request, shedding reads the load; with the cache fallback, every 2xx is also
# buffered and stored through kv.
[[routes]]
name = "degradation-static"
upstream = "up"
match = { headers = { "x-bench" = "degradation" } }

$DEGRADATION_STATIC

[[routes]]
name = "degradation-cache"
upstream = "up"
match = { headers = { "x-bench" = "degradation-cache" } }

[[routes.filters]]
plugin = "degradation.wasm"
grants = ["upstreams", "clock", "kv"]
config.breaker = { window_ms = 10000, min_calls = 20, failure_rate = 0.5 }
config.fallback = { kind = "cache", ttl_ms = 60000 }

# protocol-convert: GET /users/1 becomes a JSON-RPC call of the demo's /rpc; GET /greet/bench
# a gRPC call of the demo's weir.demo.Greeter over h2c.
[[routes]]
name = "json-rpc"
upstream = "up"
match = { headers = { "x-bench" = "json-rpc" } }

[[routes.filters]]
plugin = "protocol-convert.wasm"
config.mode = "json-rpc"
config.endpoint = "/rpc"
config.mappings = [{ http = "GET /users/{id}", method = "users.get", types = { id = "integer" } }]

[upstreams.up-h2c]
targets = ["127.0.0.1:$UPSTREAM_PORT"]
protocol = "h2c"

[[routes]]
name = "grpc"
upstream = "up-h2c"
match = { headers = { "x-bench" = "grpc" } }

[[routes.filters]]
plugin = "protocol-convert.wasm"
grants = ["files:$ROOT/examples/grpc"]
config = { mode = "grpc", descriptor = "$ROOT/examples/grpc/greeter.binpb", service = "weir.demo.Greeter", rules = [{ http = "GET /greet/{name}", method = "SayHello" }] }

# ... all others are proxied with no filter.
[[routes]]
name = "passthrough"
upstream = "up"

[httpdns]
services = { "bench.weir" = "up" }
EOF

# --- servers ----------------------------------------------------------------------------

# wait_for NAME PID URL [curl args...]: until URL answers 200, the process dies, or 60 s.
wait_for() {
    local name=$1 pid=$2 url=$3; shift 3
    for _ in $(seq 600); do
        kill -0 "$pid" 2>/dev/null || die "$name exited during startup"
        if [[ $(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "$@" "$url" || true) == 200 ]]; then
            log "$name is up ($url)"
            return 0
        fi
        sleep 0.1
    done
    die "$name did not answer $url within 60 s"
}

RUST_LOG=${RUST_LOG:-warn} "$WEIR" demo-upstream "127.0.0.1:$UPSTREAM_PORT" > "$TMP/upstream.log" 2>&1 &
PIDS+=($!)
wait_for upstream "$!" "http://127.0.0.1:$UPSTREAM_PORT/hello"

nginx -e "$TMP/nginx.log" -p "$TMP/nginx" -c "$TMP/nginx/nginx.conf" > "$TMP/nginx-stdout.log" 2>&1 &
PIDS+=($!)
NGINX_PID=$!
wait_for nginx "$!" "http://127.0.0.1:$NGINX_PORT/hello"

python3 "$ROOT/bench/otlp_sink.py" "$OTLP_PORT" > "$TMP/otlp-sink.log" 2>&1 &
PIDS+=($!)
wait_for "OTLP sink" "$!" "http://127.0.0.1:$OTLP_PORT/count"

RUST_LOG=${RUST_LOG:-warn} "$WEIR" run "$TMP/weir-bench.toml" > "$TMP/weir.log" 2>&1 &
PIDS+=($!)
WEIR_PID=$!
wait_for weir "$!" "http://127.0.0.1:$WEIR_PORT/hello"

# Both TLS listeners answer over TLS with the certificate made above.
for port in "$NGINX_TLS_PORT" "$WEIR_TLS_PORT"; do
    curl -sf -o /dev/null --cacert "$TMP/tls/cert.pem" "https://127.0.0.1:$port/hello" \
        || die "no HTTPS answer on port $port"
done

# Check the routes do what the table says: the filter sets x-served-by, passthrough doesn't.
curl -sf -D - -o /dev/null -H 'x-bench: filtered' "http://127.0.0.1:$WEIR_PORT/hello" \
    | grep -qi '^x-served-by: weir' || die "weir + headers filter: no x-served-by header"
if curl -sf -D - -o /dev/null "http://127.0.0.1:$WEIR_PORT/hello" | grep -qi '^x-served-by:'; then
    die "weir passthrough: x-served-by is set, the request went through the filter"
fi

# The chain's request: an API key, and an RFC 9421 signature over method, authority and path
# (made once with openssl; the route does not check replays, so wrk may repeat it).
# The POST rows' body: 4 KiB, the same on every request (written by the wrk script below).
POST_BODY=$(head -c 4096 /dev/zero | tr '\0' 'x')
# sign_post AUTHORITY PATH: a Content-Digest (RFC 9530) of the POST body and an RFC 9421
# signature that covers it, as headers for run_wrk.
sign_post() {
    local authority=$1 path=$2 nl=$'\n' params base digest
    digest="sha-256=:$(printf '%s' "$POST_BODY" | openssl dgst -sha256 -binary | openssl base64 -A):"
    params="(\"@method\" \"@authority\" \"@path\" \"content-digest\");created=$(date +%s);keyid=\"bench\";alg=\"hmac-sha256\""
    base="\"@method\": POST$nl\"@authority\": $authority$nl\"@path\": $path$nl\"content-digest\": $digest$nl\"@signature-params\": $params"
    printf 'Content-Digest: %s^Signature-Input: sig1=%s^Signature: sig1=:%s:' "$digest" "$params" \
        "$(printf '%s' "$base" | openssl dgst -sha256 -hmac "$BENCH_HMAC_KEY" -binary | openssl base64 -A)"
}
CREDENTIALS="x-api-key: $BENCH_API_KEY^$(sign_get "127.0.0.1:$WEIR_PORT" /hello)"
CHAIN_HEADERS="x-bench: chain^$CREDENTIALS"
POST_HEADERS="x-bench: hmac-body^$(sign_post "127.0.0.1:$WEIR_PORT" /hello)"
post_args=(-X POST --data-binary "$POST_BODY")
IFS='^' read -ra post_parts <<< "$POST_HEADERS"
for h in "${post_parts[@]}"; do post_args+=(-H "$h"); done
[[ $(curl -s -o /dev/null -w '%{http_code}' "${post_args[@]}" "http://127.0.0.1:$WEIR_PORT/hello") == 200 ]] \
    || die "weir + hmac-signature (POST): a signed body with its digest was not accepted"
[[ $(curl -s -o /dev/null -w '%{http_code}' "${post_args[@]/%$POST_BODY/${POST_BODY}y}" "http://127.0.0.1:$WEIR_PORT/hello") != 200 ]] \
    || die "weir + hmac-signature (POST): a body that does not match its digest was accepted"
chain_args=()
IFS='^' read -ra chain_parts <<< "$CHAIN_HEADERS"
for h in "${chain_parts[@]}"; do chain_args+=(-H "$h"); done
curl -sf -D - -o /dev/null "${chain_args[@]}" "http://127.0.0.1:$WEIR_PORT/hello" \
    | grep -qi '^ratelimit:' || die "weir + chain: the request did not pass all three filters"
[[ $(curl -s -o /dev/null -w '%{http_code}' -H 'x-bench: chain' "http://127.0.0.1:$WEIR_PORT/hello") == 401 ]] \
    || die "weir + chain: an unauthenticated request was not refused"

# The cache route answers from the cache after the first request; the other never does.
[[ $(curl -s -D - -o /dev/null -H 'x-bench: cache-pass' "http://127.0.0.1:$WEIR_PORT/hello" | tr -d '\r' | grep -i '^x-cache:') == "x-cache: MISS" ]] \
    || die "weir + cache, nothing storable: not a miss"
# The cache route answers from the cache after the first request.
curl -sf -o /dev/null -H 'x-bench: cache-hit' "http://127.0.0.1:$WEIR_PORT/hello"
curl -sf -D - -o /dev/null -H 'x-bench: cache-hit' "http://127.0.0.1:$WEIR_PORT/hello" \
    | grep -qi '^x-cache: HIT' || die "weir + cache: the second request was not a hit"

# The access-log route writes its requests, and only it does.
curl -sf -o /dev/null -H 'x-bench: access-log' "http://127.0.0.1:$WEIR_PORT/hello"
for _ in $(seq 50); do [[ -s $TMP/access.log ]] && break; sleep 0.1; done
[[ $(wc -l < "$TMP/access.log") == 1 ]] || die "weir access log: not one line for one logged request"

# A sampled request's spans reach the collector; an unsampled one's do not.
TRACEPARENT="traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
curl -sf -o /dev/null -H "$TRACEPARENT" "http://127.0.0.1:$WEIR_PORT/hello"
for _ in $(seq 50); do [[ $(curl -s "http://127.0.0.1:$OTLP_PORT/count") != "0 0" ]] && break; sleep 0.1; done
[[ $(curl -s "http://127.0.0.1:$OTLP_PORT/count") != "0 0" ]] || die "weir tracing: no spans exported"

# The conversions answer what the demo's services answer.
[[ $(curl -sf -H 'x-bench: json-rpc' "http://127.0.0.1:$WEIR_PORT/users/1") == '{"id":1,"name":"Ada Lovelace"}' ]] \
    || die "weir + protocol-convert: GET /users/1 did not become a JSON-RPC call"
[[ $(curl -sf -H 'x-bench: grpc' "http://127.0.0.1:$WEIR_PORT/greet/bench") == '{"message":"Hello, bench!"}' ]] \
    || die "weir + protocol-convert: GET /greet/bench did not become a gRPC call"

# --- load -------------------------------------------------------------------------------

TARGETS=(
    "upstream (direct, reference)|http://127.0.0.1:$UPSTREAM_PORT/hello|"
    "nginx (reverse proxy)|http://127.0.0.1:$NGINX_PORT/hello|"
    "weir passthrough|http://127.0.0.1:$WEIR_PORT/hello|"
    "weir + headers filter|http://127.0.0.1:$WEIR_PORT/hello|x-bench: filtered"
    "weir passthrough, access log on (JSON lines to a file)|http://127.0.0.1:$WEIR_PORT/hello|x-bench: access-log"
    "weir passthrough, traced (2 spans per request over OTLP)|http://127.0.0.1:$WEIR_PORT/hello|$TRACEPARENT"
    "weir + auth (API key) alone|http://127.0.0.1:$WEIR_PORT/hello|x-bench: auth^$CREDENTIALS"
    "weir + hmac-signature alone|http://127.0.0.1:$WEIR_PORT/hello|x-bench: hmac^$CREDENTIALS"
    "weir + rate-limit alone|http://127.0.0.1:$WEIR_PORT/hello|x-bench: rate-limit^$CREDENTIALS"
    "weir + ip-restriction alone|http://127.0.0.1:$WEIR_PORT/hello|x-bench: ip-restriction"
    "weir + request-validation alone (query, header)|http://127.0.0.1:$WEIR_PORT/hello?limit=10|x-bench: request-validation"
    "weir + bot-rules alone (agent, headers, budget)|http://127.0.0.1:$WEIR_PORT/hello|x-bench: bot-rules^user-agent: Mozilla/5.0^accept: */*^accept-language: en^accept-encoding: gzip"
    "weir httpdns (text answer, no upstream call)|http://127.0.0.1:$WEIR_PORT/d?dn=bench.weir&ttl=1&clientip=1|x-bench: httpdns"
    "weir + cache, hit (no upstream)|http://127.0.0.1:$WEIR_PORT/hello|x-bench: cache-hit"
    "weir + cache, nothing storable (every request upstream)|http://127.0.0.1:$WEIR_PORT/hello|x-bench: cache-pass"
    "weir + gray-release alone|http://127.0.0.1:$WEIR_PORT/hello|x-bench: gray-release"
    "weir passthrough in a bulkhead|http://127.0.0.1:$WEIR_PORT/hello|x-bench: bulkhead"
    "weir + auth, hmac-signature, rate-limit|http://127.0.0.1:$WEIR_PORT/hello|$CHAIN_HEADERS"
    "weir + auth, hmac-signature, rate-limit, degradation|http://127.0.0.1:$WEIR_PORT/hello|x-bench: chain4^$CREDENTIALS"
    "nginx over TLS (keep-alive)|https://127.0.0.1:$NGINX_TLS_PORT/hello|"
    "weir passthrough over TLS (keep-alive)|https://127.0.0.1:$WEIR_TLS_PORT/hello|"
    "nginx over TLS, a handshake per request|https://127.0.0.1:$NGINX_TLS_PORT/hello|connection: close"
    "weir passthrough over TLS, a handshake per request|https://127.0.0.1:$WEIR_TLS_PORT/hello|connection: close"
    "nginx, POST 4 KiB|http://127.0.0.1:$NGINX_PORT/hello||$TMP/post.lua"
    "weir passthrough, POST 4 KiB|http://127.0.0.1:$WEIR_PORT/hello||$TMP/post.lua"
    "weir + hmac-signature, POST 4 KiB (body read, content-digest checked)|http://127.0.0.1:$WEIR_PORT/hello|$POST_HEADERS|$TMP/post.lua"
    "weir + degradation (breaker, static fallback, shedding)|http://127.0.0.1:$WEIR_PORT/hello|x-bench: degradation"
    "weir + degradation (breaker, cache fallback)|http://127.0.0.1:$WEIR_PORT/hello|x-bench: degradation-cache"
    "weir + protocol-convert (REST → JSON-RPC, GET /users/1)|http://127.0.0.1:$WEIR_PORT/users/1|x-bench: json-rpc"
    "weir + protocol-convert (JSON → gRPC over h2c, GET /greet/bench)|http://127.0.0.1:$WEIR_PORT/greet/bench|x-bench: grpc"
)

# to_ms VALUE: wrk's "812.00us" / "1.23ms" / "2.00s" / "1.50m" in milliseconds.
to_ms() {
    awk -v v="$1" 'BEGIN {
        if (v ~ /us$/)      { sub(/us$/, "", v); x = v / 1000 }
        else if (v ~ /ms$/) { sub(/ms$/, "", v); x = v }
        else if (v ~ /s$/)  { sub(/s$/, "", v);  x = v * 1000 }
        else if (v ~ /m$/)  { sub(/m$/, "", v);  x = v * 60000 }
        else if (v ~ /h$/)  { sub(/h$/, "", v);  x = v * 3600000 }
        else { x = -1 }
        printf "%.2f", x
    }'
}

# nginx's processes: the master and its workers.
NGINX_PIDS=("$NGINX_PID" $(pgrep -P "$NGINX_PID"))

# proxy_pids NAME: the processes whose CPU a row counts (none for the upstream alone).
proxy_pids() {
    case $1 in
        weir*) echo "$WEIR_PID" ;;
        nginx*) echo "${NGINX_PIDS[@]}" ;;
    esac
}

# A wrk script that counts, over a run, the answers that are not 2xx and those the gateway
# marked `x-weir-degraded` (a fallback, not the upstream's answer): such a row measures
# something else than its name says. It prints one line, "answers: non-2xx N degraded N".
cat > "$TMP/count.lua" <<'LUA'
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) non2xx = 0; degraded = 0 end
function response(status, headers, body)
    if status < 200 or status > 299 then non2xx = non2xx + 1 end
    for name, _ in pairs(headers) do
        if string.lower(name) == "x-weir-degraded" then degraded = degraded + 1 end
    end
end
function done(summary, latency, requests)
    local n, d = 0, 0
    for _, t in ipairs(threads) do n = n + t:get("non2xx"); d = d + t:get("degraded") end
    io.write(string.format("answers: non-2xx %d degraded %d\n", n, d))
end
LUA

# The POST rows' script: the same counts, each request a POST of the 4 KiB body.
{
    echo 'wrk.method = "POST"'
    echo "wrk.body = string.rep(\"x\", 4096)"
    cat "$TMP/count.lua"
} > "$TMP/post.lua"

# run_wrk OUT CONNS DURATION URL [HEADERS] [SCRIPT] (HEADERS separated by ^; SCRIPT is
# count.lua unless given)
run_wrk() {
    local out=$1 conns=$2 duration=$3 url=$4 headers=${5:-} script=${6:-$TMP/count.lua} h
    local args=(-t"$THREADS" -c"$conns" -d"$duration" --latency -s "$script")
    if [[ -n $headers ]]; then
        IFS='^' read -ra hs <<< "$headers"
        for h in "${hs[@]}"; do args+=(-H "$h"); done
    fi
    wrk "${args[@]}" "$url" > "$out" 2>&1 || die "wrk failed: $(cat "$out")"
}

SECTION="$TMP/section.md"
ODD=()
if REV=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null); then
    if [[ -n $(git -C "$ROOT" status --porcelain --untracked-files=no 2>/dev/null) ]]; then
        REV="$REV (with uncommitted changes)"
    fi
else
    REV=${BENCH_REV:-unknown}
fi
{
    echo "Weir commit $REV. Run on $(date -u '+%Y-%m-%d %H:%M:%S UTC'), on $(nproc) cores ($(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')), $(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo) RAM."
    echo
    echo "Command: \`$COMMAND\`, that is \`wrk -t$THREADS -c<connections> -d$DURATION --latency <url>\` per"
    echo "target after a $WARMUP warm-up run, \`GET /hello\` (34-byte text body from \`weir demo-upstream\`)."
    echo "The filtered rows add \`-H 'x-bench: filtered'\`, which routes to the \`headers.wasm\` filter"
    echo "(sets one request header and one response header). The chain rows send \`x-bench: chain\`,"
    echo "an API key and an RFC 9421 signature (hmac-sha256 over \`@method\`, \`@authority\`, \`@path\`):"
    echo "\`auth.wasm\` (API key, SHA-256 + constant-time compare) → \`hmac-signature.wasm\` (replay"
    echo "check off, since wrk repeats one request; no body) → \`rate-limit.wasm\` (token bucket keyed by"
    echo "consumer, embedded backend, RateLimit fields on the response). The \"alone\" rows send the same"
    echo "credentials to a route with just that filter (rate-limit keyed by client IP there)."
    echo "The degradation rows put \`degradation.wasm\` on a healthy upstream (the breaker reads the"
    echo "circuit and the record per request; shedding reads the load; the cache row also buffers and"
    echo "stores every 2xx through kv). The protocol-convert rows ask other URLs of the demo upstream:"
    echo "\`GET /users/1\` becomes a JSON-RPC 2.0 call of its \`/rpc\`, \`GET /greet/bench\` a unary gRPC"
    echo "call of \`weir.demo.Greeter/SayHello\` over h2c; their req/s include the demo's JSON-RPC and"
    echo "gRPC handling, so compare their proxy CPU µs/req with passthrough's for the filter's cost."
    echo "Every run counts the answers that were not 2xx and those marked \`x-weir-degraded\` (a wrk"
    echo "Lua \`response\` hook, the same cost to wrk on every row); a row with any is marked ⚠."
    echo "\"proxy CPU µs/req\" is the proxy's user + system CPU time over the run (from"
    echo "\`/proc/PID/stat\`: the weir process; nginx's master and workers) divided by the requests"
    echo "served: what one request costs the proxy, the figure that holds on a busy box."
    echo "The TLS rows terminate TLS with one ECDSA P-256 certificate (made by openssl for the run)"
    echo "in both proxies; wrk (OpenSSL) settles TLS 1.3 with the same cipher on both. The"
    echo "\"handshake per request\" rows send \`connection: close\`: each request is a new TCP"
    echo "connection and a new TLS handshake, so their req/s are handshakes/s (the same wrk client"
    echo "against both proxies, with whatever session resumption its OpenSSL attempts)."
    echo "The traced row sends a sampled \`traceparent\`: each request is a server span and a client"
    echo "span, exported over OTLP/HTTP (protobuf, batches of up to 2 048) to \`bench/otlp_sink.py\`;"
    echo "its CPU (encoding, sending) is in the weir process, the sink's is not counted."
    echo "nginx: \`worker_processes auto\`,"
    echo "upstream \`keepalive 256\`, HTTP/1.1 to the upstream, no access log. weir: release build,"
    echo "default settings (one proxy worker thread per core), \`RUST_LOG=warn\`."
    echo
    echo "wrk, nginx, weir and the upstream all share the same $(nproc) cores over loopback, so the"
    echo "numbers compare the proxies with each other on this machine; they are not absolute capacity."
    echo "The upstream row is wrk against the upstream with no proxy, for reference."
} > "$SECTION"

for conns in $CONNECTIONS; do
    declare -A RPS=() P50=() P99=() ERR=() CPU=() MARK=()
    for entry in "${TARGETS[@]}"; do
        IFS='|' read -r name url header script <<< "$entry"
        log "c=$conns: $name (warm-up $WARMUP, then $DURATION)"
        run_wrk "$TMP/warmup.txt" "$conns" "$WARMUP" "$url" "$header" "$script"
        out="$TMP/wrk-c$conns-$(echo "$name" | tr -c 'a-z0-9' '-').txt"
        read -ra pids <<< "$(proxy_pids "$name")"
        cpu_before=$(cpu_ticks "${pids[@]}")
        run_wrk "$out" "$conns" "$DURATION" "$url" "$header" "$script"
        cpu_after=$(cpu_ticks "${pids[@]}")
        RPS[$name]=$(awk '/^Requests\/sec:/ { print $2 }' "$out")
        P50[$name]=$(to_ms "$(awk '$1 == "50%" { print $2 }' "$out")")
        P99[$name]=$(to_ms "$(awk '$1 == "99%" { print $2 }' "$out")")
        read -r non2xx degraded < <(awk '/^answers:/ { print $3, $5 }' "$out")
        [[ -n $non2xx && -n $degraded ]] || die "no answer counts in wrk output: $(cat "$out")"
        socket=$(grep -o 'Socket errors:.*' "$out" | sed 's/^Socket errors: *//' || true)
        errors=()
        [[ $non2xx -gt 0 ]] && errors+=("non-2xx $non2xx")
        [[ $degraded -gt 0 ]] && errors+=("x-weir-degraded $degraded")
        [[ -n $socket ]] && errors+=("socket: $socket")
        if [[ ${#errors[@]} -gt 0 ]]; then
            ERR[$name]="**not all valid**: $(IFS=';'; echo "${errors[*]}" | sed 's/;/; /g')"
            MARK[$name]=" ⚠"
            ODD+=("c=$conns $name: ${ERR[$name]}")
        else
            ERR[$name]=none
            MARK[$name]=""
        fi
        [[ -n ${RPS[$name]} ]] || die "could not parse wrk output: $(cat "$out")"
        requests=$(awk '/requests in/ { print $1 }' "$out")
        if [[ ${#pids[@]} -gt 0 ]]; then
            CPU[$name]=$(awk -v a="$cpu_after" -v b="$cpu_before" -v hz="$(getconf CLK_TCK)" -v n="$requests" \
                'BEGIN { printf "%.1f", (a - b) / hz * 1e6 / n }')
        else
            CPU[$name]="–"
        fi
    done
    nginx_rps=${RPS["nginx (reverse proxy)"]}
    pass_rps=${RPS["weir passthrough"]}
    {
        echo
        echo "### $conns connections"
        echo
        echo "| target | req/s | p50 (ms) | p99 (ms) | req/s vs nginx | vs passthrough | proxy CPU µs/req | errors |"
        echo "|---|---:|---:|---:|---:|---:|---:|---|"
        for entry in "${TARGETS[@]}"; do
            IFS='|' read -r name _ _ <<< "$entry"
            ratio=$(awk -v a="${RPS[$name]}" -v b="$nginx_rps" 'BEGIN { printf "%.2f×", a / b }')
            vs_pass=$(awk -v a="${RPS[$name]}" -v b="$pass_rps" 'BEGIN { printf "%.2f×", a / b }')
            rps=$(awk -v a="${RPS[$name]}" 'BEGIN { printf "%.0f", a }')
            echo "| $name${MARK[$name]} | $rps | ${P50[$name]} | ${P99[$name]} | $ratio | $vs_pass | ${CPU[$name]} | ${ERR[$name]} |"
        done
    } >> "$SECTION"
    unset RPS P50 P99 ERR CPU MARK
done

# h2c downstream: h2load (prior knowledge, one stream at a time per connection) against
# nginx's http2 listener and weir's (which sniffs the HTTP/2 preface), both proxying to the
# upstream over HTTP/1.1.
{
    echo
    echo "### h2c downstream (\`h2load -t$THREADS -c64 -m1 -D${DURATION%s}\`)"
    echo
    echo "| target | req/s | req/s vs nginx | proxy CPU µs/req | errors |"
    echo "|---|---:|---:|---:|---|"
} >> "$SECTION"
declare -A H2_RPS
for entry in "nginx (reverse proxy)|$NGINX_H2_PORT" "weir passthrough|$WEIR_PORT"; do
    IFS='|' read -r name port <<< "$entry"
    log "h2c: $name"
    h2load -t"$THREADS" -c64 -m1 -D"${WARMUP%s}" "http://127.0.0.1:$port/hello" > "$TMP/h2-warmup.txt" 2>&1 \
        || die "h2load failed: $(cat "$TMP/h2-warmup.txt")"
    read -ra pids <<< "$(proxy_pids "$name")"
    cpu_before=$(cpu_ticks "${pids[@]}")
    h2load -t"$THREADS" -c64 -m1 -D"${DURATION%s}" "http://127.0.0.1:$port/hello" > "$TMP/h2.txt" 2>&1 \
        || die "h2load failed: $(cat "$TMP/h2.txt")"
    cpu_after=$(cpu_ticks "${pids[@]}")
    H2_RPS[$name]=$(awk '/^finished in/ { print $4 }' "$TMP/h2.txt")
    read -r done ok < <(awk '/^requests:/ { print $6, $8 }' "$TMP/h2.txt")
    [[ -n ${H2_RPS[$name]} && -n $done ]] || die "could not parse h2load output: $(cat "$TMP/h2.txt")"
    cpu=$(awk -v a="$cpu_after" -v b="$cpu_before" -v hz="$(getconf CLK_TCK)" -v n="$done" \
        'BEGIN { printf "%.1f", (a - b) / hz * 1e6 / n }')
    errors=none
    [[ $ok == "$done" ]] || { errors="**not all valid**: $((done - ok)) of $done failed"; ODD+=("h2c $name: $errors"); }
    ratio=$(awk -v a="${H2_RPS[$name]}" -v b="${H2_RPS["nginx (reverse proxy)"]}" 'BEGIN { printf "%.2f×", a / b }')
    printf '| %s | %.0f | %s | %s | %s |\n' "$name" "${H2_RPS[$name]}" "$ratio" "$cpu" "$errors" >> "$SECTION"
done

# Memory per idle keep-alive connection: IDLE_CONNECTIONS connections, one request each,
# then silent; the growth of the proxy's resident memory (nginx: master and workers).
{
    echo
    echo "### Memory per idle keep-alive connection"
    echo
    echo "\`bench/idle_driver.py\`: $IDLE_CONNECTIONS HTTP/1.1 connections, one \`GET /hello\` each, then left"
    echo "open and silent; the proxy's resident memory (RSS) before and after, per connection."
    echo
    echo "| proxy | RSS before (MB) | RSS with the idle connections (MB) | KB per idle connection |"
    echo "|---|---:|---:|---:|"
    for proxy in nginx weir; do
        if [[ $proxy == nginx ]]; then port=$NGINX_PORT; else port=$WEIR_PORT; fi
        read -ra pids <<< "$(proxy_pids "$proxy")"
        log "idle connections: $proxy ($IDLE_CONNECTIONS)"
        read -r _ before after per < <(python3 "$ROOT/bench/idle_driver.py" 127.0.0.1 "$port" /hello \
            "$IDLE_CONNECTIONS" "${pids[@]}") || die "idle connections to $proxy failed"
        awk -v p="$proxy" -v b="$before" -v a="$after" -v k="$per" \
            'BEGIN { printf "| %s | %.1f | %.1f | %.1f |\n", p, b / 1024, a / 1024, k }'
    done
} >> "$SECTION"

# What became of the traced row's spans: exported, or lost (dropped at a full queue, or a
# failed export), which would make that row cheaper than it is.
SPANS=$(curl -s "http://127.0.0.1:$ADMIN_PORT/metrics" \
    | awk '/^weir_trace_spans_[a-z]+_total / { sub(/^weir_trace_spans_/, "", $1); sub(/_total$/, "", $1); printf "%s %s, ", $1, $2 }')
read -r EXPORTS _ < <(curl -s "http://127.0.0.1:$OTLP_PORT/count")
{
    echo
    echo "Spans of the traced rows: ${SPANS%, } (the sink took $EXPORTS exports)."
} >> "$SECTION"
if grep -Eq '(dropped|failed) [1-9]' <<< "$SPANS"; then
    ODD+=("spans lost in the traced rows: ${SPANS%, }")
fi

# Anything the servers logged at warn or above during the run is worth a look.
for f in upstream weir nginx; do
    [[ -f $TMP/$f.log ]] || continue
    # (tracing colours its output even into a file; strip the escapes.)
    sed -i 's/\x1b\[[0-9;]*m//g' "$TMP/$f.log"
    n=$(grep -ciE 'warn|error|emerg|crit|alert' "$TMP/$f.log" || true)
    if [[ ${n:-0} -gt 0 ]]; then
        ODD+=("$f logged $n warning/error lines, e.g.: \`$(grep -m1 -iE 'warn|error|emerg|crit|alert' "$TMP/$f.log" | cut -c1-300)\`")
    fi
done

{
    echo
    if [[ ${#ODD[@]} -gt 0 ]]; then
        echo "Errors seen (non-2xx and \`x-weir-degraded\` answers, socket errors, server logs); a"
        echo "row marked ⚠ counts answers that were errors or fallbacks, so its figures are not the"
        echo "cost of the path it names:"
        for line in "${ODD[@]}"; do echo "- $line"; done
    else
        echo "No non-2xx or \`x-weir-degraded\` answers, no socket errors, and no warnings in the server"
        echo "logs: every row counts the path it names."
    fi
    echo
    echo "The whole script took $((SECONDS - START_SECONDS)) s."
} >> "$SECTION"

# --- docs/benchmarks.md -----------------------------------------------------------------

mkdir -p "$(dirname "$DOC")"
python3 - "$DOC" "$SECTION" <<'EOF'
import os, sys
doc, section = sys.argv[1], open(sys.argv[2]).read().strip("\n")
begin, end = "<!-- load:begin -->", "<!-- load:end -->"
block = f"{begin}\n{section}\n{end}"
if os.path.exists(doc):
    text = open(doc).read()
    i, j = text.find(begin), text.find(end)
    if i != -1 and j > i:
        text = text[:i] + block + text[j + len(end):]
    else:
        text = text.rstrip("\n") + "\n\n## Load\n\n" + block + "\n"
else:
    text = ("# Benchmarks\n\n"
            "Measured with the scripts in `bench/`; rerun them to refresh the sections below.\n\n"
            "## Load (`bench/load.sh`)\n\n" + block + "\n")
open(doc, "w").write(text)
EOF
log "wrote $DOC"

cat "$SECTION"
