#!/usr/bin/env bash
# Rampart's benchmarks in one command; see bench/README.md.
#
#   bench/run.sh                    # every benchmark
#   bench/run.sh startup guard      # a subset, by name: startup guard limits webhooks scheduler
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
# BENCH_ATTEMPTS, BENCH_PROFILE=0, BENCH_SKIP_BUILD=1, BENCH_KEEP_TMP=1 (keep logs); webhooks: BENCH_WEBHOOK_LATENCY_RATE,
# BENCH_WEBHOOK_RATE, BENCH_WEBHOOK_SUSTAINED_OFFER, BENCH_WEBHOOK_FANOUT, BENCH_WEBHOOK_FANOUT_OFFER,
# BENCH_WEBHOOK_CONNECTIONS, BENCH_DRAIN_TIMEOUT;
# scheduler: BENCH_SCHED_COUNT, BENCH_SCHED_LEAD, BENCH_SCHED_CASES;
# webhooks subsets: BENCH_WEBHOOK_STORES, BENCH_WEBHOOK_CASES.
set -euo pipefail
export LC_ALL=C

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

BENCHMARKS=(startup guard instructions limits webhooks scheduler)

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
# webhooks: the latency case's offered writes/s, the sustained cases' target deliveries/s, the
# fan-out case's endpoints per write, and the connections the writes go out on.
WEBHOOK_LATENCY_RATE=${BENCH_WEBHOOK_LATENCY_RATE:-500}
WEBHOOK_RATE=${BENCH_WEBHOOK_RATE:-2000}
WEBHOOK_FANOUT=${BENCH_WEBHOOK_FANOUT:-4}
# Deliveries/s the sustained cases offer (one endpoint; and the fan-out case over all its
# endpoints): above the target, so that keeping up shows the target rate sustained (offering
# exactly the target leaves "delivered ≥ target" to chance: 1,999.6/s was once a miss).
WEBHOOK_SUSTAINED_OFFER=${BENCH_WEBHOOK_SUSTAINED_OFFER:-$((WEBHOOK_RATE * 11 / 10))}
WEBHOOK_FANOUT_OFFER=${BENCH_WEBHOOK_FANOUT_OFFER:-$WEBHOOK_SUSTAINED_OFFER}
WEBHOOK_CONNECTIONS=${BENCH_WEBHOOK_CONNECTIONS:-32}
# After the offered load, how long outstanding deliveries are waited for before they are lost.
DRAIN_TIMEOUT=${BENCH_DRAIN_TIMEOUT:-60s}
# instructions: how long each counted run lasts (under valgrind, about 500 requests/s).
INSTR_DURATION=${BENCH_INSTR_DURATION:-5s}
# scheduler: how many messages, and how far ahead of the start their common send_at is.
SCHED_COUNT=${BENCH_SCHED_COUNT:-10000}
SCHED_LEAD=${BENCH_SCHED_LEAD:-15s}
# Which scheduler cases to run (a subset only while investigating: the section is rewritten).
SCHED_CASES=${BENCH_SCHED_CASES:-sqlite postgres postgres-2workers postgres-notls}
# Which webhook stores and cases to run (subsets only while investigating, as above).
WEBHOOK_STORES=${BENCH_WEBHOOK_STORES:-sqlite postgres postgres-notls}
WEBHOOK_CASES=${BENCH_WEBHOOK_CASES:-latency sustained fanout}
# The API key the webhooks and scheduler benchmarks use.
BENCH_SCOPES=webhooks,contacts,conversations,scheduled_messages,messages

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
    [[ ${BENCH_KEEP_TMP:-0} == 1 ]] && echo "kept $TMP" >&2 || rm -rf "$TMP"
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

# What start_server runs; a benchmark that needs the in-process worker sets `local SERVE=(serve)`.
SERVE=(serve --no-worker)
# What start_server runs the server under (a benchmark may set `local SERVER_WRAP=(valgrind …)`).
SERVER_WRAP=()

