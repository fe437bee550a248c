#!/usr/bin/env bash
# Gatehouse vs nginx as a reverse proxy, measured side by side in one run.
#
# Starts a fast upstream (nginx answering `return 200` from its own worker), nginx configured as an
# equal reverse proxy (one worker, keep-alive pool to the upstream, JSON access log on) and
# Gatehouse (access log on; --workers 1 with metrics on and with metrics off, --workers 2), then
# measures each target with wrk (HTTP/1.1) and h2load (HTTP/2 cleartext, prior knowledge), in rounds
# that alternate the targets. Prints requests/s, p50 and p99 (the median over the rounds), the
# ratios Gatehouse/nginx and, when both --workers 1 variants ran, the cost of metrics (on/off).
# BENCH_SUITE=metrics runs just that comparison (plus nginx for reference) with more rounds;
# BENCH_SUITE=logs compares the access log written to the embedded log store with a file;
# BENCH_SUITE=tracing compares tracing at its default sampling with tracing off.
# See bench/README.md for the knobs; everything it starts is stopped on exit.
set -euo pipefail

# ---- knobs (environment) ----------------------------------------------------------------------
SUITE=${BENCH_SUITE:-full}                # full: every target; metrics: metrics on vs off (+ nginx)
case $SUITE in
    full) DEFAULT_TARGETS="direct nginx gatehouse-w1 gatehouse-w1-nometrics gatehouse-w2"; DEFAULT_ROUNDS=3 ;;
    metrics) DEFAULT_TARGETS="nginx gatehouse-w1 gatehouse-w1-nometrics"; DEFAULT_ROUNDS=5 ;;
    logs) DEFAULT_TARGETS="nginx gatehouse-w1 gatehouse-w1-logstore"; DEFAULT_ROUNDS=5 ;;
    tracing) DEFAULT_TARGETS="nginx gatehouse-w1 gatehouse-w1-notracing"; DEFAULT_ROUNDS=5 ;;
    *) printf '[bench] error: BENCH_SUITE must be full, metrics, logs or tracing, not %s\n' "$SUITE" >&2; exit 1 ;;
esac
DURATION=${BENCH_DURATION:-10}            # seconds per measured run
WARMUP=${BENCH_WARMUP:-2}                 # seconds of warm-up per target and protocol (round 1 only)
ROUNDS=${BENCH_ROUNDS:-$DEFAULT_ROUNDS}   # rounds; each round runs every target once, order rotated
CONNECTIONS=${BENCH_CONNECTIONS:-50}      # wrk connections
WRK_THREADS=${BENCH_WRK_THREADS:-1}
H2_CLIENTS=${BENCH_H2_CLIENTS:-10}        # h2load connections
H2_STREAMS=${BENCH_H2_STREAMS:-10}        # h2load max concurrent streams per connection
REQ_PATH=${BENCH_PATH:-/bench/hello}      # path requested (exercises the greedy {proxy+} route)
BODY_BYTES=${BENCH_BODY_BYTES:-128}       # size of the upstream's response body
PROTOCOLS=${BENCH_PROTOCOLS:-"h1 h2"}     # h1 (wrk), h2 (h2load)
TARGETS=${BENCH_TARGETS:-$DEFAULT_TARGETS}
PIN=${BENCH_PIN:-1}                       # 1: proxies on CPU 1, load generator + upstream on CPU 0
SKIP_BUILD=${BENCH_SKIP_BUILD:-0}
GATEHOUSE_BIN=${GATEHOUSE_BIN:-}          # use this binary instead of building target/release/gatehouse
BIN_NOTE=${GATEHOUSE_BIN:+"; binary $GATEHOUSE_BIN"}  # the commit printed is the work tree's, not the binary's

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

log() { printf '[bench] %s\n' "$*" >&2; }
die() { printf '[bench] error: %s\n' "$*" >&2; exit 1; }

