#!/usr/bin/env bash
# The cost of metrics in user-space instructions per request, counted with callgrind.
#
# Throughput runs on a shared 2-CPU machine do not resolve a few percent; instruction counts do,
# because they do not depend on how much CPU the process happened to get. For each variant (metrics
# on, then metrics off; nothing else differs) this starts Gatehouse under
# `valgrind --tool=callgrind --instr-atstart=no --separate-threads=yes` with `--workers 1`, pinned
# to CPU 1 (nginx as the upstream and wrk on CPU 0), warms it up, switches instrumentation on
# (`callgrind_control -i on`), drives it with wrk for DUR seconds, waits for the telemetry queues to
# drain, dumps the counts (`callgrind_control -d`), and divides each thread's instructions by the
# records the bus delivered in that window. The admin endpoint is read only outside the window.
#
#   BIN=target/release/gatehouse DUR=5 bash bench/callgrind.sh
#
# It also prints, for each variant that traces, the trace recorder's and store writer's instructions per
# request and per traced (sampled) request, from /admin/status's traces.requestsTraced.
#
# Knobs: BIN (default target/release/gatehouse, not rebuilt), DUR (seconds of wrk, default 5),
# CONNECTIONS (wrk -c, default 10), VARIANTS ("on off"; also "notracing": metrics on, tracing off; "bare": both off), KEEP=1 keeps the work directory with the
# callgrind.out files (for callgrind_annotate). Needs valgrind, nginx, wrk and curl.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=${BIN:-$ROOT/target/release/gatehouse}
DUR=${DUR:-5}
CONNECTIONS=${CONNECTIONS:-10}
VARIANTS=${VARIANTS:-"on off"}
REQ_PATH=/bench/hello

log() { printf '[callgrind] %s\n' "$*" >&2; }
die() { printf '[callgrind] error: %s\n' "$*" >&2; exit 1; }

PATH=$PATH:/usr/sbin
for tool in valgrind callgrind_control nginx wrk curl taskset; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool is missing (apt-get install valgrind nginx wrk curl)"
done
[[ -x $BIN ]] || die "$BIN is missing; cargo build --release -p gatehouse"

WORK=$(mktemp -d /tmp/gatehouse-callgrind.XXXXXX)
PIDS=()
cleanup() {
    [[ -s $WORK/upstream/nginx.pid ]] && kill -QUIT "$(cat "$WORK/upstream/nginx.pid")" 2>/dev/null || true
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    if [[ ${KEEP:-0} == 1 ]]; then log "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() { # prints a loopback port nothing uses
    local port
    for _ in $(seq 200); do
        port=$((20000 + RANDOM % 30000))
        if ! ss -Htan "sport = :$port" | grep -q .; then echo "$port"; return; fi
    done
    die "no free port found"
}

wait_port() { # port tries
    for _ in $(seq "${2:-100}"); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.2
    done
    die "nothing listens on 127.0.0.1:$1"
}

# ---- upstream: nginx answering 128 bytes, as in bench/run.sh --------------------------------
UPSTREAM_PORT=$(free_port)
mkdir -p "$WORK/upstream/logs"
BODY=$(head -c 128 /dev/zero | tr '\0' 'x')
cat >"$WORK/upstream.conf" <<EOF
worker_processes 1;
error_log logs/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    keepalive_requests 10000000;
    server {
        listen 127.0.0.1:$UPSTREAM_PORT;
        location / { return 200 "$BODY\n"; }
    }
}
EOF
taskset -c 0 nginx -p "$WORK/upstream" -e "$WORK/upstream/logs/error.log" -c "$WORK/upstream.conf" \
    -g "pid $WORK/upstream/nginx.pid;"
wait_port "$UPSTREAM_PORT"

cat >"$WORK/gatehouse.yaml" <<'EOF'
listeners:
  - name: bench
    bind: 127.0.0.1:${GATEHOUSE_PORT}
admin:
  bind: 127.0.0.1:${ADMIN_PORT}
  token: ${GATEHOUSE_ADMIN_TOKEN}
