#!/usr/bin/env bash
# Rampart's benchmarks in one command; see bench/README.md.
#
#   bench/run.sh                    # every benchmark
#   bench/run.sh startup guard      # a subset, by name: startup guard limits
#
# Builds the release binaries with `--features bench-routes`, runs the chosen benchmarks,
# keeps each one's figures in bench/results/<name>.{md,json}, then rebuilds
# docs/BENCHMARKS.md from every section there, so a subset run refreshes only its sections.
#
# Adding a benchmark: write a `bench_<name>` function that writes
# "$RESULTS/<name>.md" (starting with a `## ` heading) and "$RESULTS/<name>.json", and add
# <name> to BENCHMARKS below.
#
# Knobs (environment): CARGO_TARGET_DIR (default /work/bench-target), BENCH_PG_URL,
# BENCH_REDIS_URL, BENCH_DURATION, BENCH_WARMUP, BENCH_CONCURRENCY, BENCH_SERVER_CPUS,
# BENCH_LOAD_CPUS (empty: no pinning), BENCH_LIGHT_RATE, BENCH_RATE_FRACTION,
# BENCH_STARTUP_RUNS, BENCH_SKIP_BUILD=1.
set -euo pipefail
export LC_ALL=C

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

BENCHMARKS=(startup guard limits)

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/work/bench-target}
BIN=$CARGO_TARGET_DIR/release/rampart
LOAD=$CARGO_TARGET_DIR/release/rampart-bench
RESULTS=$ROOT/bench/results
DOC=$ROOT/docs/BENCHMARKS.md