# ---- tools ------------------------------------------------------------------------------------
ensure_tools() {
    local missing=()
    command -v nginx >/dev/null 2>&1 || [[ -x /usr/sbin/nginx ]] || missing+=(nginx)
    command -v wrk >/dev/null 2>&1 || missing+=(wrk)
    command -v h2load >/dev/null 2>&1 || missing+=(nghttp2-client)
    command -v curl >/dev/null 2>&1 || missing+=(curl)
    if ((${#missing[@]})); then
        log "installing ${missing[*]}"
        local sudo=()
        [[ $(id -u) -eq 0 ]] || sudo=(sudo)
        "${sudo[@]}" apt-get update -qq
        DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    fi
    PATH=$PATH:/usr/sbin
    command -v taskset >/dev/null 2>&1 || { log "taskset not found; running unpinned"; PIN=0; }
    if [[ $PIN == 1 && $(nproc) -lt 2 ]]; then log "fewer than 2 CPUs; running unpinned"; PIN=0; fi
}

# ---- processes --------------------------------------------------------------------------------
WORK=$(mktemp -d /tmp/gatehouse-bench.XXXXXX)
PIDS=()
NGINX_PIDFILES=()
cleanup() {
    local pid pidfile
    for pidfile in "${NGINX_PIDFILES[@]}"; do
        [[ -s $pidfile ]] && kill -QUIT "$(cat "$pidfile")" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    sleep 0.3
    for pidfile in "${NGINX_PIDFILES[@]}"; do
        [[ -s $pidfile ]] && kill -KILL "$(cat "$pidfile")" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
    if [[ ${BENCH_KEEP:-0} == 1 ]]; then log "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Pinning: the proxy under test gets CPU 1 to itself; wrk/h2load and the upstream share CPU 0.
pin_proxy() { if [[ $PIN == 1 ]]; then echo "taskset -c 1"; fi; }
pin_load() { if [[ $PIN == 1 ]]; then echo "taskset -c 0"; fi; }

USED_PORTS=" "
free_port() { # variable: set to a loopback port nothing listens on and not handed out before
    local port
    for _ in $(seq 200); do
        port=$((20000 + RANDOM % 30000))
        [[ $USED_PORTS == *" $port "* ]] && continue
        # Any TCP socket on the port, not only a listener: the range overlaps the ephemeral ports.
        if ! ss -Htan "sport = :$port" | grep -q .; then
            USED_PORTS+="$port "
            printf -v "$1" '%s' "$port"
            return
        fi
    done
    die "no free port found"
}

wait_port() { # port
    for _ in $(seq 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.1
    done
    die "nothing listens on 127.0.0.1:$1"
}

nginx_start() { # name conf cpu-prefix...
    local name=$1 conf=$2
    shift 2
    mkdir -p "$WORK/$name/logs"
    NGINX_PIDFILES+=("$WORK/$name/nginx.pid")
    "$@" nginx -p "$WORK/$name" -e "$WORK/$name/logs/error.log" -c "$conf" -g "pid $WORK/$name/nginx.pid;" ||
        die "nginx '$name' did not start; see $WORK/$name/logs/error.log"
}

write_upstream_conf() {
    local body
    body=$(head -c "$BODY_BYTES" /dev/zero | tr '\0' 'x')
    cat >"$WORK/upstream.conf" <<EOF
worker_processes 1;
error_log logs/error.log warn;
events { worker_connections 4096; multi_accept on; }
http {
    access_log off;
    keepalive_requests 10000000;
    keepalive_timeout 120s;
    http2_max_concurrent_streams 256;
    server {
        listen 127.0.0.1:$UPSTREAM_PORT reuseport backlog=4096;
        listen 127.0.0.1:$UPSTREAM_H2_PORT http2 backlog=4096;
        default_type text/plain;
        location / { return 200 "$body\n"; }
    }
}
EOF
}

# The access log carries roughly what Gatehouse's JSON line carries, is JSON-escaped the same way
# and is buffered in memory (Gatehouse: a 64 KiB BufWriter on its own thread).
write_nginx_conf() {
    cat >"$WORK/nginx.conf" <<EOF
worker_processes 1;
error_log logs/error.log warn;
events { worker_connections 4096; multi_accept on; }
http {
    log_format gatehouse_like escape=json '{"requestId":"\$request_id","time":"\$time_iso8601",'
        '"requestTimeEpoch":\$msec,"kind":"http","ip":"\$remote_addr","method":"\$request_method",'
        '"host":"\$host","path":"\$uri","protocol":"\$server_protocol","status":\$status,'
        '"bytesIn":\$request_length,"bytesOut":\$bytes_sent,"latencyMs":\$request_time,'
        '"integrationLatencyMs":"\$upstream_response_time","integrationStatus":"\$upstream_status",'
        '"userAgent":"\$http_user_agent"}';
    access_log $WORK/nginx-access.log gatehouse_like buffer=64k flush=1s;
    keepalive_requests 10000000;
    keepalive_timeout 120s;
    http2_max_concurrent_streams 256;
    upstream backend {
        server 127.0.0.1:$UPSTREAM_PORT;
        keepalive 256;
        keepalive_requests 10000000;
        keepalive_timeout 120s;
    }
    server {
        listen 127.0.0.1:$NGINX_PORT backlog=4096;
        listen 127.0.0.1:$NGINX_H2_PORT http2 backlog=4096;
        location / {
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            # What Gatehouse adds on the way up and down.
            proxy_set_header X-Request-Id \$request_id;
            proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto \$scheme;
            proxy_set_header X-Forwarded-Host \$host;
            proxy_set_header Forwarded "for=\$remote_addr;proto=\$scheme;host=\\"\$host\\"";
            add_header X-Request-Id \$request_id always;
        }
    }
}
EOF
}

# One file for every instance; what differs (ports, files, metrics on or off) comes from the
# environment of each process. Every instance has the access log on, its own data_dir (the metrics
# store) and an admin endpoint, used between runs only: to wait for the telemetry queues to drain
# before reading the CPU time, and to count dropped records. Idle, it costs nothing per request.
write_gatehouse_conf() {
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
apis:
  - name: bench
    stages:
      - name: prod
        path_prefix: ""
    routes:
      - path: /
        integration:
          type: http
          url: ${UPSTREAM_URL}/
      - path: /{proxy+}
        integration:
          type: http
          url: ${UPSTREAM_URL}/{proxy}
EOF
    # The same with the access log going to the embedded log store instead of a file.
    sed 's|^  destination: file$|  destinations: [store]|; /^  path: \${ACCESS_LOG}$/d' \
        "$WORK/gatehouse.yaml" >"$WORK/gatehouse-logstore.yaml"
    # The same with tracing off (no trace context, no sampling, no spans).
    { cat "$WORK/gatehouse.yaml"; printf 'tracing:\n  enabled: false\n'; } >"$WORK/gatehouse-notracing.yaml"
}

# The Gatehouse targets: name -> "workers metrics variant", the variant naming the config:
# file (gatehouse.yaml: access log to a file, tracing at default sampling), store (the access log
# to the log store), notracing (tracing off).
declare -A GH_SPEC=(
    [gatehouse-w1]="1 true file"
    [gatehouse-w1-nometrics]="1 false file"
    [gatehouse-w1-logstore]="1 true store"
    [gatehouse-w1-notracing]="1 true notracing"
    [gatehouse-w2]="2 true file"
)
declare -A GH_PORT GH_ADMIN GH_PID
ADMIN_TOKEN=$(od -An -tx1 -N24 /dev/urandom | tr -d ' \n')

gatehouse_start() { # name
    local name=$1 workers metrics log config cpus=()
    read -r workers metrics log <<<"${GH_SPEC[$name]}"
    config="$WORK/gatehouse.yaml"
    [[ $log == store ]] && config="$WORK/gatehouse-logstore.yaml"
    [[ $log == notracing ]] && config="$WORK/gatehouse-notracing.yaml"
    if [[ $PIN == 1 ]]; then
        # One worker gets CPU 1 like nginx's one worker; two workers get both CPUs. Every thread of
        # the process (access-log writer, metrics consumer, store writer) shares those CPUs.
        if ((workers == 1)); then cpus=(taskset -c 1); else cpus=(taskset -c 0,1); fi
    fi
    free_port "GH_PORT[$name]"
    free_port "GH_ADMIN[$name]"
    mkdir -p "$WORK/$name/data"
    GATEHOUSE_PORT=${GH_PORT[$name]} ADMIN_PORT=${GH_ADMIN[$name]} GATEHOUSE_ADMIN_TOKEN=$ADMIN_TOKEN \
        DATA_DIR="$WORK/$name/data" METRICS_ENABLED=$metrics ACCESS_LOG="$WORK/$name-access.log" \
        UPSTREAM_URL="http://127.0.0.1:$UPSTREAM_PORT" \
        GATEHOUSE_LOG=warn "${cpus[@]}" "$GATEHOUSE_BIN" serve --config "$config" \
        --workers "$workers" --shutdown-grace 1s >"$WORK/$name.out" 2>"$WORK/$name.err" &
    PIDS+=($!)
    GH_PID[$name]=$!
}

admin_get() { # name path
    curl -sf --max-time 5 -H "Authorization: Bearer $ADMIN_TOKEN" "http://127.0.0.1:${GH_ADMIN[$1]}$2"
}

# Prints "queued dropped delivered", summed over the telemetry consumers of a Gatehouse instance.
telemetry_counters() { # name
    admin_get "$1" /admin/status | grep -o '"\(queued\|dropped\|delivered\)":[0-9]*' |
        awk -F: '{ s[$1] += $2 } END { printf "%d %d %d\n", s["\"queued\""], s["\"dropped\""], s["\"delivered\""] }'
}

# Waits (up to 3 s) until the consumers have taken everything published, so that the CPU time read
# next includes the access-log and metrics work for every request of the run.
wait_drained() { # name
    local queued
    for _ in $(seq 60); do
        read -r queued _ _ <<<"$(telemetry_counters "$1")"
        [[ $queued == 0 ]] && return 0
        sleep 0.05
    done
    log "$1: $queued telemetry records still queued 3 s after the run"
}

# ---- measuring --------------------------------------------------------------------------------
# Prints "rps p50_ms p99_ms" for one bounded run.
to_ms() { # wrk latency such as 512.00us, 1.23ms, 1.01s
    awk -v v="$1" 'BEGIN {
        if (v ~ /us$/) { sub(/us$/, "", v); printf "%.3f", v / 1000 }
        else if (v ~ /ms$/) { sub(/ms$/, "", v); printf "%.3f", v }
        else if (v ~ /m$/) { sub(/m$/, "", v); printf "%.3f", v * 60000 }
        else { sub(/s$/, "", v); printf "%.3f", v * 1000 }
    }'
}

run_wrk() { # port seconds
    local out
    # shellcheck disable=SC2046
    out=$(timeout $(($2 + 30)) $(pin_load) wrk -t"$WRK_THREADS" -c"$CONNECTIONS" -d"$2s" --latency \
        "http://127.0.0.1:$1$REQ_PATH") || die "wrk failed against port $1"
    if grep -q 'Non-2xx\|Socket errors' <<<"$out"; then
        log "wrk reported errors against port $1:"; grep 'Non-2xx\|Socket errors' <<<"$out" >&2
    fi
    local rps p50 p99 count
    rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
    p50=$(to_ms "$(awk '$1 == "50%" {print $2}' <<<"$out")")
    p99=$(to_ms "$(awk '$1 == "99%" {print $2}' <<<"$out")")
    count=$(awk '/ requests in / {print $1}' <<<"$out")
    echo "$rps $p50 $p99 $count"
}

run_h2load() { # port seconds
    local out logfile="$WORK/h2load.log"
    rm -f "$logfile"
    # shellcheck disable=SC2046
    out=$(timeout $(($2 + 30)) $(pin_load) h2load -t1 -c"$H2_CLIENTS" -m"$H2_STREAMS" -D "$2" \
        --log-file="$logfile" "http://127.0.0.1:$1$REQ_PATH") || die "h2load failed against port $1"
    local failed rps count
    failed=$(awk '/^requests:/ {print $10 + $12}' <<<"$out")   # failed + errored
    count=$(awk '/^requests:/ {print $6}' <<<"$out")           # done
    [[ ${failed:-0} == 0 ]] || log "h2load: $failed failed/errored requests against port $1"
    rps=$(awk '/^finished in/ {for (i = 1; i <= NF; i++) if ($i == "req/s,") print $(i - 1)}' <<<"$out")
    # Column 3 of the log is the time to the end of the response in microseconds.
    local pcts
    pcts=$(cut -f3 "$logfile" | sort -n | awk '{ v[NR] = $1 } END {
        if (NR == 0) { print "nan nan"; exit }
        i50 = int(NR * 0.50); if (i50 < 1) i50 = 1
        i99 = int(NR * 0.99); if (i99 < 1) i99 = 1
        printf "%.3f %.3f", v[i50] / 1000, v[i99] / 1000 }')
    echo "$rps $pcts $count"
}

port_of() { # target protocol
    case "$1:$2" in
        direct:h1) echo "$UPSTREAM_PORT" ;;
        direct:h2) echo "$UPSTREAM_H2_PORT" ;;
        nginx:h1) echo "$NGINX_PORT" ;;
        nginx:h2) echo "$NGINX_H2_PORT" ;;
        gatehouse-*:*) echo "${GH_PORT[$1]}" ;;
        *) die "unknown target $1" ;;
    esac
}