data_dir: ${DATA_DIR}
access_log:
  destination: file
  path: ${ACCESS_LOG}
metrics:
  enabled: ${METRICS_ENABLED}
tracing:
  enabled: ${TRACING_ENABLED}
apis:
  - name: bench
    stages:
      - name: prod
        path_prefix: ""
    routes:
      - path: /{proxy+}
        integration:
          type: http
          url: ${UPSTREAM_URL}/{proxy}
EOF
TOKEN=$(od -An -tx1 -N24 /dev/urandom | tr -d ' \n')

# Prints "queued delivered" of the access-log consumer (present in both variants).
access_log_counters() { # admin-port
    curl -sf --max-time 30 -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$1/admin/status" |
        tr '{}' '\n\n' | grep '"name":"access_log"' |
        grep -o '"\(queued\|delivered\)":[0-9]*' | sort | cut -d: -f2 | tr '\n' ' '
}

# Prints how many requests the trace recorder recorded (sampled), or 0 with tracing off.
traced_counter() { # admin-port
    curl -sf --max-time 30 -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$1/admin/status" |
        grep -o '"requestsTraced":[0-9]*' | head -1 | cut -d: -f2 | grep . || echo 0
}

# Classifies one per-thread callgrind file (written with --compress-strings=no, so every file
# names its functions in full) by the functions only that thread runs. `--workers 1` runs the
# runtime on the main thread, callgrind's thread 1.
thread_of() { # callgrind.out file
    if grep -q '^thread: 1$' "$1"; then echo "worker"
    elif grep -q 'metrics::consumer::Consumer::run' "$1"; then echo "metrics consumer"
    elif grep -q 'gatehouse_telemetry::access_log::' "$1"; then echo "access log"
    elif grep -q 'spans::recorder' "$1"; then echo "trace recorder"
    elif grep -q 'gatehouse_store::' "$1"; then echo "store writer"
    elif grep -q 'coarse_clock' "$1"; then echo "clock"
    elif grep -q 'gatehouse_alarms::' "$1"; then echo "alarm evaluator"
    else echo "other"
    fi
}

RESULTS=$WORK/results.txt
: >"$RESULTS"
for variant in $VARIANTS; do
    tracing=true
    case $variant in
        on) metrics=true ;;
        off) metrics=false ;;
        notracing) metrics=true tracing=false ;;
        bare) metrics=false tracing=false ;;
        *) die "variant $variant: on, off, notracing or bare" ;;
    esac
    dir=$WORK/$variant
    mkdir -p "$dir/data"
    port=$(free_port)
    admin=$(free_port)
    GATEHOUSE_PORT=$port ADMIN_PORT=$admin GATEHOUSE_ADMIN_TOKEN=$TOKEN DATA_DIR=$dir/data \
        METRICS_ENABLED=$metrics TRACING_ENABLED=$tracing ACCESS_LOG=$dir/access.log UPSTREAM_URL="http://127.0.0.1:$UPSTREAM_PORT" \
        GATEHOUSE_LOG=warn taskset -c 1 valgrind --tool=callgrind --instr-atstart=no \
        --separate-threads=yes --compress-strings=no --callgrind-out-file="$dir/callgrind.out.%p" \
        "$BIN" serve --config "$WORK/gatehouse.yaml" --workers 1 --shutdown-grace 1s \
        >"$dir/out.log" 2>"$dir/err.log" &
    pid=$!
    PIDS+=("$pid")
    wait_port "$port" 300
    wait_port "$admin" 300
    code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port$REQ_PATH")
    [[ $code == 200 ]] || die "GET $REQ_PATH answered $code"
    # Warm-up outside the window: pools, caches, the first minute bucket and series.
    taskset -c 0 wrk -t1 -c"$CONNECTIONS" -d2s "http://127.0.0.1:$port$REQ_PATH" >/dev/null
    sleep 1
    read -r delivered0 queued0 <<<"$(access_log_counters "$admin")"
    traced0=$(traced_counter "$admin")
    [[ $queued0 == 0 ]] || log "$variant: $queued0 records queued before the window"
    callgrind_control -i on "$pid" >/dev/null 2>&1
    out=$(taskset -c 0 wrk -t1 -c"$CONNECTIONS" -d"${DUR}s" "http://127.0.0.1:$port$REQ_PATH")
    # The consumers poll every 10 ms; under valgrind give them ample time to drain.
    sleep 2
    callgrind_control -d "$pid" >/dev/null 2>&1
    callgrind_control -i off "$pid" >/dev/null 2>&1
    read -r delivered1 queued1 <<<"$(access_log_counters "$admin")"
    traced1=$(traced_counter "$admin")
    echo "$variant $((traced1 - traced0))" >>"$WORK/traced.txt"
    [[ $queued1 == 0 ]] || log "WARNING $variant: $queued1 records still queued at the dump"
    requests=$((delivered1 - delivered0))
    wrk_requests=$(awk '/ requests in / {print $1}' <<<"$out")
    log "metrics $variant: $requests records in the window (wrk counted $wrk_requests), $((traced1 - traced0)) traced"
    kill -TERM "$pid"
    wait "$pid" || true
    for file in "$dir"/callgrind.out.*; do
        # The dump callgrind_control asked for is part 1 (callgrind.out.PID.1-THREAD); the files
        # written at exit (no part number) hold what came after it and are ignored.
        [[ $file == *.1-[0-9]* ]] || continue
        ir=$(awk '/^summary:/ { print $2; exit }' "$file")
        [[ -n $ir && $ir != 0 ]] || continue
        echo "$variant $(thread_of "$file" | tr ' ' '_') $ir $requests" >>"$RESULTS"
    done
