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
# BENCH_STARTUP_RUNS, BENCH_ROUNDS, BENCH_QUIET_CPU, BENCH_QUIET_WAIT, BENCH_MAX_REST,
# BENCH_ATTEMPTS, BENCH_PROFILE=0, BENCH_SKIP_BUILD=1.
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
ROUNDS=${BENCH_ROUNDS:-3}
MAX_REST=${BENCH_MAX_REST:-0.3}
ATTEMPTS=${BENCH_ATTEMPTS:-4}
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

# load OUT STORE ROUTE ROUND ARGS...: one `rampart-bench http` run against the current
# server; its JSON report, labelled, goes to OUT. Extra args go to `rampart-bench http`
# (e.g. --helper-pid for Redis). A run during which other work took more than
# BENCH_MAX_REST cores is repeated, up to BENCH_ATTEMPTS times in all; the last one stands.
load() {
    local out=$1 store=$2 route=$3 round=$4
    shift 4
    local pacer=thread
    # With a core of its own, the generator can afford to spin for a precise schedule.
    [[ -z $LOAD_CPUS ]] || pacer=spin
    local attempt rest
    for ((attempt = 1; ; attempt++)); do
        quiet
        pinned "$LOAD_CPUS" "$LOAD" http --json --duration "$DURATION" --warmup "$WARMUP" \
            --server-pid "$SERVER_PID" --pacer "$pacer" "$@" |
            jq -c --arg store "$store" --arg route "$route" --argjson round "$round" \
                --argjson attempt "$attempt" \
                '. + {store: $store, route: $route, round: $round, attempts: $attempt,
                      rest_cpu: ([.machine_cpu - .server_cpu - .generator_cpu - (.helpers_cpu // 0), 0] | max)}' \
                >"$out"
        rest=$(jq .rest_cpu "$out")
        jq -r '"   \(.route) \(.mode)\(if .target_rate then " @\(.target_rate)/s" else "" end) #\(.round): \(.throughput_rps | round) req/s, p50 \(.latency_ms.p50 * 1000 | round / 1000) ms, p99 \(.latency_ms.p99 * 1000 | round / 1000) ms, status \(.status | tostring), errors \(.errors + .unsent), CPU server \(.server_cpu * 100 | round / 100) generator \(.generator_cpu * 100 | round / 100) helpers \(.helpers_cpu // 0 | . * 100 | round / 100) rest \(.rest_cpu * 100 | round / 100)"' "$out" >&2
        if awk "BEGIN { exit !($rest <= $MAX_REST) }" || ((attempt >= ATTEMPTS)); then
            return 0
        fi
        echo "   (other work used $rest cores during that run: repeating it)" >&2
    done
}

# profile_guarded URL KEY OUT: where the server's CPU goes on the guarded route, by perf
# (DWARF call graphs; the release profile keeps line tables). Optional: needs perf, and
# BENCH_PROFILE=0 skips it. Run apart from the measurements, which it would perturb.
profile_guarded() {
    local url=$1 key=$2 out=$3
    if [[ ${BENCH_PROFILE:-1} == 0 ]] || ! command -v perf >/dev/null; then
        rm -f "$out"
        return 0
    fi
    log "guard: perf profile of the guarded route"
    quiet
    pinned "$LOAD_CPUS" "$LOAD" http --url "$url" -H "Authorization: Bearer $key" \
        --concurrency "$CONCURRENCY" --warmup 1s --duration 7s --json >/dev/null &
    local gen=$!
    sleep 2
    if perf record -F 499 --call-graph dwarf,16384 -p "$SERVER_PID" -o "$TMP/perf.data" \
        -- sleep 4 >/dev/null 2>&1; then
        # Inclusive share of the server's samples per Rampart function.
        perf report -i "$TMP/perf.data" --children --percent-limit 0.5 --stdio -g none \
            2>/dev/null | awk '$1 ~ /%$/ && /\] rampart::/ {
                pct = $1; sym = $0; sub(/^.*\] /, "", sym); sub(/::\{\{closure\}\}$/, "", sym)
                if (!(sym in seen)) { seen[sym] = 1; print pct "\t" sym } }' >"$out"
    else
        echo "perf record failed; no profile" >&2
        rm -f "$out"
    fi
    wait "$gen" || true
}

bench_guard() {
    local store dir=$TMP/guard runs=()
    # memory: in-process limiter; redis: Redis limiter; logs: in-process limiter with the
    # default `info` level, i.e. one JSON access-log line per request (throughput only), to
    # show what the logs cost.
    for store in memory redis logs; do
        log "guard: configuration $store"
        local out=$dir/$store
        mkdir -p "$out"
        local level=$SERVER_LOG
        [[ $store != logs ]] || level=info
        local envs=("RAMPART_DATABASE_URL=sqlite://$out/r.db" "RAMPART_DATA_DIR=$out"
            "RAMPART_LOG=$level")
        local helper=()
        if [[ $store == redis ]]; then
            envs+=("RAMPART_REDIS_URL=$REDIS_URL")
            # Redis's own CPU is reported apart, not mistaken for interference.
            local redis_pid
            redis_pid=$(pgrep -x redis-server | head -1 || true)
            [[ -z $redis_pid ]] || helper=(--helper-pid "$redis_pid")
        fi
        local org key
        org=$(admin envs create-org --name "bench-guard-$store" | jq -r .id)
        # Plan limits far above anything reachable and no per-key limit: nothing is refused,
        # but every limit and quota is still evaluated on every request.
        admin envs set-subscription --org "$org" --status active --tier full \
            --rate-limit 1000000/s --quota 1000000000/day >/dev/null
        key=$(admin envs create-key --org "$org" --scopes messages --permissions read | jq -r .key)
        start_server "guard-$store" "$SERVER_CPUS" "${envs[@]}"
        local bare="http://$SERVER_API/bench/bare" guarded="http://$SERVER_API/v1/bench/guarded"
        local auth="Authorization: Bearer $key" round
        # Rounds alternate the routes so that drift on a shared VM hits both alike.
        for ((round = 1; round <= ROUNDS; round++)); do
            load "$out/closed-bare-$round.json" "$store" bare "$round" "${helper[@]}" \
                --url "$bare" --concurrency "$CONCURRENCY"
            load "$out/closed-guarded-$round.json" "$store" guarded "$round" "${helper[@]}" \
                --url "$guarded" -H "$auth" --concurrency "$CONCURRENCY"
        done
        if [[ $store == logs ]]; then
            stop_server "$SERVER_PID"
            runs+=("$out"/*.json)
            rm -f "$TMP/guard-$store.log" # gigabytes of access log
            continue
        fi
        # A rate both routes sustain: a fraction of the slower route's median maximum.
        local slower rate
        slower=$(jq -s 'group_by(.route) | map(map(.throughput_rps) | sort | .[length / 2 | floor]) | min' \
            "$out"/closed-*.json)
        rate=$(calc "int($slower * $RATE_FRACTION / 100) * 100")
        for r in "$LIGHT_RATE" "$rate"; do
            for ((round = 1; round <= ROUNDS; round++)); do
                load "$out/open-$r-bare-$round.json" "$store" bare "$round" "${helper[@]}" \
                    --url "$bare" --rate "$r" --concurrency "$OPEN_CONNECTIONS"
                load "$out/open-$r-guarded-$round.json" "$store" guarded "$round" "${helper[@]}" \
                    --url "$guarded" -H "$auth" --rate "$r" --concurrency "$OPEN_CONNECTIONS"
            done
        done
        [[ $store == memory ]] && profile_guarded "$guarded" "$key" "$RESULTS/guard-profile.tsv"
        stop_server "$SERVER_PID"
        runs+=("$out"/*.json)
    done
    jq -s 'sort_by(.store, .mode, .target_rate, .route, .round)' "${runs[@]}" >"$RESULTS/guard.json"
    guard_markdown >"$RESULTS/guard.md"
}

# The guard section, from $RESULTS/guard.json.
guard_markdown() {
    local json=$RESULTS/guard.json store
    # median FILTER: median of FILTER's numbers over the matching runs
    local med='def median: sort | .[length / 2 | floor];'
    echo "## Guard stack overhead"
    echo
    section_stamp
    echo
    echo "One \`rampart serve --no-worker\` on a fresh SQLite database with \`RAMPART_LOG=$SERVER_LOG\`: warnings only, so no per-request access log lines (the one \`info\` target left on, \`rampart::app\`, only logs start-up and shutdown, including the line that carries the bound addresses). \`GET /bench/bare\` is a 204 behind only the outer conventions middleware (request id, security headers, logging span, metrics); \`GET /v1/bench/guarded\` is a 204 no-op behind the whole guard stack (API-key auth with its cache, tenant, scope \`messages\` + permission \`read\`, billing, per-key and per-org rate limits and quotas). The org is \`active\`/\`full\` with its plan limits raised to 1000000/s and 1000000000/day and the key has no limit of its own, so nothing is refused but every limit is still evaluated. Both routes hit the same server in the same run, in alternating runs ($ROUNDS rounds; tables show the median round). With Redis (\`RAMPART_REDIS_URL\`), limits and quotas are evaluated by the Redis script on every guarded request. For reference, the last throughput row repeats the in-process case at the default \`RAMPART_LOG=info\`, where every request writes a JSON access-log line (to a file here)."
    echo
    echo "Pinning (\`taskset\`): server on CPU ${SERVER_CPUS:-any}, load generator on CPU ${LOAD_CPUS:-any}; Redis is not pinned and shares the cores. Each run: $WARMUP warm-up, then $DURATION measured. Closed loop: $CONCURRENCY keep-alive connections, each sending its next request as soon as the previous answer arrives (\`rampart-bench http --concurrency $CONCURRENCY\`). Fixed rate: open loop over $OPEN_CONNECTIONS connections, latency measured from each request's scheduled send time, so queueing is counted (no coordinated omission)."
    echo
    echo "### Maximum throughput (closed loop, $CONCURRENCY connections)"
    echo
    echo "| Limiter store | Bare req/s | Guarded req/s | Guarded / bare | Target | Met | Per-round ratios | Server CPU, bare / guarded |"
    echo "|---|---:|---:|---:|---:|:---:|---|---:|"
    for store in memory redis logs; do
        jq -r --arg s "$store" "$med"'
            map(select(.store == $s and .mode == "closed")) as $r
            | ($r | map(select(.route == "bare"))) as $b | ($r | map(select(.route == "guarded"))) as $g
            | ($b | map(.throughput_rps) | median) as $bm | ($g | map(.throughput_rps) | median) as $gm
            | [range(0; [$b, $g] | map(length) | min)] | map(($g[.].throughput_rps / $b[.].throughput_rps * 1000 | round / 1000 | tostring)) | join(", ") as $ratios
            | select($bm != null)
            | "| \(if $s == "logs" then "memory, with `RAMPART_LOG=info` access logs (reference)" else $s end) | \($bm | round) | \($gm | round) | \($gm / $bm * 1000 | round / 1000) | \(if $s == "logs" then "-" else "≥ 0.85" end) | \(if $s == "logs" then "-" elif $gm / $bm >= 0.85 then "yes" else "**no**" end) | \($ratios) | \($b | map(.server_cpu) | median * 100 | round / 100) / \($g | map(.server_cpu) | median * 100 | round / 100) |"' "$json"
    done
    echo
    echo "### Latency at fixed rates both routes sustain"
    echo
    echo "Rates: $LIGHT_RATE req/s, and $RATE_FRACTION × the slower route's median closed-loop maximum (rounded down to 100). Medians over the rounds of each percentile; the overhead is guarded minus bare."
    echo
    echo "| Limiter store | Rate (req/s) | Bare p50 | Bare p99 | Guarded p50 | Guarded p99 | p50 overhead | p99 overhead | Target (p99) | Met |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|:---:|"
    for store in memory redis; do
        jq -r --arg s "$store" "$med"'
            def ms: . * 1000 | round / 1000 | tostring | . + " ms";
            map(select(.store == $s and .mode == "open")) | group_by(.target_rate)[]
            | . as $r | (map(select(.route == "bare"))) as $b | (map(select(.route == "guarded"))) as $g
            | ($b | map(.latency_ms.p50) | median) as $b50 | ($b | map(.latency_ms.p99) | median) as $b99
            | ($g | map(.latency_ms.p50) | median) as $g50 | ($g | map(.latency_ms.p99) | median) as $g99
            | "| \($s) | \($r[0].target_rate) | \($b50 | ms) | \($b99 | ms) | \($g50 | ms) | \($g99 | ms) | \($g50 - $b50 | ms) | \($g99 - $b99 | ms) | ≤ 0.5 ms | \(if $g99 - $b99 <= 0.5 then "yes" else "**no**" end) |"' "$json"
    done
    if [[ -f $RESULTS/guard-profile.tsv ]]; then
        echo
        echo "### Where the guarded route's server CPU goes (in-memory store)"
        echo
        echo "A separate closed-loop run of the guarded route under \`perf record -F 499 --call-graph dwarf\` (4 s, server only). Inclusive share of the server process's samples for each Rampart function above 0.5 %; nested functions are counted in their callers too. *guard* is the whole guard stack, the part the bare route does not pay; the rest (conventions middleware, metrics, hyper and the kernel's socket writes) is common to both routes."
        echo
        echo "| Function | Share of server CPU |"
        echo "|---|---:|"
        awk -F'\t' '{ printf "| `%s` | %s |\n", $2, $1 }' "$RESULTS/guard-profile.tsv"
    fi
    echo
    echo "### Every run"
    echo
    echo "Latency in ms. Closed loop: send → response. Open loop: scheduled send → response; *lag p99* is how late the generator got requests out relative to the schedule (its own scheduling jitter plus any wait for a free connection, included in the latency), and *send→resp p99* is the latency without it. CPU in cores over the measured window (1.00 = one core throughout); *rest* is the whole machine minus server, generator and Redis: the kernel's own work, or other jobs on this shared machine. A run with more than $MAX_REST cores of *rest* was repeated (*attempts*), up to $ATTEMPTS times."
    echo
    echo "| Store | Route | Mode | Round | req/s | Statuses | Errors | p50 | p90 | p99 | p99.9 | max | Lag p99 | Send→resp p99 | CPU server | CPU generator | CPU Redis | CPU rest | Attempts |"
    echo "|---|---|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    jq -r 'def r3: . * 1000 | round / 1000; def r2: . * 100 | round / 100;
        .[] | "| \(.store) | \(.route) | \(if .mode == "open" then "open @\(.target_rate)/s" else "closed ×\(.concurrency)" end) | \(.round) | \(.throughput_rps | round) | \(.status | to_entries | map("\(.key): \(.value)") | join(", ")) | \(.errors + .unsent) | \(.latency_ms.p50 | r3) | \(.latency_ms.p90 | r3) | \(.latency_ms.p99 | r3) | \(.latency_ms.p999 | r3) | \(.latency_ms.max | r3) | \(if .send_lag_ms then (.send_lag_ms.p99 | r3) else "-" end) | \(if .service_ms then (.service_ms.p99 | r3) else "-" end) | \(.server_cpu | r2) | \(.generator_cpu | r2) | \(if .helpers_cpu then (.helpers_cpu | r2) else "-" end) | \(.rest_cpu | r2) | \(.attempts) |"' "$json"
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