pid_of() { # target: the process that does the target's work
    case "$1" in
        direct) pgrep -P "$(cat "$WORK/upstream/nginx.pid")" | head -1 ;;
        nginx) pgrep -P "$(cat "$WORK/nginx/nginx.pid")" | head -1 ;;
        gatehouse-*) echo "${GH_PID[$1]}" ;;
    esac
}

cpu_ticks() { # pid: user + system time of all its threads, in clock ticks
    awk '{ print $14 + $15 }' "/proc/$1/stat"
}

# Prints "rps p50_ms p99_ms cpu_us_per_request dropped" (dropped: telemetry records a Gatehouse
# target dropped during the run, "-" for the others).
measure() { # target protocol seconds
    local port pid before after rps p50 p99 count gatehouse=0 dropped0 dropped1 dropped=-
    port=$(port_of "$1" "$2")
    pid=$(pid_of "$1")
    if [[ $1 == gatehouse-* ]]; then
        gatehouse=1
        wait_drained "$1"
        read -r _ dropped0 _ <<<"$(telemetry_counters "$1")"
    fi
    before=$(cpu_ticks "$pid")
    if [[ $2 == h1 ]]; then
        read -r rps p50 p99 count <<<"$(run_wrk "$port" "$3")"
    else
        read -r rps p50 p99 count <<<"$(run_h2load "$port" "$3")"
    fi
    if ((gatehouse)); then wait_drained "$1"; fi
    after=$(cpu_ticks "$pid")
    if ((gatehouse)); then
        read -r _ dropped1 _ <<<"$(telemetry_counters "$1")"
        dropped=$((dropped1 - dropped0))
    fi
    awk -v r="$rps" -v a="$p50" -v b="$p99" -v n="$count" -v t0="$before" -v t1="$after" -v hz="$CLK_TCK" -v d="$dropped" \
        'BEGIN { printf "%s %s %s %.1f %s\n", r, a, b, (n > 0 ? (t1 - t0) / hz * 1e6 / n : 0), d }'
}

