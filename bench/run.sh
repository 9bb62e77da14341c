#!/usr/bin/env bash
# Rampart's benchmarks in one command; see bench/README.md.
#
#   bench/run.sh                    # every benchmark
#   bench/run.sh startup guard      # a subset, by name:
#                                   #   startup guard instructions read console limits webhooks scheduler
#
# Builds the release binaries (`rampart` with `--features bench-routes`, and `rampart-bench`),
# then runs `rampart-bench run` with the same arguments: it starts the servers, measures,
# keeps each benchmark's figures in bench/results/<name>.{md,json} and rebuilds
# docs/BENCHMARKS.md. Its knobs are BENCH_* environment variables (bench/README.md).
# CARGO_TARGET_DIR (default /work/bench-target) is where the binaries go; BENCH_SKIP_BUILD=1
# uses the binaries already there.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/work/bench-target}

if ! command -v wrk >/dev/null; then
    echo "bench/run.sh: wrk is not installed; install it with: apt-get install wrk" >&2
    exit 1
fi
if [[ ${BENCH_SKIP_BUILD:-0} != 1 ]]; then
    echo "== building release binaries into $CARGO_TARGET_DIR" >&2
    # One invocation, so that the shared dependencies are built once.
    cargo build --release -p rampart -p rampart-bench --features rampart/bench-routes
fi
exec "$CARGO_TARGET_DIR/release/rampart-bench" run --root "$ROOT" \
    --bin "$CARGO_TARGET_DIR/release/rampart" --command "bench/run.sh${*:+ $*}" "$@"
