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