median() { sort -g | awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)]; else print "nan" }'; }

# ---- main -------------------------------------------------------------------------------------
read -r -a targets <<<"$TARGETS"
read -r -a protocols <<<"$PROTOCOLS"
GH_TARGETS=()
for target in "${targets[@]}"; do
    case $target in
        direct | nginx) ;;
        *) [[ -n ${GH_SPEC[$target]:-} ]] || die "unknown target $target (known: direct nginx ${!GH_SPEC[*]})"
           GH_TARGETS+=("$target") ;;
    esac
done
for protocol in "${protocols[@]}"; do
    [[ $protocol == h1 || $protocol == h2 ]] || die "unknown protocol $protocol (known: h1 h2)"
done

ensure_tools
if [[ -z $GATEHOUSE_BIN ]]; then
    GATEHOUSE_BIN=$ROOT/target/release/gatehouse
    if [[ $SKIP_BUILD != 1 ]]; then
        log "building the release binary"
        (cd "$ROOT" && cargo build --release -q -p gatehouse)
    fi
fi
[[ -x $GATEHOUSE_BIN ]] || die "$GATEHOUSE_BIN is missing (build it or set GATEHOUSE_BIN)"

for name in UPSTREAM_PORT UPSTREAM_H2_PORT NGINX_PORT NGINX_H2_PORT; do
    free_port "$name"
