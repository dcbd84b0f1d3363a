#!/usr/bin/env bash
# tx_instructions.sh — user-space instructions pgferry executes per transaction,
# counted by callgrind on a real pgferry in front of a real cluster. Unlike TPS or
# CPU time on this shared, noisy machine, the count hardly moves between runs
# (a few percent: how many wake-ups a run takes depends on timing), so it shows
# what a change to the hot path did.
#
# Usage: benches/tx_instructions.sh [MODE...]   (default: simple extended prepared)
#   Starts a throwaway primary + 2 replicas (scripts/pgcluster), `pgbench -i`, a
#   release build of pgferry under `valgrind --tool=callgrind --instr-atstart=no`
#   (transaction pooling, pool 20, workers = 1, trust authentication), warms up
#   (logins, server connections), switches instrumentation on for
#   `pgbench -S -M MODE -c CLIENTS -t TX` and off again, and prints
#   Ir / transactions for each mode. The callgrind files stay in RESULTS_DIR for
#   callgrind_annotate (e.g. `callgrind_annotate --inclusive=yes FILE`).
# Environment: CLIENTS=10 TX=1000 (per client) RESULTS_DIR=benches/results/callgrind
#   WORKLOAD=-S (pgbench's select-only script; WORKLOAD= runs the TPC-B-like one)
#   CACHE_UNNAMED=false ([proxy] cache_unnamed_statements; matters for `extended`)
#   CALLGRIND_ARGS= (more valgrind options, e.g. "--cache-sim=yes" for simulated cache
#   misses per function: callgrind_annotate --show=Ir,D1mr,DLmr FILE)
# Needs valgrind (scripts/install-deps installs it).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# shellcheck source=benches/lib.sh
. benches/lib.sh

CLIENTS="${CLIENTS:-10}"
WORKLOAD="${WORKLOAD--S}"
TX="${TX:-1000}"
RESULTS_DIR="${RESULTS_DIR:-$ROOT/benches/results/callgrind}"
PG_BIN="${PG_BIN:-/usr/lib/postgresql/15/bin}"
modes=("$@")
[ ${#modes[@]} -gt 0 ] || modes=(simple extended prepared)

log() { echo "tx_instructions: $*" >&2; }
command -v valgrind >/dev/null || {
    log "valgrind not found (scripts/install-deps)"
    exit 1
}

log "cargo build --release"
cargo build --release >&2
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/pgferry"

CLUSTER_DIR=""
VPID=""
cleanup() {
    [ -z "$VPID" ] || kill -INT "$VPID" 2>/dev/null || true
    [ -z "$CLUSTER_DIR" ] || scripts/pgcluster stop "$CLUSTER_DIR" >/dev/null 2>&1 || true
}
trap cleanup EXIT

eval "$(scripts/pgcluster start --replicas 2 --owner-pid $$)"
# shellcheck disable=SC2153 # set by the eval above
CLUSTER_DIR="$PGCLUSTER_DIR"
export PGPASSWORD=secret PGUSER=app PGHOST=127.0.0.1 PGSSLMODE=disable
"$PG_BIN/pgbench" -i -q -s 1 -p "$PGCLUSTER_PRIMARY_PORT" -d app >/dev/null 2>&1

PORT="$(scripts/pgcluster free-port)"
HOSTS="$(toml_hosts "$PGCLUSTER_HOSTS")"
CFG="$CLUSTER_DIR/pgferry-callgrind.toml"
cat >"$CFG" <<EOF
[proxy]
listen = "127.0.0.1:$PORT"
pool_mode = "transaction"
default_pool_size = 20
auth_method = "trust"
workers = 1
cache_unnamed_statements = ${CACHE_UNNAMED:-false}

[[users]]
name = "app"
password = "secret"

[databases.app]
hosts = [$HOSTS]
dbname = "app"
route = "primary"
EOF

mkdir -p "$RESULTS_DIR"
printf '| mode | workload | clients | transactions | instructions per transaction |\n|---|---|--:|--:|--:|\n'
for mode in "${modes[@]}"; do
    out="$RESULTS_DIR/pgferry-$mode.callgrind"
    # shellcheck disable=SC2086 # CALLGRIND_ARGS is a list of options
    valgrind --tool=callgrind --instr-atstart=no ${CALLGRIND_ARGS:-} --callgrind-out-file="$out" \
        "$BIN" --config "$CFG" >"$CLUSTER_DIR/pgferry-callgrind-$mode.log" 2>&1 &
    VPID=$!
    wait_port "$PORT" 30 "$VPID" || {
        log "pgferry under valgrind does not listen (see $CLUSTER_DIR/pgferry-callgrind-$mode.log)"
        exit 1
    }
    # shellcheck disable=SC2086 # WORKLOAD is a list of pgbench flags
    bench() { "$PG_BIN/pgbench" -n $WORKLOAD -M "$mode" -c "$CLIENTS" -j 2 -t "$1" -p "$PORT" -d app; }
    bench 100 >/dev/null 2>&1
    callgrind_control -i on "$VPID" >/dev/null 2>&1
    done_tx="$(bench "$TX" 2>&1 | sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p')"
    callgrind_control -i off "$VPID" >/dev/null 2>&1
    kill -INT "$VPID"
    wait "$VPID" 2>/dev/null || true
    VPID=""
    ir="$(awk '/^totals:/ { print $2 }' "$out")"
    if [ -z "$done_tx" ] || [ "$done_tx" -eq 0 ] || [ -z "$ir" ]; then
        log "no result for $mode (see $CLUSTER_DIR/pgferry-callgrind-$mode.log)"
        exit 1
    fi
    printf '| %s | %s | %s | %s | %s |\n' "$mode" "${WORKLOAD:-tpcb-like}" "$CLIENTS" "$done_tx" "$((ir / done_tx))"
done