PG_URL=${BENCH_PG_URL:-postgres://postgres@127.0.0.1:5432}
REDIS_URL=${BENCH_REDIS_URL:-redis://127.0.0.1:6379}
DURATION=${BENCH_DURATION:-10s}
WARMUP=${BENCH_WARMUP:-2s}
CONCURRENCY=${BENCH_CONCURRENCY:-64}
OPEN_CONNECTIONS=${BENCH_OPEN_CONNECTIONS:-32}
# The server gets one core and the load generator the other, so neither steals the other's
# CPU mid-measurement (Redis, when used, floats).
SERVER_CPUS=${BENCH_SERVER_CPUS-1}
LOAD_CPUS=${BENCH_LOAD_CPUS-0}
LIGHT_RATE=${BENCH_LIGHT_RATE:-1000}
RATE_FRACTION=${BENCH_RATE_FRACTION:-0.5}
STARTUP_RUNS=${BENCH_STARTUP_RUNS:-5}
# Per-request access logs would dominate a no-op route; `rampart::app=info` keeps only the
# start-up line that carries the bound addresses.
SERVER_LOG=${BENCH_SERVER_LOG:-warn,rampart::app=info}

COMMAND="bench/run.sh${*:+ $*}"
TMP=$(mktemp -d "${TMPDIR:-/tmp}/rampart-bench.XXXXXX")
PIDS=()
DATABASES=()

log() { printf '\n== %s\n' "$*" >&2; }

cleanup() {
    local p db
    for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    for db in "${DATABASES[@]}"; do
        psql "$PG_URL/postgres" -qc "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1 || true
    done
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------------------------------
# Helpers

pinned() { # pinned CPUS CMD...: run CMD on CPUS (or anywhere when CPUS is empty)
    local cpus=$1
    shift
    if [[ -n $cpus ]]; then taskset -c "$cpus" "$@"; else "$@"; fi
}

# start_server NAME CPUS VAR=value...: starts `rampart serve --no-worker` with that
# environment, waits until /health/ready answers 200; sets SERVER_PID and SERVER_API.
start_server() {
    local name=$1 cpus=$2
    shift 2
    local out=$TMP/$name.log
    local cmd=("$BIN" serve --no-worker)
    [[ -z $cpus ]] || cmd=(taskset -c "$cpus" "${cmd[@]}")
    # env and taskset exec into the server, so $! is the server's own pid.
    env "$@" RAMPART_LISTEN=127.0.0.1:0 RAMPART_OPS_LISTEN=127.0.0.1:0 \
        RAMPART_LOG_FORMAT=json "${cmd[@]}" >"$out" 2>"$TMP/$name.err" &
    SERVER_PID=$!
    PIDS+=("$SERVER_PID")
    SERVER_API=
    local i
    for ((i = 0; i < 600; i++)); do
        SERVER_API=$(grep -m1 '"rampart serving"' "$out" 2>/dev/null | jq -r .api || true)
        if [[ -n $SERVER_API ]] && curl -fs -o /dev/null "http://$SERVER_API/health/ready"; then
            return 0
        fi
        if ! kill -0 "$SERVER_PID" 2>/dev/null; then
            echo "server $name exited during start-up:" >&2
            cat "$out" "$TMP/$name.err" >&2
            return 1
        fi
        sleep 0.05
    done
    echo "server $name not ready after 30 s" >&2
    return 1
}

stop_server() { # stop_server PID: SIGTERM and wait (graceful drain)
    kill -TERM "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
    local keep=() p
    for p in "${PIDS[@]}"; do [[ $p == "$1" ]] || keep+=("$p"); done
    PIDS=("${keep[@]}")
}

# admin ENV_ARRAY ARGS...: `rampart admin ARGS --json` with the environment held in the array
# named ENV_ARRAY, so that the database and data dir are the servers'.
admin() {
    local -n admin_env=$1
    shift
    env "${admin_env[@]}" "$BIN" admin "$@" --json
}

# quiet: wait (bounded) until nothing else is using the CPU; this machine may be shared.
quiet() { "$LOAD" wait-idle --max-busy "${BENCH_QUIET_CPU:-0.25}" --timeout "${BENCH_QUIET_WAIT:-10m}"; }

# Numeric helpers (bash has no floats).
calc() { awk "BEGIN { print $* }"; }
fmt() { printf "%.${2:-1}f" "$1"; }
check() { # check VALUE OP TARGET -> "yes"/"**no**"
    if awk "BEGIN { exit !($1 $2 $3) }"; then echo yes; else echo "**no**"; fi
}
j() { jq -r "$1" "$2"; } # j FILTER FILE

section_stamp() {
    echo "_Measured $(date -u '+%Y-%m-%d %H:%M UTC') at \`$GIT_SHA\` with \`$COMMAND\`._"
}

# ---------------------------------------------------------------------------------------
# startup: time to /health/ready on a fresh SQLite database, and idle RSS.

bench_startup() {
    log "startup ($STARTUP_RUNS runs)"
    local json=$RESULTS/startup.json
    quiet
    "$LOAD" startup --bin "$BIN" --runs "$STARTUP_RUNS" --json >"$json"
    local ready_med ready_max rss_med rss_max
    ready_med=$(j .ready_ms_median "$json")
    ready_max=$(j .ready_ms_max "$json")
    rss_med=$(j .idle_rss_mb_median "$json")
    rss_max=$(j .idle_rss_mb_max "$json")
    {
        echo "## Start-up and idle memory"
        echo
        section_stamp
        echo
        echo "\`rampart-bench startup --runs $STARTUP_RUNS\`: each run spawns \`rampart serve\` (worker included, default log level) on a fresh SQLite database in a new temporary data directory, ports 0, and times spawn → first \`200\` from \`/health/ready\` (migrations and secret-key generation included). After 1 s idle it reads \`VmRSS\` from \`/proc/<pid>/status\`, then sends SIGTERM and times the exit. Not pinned."
        echo
        echo "| Metric | Median | Max | Target | Median vs target | Met (max) |"
        echo "|---|---:|---:|---:|---:|:---:|"
        echo "| Spawn → ready | $(fmt "$ready_med") ms | $(fmt "$ready_max") ms | ≤ 500 ms | $(fmt "$(calc "$ready_med / 500")" 2)× | $(check "$ready_max" "<=" 500) |"
        echo "| Idle RSS | $(fmt "$rss_med") MB | $(fmt "$rss_max") MB | ≤ 40 MB | $(fmt "$(calc "$rss_med / 40")" 2)× | $(check "$rss_max" "<=" 40) |"
        echo
        echo "| Run | Spawn → \`rampart serving\` log line | Spawn → ready | Idle RSS | SIGTERM → exit | Clean exit |"
        echo "|---:|---:|---:|---:|---:|:---:|"
        jq -r '.runs | to_entries[] | "| \(.key + 1) | \(.value.serving_ms * 10 | round / 10) ms | \(.value.ready_ms * 10 | round / 10) ms | \(.value.idle_rss_mb * 10 | round / 10) MB | \(.value.stop_ms | round) ms | \(if .value.exit_ok then "yes" else "**no**" end) |"' "$json"
    } >"$RESULTS/startup.md"
}

# ---------------------------------------------------------------------------------------
# guard: the full guard stack against the bare route, same server, same run, with the
# in-process limiter and with Redis.

# load OUT ARGS...: one `rampart-bench http` run against the current server, JSON to OUT.
load() {
    local out=$1
    shift
    quiet
    pinned "$LOAD_CPUS" "$LOAD" http --json --duration "$DURATION" --warmup "$WARMUP" \
        --server-pid "$SERVER_PID" "$@" >"$out"
    jq -r '"   \(.url | sub("http://[^/]+"; "")) \(.mode)\(if .target_rate then " @\(.target_rate)/s" else "" end): \(.throughput_rps | round) req/s, p50 \(.latency_ms.p50) ms, p99 \(.latency_ms.p99) ms, status \(.status | tostring), errors \(.errors), server CPU \(.server_cpu), generator CPU \(.generator_cpu)"' "$out" >&2
}

bench_guard() {
    local store dir=$TMP/guard
    local all=()
    for store in memory redis; do
        log "guard: limiter store $store"
        mkdir -p "$dir/$store"
        local envs=("RAMPART_DATABASE_URL=sqlite://$dir/$store/r.db" "RAMPART_DATA_DIR=$dir/$store"
            "RAMPART_LOG=$SERVER_LOG")
        [[ $store == redis ]] && envs+=("RAMPART_REDIS_URL=$REDIS_URL")
        local org key
        org=$(admin envs create-org --name "bench-guard-$store" | jq -r .id)
        # Plan limits far above anything reachable and no per-key limit: nothing is refused,
        # but every limit and quota is still evaluated on every request.
        admin envs set-subscription --org "$org" --status active --tier full \
            --rate-limit 1000000/s --quota 1000000000/day >/dev/null
        key=$(admin envs create-key --org "$org" --scopes messages --permissions read | jq -r .key)
        start_server "guard-$store" "$SERVER_CPUS" "${envs[@]}"
        local base="http://$SERVER_API" auth="Authorization: Bearer $key" out=$dir/$store
        load "$out/bare-closed.json" --url "$base/bench/bare" --concurrency "$CONCURRENCY"
        load "$out/guarded-closed.json" --url "$base/v1/bench/guarded" -H "$auth" \
            --concurrency "$CONCURRENCY"
        # A rate both routes sustain: a fraction of the slower one's maximum.
        local slower rate
        slower=$(jq -s 'map(.throughput_rps) | min' "$out/bare-closed.json" "$out/guarded-closed.json")
        rate=$(calc "int($slower * $RATE_FRACTION / 100) * 100")
        local r
        for r in "$LIGHT_RATE" "$rate"; do
            load "$out/bare-open-$r.json" --url "$base/bench/bare" --rate "$r" \
                --concurrency "$OPEN_CONNECTIONS"
            load "$out/guarded-open-$r.json" --url "$base/v1/bench/guarded" -H "$auth" \
                --rate "$r" --concurrency "$OPEN_CONNECTIONS"
        done
        stop_server "$SERVER_PID"
        local f
        for f in "$out"/*.json; do
            all+=("$(jq -c --arg store "$store" --arg route "$(basename "$f" | cut -d- -f1)" \
                '. + {store: $store, route: $route}' "$f")")
        done
        echo "$rate" >"$out/rate"
    done
    printf '%s\n' "${all[@]}" | jq -s . >"$RESULTS/guard.json"

    local json=$RESULTS/guard.json
    {
        echo "## Guard stack overhead"
        echo
        section_stamp
        echo
        echo "One \`rampart serve --no-worker\` on a fresh SQLite database, \`RAMPART_LOG=$SERVER_LOG\` (no per-request access log lines; the filter keeps only the start-up line with the bound addresses). \`GET /bench/bare\` is a 204 behind only the outer conventions middleware (request id, headers, logging span, metrics); \`GET /v1/bench/guarded\` is a 204 no-op behind the whole guard stack (API-key auth with its cache, tenant, scope \`messages\` + permission \`read\`, billing, per-key and per-org rate limits and quotas). The org is \`active\`/\`full\` with plan limits raised to 1000000/s and 1000000000/day and the key has no limit of its own, so nothing is refused but every limit is evaluated. Both routes are measured against the same server in the same run; with Redis (\`RAMPART_REDIS_URL\`), the limits are evaluated by the Redis script on every request."
        echo
        echo "Pinning: server on CPU ${SERVER_CPUS:-any}, load generator (\`rampart-bench http\`, raw HTTP/1.1 keep-alive engine) on CPU ${LOAD_CPUS:-any} (\`taskset\`); Redis is not pinned. Each run: $WARMUP warm-up, then $DURATION measured. Closed loop: $CONCURRENCY connections, each sending its next request when the previous answer arrives. Fixed rate: open loop, $OPEN_CONNECTIONS connections, latency measured from each request's scheduled send time (no coordinated omission)."
        echo
        echo "### Maximum throughput (closed loop, $CONCURRENCY connections)"
        echo
        echo "| Limiter store | Bare req/s | Guarded req/s | Guarded / bare | Target | Met | Server CPU (bare / guarded) |"
        echo "|---|---:|---:|---:|---:|:---:|---:|"
        for store in memory redis; do
            local b g ratio
            b=$(jq "map(select(.store == \"$store\" and .route == \"bare\" and .mode == \"closed\"))[0]" "$json")
            g=$(jq "map(select(.store == \"$store\" and .route == \"guarded\" and .mode == \"closed\"))[0]" "$json")
            ratio=$(calc "$(jq .throughput_rps <<<"$g") / $(jq .throughput_rps <<<"$b")")
            echo "| $store | $(fmt "$(jq .throughput_rps <<<"$b")" 0) | $(fmt "$(jq .throughput_rps <<<"$g")" 0) | $(fmt "$ratio" 3) | ≥ 0.85 | $(check "$ratio" ">=" 0.85) | $(fmt "$(jq .server_cpu <<<"$b")" 2) / $(fmt "$(jq .server_cpu <<<"$g")" 2) |"
        done
        echo
        echo "### Latency at a fixed rate both routes sustain"
        echo
        echo "Rates: $LIGHT_RATE req/s (light) and $RATE_FRACTION × the slower route's closed-loop maximum, rounded down to 100."
        echo
        echo "| Limiter store | Rate (req/s) | Bare p50 | Bare p99 | Guarded p50 | Guarded p99 | p50 overhead | p99 overhead | Target (p99) | Met |"
        echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|:---:|"
        for store in memory redis; do
            local rate
            for rate in $(jq -r "map(select(.store == \"$store\" and .mode == \"open\") | .target_rate) | unique | .[]" "$json"); do
                local b g d50 d99
                b=$(jq "map(select(.store == \"$store\" and .route == \"bare\" and .target_rate == $rate))[0].latency_ms" "$json")
                g=$(jq "map(select(.store == \"$store\" and .route == \"guarded\" and .target_rate == $rate))[0].latency_ms" "$json")
                d50=$(calc "$(jq .p50 <<<"$g") - $(jq .p50 <<<"$b")")
                d99=$(calc "$(jq .p99 <<<"$g") - $(jq .p99 <<<"$b")")
                echo "| $store | $(fmt "$rate" 0) | $(fmt "$(jq .p50 <<<"$b")" 3) ms | $(fmt "$(jq .p99 <<<"$b")" 3) ms | $(fmt "$(jq .p50 <<<"$g")" 3) ms | $(fmt "$(jq .p99 <<<"$g")" 3) ms | $(fmt "$d50" 3) ms | $(fmt "$d99" 3) ms | ≤ 0.5 ms | $(check "$d99" "<=" 0.5) |"
            done
        done
        echo
        echo "### Every run"
        echo
        echo "Latency in ms. Closed loop: send → response. Open loop: scheduled send → response; *lag p99* is how late the generator got requests out relative to the schedule (its own timer and scheduling jitter, and any queueing; included in the latency), and *send→resp p99* is the latency without it. CPU in cores over the measured window; *rest* is the whole machine minus server and generator (Redis, the kernel, anything else running)."
        echo
        echo "| Store | Route | Mode | req/s | Statuses | Errors | p50 | p90 | p99 | p99.9 | max | Lag p99 | Send→resp p99 | CPU server | CPU generator | CPU rest |"
        echo "|---|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        jq -r 'def r3: . * 1000 | round / 1000; def r2: . * 100 | round / 100;
            .[] | "| \(.store) | \(.route) | \(if .mode == "open" then "open @\(.target_rate)/s" else "closed ×\(.concurrency)" end) | \(.throughput_rps | round) | \(.status | to_entries | map("\(.key): \(.value)") | join(", ")) | \(.errors + .unsent) | \(.latency_ms.p50 | r3) | \(.latency_ms.p90 | r3) | \(.latency_ms.p99 | r3) | \(.latency_ms.p999 | r3) | \(.latency_ms.max | r3) | \(if .send_lag_ms then (.send_lag_ms.p99 | r3) else "-" end) | \(if .service_ms then (.service_ms.p99 | r3) else "-" end) | \(.server_cpu | r2) | \(.generator_cpu | r2) | \(.machine_cpu - .server_cpu - .generator_cpu | r2) |"' "$json"
    } >"$RESULTS/guard.md"
}

# ---------------------------------------------------------------------------------------
# limits: four instances sharing one Postgres database and Redis must not over-admit.

bench_limits() {
    local db="rampart_bench_$(date +%s)_$$"
    log "limits: database $db"
    psql "$PG_URL/postgres" -qc "CREATE DATABASE $db" >/dev/null
    DATABASES+=("$db")
    local dir=$TMP/limits
    mkdir -p "$dir"
    # One data dir for all: the instances must share the secret key the database was
    # initialised with.
    local base_env=("RAMPART_DATABASE_URL=$PG_URL/$db" "RAMPART_DATA_DIR=$dir"
        "RAMPART_LOG=$SERVER_LOG")
    local redis_env=("${base_env[@]}" "RAMPART_REDIS_URL=$REDIS_URL")
    local org
    org=$(admin base_env create-org --name bench-limits | jq -r .id)
    admin base_env set-subscription --org "$org" --status active --tier full \
        --rate-limit 1000000/s --quota 1000000000/day >/dev/null

    local results=() case
    # case: label, store, key flag, expectation flag
    for case in "rate|redis|--rate-limit 50/min|--expect-rate 50/min" \
        "quota|redis|--quota 100/day|--expect-quota 100/day" \
        "rate|memory|--rate-limit 50/min|--expect-rate 50/min"; do
        local kind store key_flag expect
        IFS='|' read -r kind store key_flag expect <<<"$case"
        local key
        # shellcheck disable=SC2086 # the flags are two words on purpose
        key=$(admin base_env create-key --org "$org" --scopes messages --permissions read \
            $key_flag | jq -r .key)
        local urls=() pids=() i
        for i in 1 2 3 4; do
            if [[ $store == redis ]]; then
                start_server "limits-$kind-$store-$i" "" "${redis_env[@]}"
            else
                start_server "limits-$kind-$store-$i" "" "${base_env[@]}"
            fi
            urls+=("http://$SERVER_API/v1/bench/guarded")
            pids+=("$SERVER_PID")
        done
        local out=$dir/$kind-$store.json
        quiet
        # shellcheck disable=SC2086
        "$LOAD" limits --urls "$(IFS=,; echo "${urls[*]}")" -H "Authorization: Bearer $key" \
            --total 400 --concurrency 32 $expect --json >"$out"
        jq -r '"   \(.limit): admitted \(.admitted), refused \(.refused), other \(.other), over-admitted \(.over_admitted), per instance \(.admitted_per_instance)"' "$out" >&2
        results+=("$(jq -c --arg kind "$kind" --arg store "$store" '. + {kind: $kind, store: $store}' "$out")")
        for i in "${pids[@]}"; do stop_server "$i"; done
    done
    printf '%s\n' "${results[@]}" | jq -s . >"$RESULTS/limits.json"

    {
        echo "## Limiter accuracy across instances"
        echo
        section_stamp
        echo
        echo "Four \`rampart serve --no-worker\` instances on different ports sharing one fresh Postgres database and one Redis; the org's plan limits are raised out of the way, so only the key's own limit applies. \`rampart-bench limits\` sends 400 requests to \`GET /v1/bench/guarded\` with one key, round-robin over the four instances, 32 in flight. *Allowed* is the most the limit permits over the run: for a rate limit (GCRA), its burst plus one per emission interval elapsed; for a quota, its count."
        echo
        echo "| Limit on the key | Limiter store | Sent | Admitted (2xx) | Refused (429) | Other | Allowed | Over-admitted | Target | Met | Admitted per instance | Elapsed |"
        echo "|---|---|---:|---:|---:|---:|---:|---:|---:|:---:|---|---:|"
        jq -r '.[] | "| \(.limit) (\(.kind)) | \(.store)\(if .store == "memory" then " (contrast: per instance, no Redis)" else "" end) | \(.total) | \(.admitted) | \(.refused) | \(.other) | \(.max_allowed) | \(.over_admitted) | \(if .store == "redis" then "0" else "n/a" end) | \(if .store == "redis" then (if .over_admitted == 0 then "yes" else "**no**" end) else "n/a" end) | \(.admitted_per_instance | map(tostring) | join(" / ")) | \(.elapsed_ms | round) ms |"' "$RESULTS/limits.json"
        echo
        echo "Without Redis each instance enforces the limit on its own, so four instances may admit up to four times the limit; the last row shows that for contrast and is not a target."
    } >"$RESULTS/limits.md"
}

# ---------------------------------------------------------------------------------------

write_doc() {
    mkdir -p "$(dirname "$DOC")"
    {
        echo "# Benchmarks"
        echo
        echo "Generated by \`bench/run.sh\` (see [bench/README.md](../bench/README.md)); do not edit by hand. Each section says when, at which commit and with which command it was measured; re-running a subset refreshes only those sections."
        echo
        echo "## Machine (latest run)"
        echo
        echo "| | |"
        echo "|---|---|"
        echo "| Date | $(date -u '+%Y-%m-%d %H:%M UTC') |"
        echo "| Commit | \`$GIT_SHA\` (the working tree was built as it was at that time) |"
        echo "| Command | \`$COMMAND\` |"
        echo "| CPU | $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(nproc) cores (\`nproc\`) |"
        echo "| Memory | $(free -g | awk '/^Mem:/ { print $2 " GB total, " $7 " GB available (free -g)" }') |"
        echo "| Kernel | $(uname -sr) |"
        echo "| Build | \`cargo build --release --features bench-routes\`, $(rustc --version) |"
        echo "| Services | $(psql "$PG_URL/postgres" -Atc 'show server_version' 2>/dev/null | sed 's/^/PostgreSQL /' || echo 'PostgreSQL ?'), Redis $(redis-cli -u "$REDIS_URL" info server 2>/dev/null | awk -F: '/^redis_version/ { print $2 }' | tr -d '\r' || echo '?') (same machine) |"
        local b
        for b in "${BENCHMARKS[@]}"; do
            if [[ -f $RESULTS/$b.md ]]; then
                echo
                cat "$RESULTS/$b.md"
            fi
        done
    } >"$DOC"
}

main() {
    local selected=("$@") b
    [[ ${#selected[@]} -gt 0 ]] || selected=("${BENCHMARKS[@]}")
    for b in "${selected[@]}"; do
        if ! declare -F "bench_$b" >/dev/null; then
            echo "unknown benchmark $b (known: ${BENCHMARKS[*]})" >&2
            exit 2
        fi
    done
    GIT_SHA=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
    if [[ ${BENCH_SKIP_BUILD:-0} != 1 ]]; then
        log "building release binaries into $CARGO_TARGET_DIR"
        cargo build --release --features bench-routes --bin rampart --bin rampart-bench
    fi
    mkdir -p "$RESULTS"
    for b in "${selected[@]}"; do "bench_$b"; done
    write_doc
    log "wrote $DOC"
}

main "$@"