done

write_upstream_conf
write_nginx_conf
write_gatehouse_conf
# shellcheck disable=SC2046
nginx_start upstream "$WORK/upstream.conf" $(pin_load)
# shellcheck disable=SC2046
nginx_start nginx "$WORK/nginx.conf" $(pin_proxy)
# Only the Gatehouse instances being measured run (an idle one still polls its queues).
for name in "${GH_TARGETS[@]}"; do gatehouse_start "$name"; done
ports=("$UPSTREAM_PORT" "$UPSTREAM_H2_PORT" "$NGINX_PORT" "$NGINX_H2_PORT")
for name in "${GH_TARGETS[@]}"; do ports+=("${GH_PORT[$name]}" "${GH_ADMIN[$name]}"); done
for port in "${ports[@]}"; do wait_port "$port"; done
ports=("$NGINX_PORT" "$UPSTREAM_PORT")
for name in "${GH_TARGETS[@]}"; do ports+=("${GH_PORT[$name]}"); done
for port in "${ports[@]}"; do
    code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port$REQ_PATH")
    [[ $code == 200 ]] || die "GET $REQ_PATH on port $port answered $code"
done
# Metrics really are on where they should be, and off where they should not.
for name in "${GH_TARGETS[@]}"; do
    read -r _ metrics _ <<<"${GH_SPEC[$name]}"
    if admin_get "$name" /metrics >/dev/null; then on=true; else on=false; fi
    [[ $on == "$metrics" ]] || die "$name: metrics enabled is $on, expected $metrics"