# start_server NAME CPUS VAR=value...: starts `rampart ${SERVE[*]}` (`serve --no-worker`
# unless overridden) with that environment, waits until /health/ready answers 200; sets
# SERVER_PID and SERVER_API.
start_server() {
    local name=$1 cpus=$2
    shift 2
    local out=$TMP/$name.log
    local cmd=("${SERVER_WRAP[@]}" "$BIN" "${SERVE[@]}")
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

# start_worker NAME VAR=value...: starts `rampart worker` with that environment and waits for
# its `worker started` log line; sets WORKER_PID.
start_worker() {
    local name=$1
    shift
    local out=$TMP/$name.log
    env "$@" RAMPART_LOG=warn,rampart::jobs::runner=info RAMPART_LOG_FORMAT=json \
        "$BIN" worker >"$out" 2>"$TMP/$name.err" &
    WORKER_PID=$!
    PIDS+=("$WORKER_PID")
    local i
    for ((i = 0; i < 600; i++)); do
        grep -q '"worker started"' "$out" 2>/dev/null && return 0
        if ! kill -0 "$WORKER_PID" 2>/dev/null; then
            echo "worker $name exited during start-up:" >&2
            cat "$out" "$TMP/$name.err" >&2
            return 1
        fi
        sleep 0.05
    done
    echo "worker $name not started after 30 s" >&2
    return 1
}

# fresh_db NAME: creates an empty Postgres database (dropped on exit); sets FRESH_DB.
fresh_db() {
    FRESH_DB="rampart_bench_${1}_$(date +%s)_$$"
    psql "$PG_URL/postgres" -qc "CREATE DATABASE $FRESH_DB" >/dev/null
    DATABASES+=("$FRESH_DB")
}

drop_db() { psql "$PG_URL/postgres" -qc "DROP DATABASE IF EXISTS $1 WITH (FORCE)" >/dev/null; }

# bench_key ENV_ARRAY NAME: a new org with its plan limits raised out of reach (active, tier
# full) and a live key with every scope the webhooks and scheduler benchmarks use; prints it.
bench_key() {
    local org
    org=$(admin "$1" create-org --name "$2" | jq -r .id)
    admin "$1" set-subscription --org "$org" --status active --tier full \
        --rate-limit 1000000/s --quota 1000000000/day >/dev/null
    admin "$1" create-key --org "$org" --scopes "$BENCH_SCOPES" \
        --permissions read,write,delete | jq -r .key
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

# machine_reference: req/s of the bare route on the current server (closed loop, 64
# connections, 3 s, not pinned). Printed with a section's figures so that a slow or crowded
# host (which the quiet check does not always see: a VM can be slow without steal) shows
# beside them instead of passing for a property of the code.
machine_reference() {
    "$LOAD" http --url "http://$SERVER_API/bench/bare" --concurrency 64 --warmup 1s \
        --duration 3s --json | jq '.throughput_rps | round'
}

# reference_line N: the sentence that reports machine_reference's figure N.
reference_line() {
    echo "Machine reference at the time: \`GET /bench/bare\` on this section's first server did $1 req/s (closed loop, 64 connections, 3 s, not pinned). Compare it across sections and runs: on a day when this VM was slow without showing steal (2026-12-03, every figure 2–3× worse than the day before), it did about 31,000–35,000; a figure well below the others means the host, not the code, was slow."
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

# guard_key ENVS NAME: prints a key for the guarded route, on a new org NAME whose plan
# limits are far above anything reachable, the key with no limit of its own: nothing is
# refused, but every limit and quota is still evaluated on every request.
guard_key() {
    local org
    org=$(admin "$1" create-org --name "$2" | jq -r .id)
    admin "$1" set-subscription --org "$org" --status active --tier full \
        --rate-limit 1000000/s --quota 1000000000/day >/dev/null
    admin "$1" create-key --org "$org" --scopes messages --permissions read | jq -r .key
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
        local key
        key=$(guard_key envs "bench-guard-$store")
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
    echo "One \`rampart serve --no-worker\` on a fresh SQLite database with \`RAMPART_LOG=$SERVER_LOG\`: warnings only, so no per-request access log lines (the one \`info\` target left on, \`rampart::app\`, only logs start-up and shutdown, including the line that carries the bound addresses). \`GET /bench/bare\` is a 204 behind only the outer conventions middleware (request id, security headers, logging span, metrics); \`GET /v1/bench/guarded\` is a 204 no-op behind the whole guard stack (API-key auth with its cache, tenant, scope \`messages\` + permission \`read\`, billing, per-key and per-org rate limits and quotas). The org is \`active\`/\`full\` with its plan limits raised to 1000000/s and 1000000000/day and the key has no limit of its own, so nothing is refused but every limit is still evaluated. Both routes hit the same server in the same run, in alternating runs ($ROUNDS rounds; tables show the median round). With Redis (\`RAMPART_REDIS_URL\`), limits and quotas are decided by the Redis script, the org's two limits (busy here) from leases of units the script grants (\`RAMPART_REDIS_LEASE\`, default 50 ms; see OPERATIONS.md): the request that finds a lease running low has it refilled in the background, so guarded requests rarely wait for Redis, and Redis still counts every unit. For reference, the last throughput row repeats the in-process case at the default \`RAMPART_LOG=info\`, where every request writes a JSON access-log line (to a file here)."
    echo
    echo "Pinning (\`taskset\`): server on CPU ${SERVER_CPUS:-any}, load generator on CPU ${LOAD_CPUS:-any}; Redis is not pinned and shares the cores. Each run: $WARMUP warm-up, then $DURATION measured. Closed loop: $CONCURRENCY keep-alive connections, each sending its next request as soon as the previous answer arrives (\`rampart-bench http --concurrency $CONCURRENCY\`). Fixed rate: open loop over $OPEN_CONNECTIONS connections, latency measured from each request's scheduled send time, so queueing is counted (no coordinated omission)."
    echo
    echo "### Maximum throughput (closed loop, $CONCURRENCY connections)"
    echo
    echo "*Guarded / bare* divides the two routes' median req/s. The *median of per-round ratios* pairs each guarded run with the bare run just before it, which cancels the VM's drift between rounds (its speed moved by up to 2× within a day here). The target counts as met only if both reach it."
    echo
    echo "| Limiter store | Bare req/s | Guarded req/s | Guarded / bare | Median of per-round ratios | Target | Met (both) | Per-round ratios | Server CPU, bare / guarded |"
    echo "|---|---:|---:|---:|---:|---:|:---:|---|---:|"
    for store in memory redis logs; do
        jq -r --arg s "$store" "$med"'
            map(select(.store == $s and .mode == "closed")) as $r
            | ($r | map(select(.route == "bare"))) as $b | ($r | map(select(.route == "guarded"))) as $g
            | ($b | map(.throughput_rps) | median) as $bm | ($g | map(.throughput_rps) | median) as $gm
            | [range(0; [$b, $g] | map(length) | min)] | map($g[.].throughput_rps / $b[.].throughput_rps) as $pr
            | ($pr | map(. * 1000 | round / 1000 | tostring) | join(", ")) as $ratios
            | ($pr | median) as $pm
            | select($bm != null)
            | "| \(if $s == "logs" then "memory, with `RAMPART_LOG=info` access logs (reference)" else $s end) | \($bm | round) | \($gm | round) | \($gm / $bm * 1000 | round / 1000) | \($pm * 1000 | round / 1000) | \(if $s == "logs" then "-" else "≥ 0.85" end) | \(if $s == "logs" then "-" elif $gm / $bm >= 0.85 and $pm >= 0.85 then "yes" else "**no**" end) | \($ratios) | \($b | map(.server_cpu) | median * 100 | round / 100) / \($g | map(.server_cpu) | median * 100 | round / 100) |"' "$json"
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
# instructions: the user-space instructions the server executes per request of the bare and
# the guarded route, counted by callgrind. Unlike req/s on a shared VM, a count that other
# work on the machine does not move: the guard's cost, compared across commits.

bench_instructions() {
    if ! command -v valgrind >/dev/null || ! command -v callgrind_control >/dev/null; then
        log "instructions: valgrind not installed; skipped"
        rm -f "$RESULTS/instructions.md"
        return 0
    fi
    local store dir=$TMP/instructions rows=()
    for store in memory redis; do
        log "instructions: limiter store $store"
        local out=$dir/$store
        mkdir -p "$out"
        local envs=("RAMPART_DATABASE_URL=sqlite://$out/r.db" "RAMPART_DATA_DIR=$out"
            "RAMPART_LOG=$SERVER_LOG")
        [[ $store != redis ]] || envs+=("RAMPART_REDIS_URL=$REDIS_URL")
        local key
        key=$(guard_key envs "bench-instructions-$store")
        local SERVER_WRAP=(valgrind --tool=callgrind "--callgrind-out-file=$out/cg.%p")
        start_server "instructions-$store" "" "${envs[@]}"
        local bare=(--url "http://$SERVER_API/bench/bare")
        local guarded=(--url "http://$SERVER_API/v1/bench/guarded" -H "Authorization: Bearer $key")
        # Caches filled and every path taken once before anything is counted.
        "$LOAD" http "${bare[@]}" --concurrency 4 --warmup 0s --duration 2s >/dev/null
        "$LOAD" http "${guarded[@]}" --concurrency 4 --warmup 0s --duration 2s >/dev/null
        local route dumps=0
        for route in bare guarded bare guarded; do
            local args=("${bare[@]}")
            [[ $route == bare ]] || args=("${guarded[@]}")
            callgrind_control -z "$SERVER_PID" >/dev/null
            local n
            n=$("$LOAD" http "${args[@]}" --concurrency 4 --warmup 0s --duration "$INSTR_DURATION" \
                --json | jq .requests)
            callgrind_control -d "$route" "$SERVER_PID" >/dev/null
            dumps=$((dumps + 1))
            local file=$out/cg.$SERVER_PID.$dumps i=0
            while [[ ! -s $file ]] && ((i++ < 100)); do sleep 0.1; done
            local ir
            ir=$(awk '/^summary:/ { print $2; exit }' "$file")
            rows+=("$(jq -nc --arg store "$store" --arg route "$route" --argjson n "$n" \
                --argjson ir "$ir" '{store: $store, route: $route, requests: $n, instructions: $ir}')")
            log "   $store $route: $n requests, $((ir / n)) instructions per request"
        done
        stop_server "$SERVER_PID"
    done
    printf '%s\n' "${rows[@]}" | jq -s . >"$RESULTS/instructions.json"
    {
        echo "## Instructions per request (callgrind)"
        echo
        section_stamp
        echo
        echo "The guard benchmark's two routes on one \`rampart serve --no-worker\` (SQLite, \`RAMPART_LOG=$SERVER_LOG\`) run under \`valgrind --tool=callgrind\`: after a warm-up, the counters are zeroed, \`rampart-bench http\` sends requests for $INSTR_DURATION (4 in flight), and the server's instructions since the zeroing are divided by the requests answered; each route twice, alternating, and the table gives the mean. What other work on a shared VM does to req/s it does not do to this count: it moves by a few percent at most between runs (the server's background work, such as limiter refills and metrics upkeep, is counted too), so it is the figure to compare across commits. It counts user space only: the kernel's socket work, the same for both routes and a large share of a no-op request's cost, is not in it, so *guarded / bare* here overstates what the guard costs in throughput. Under valgrind, SHA-256 runs without the CPU's SHA extensions, which inflates the API-key hash a little."
        echo
        echo "| Limiter store | Bare, instructions/request | Guarded, instructions/request | Guard overhead | Guarded / bare |"
        echo "|---|---:|---:|---:|---:|"
        jq -r 'group_by(.store)[] | (map(select(.route == "bare")) | (map(.instructions) | add) / (map(.requests) | add)) as $b
            | (map(select(.route == "guarded")) | (map(.instructions) | add) / (map(.requests) | add)) as $g
            | "| \(.[0].store) | \($b | round) | \($g | round) | \($g - $b | round) | \($g / $b * 100 | round / 100) |"' \
            "$RESULTS/instructions.json"
    } >"$RESULTS/instructions.md"
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
# webhooks: API write → signed delivery at a local receiver, on SQLite and Postgres.

# webhook_case OUT STORE CASE ARGS...: one `rampart-bench webhooks` run against the current
# server, labelled, into OUT; repeated (up to $ATTEMPTS in all) while other work took more than
# $MAX_REST cores. Each run registers its own endpoints and deletes them at the end.
webhook_case() {
    local out=$1 store=$2 case=$3
    shift 3
    local attempt rest
    for ((attempt = 1; ; attempt++)); do
        quiet
        "$LOAD" webhooks --api "http://$SERVER_API" --server-pid "$SERVER_PID" \
            --warmup "$WARMUP" --duration "$DURATION" --drain-timeout "$DRAIN_TIMEOUT" \
            --concurrency "$WEBHOOK_CONNECTIONS" "$@" --json >"$out.raw"
        rest=$(jq -r '.cpu.rest // 0' "$out.raw")
        jq --arg store "$store" --arg case "$case" --argjson attempts "$attempt" \
            '. + {store: $store, case: $case, attempts: $attempts}' "$out.raw" >"$out"
        jq -r 'def r: . * 10 | round / 10;
            "   \(.store) \(.case): \(.endpoints) endpoint(s), writes offered \(.writes.offered_rps | round)/s accepted \(.writes.accepted_rps | round)/s (unsent \(.writes.unsent), errors \(.writes.errors)); delivered \(.deliveries.window_rps | round)/s, backlog at end \(.deliveries.backlog_at_end), drain \(.deliveries.drain_s // null | if . == null then "incomplete" else "\(. * 100 | round / 100) s" end); e2e p50 \(.e2e_ms.p50 // 0 | r) p99 \(.e2e_ms.p99 // 0 | r) ms; duplicates \(.deliveries.duplicates), lost \(.deliveries.lost); CPU server \(.cpu.server // 0 | . * 100 | round / 100) db \(.cpu.helpers // 0 | . * 100 | round / 100) bench \(.cpu.bench // 0 | . * 100 | round / 100) rest \(.cpu.rest // 0 | . * 100 | round / 100)"' "$out" >&2
        if awk "BEGIN { exit !($rest <= $MAX_REST) }" || ((attempt >= ATTEMPTS)); then
            return 0
        fi
        echo "   (other work used $rest cores during that run: repeating it)" >&2
    done
}

# profile_webhooks KEY OUT: where the server's CPU goes during the sustained case, by perf
# (server process only, DWARF call graphs). Optional like the guard's profile: needs perf,
# BENCH_PROFILE=0 skips it; a run of its own, apart from the measurements.
profile_webhooks() {
    local key=$1 out=$2
    if [[ ${BENCH_PROFILE:-1} == 0 ]] || ! command -v perf >/dev/null; then
        rm -f "$out"
        return 0
    fi
    log "webhooks: perf profile of the server (sustained case)"
    quiet
    "$LOAD" webhooks --api "http://$SERVER_API" --key "$key" --endpoints 1 \
        --rate "$WEBHOOK_SUSTAINED_OFFER" --concurrency "$WEBHOOK_CONNECTIONS" --warmup 1s --duration 7s \
        --drain-timeout "$DRAIN_TIMEOUT" --json >/dev/null &
    local gen=$!
    sleep 3
    if perf record -F 499 --call-graph dwarf,16384 -p "$SERVER_PID" -o "$TMP/perf-webhooks.data" \
        -- sleep 4 >/dev/null 2>&1; then
        # Inclusive share of the server's samples per Rampart, sqlx or SQLite function.
        perf report -i "$TMP/perf-webhooks.data" --children --percent-limit 2 --stdio -g none \
            2>/dev/null | awk '$1 ~ /%$/ && (/\] rampart::/ || /\] sqlite3/ || /\] sqlx_sqlite/) {
                pct = $1; sym = $0; sub(/^.*\] /, "", sym); sub(/::\{\{closure\}\}$/, "", sym)
                if (!(sym in seen)) { seen[sym] = 1; print pct "\t" sym } }' >"$out"
    else
        echo "perf record failed; no profile" >&2
        rm -f "$out"
    fi
    wait "$gen" || true
}

bench_webhooks() {
    local store dir=$TMP/webhooks runs=()
    # postgres-notls: the same database without TLS on the loopback connection (sqlx prefers
    # TLS when the server offers it, as this one does), fan-out case only, to show its cost.
    for store in $WEBHOOK_STORES; do
        log "webhooks: $store"
        local out=$dir/$store db=
        mkdir -p "$out"
        local envs=("RAMPART_DATA_DIR=$out" "RAMPART_LOG=$SERVER_LOG"
            "RAMPART_WEBHOOK_ALLOW_PRIVATE=true")
        local helper=()
        if [[ $store == sqlite ]]; then
            envs+=("RAMPART_DATABASE_URL=sqlite://$out/r.db")
        else
            fresh_db webhooks
            db=$FRESH_DB
            if [[ $store == postgres-notls ]]; then
                envs+=("RAMPART_DATABASE_URL=$PG_URL/$db?sslmode=disable")
            else
                envs+=("RAMPART_DATABASE_URL=$PG_URL/$db")
            fi
            # The database's CPU is reported apart, not mistaken for interference.
            helper=(--helper-comm postgres)
        fi
        local key
        key=$(bench_key envs "bench-webhooks-$store")
        # The server runs its in-process worker, which makes the deliveries.
        local SERVE=(serve)
        start_server "webhooks-$store" "" "${envs[@]}"
        [[ -n ${WEBHOOK_REF:-} ]] || { quiet; WEBHOOK_REF=$(machine_reference); }
        if [[ $store != postgres-notls && " $WEBHOOK_CASES " == *" latency "* ]]; then
            webhook_case "$out/latency.json" "$store" latency --key "$key" "${helper[@]}" \
                --endpoints 1 --rate "$WEBHOOK_LATENCY_RATE"
            runs+=("$out/latency.json")
        fi
        if [[ $store != postgres-notls && " $WEBHOOK_CASES " == *" sustained "* ]]; then
            webhook_case "$out/sustained.json" "$store" sustained --key "$key" "${helper[@]}" \
                --endpoints 1 --rate "$WEBHOOK_SUSTAINED_OFFER"
            runs+=("$out/sustained.json")
        fi
        if [[ " $WEBHOOK_CASES " == *" fanout "* ]]; then
            webhook_case "$out/fanout.json" "$store" fanout --key "$key" "${helper[@]}" \
                --endpoints "$WEBHOOK_FANOUT" --rate "$(calc "$WEBHOOK_FANOUT_OFFER / $WEBHOOK_FANOUT")"
            runs+=("$out/fanout.json")
        fi
        [[ $store != sqlite ]] || profile_webhooks "$key" "$RESULTS/webhooks-profile.tsv"
        stop_server "$SERVER_PID"
        [[ -z $db ]] || drop_db "$db"
    done
    jq -s 'sort_by(.store != "sqlite", .store, (.case | {latency: 0, sustained: 1, fanout: 2}[.]))' \
        "${runs[@]}" >"$RESULTS/webhooks.json"
    webhooks_markdown >"$RESULTS/webhooks.md"
}

webhooks_markdown() {
    local json=$RESULTS/webhooks.json
    echo "## Webhook delivery"
    echo
    section_stamp
    echo
    echo "One \`rampart serve\` with its in-process worker (\`RAMPART_LOG=$SERVER_LOG\`, \`RAMPART_WEBHOOK_ALLOW_PRIVATE=true\`), on a fresh SQLite database, then on a fresh Postgres database; not pinned, so the server, its worker, the database and \`rampart-bench\` share both cores. \`rampart-bench webhooks\` runs a real HTTP/1.1 receiver (axum) on 127.0.0.1 that answers \`200\` at once, verifies every \`webhook-signature\` with the endpoint's secret and records the arrival; it registers the endpoints (\`POST /v1/webhooks\`, events \`contact.created\`) and offers \`POST /v1/contacts\` writes on a fixed schedule (open loop over $WEBHOOK_CONNECTIONS keep-alive connections, $WARMUP warm-up then $DURATION measured), each with a unique \`external_key\` by which its \`contact.created\` delivery is matched to it. A write fans out to every endpoint: *deliveries* = accepted writes × endpoints. Once the load ends, outstanding deliveries are waited for (at most $DRAIN_TIMEOUT) and then counted lost."
    echo
    echo "- *Delivered/s*: distinct deliveries received during the measured window, divided by its length; *slowest/fastest s*: the extreme whole seconds of the window."
    echo "- *Backlog at end*: deliveries owed at the end of the offered load (of the accepted writes due before it, including those still waiting for a free connection or for the API's answer) and not received by then; *drain*: from the end of the load to the last delivery; *drain delivered/s*: deliveries received after the end of the load / drain, i.e. the delivery rate once the API writes have stopped."
    echo "- *e2e*: from the write request being sent to its signed delivery arriving, over the window's writes and every endpoint. *API p99*: the write's own send → response."
    echo "- *Duplicates*: requests repeating a \`webhook-id\` the endpoint already had; *lost*: expected deliveries never received."
    echo
    [[ -z ${WEBHOOK_REF:-} ]] || { reference_line "$WEBHOOK_REF"; echo; }
    echo "| Store | Case | Endpoints | Writes offered/s | Writes accepted/s | Deliveries offered/s (writes × endpoints) | Delivered/s | Slowest / fastest s | Backlog at end | Drain | Drain delivered/s | e2e p50 | e2e p90 | e2e p99 | e2e max | API p99 | Duplicates | Lost | Target | Met |"
    echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|:---:|"
    jq -r --argjson rate "$WEBHOOK_RATE" 'def ms: if . == null then "-" elif . >= 1000 then "\(. / 100 | round / 10) s" elif . >= 100 then "\(. | round) ms" else "\(. * 10 | round / 10) ms" end;
        .[] | (.deliveries) as $d
        | (if .case == "latency" then {t: "e2e p99 ≤ 250 ms", ok: ((.e2e_ms.p99 // 1e9) <= 250 and $d.lost == 0)}
           else {t: "≥ \($rate) deliveries/s, backlog < 1 s", ok: ($d.window_rps >= $rate and $d.backlog_at_end < $rate and $d.lost == 0)} end) as $target
        | "| \(.store) | \(.case) | \(.endpoints) | \(.writes.offered_rps | round) | \(.writes.accepted_rps | round) | \(.writes.offered_rps * .endpoints | round) | \($d.window_rps | round) | \($d.window_second_min) / \($d.window_second_max) | \($d.backlog_at_end) | \(if $d.drain_s == null then "incomplete" else "\($d.drain_s * 100 | round / 100) s" end) | \($d.drain_rps // null | if . == null then "-" else round end) | \(.e2e_ms.p50 | ms) | \(.e2e_ms.p90 | ms) | \(.e2e_ms.p99 | ms) | \(.e2e_ms.max | ms) | \(.writes.api_latency_ms.p99 | ms) | \($d.duplicates) | \($d.lost) | \($target.t) | \(if $target.ok then "yes" else "**no**" end) |"' "$json"
    echo
    echo "Cases: *latency*: one endpoint, $WEBHOOK_LATENCY_RATE writes/s. *sustained*: one endpoint, $WEBHOOK_SUSTAINED_OFFER writes/s, i.e. $WEBHOOK_SUSTAINED_OFFER deliveries/s offered if the API accepts them all (above the $WEBHOOK_RATE/s target, so that keeping up shows the target sustained; offering exactly the target would leave *delivered ≥ target* to chance). *fanout*: $WEBHOOK_FANOUT endpoints, $(calc "$WEBHOOK_FANOUT_OFFER / $WEBHOOK_FANOUT") writes/s, so $WEBHOOK_FANOUT_OFFER deliveries/s offered (above the $WEBHOOK_RATE/s target, so that keeping up shows the target sustained) at a write rate the API sustains. Store *postgres-notls*: the same Postgres with \`?sslmode=disable\` in \`RAMPART_DATABASE_URL\` (by default sqlx negotiates TLS even over the loopback, and this Postgres offers it), fan-out case only."
    echo
    echo "### Every run"
    echo
    echo "*Unsent*: scheduled writes the generator never sent because every connection was still waiting on the API ($WEBHOOK_CONNECTIONS connections; past the run's deadline they are dropped). *Requests*: all the receiver got, duplicates included; *bad sig.*: signatures that did not verify (target 0); *unexpected*: deliveries of writes that were not accepted. CPU in cores over the measured window: *server* is \`rampart serve\` with its worker, *database* the \`postgres\` processes, *bench* the writer and the receiver, *rest* everything else (a run with more than $MAX_REST cores of *rest* was repeated, *attempts*)."
    echo
    echo "| Store | Case | Writes sent | Accepted | Unsent | Errors | Statuses | Expected deliveries | Received | Requests | Bad sig. | Unexpected | API p50 | Send lag p99 | Overall delivered/s | CPU server | CPU database | CPU bench | CPU rest | Attempts |"
    echo "|---|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    jq -r 'def r2: if . == null then "-" else . * 100 | round / 100 end; def r3: if . == null then "-" else . * 1000 | round / 1000 end;
        .[] | "| \(.store) | \(.case) | \(.writes.sent) | \(.writes.accepted) | \(.writes.unsent) | \(.writes.errors) | \(.writes.status | to_entries | map("\(.key): \(.value)") | join(", ")) | \(.deliveries.expected) | \(.deliveries.received) | \(.deliveries.requests) | \(.deliveries.bad_signatures) | \(.deliveries.unexpected) | \(.writes.api_latency_ms.p50 | r3) ms | \(.writes.send_lag_ms.p99 | r3) ms | \(.deliveries.overall_rps | round) | \(.cpu.server | r2) | \(.cpu.helpers | r2) | \(.cpu.bench | r2) | \(.cpu.rest | r2) | \(.attempts) |"' "$json"
    if [[ -f $RESULTS/webhooks-profile.tsv ]]; then
        echo
        echo "### Where the server's CPU goes while delivering (SQLite, sustained case)"
        echo
        echo "A separate run of the *sustained* case under \`perf record -F 499 --call-graph dwarf\` (4 s in the middle of the load, server process only). Inclusive share of the server's on-CPU samples per function above 2 %, Rampart's own, sqlx's SQLite driver and SQLite's (\`sqlite3*\`); nested functions are counted in their callers too. On-CPU only: time spent waiting (for SQLite's single write connection, in particular) does not show."
        echo
        echo "| Function | Share of server CPU |"
        echo "|---|---:|"
        awk -F'\t' '{ printf "| `%s` | %s |\n", $2, $1 }' "$RESULTS/webhooks-profile.tsv"
    fi
}

# ---------------------------------------------------------------------------------------
# scheduler: N scheduled messages due at one instant, through the channel endpoint.

bench_scheduler() {
    local case dir=$TMP/scheduler runs=()
    # postgres-notls: one worker, `?sslmode=disable` (see the webhooks benchmark).
    for case in $SCHED_CASES; do
        log "scheduler: $case"
        local out=$dir/$case db= workers=1
        mkdir -p "$out"
        local envs=("RAMPART_DATA_DIR=$out" "RAMPART_LOG=$SERVER_LOG"
            "RAMPART_WEBHOOK_ALLOW_PRIVATE=true")
        if [[ $case == sqlite ]]; then
            envs+=("RAMPART_DATABASE_URL=sqlite://$out/r.db")
        else
            fresh_db scheduler
            db=$FRESH_DB
            if [[ $case == postgres-notls ]]; then
                envs+=("RAMPART_DATABASE_URL=$PG_URL/$db?sslmode=disable")
            else
                envs+=("RAMPART_DATABASE_URL=$PG_URL/$db")
            fi
        fi
        local key
        key=$(bench_key envs "bench-scheduler-$case")
        local pids=()
        if [[ $case == *-2workers ]]; then
            # API only; two `rampart worker` processes share the scheduler and deliveries.
            local SERVE=(serve --no-worker)
            start_server "scheduler-$case" "" "${envs[@]}"
            pids+=("$SERVER_PID")
            start_worker "scheduler-$case-w1" "${envs[@]}"
            pids+=("$WORKER_PID")
            start_worker "scheduler-$case-w2" "${envs[@]}"
            pids+=("$WORKER_PID")
            workers=2
        else
            local SERVE=(serve)
            start_server "scheduler-$case" "" "${envs[@]}"
            pids+=("$SERVER_PID")
        fi
        [[ -n ${SCHED_REF:-} ]] || { quiet; SCHED_REF=$(machine_reference); }
        quiet
        "$LOAD" scheduler --api "http://$SERVER_API" --key "$key" --count "$SCHED_COUNT" \
            --lead "$SCHED_LEAD" --drain-timeout "$DRAIN_TIMEOUT" --json >"$out/raw.json"
        jq --arg store "${case%%-*}" --arg case "$case" --argjson workers "$workers" \
            '. + {store: $store, case: $case, workers: $workers}' "$out/raw.json" >"$out/report.json"
        jq -r 'def r: . * 10 | round / 10;
            "   \(.case): created \(.create.created) in \(.create.elapsed_s | r) s (\(.create.margin_s | r) s before send_at); received \(.arrivals.distinct) distinct, duplicates \(.arrivals.duplicates), missing \(.arrivals.missing); lateness p50 \(.lateness_ms.p50 // 0 | r) p99 \(.lateness_ms.p99 // 0 | r) max \(.lateness_ms.max // 0 | r) ms; dispatch p99 \(.dispatch_lateness_ms.p99 // 0 | r) ms; API \(.api.scheduled_status) \(.api.message_status)"' "$out/report.json" >&2
        local p
        for p in "${pids[@]}"; do stop_server "$p"; done
        [[ -z $db ]] || drop_db "$db"
        runs+=("$out/report.json")
    done
    jq -s . "${runs[@]}" >"$RESULTS/scheduler.json"
    scheduler_markdown >"$RESULTS/scheduler.md"
}

scheduler_markdown() {
    local json=$RESULTS/scheduler.json
    echo "## Scheduled messages"
    echo
    section_stamp
    echo
    echo "\`rampart-bench scheduler --count $SCHED_COUNT --lead $SCHED_LEAD\`: one org (plan limits raised out of the way) with a channel endpoint (\`POST /v1/webhooks\` with \`kind: \"channel\"\`) pointing at the benchmark's local receiver (answers \`200\` at once, verifies signatures), one contact and conversation; then $SCHED_COUNT \`POST /v1/scheduled-messages\` (16 in flight) all with the same \`send_at\`, $SCHED_LEAD after the first request. Each dispatched message reaches the receiver as a signed \`message.created\` delivery naming its \`scheduled_message_id\`. After every one has arrived (or $DRAIN_TIMEOUT past \`send_at\`) the receiver listens 2 s more for duplicates, then the API is read back: every scheduled message's status and \`dispatched_at\` (\`GET /v1/scheduled-messages\`), every message of the conversation and its status (\`GET /v1/messages\`). Server: \`rampart serve\` with its in-process worker (*sqlite*, *postgres*), or \`rampart serve --no-worker\` and two \`rampart worker\` processes on one Postgres database (*postgres-2workers*), or the first again with \`?sslmode=disable\` in the database URL (*postgres-notls*); \`RAMPART_LOG=$SERVER_LOG\`, not pinned."
    echo
    echo "- *Lateness*: receiver arrival − \`send_at\` (wall clock, same machine); *dispatch lateness*: \`dispatched_at\` − \`send_at\` as the API reports it (when the dispatcher wrote the batch that created the message; the delivery to the channel follows)."
    echo "- *Throughput*: messages per second from the first arrival to the last, and from the first \`dispatched_at\` to the last."
    echo "- *Exactly once*: distinct scheduled messages received = created, no duplicate arrival, every scheduled message \`dispatched\` with exactly one message, every message \`sent\`."
    echo
    [[ -z ${SCHED_REF:-} ]] || { reference_line "$SCHED_REF"; echo; }
    echo "| Case | Workers | Created | Creation time | Margin before send_at | Lateness p50 | p99 | max | Dispatch lateness p50 | p99 | max | Delivered msg/s | Dispatched msg/s | Received (distinct) | Duplicates | Missing | API: dispatched / sent | Lateness p99 ≤ 1 s | Every dispatch ≤ 1 s (SPEC §4) | Exactly once |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|:---:|:---:|:---:|"
    jq -r 'def ms: if . == null then "-" elif (. | fabs) >= 1000 then "\(. / 100 | round / 10) s" else "\(. | round) ms" end;
        .[] | (.api.scheduled_status.dispatched // 0) as $disp | (.api.message_status.sent // 0) as $sent
        | ((.arrivals.distinct == .create.created) and .arrivals.duplicates == 0 and .arrivals.duplicate_webhook_ids == 0 and .arrivals.missing == 0 and .arrivals.unexpected == 0 and $disp == .create.created and $sent == .create.created and .api.scheduled_without_message == 0 and .api.scheduled_with_several_messages == 0) as $once
        | "| \(.case) | \(.workers) | \(.create.created) | \(.create.elapsed_s * 100 | round / 100) s (\(.create.rps | round)/s) | \(.create.margin_s * 10 | round / 10) s | \(.lateness_ms.p50 | ms) | \(.lateness_ms.p99 | ms) | \(.lateness_ms.max | ms) | \(.dispatch_lateness_ms.p50 | ms) | \(.dispatch_lateness_ms.p99 | ms) | \(.dispatch_lateness_ms.max | ms) | \(.delivery_rps // 0 | round) | \(.dispatch_rps // 0 | round) | \(.arrivals.distinct) | \(.arrivals.duplicates) | \(.arrivals.missing) | \($disp) / \($sent) | \(if (.lateness_ms.p99 // 1e9) <= 1000 and .arrivals.missing == 0 then "yes" else "**no**" end) | \(if (.dispatch_lateness_ms.max // 1e9) <= 1000 then "yes" else "**no**" end) | \(if $once then "yes" else "**no**" end) |"' "$json"
    echo
    echo "| Case | Workers | First arrival | Last arrival | First dispatch | Last dispatch | Requests | Duplicate webhook-ids | Early | Bad sig. | Unexpected | Scheduled statuses | Message statuses | API settled after | Creation p50 / p99 |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|---:|---:|"
    jq -r 'def ms: if . == null then "-" else "\(. | round) ms" end; def st: to_entries | map("\(.key): \(.value)") | join(", ");
        .[] | "| \(.case) | \(.workers) | \(.first_arrival_ms | ms) | \(.last_arrival_ms | ms) | \(.first_dispatch_ms | ms) | \(.last_dispatch_ms | ms) | \(.arrivals.requests) | \(.arrivals.duplicate_webhook_ids) | \(.arrivals.early) | \(.arrivals.bad_signatures) | \(.arrivals.unexpected) | \(.api.scheduled_status | st) | \(.api.message_status | st) | \(.api.settled_after_s * 100 | round / 100) s | \(.create.latency_ms.p50 * 10 | round / 10) / \(.create.latency_ms.p99 * 10 | round / 10) ms |"' "$json"
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
