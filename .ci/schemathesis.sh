#!/usr/bin/env bash
# Schemathesis against a real `rampart serve`: once on a fresh SQLite file and once on a fresh
# Postgres database, each with an API key holding every scope and permission and with an
# owner's access token. Fails on any 5xx, response-schema violation, undocumented status code
# or schema-valid request rejected. Needs RAMPART_TEST_POSTGRES_URL (set by .ci/run).
#
#   ST_EXAMPLES=N   examples per operation and phase (default 25: about 16,000 requests, 4 min)
#   ST_SEED=N       another fixed seed (the default keeps CI deterministic)
#   ST_STORES="sqlite postgres"
set -euo pipefail
cd "$(dirname "$0")/.."

ST_VERSION=4.32.5
EXAMPLES="${ST_EXAMPLES:-25}"
SEED="${ST_SEED:-20261206}"
STORES="${ST_STORES:-sqlite postgres}"
ROOT="$PWD"
VENV="$ROOT/target/schemathesis/venv"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/rampart-st.XXXXXX")"
BIN="$ROOT/target/debug/rampart"
: "${RAMPART_TEST_POSTGRES_URL:?set RAMPART_TEST_POSTGRES_URL (a Postgres URL that may create databases)}"

log() { printf '\n==> schemathesis: %s\n' "$*"; }

if ! "$VENV/bin/st" --version 2>/dev/null | grep -q "$ST_VERSION"; then
    log "installing schemathesis $ST_VERSION into $VENV"
    rm -rf "$VENV"
    if ! python3 -m venv "$VENV" 2>/dev/null; then
        SUDO=""
        if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null; then SUDO="sudo"; fi
        $SUDO apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq python3-venv >/dev/null
        rm -rf "$VENV"
        python3 -m venv "$VENV"
    fi
    "$VENV/bin/pip" install -q --disable-pip-version-check "schemathesis==$ST_VERSION"
fi

[ -n "${ST_SKIP_BUILD:-}" ] || cargo build --quiet --bin rampart

SERVER_PID=""
PG_DB=""
PG_ADMIN="${RAMPART_TEST_POSTGRES_URL%/*}/postgres"
export PGOPTIONS="--client-min-messages=warning"
cleanup() {
    if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
    if [ -n "$PG_DB" ]; then psql "$PG_ADMIN" -qc "DROP DATABASE IF EXISTS \"$PG_DB\" WITH (FORCE)" >/dev/null 2>&1 || true; fi
}
trap 'cleanup; rm -rf "$WORK"' EXIT

json_field() { python3 -c "import json,sys; print(json.load(sys.stdin)[sys.argv[1]])" "$1"; }

# Limits high enough that a fuzzer's pace is never refused; everything else is the default.
export RAMPART_PUBLIC_RATE_LIMIT=1000000/s RAMPART_LOGIN_RATE_LIMIT=1000000/s
export RAMPART_PLAN_FULL_RATE_LIMIT=1000000/s RAMPART_PLAN_FULL_QUOTA=1000000000/day
export RAMPART_WEBHOOK_ALLOW_PRIVATE=true RAMPART_ACCESS_TOKEN_TTL=1h
export RAMPART_LISTEN=127.0.0.1:0 RAMPART_OPS_LISTEN=127.0.0.1:0 RAMPART_LOG_FORMAT=json
unset RAMPART_BILLING_WEBHOOK_SECRET RAMPART_REDIS_URL