done

# ---- table ------------------------------------------------------------------------------------
echo
echo "User-space instructions per request (callgrind), --workers 1, wrk -c$CONNECTIONS for ${DUR}s,"
echo "$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown); binary $BIN"
echo
awk -v variants="$VARIANTS" '
    { key = $1 SUBSEP $2; ir[key] += $3; n[$1] = $4; threads[$2] = 1; total[$1] += $3 }
    END {
        nv = split(variants, vs, " ")
        header = "| thread |"; rule = "|---|"
        for (v = 1; v <= nv; v++) { header = header " " vs[v] " |"; rule = rule "---:|" }
        print header; print rule
        split("worker access_log metrics_consumer trace_recorder store_writer clock alarm_evaluator other", order, " ")
        for (i = 1; i <= 8; i++) {
            t = order[i]
            if (!(t in threads)) continue
            name = t; gsub("_", " ", name)
            line = "| " name " |"
            for (v = 1; v <= nv; v++) {
                k = vs[v] SUBSEP t
                line = line " " (((k in ir) && n[vs[v]] > 0) ? sprintf("%.0f", ir[k] / n[vs[v]]) : "—") " |"
            }
            print line
        }
        line = "| total |"
        for (v = 1; v <= nv; v++) line = line " " ((n[vs[v]] > 0) ? sprintf("%.0f", total[vs[v]] / n[vs[v]]) : "—") " |"
        print line
        if (n["on"] > 0) for (v = 1; v <= nv; v++) if (vs[v] != "on" && n[vs[v]] > 0)
            printf "\non / %s: %+.2f %%\n", vs[v], (total["on"] / n["on"] / (total[vs[v]] / n[vs[v]]) - 1) * 100
    }' "$RESULTS"

# ---- per sampled request: what storing a trace costs ------------------------------------------
echo
awk 'FNR == NR { traced[$1] = $2; next }
     $2 == "trace_recorder" || $2 == "store_writer" { ir[$1] += $3; n[$1] = $4 }
     END {
        for (v in ir) if (traced[v] > 0)
            printf "%s: %d traced of %d requests; trace recorder + store writer: %.0f instructions per request, %.0f per traced request\n", v, traced[v], n[v], ir[v] / n[v], ir[v] / traced[v]
     }' "$WORK/traced.txt" "$RESULTS"