done

CLK_TCK=$(getconf CLK_TCK)
COMMIT=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
DIRTY=$(git -C "$ROOT" status --porcelain --untracked-files=no 2>/dev/null | grep -q . && echo "+dirty" || true)
log "commit $COMMIT$DIRTY$BIN_NOTE; suite $SUITE; ${ROUNDS} rounds x ${DURATION}s; pin=$PIN; targets: $TARGETS; protocols: $PROTOCOLS"
log "wrk -t$WRK_THREADS -c$CONNECTIONS; h2load -t1 -c$H2_CLIENTS -m$H2_STREAMS; path $REQ_PATH; body $BODY_BYTES B"

RESULTS=$WORK/results.txt
: >"$RESULTS"
for round in $(seq "$ROUNDS"); do
    for protocol in "${protocols[@]}"; do
        # Rotate the order each round so no target always runs first or last.
        n=${#targets[@]}
        for ((k = 0; k < n; k++)); do
            target=${targets[$(((k + round - 1) % n))]}
            if ((round == 1 && WARMUP > 0)); then measure "$target" "$protocol" "$WARMUP" >/dev/null; fi
            line=$(measure "$target" "$protocol" "$DURATION")
            read -r rps p50 p99 cpu dropped <<<"$line"
            log "round $round $protocol $(printf '%-22s' "$target") ${rps} req/s  p50 ${p50} ms  p99 ${p99} ms  cpu ${cpu} us/req  dropped ${dropped}"
            echo "$protocol $target $round $rps $p50 $p99 $cpu $dropped" >>"$RESULTS"
            # Keep the disk from filling up; the logs were written, which is what costs.
            for f in "$WORK"/*-access.log; do : >"$f"; done
        done
    done
done

# Every request went through the access log (and metrics): no telemetry record was dropped.
for name in "${GH_TARGETS[@]}"; do
    read -r _ dropped delivered <<<"$(telemetry_counters "$name")"
    if ((dropped > 0)); then log "WARNING: $name dropped $dropped telemetry records (delivered $delivered); its runs did less work"; fi
done

stat_of() { # protocol target column(4 rps, 5 p50, 6 p99, 7 cpu us/req)
    awk -v p="$1" -v t="$2" -v c="$3" '$1 == p && $2 == t { print $c }' "$RESULTS" | median
}

# Median over the rounds of the per-round ratio a/b: both were measured in the same round, minutes
# apart at most, so this ratio is less exposed to the machine's drift than the ratio of medians.
paired_ratio() { # protocol target-a target-b column
    awk -v p="$1" -v a="$2" -v b="$3" -v c="$4" '
        $1 == p && $2 == a { va[$3] = $c }
        $1 == p && $2 == b { vb[$3] = $c }
        END { for (r in va) if ((r in vb) && vb[r] > 0) print va[r] / vb[r] }' "$RESULTS" | median
}

echo
echo "Gatehouse bench, commit $COMMIT$DIRTY$BIN_NOTE, $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs, pin=$PIN, suite $SUITE"
echo "median of $ROUNDS rounds x ${DURATION}s; wrk -t$WRK_THREADS -c$CONNECTIONS; h2load -c$H2_CLIENTS -m$H2_STREAMS"
echo
MD="| protocol | target | requests/s | p50 ms | p99 ms | CPU µs/req | req/s vs nginx | p99 vs nginx | CPU/req vs nginx |"$'\n'
MD+="|---|---|---:|---:|---:|---:|---:|---:|---:|"$'\n'
printf '%-5s %-22s %10s %8s %8s %11s %10s %10s %10s\n' proto target req/s p50_ms p99_ms cpu_us/req rps/nginx p99/nginx cpu/nginx
for protocol in "${protocols[@]}"; do
    nginx_rps=$(stat_of "$protocol" nginx 4)
    nginx_p99=$(stat_of "$protocol" nginx 6)
    nginx_cpu=$(stat_of "$protocol" nginx 7)
    for target in "${targets[@]}"; do
        rps=$(stat_of "$protocol" "$target" 4)
        p50=$(stat_of "$protocol" "$target" 5)
        p99=$(stat_of "$protocol" "$target" 6)
        cpu=$(stat_of "$protocol" "$target" 7)
        ratio_rps=$(awk -v a="$rps" -v b="$nginx_rps" 'BEGIN { if (b + 0 > 0) printf "%.2f", a / b; else print "-" }')
        ratio_p99=$(awk -v a="$p99" -v b="$nginx_p99" 'BEGIN { if (b + 0 > 0) printf "%.2f", a / b; else print "-" }')
        ratio_cpu=$(awk -v a="$cpu" -v b="$nginx_cpu" 'BEGIN { if (b + 0 > 0) printf "%.2f", a / b; else print "-" }')
        printf '%-5s %-22s %10.0f %8.3f %8.3f %11.1f %10s %10s %10s\n' "$protocol" "$target" "$rps" "$p50" "$p99" "$cpu" "$ratio_rps" "$ratio_p99" "$ratio_cpu"
        MD+=$(printf '| %s | %s | %.0f | %.3f | %.3f | %.1f | %s× | %s× | %s× |' "$protocol" "$target" "$rps" "$p50" "$p99" "$cpu" "$ratio_rps" "$ratio_p99" "$ratio_cpu")$'\n'
    done
done
echo
echo "Ratios are target / nginx: requests/s higher is better, p99 and CPU/req lower are better."
echo "CPU µs/req is the user+system time of the process doing the target's work (direct: the upstream;"
echo "nginx: its worker; Gatehouse: the whole process, access-log, metrics and store threads included)"
echo "per completed request."
echo
echo "$MD"

# The cost of one feature: a target with it (on) against the same target without it (off).
overhead_table() { # on off title
    local on=$1 off=$2
    echo "$3: $on (on) / $off (off)."
    echo "'median' is the ratio of the medians; 'paired' the median of the per-round ratios."
    echo "Cost: throughput lost = 1 - req/s ratio; CPU added = CPU/req ratio - 1. Goal: at most 3 %."
    echo
    MO="| protocol | req/s on | req/s off | req/s on/off (median, paired) | CPU µs/req on | CPU µs/req off | CPU/req on/off (median, paired) | p99 ms on, off |"$'\n'
    MO+="|---|---:|---:|---:|---:|---:|---:|---:|"$'\n'
    printf '%-5s %9s %9s %8s %8s %9s %8s %8s %8s %11s %11s\n' proto rps_on rps_off on/off paired cpu_on cpu_off on/off paired thru_lost cpu_added
    for protocol in "${protocols[@]}"; do
        rps_on=$(stat_of "$protocol" $on 4); rps_off=$(stat_of "$protocol" $off 4)
        cpu_on=$(stat_of "$protocol" $on 7); cpu_off=$(stat_of "$protocol" $off 7)
        p99_on=$(stat_of "$protocol" $on 6); p99_off=$(stat_of "$protocol" $off 6)
        rps_r=$(awk -v a="$rps_on" -v b="$rps_off" 'BEGIN { printf "%.3f", (b > 0 ? a / b : 0) }')
        cpu_r=$(awk -v a="$cpu_on" -v b="$cpu_off" 'BEGIN { printf "%.3f", (b > 0 ? a / b : 0) }')
        rps_p=$(paired_ratio "$protocol" $on $off 4 | awk '{ printf "%.3f", $1 }')
        cpu_p=$(paired_ratio "$protocol" $on $off 7 | awk '{ printf "%.3f", $1 }')
        lost=$(awk -v r="$rps_p" 'BEGIN { printf "%+.1f%%", (1 - r) * 100 }')
        added=$(awk -v r="$cpu_p" 'BEGIN { printf "%+.1f%%", (r - 1) * 100 }')
        printf '%-5s %9.0f %9.0f %8s %8s %9.1f %8.1f %8s %8s %11s %11s\n' "$protocol" "$rps_on" "$rps_off" "$rps_r" "$rps_p" "$cpu_on" "$cpu_off" "$cpu_r" "$cpu_p" "$lost" "$added"
        MO+=$(printf '| %s | %.0f | %.0f | %s×, %s× | %.1f | %.1f | %s×, %s× | %.3f, %.3f |' "$protocol" "$rps_on" "$rps_off" "$rps_r" "$rps_p" "$cpu_on" "$cpu_off" "$cpu_r" "$cpu_p" "$p99_on" "$p99_off")$'\n'
    done
    echo "(thru_lost and cpu_added from the paired ratios)"
    echo
    echo "$MO"
}

# The cost of metrics: gatehouse-w1 (metrics on) against gatehouse-w1-nometrics, same everything else.
if [[ " $TARGETS " == *" gatehouse-w1 "* && " $TARGETS " == *" gatehouse-w1-nometrics "* ]]; then
    overhead_table gatehouse-w1 gatehouse-w1-nometrics "Metrics overhead, --workers 1"
fi
# The cost of storing access logs in the embedded store rather than appending them to a file.
if [[ " $TARGETS " == *" gatehouse-w1 "* && " $TARGETS " == *" gatehouse-w1-logstore "* ]]; then
    overhead_table gatehouse-w1-logstore gatehouse-w1 "Access log to the log store instead of a file, --workers 1"
fi
# The cost of tracing at its default sampling (1/s + 5 %: trace context, sampling, spans stored).
if [[ " $TARGETS " == *" gatehouse-w1 "* && " $TARGETS " == *" gatehouse-w1-notracing "* ]]; then
    overhead_table gatehouse-w1 gatehouse-w1-notracing "Tracing at default sampling, --workers 1"
fi

echo "All runs (protocol target round req/s p50_ms p99_ms cpu_us/req dropped):"
sed 's/^/    /' "$RESULTS"