failed=0
for store in $STORES; do
    dir="$WORK/$store"
    mkdir -p "$dir"
    export RAMPART_DATA_DIR="$dir"
    if [ "$store" = postgres ]; then
        PG_DB="rampart_st_$$"
        psql "$PG_ADMIN" -qc "DROP DATABASE IF EXISTS \"$PG_DB\" WITH (FORCE)" >/dev/null
        psql "$PG_ADMIN" -qc "CREATE DATABASE \"$PG_DB\"" >/dev/null
        export RAMPART_DATABASE_URL="${RAMPART_TEST_POSTGRES_URL%/*}/$PG_DB"
    else
        export RAMPART_DATABASE_URL="sqlite://$dir/rampart.db"
    fi

    org=$("$BIN" admin create-org --name "Schemathesis" --json | json_field id)
    "$BIN" admin set-subscription --org "$org" --status active --tier full >/dev/null
    echo 'a long passphrase for schemathesis' |
        "$BIN" admin create-user --org "$org" --email owner@st.test --role owner --password-stdin >/dev/null
    key=$("$BIN" admin create-key --org "$org" \
        --scopes messages,contacts,conversations,scheduled_messages,webhooks,dead_letters,audit_logs,exports,gdpr \
        --permissions read,write,delete --rate-limit 1000000/s --quota 1000000000/day --json | json_field key)

    # No worker: generated webhook URLs name arbitrary hosts, and nothing may be sent to them.
    # Deliveries, dispatches and exports are queued and left there.
    "$BIN" serve --no-worker >"$dir/server.log" 2>&1 &
    SERVER_PID=$!
    api=""
    for _ in $(seq 1 100); do
        api=$(python3 -c "
import json, sys
for line in open(sys.argv[1]):
    if 'rampart serving' in line:
        print(json.loads(line)['api']); break" "$dir/server.log" 2>/dev/null || true)
        [ -n "$api" ] && break
        kill -0 "$SERVER_PID" 2>/dev/null || break
        sleep 0.2
    done
    if [ -z "$api" ]; then cat "$dir/server.log" >&2; echo "schemathesis: the server did not start" >&2; exit 1; fi
    base="http://$api"

    token=$(curl -fsS -X POST "$base/v1/auth/login" -H 'Content-Type: application/json' \
        -d '{"email":"owner@st.test","password":"a long passphrase for schemathesis"}' | json_field access_token)

    # Objects some routes need to reach their logic, which only a worker makes: dead letters
    # (detail, replay, resend) and a ready export (its signed download link). One event for two
    # endpoints on the discard port without retries, an export, and a worker run just long
    # enough to fail both deliveries and build the export. Nothing else is queued yet, so the
    # worker sends nothing anywhere else. Each credential's run gets its own dead letter and
    # endpoint (the fuzzer replays one and may delete the other), as "dead letter id, delivery
    # id, endpoint id".
    post() { curl -fsS -X POST "$base$1" -H "Authorization: Bearer $key" -H 'Content-Type: application/json' -d "$2"; }
    for n in 1 2; do
        post /v1/webhooks "{\"url\":\"http://127.0.0.1:9/st-dead-$n\",\"events\":[\"contact.created\"],\"max_retries\":0}" >/dev/null
    done
    post /v1/contacts '{"external_key":"st-seed"}' >/dev/null
    export_id=$(post /v1/exports '{}' | json_field id)
    "$BIN" worker >"$dir/worker.log" 2>&1 &
    worker_pid=$!
    seeded=()
    for _ in $(seq 1 150); do
        mapfile -t seeded < <(curl -fsS "$base/v1/dead-letters?status=open" -H "Authorization: Bearer $key" |
            python3 -c "import json,sys; [print(d['id'], d['delivery_id'], d['endpoint_id']) for d in json.load(sys.stdin)['data']]")
        # The export's link as "expires signature", once it is ready.
        export_link=$(curl -fsS "$base/v1/exports/$export_id" -H "Authorization: Bearer $key" |
            python3 -c "import json,sys,urllib.parse as u; l=json.load(sys.stdin)['download_url'] or ''; q=u.parse_qs(u.urlsplit(l).query); print(q['expires'][0], q['signature'][0]) if l else print()")
        [ "${#seeded[@]}" -ge 2 ] && [ -n "$export_link" ] && break
        sleep 0.2
    done
    kill "$worker_pid" 2>/dev/null || true
    wait "$worker_pid" 2>/dev/null || true
    if [ "${#seeded[@]}" -lt 2 ] || [ -z "$export_link" ]; then
        cat "$dir/worker.log" >&2; echo "schemathesis: the worker did not make the dead letters and the export" >&2; exit 1
    fi
    read -r ST_RAMPART_EXPORT_EXPIRES ST_RAMPART_EXPORT_SIGNATURE <<<"$export_link"
    export ST_RAMPART_EXPORT="$export_id" ST_RAMPART_EXPORT_EXPIRES ST_RAMPART_EXPORT_SIGNATURE
    # The hooks create the objects schema-valid requests refer to (schemathesis_hooks.py).
    export ST_RAMPART_BASE="$base"

    for who in api_key user_token; do
        if [ "$who" = api_key ]; then credential="$key" seed="${seeded[0]}"; else credential="$token" seed="${seeded[1]}"; fi
        read -r ST_RAMPART_DEAD_LETTER ST_RAMPART_DELIVERY ST_RAMPART_ENDPOINT <<<"$seed"
        export ST_RAMPART_DEAD_LETTER ST_RAMPART_DELIVERY ST_RAMPART_ENDPOINT
        log "$store, $who: $EXAMPLES examples per operation"
        # The hooks create objects with the credential under test: the user run may revoke keys.
        # Run from the scratch directory: schemathesis and hypothesis keep caches in the cwd.
        if ! (cd "$WORK" && PYTHONPATH="$ROOT/.ci" SCHEMATHESIS_HOOKS=schemathesis_hooks \
            ST_RAMPART_CREDENTIAL="$credential" \
            "$VENV/bin/st" --config-file "$ROOT/.ci/schemathesis.toml" run "$base/openapi.json" \
            --header "Authorization: Bearer $credential" \
            --checks not_a_server_error,status_code_conformance,response_schema_conformance,positive_data_acceptance \
            --max-examples "$EXAMPLES" --seed "$SEED" --workers 1 \
            --report junit --report-dir "$WORK/report-$store-$who" \
            --output-truncate false); then
            failed=1
        fi
    done

    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=""
    if grep -q '"level":"ERROR"' "$dir/server.log"; then
        echo "schemathesis: the $store server logged errors:" >&2
        grep '"level":"ERROR"' "$dir/server.log" | head -20 >&2
        failed=1
    fi
    if [ -n "$PG_DB" ]; then
        psql "$PG_ADMIN" -qc "DROP DATABASE IF EXISTS \"$PG_DB\" WITH (FORCE)" >/dev/null
        PG_DB=""
    fi
done

if [ "$failed" != 0 ]; then
    echo "schemathesis: FAILED (see above)" >&2
    exit 1
fi
log "ok"
