#!/usr/bin/env bash
# compare.sh — pgbench side by side: direct PostgreSQL vs PgBouncer vs pgferry.
#
# Usage: benches/compare.sh
#   Starts a throwaway cluster (scripts/pgcluster), `pgbench -i -s $SCALE` on database
#   app, PgBouncer and pgferry (both: transaction pooling, default_pool_size 20,
#   max_client_conn 1000, scram-sha-256, user app/secret), then for every workload and
#   client count runs ROUNDS rounds of pgbench against each target (order rotated every
#   round) and prints median TPS, ratios and failed transactions. The table is also
#   written to benches/results/latest.md, raw pgbench output to benches/results/latest-raw.log.
#
# Environment:
#   ROUNDS=3  DURATION=10 (seconds per run)  CLIENTS="10 100"  THREADS=2 (pgbench -j)
#   WORKLOADS="select-simple select-extended tpcb-like"  (also: select-prepared)
#   INCLUDE_PREPARED=1   add select-prepared (-S -M prepared) to the default workloads
#   SCALE=10  POOL_SIZE=20  REPLICAS=2
#   SKIP_PGFERRY=1 / SKIP_PGBOUNCER=1   leave that target out
#   RESULTS_DIR=benches/results
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# shellcheck source=benches/lib.sh
. benches/lib.sh

ROUNDS="${ROUNDS:-3}"
DURATION="${DURATION:-10}"
DURATION="${DURATION%s}"
CLIENTS="${CLIENTS:-10 100}"
THREADS="${THREADS:-2}"
SCALE="${SCALE:-10}"
POOL_SIZE="${POOL_SIZE:-20}"
REPLICAS="${REPLICAS:-2}"
SKIP_PGFERRY="${SKIP_PGFERRY:-0}"
SKIP_PGBOUNCER="${SKIP_PGBOUNCER:-0}"
RESULTS_DIR="${RESULTS_DIR:-$ROOT/benches/results}"
if [ -z "${WORKLOADS:-}" ]; then
    WORKLOADS="select-simple select-extended tpcb-like"
    [ "${INCLUDE_PREPARED:-0}" = 1 ] && WORKLOADS="$WORKLOADS select-prepared"
fi

log() { echo "compare: $*" >&2; }
die() {
    log "error: $*"
    exit 1
}

workload_flags() {
    case "$1" in
    select-simple) echo "-S -M simple" ;;
    select-extended) echo "-S -M extended" ;;
    select-prepared) echo "-S -M prepared" ;;
    tpcb-like) echo "-M simple" ;;
    *) die "unknown workload '$1' (select-simple select-extended select-prepared tpcb-like)" ;;
    esac
}
for w in $WORKLOADS; do workload_flags "$w" >/dev/null; done
for c in $CLIENTS; do [[ "$c" =~ ^[0-9]+$ ]] || die "bad client count '$c'"; done

scripts/install-deps
PG_BIN="${PG_BIN:-/usr/lib/postgresql/15/bin}"
PGBENCH="$PG_BIN/pgbench"
PSQL="$PG_BIN/psql"
PGBOUNCER="$(command -v pgbouncer || echo /usr/sbin/pgbouncer)"

if [ "$SKIP_PGFERRY" != 1 ]; then
    log "cargo build --release"
    cargo build --release >&2
    PGFERRY_BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/pgferry"
    [ -x "$PGFERRY_BIN" ] || die "$PGFERRY_BIN not built"
fi

CLUSTER_DIR=""
PGFERRY_PID=""
cleanup() {
    trap - EXIT INT TERM
    if [ -n "$PGFERRY_PID" ]; then kill -TERM "$PGFERRY_PID" 2>/dev/null || true; fi
    if [ -n "$CLUSTER_DIR" ]; then
        # also stops pgbouncer and pgferry via their pid files in the cluster dir
        scripts/pgcluster stop "$CLUSTER_DIR" >/dev/null 2>&1 || true
    fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

eval "$(scripts/pgcluster start --replicas "$REPLICAS" --owner-pid $$)"
# shellcheck disable=SC2153 # PGCLUSTER_DIR is set by the eval above
CLUSTER_DIR="$PGCLUSTER_DIR"
PRIMARY_PORT="$PGCLUSTER_PRIMARY_PORT"

export PGPASSWORD=secret PGUSER=app PGDATABASE=app PGHOST=127.0.0.1 PGSSLMODE=disable

log "pgbench -i -s $SCALE"
"$PGBENCH" -i -q -s "$SCALE" -p "$PRIMARY_PORT" >"$CLUSTER_DIR/pgbench-init.log" 2>&1 ||
    {
        tail -n 20 "$CLUSTER_DIR/pgbench-init.log" >&2
        die "pgbench -i failed"
    }
if [ "$REPLICAS" -gt 0 ]; then
    log "waiting for replicas to replay the initial data"
    for _ in $(seq 1 600); do
        behind="$(scripts/pgcluster psql "$CLUSTER_DIR" 0 -XAtq -c \
            "SELECT count(*) FROM pg_stat_replication WHERE replay_lsn IS NULL OR replay_lsn < pg_current_wal_lsn()")"
        [ "$behind" = 0 ] && break
        sleep 0.1
    done
fi

TARGETS=(direct)
declare -A PORT=([direct]="$PRIMARY_PORT")

# ------------------------------------------------------------------ PgBouncer
if [ "$SKIP_PGBOUNCER" != 1 ]; then
    BDIR="$CLUSTER_DIR/pgbouncer"
    mkdir -p "$BDIR"
    BPORT="$(scripts/pgcluster free-port)"
    printf '"app" "secret"\n' >"$BDIR/userlist.txt"
    cat >"$BDIR/pgbouncer.ini" <<EOF
[databases]
app = host=127.0.0.1 port=$PRIMARY_PORT dbname=app

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $BPORT
unix_socket_dir = $BDIR
auth_type = scram-sha-256
auth_file = $BDIR/userlist.txt
pool_mode = transaction
default_pool_size = $POOL_SIZE
max_client_conn = 1000
ignore_startup_parameters = extra_float_digits
logfile = $BDIR/pgbouncer.log
pidfile = $BDIR/pgbouncer.pid
EOF
    [ "$(id -u)" = 0 ] && chown -R postgres:postgres "$BDIR"
    log "starting PgBouncer on 127.0.0.1:$BPORT"
    as_pg "$PGBOUNCER" -d "$BDIR/pgbouncer.ini" >&2 ||
        {
            tail -n 20 "$BDIR/pgbouncer.log" >&2 || true
            die "pgbouncer failed to start"
        }
    wait_port "$BPORT" 20 || {
        tail -n 20 "$BDIR/pgbouncer.log" >&2 || true
        die "pgbouncer does not listen on $BPORT"
    }
    TARGETS+=(pgbouncer)
    PORT[pgbouncer]="$BPORT"
fi

# ------------------------------------------------------------------ pgferry
if [ "$SKIP_PGFERRY" != 1 ]; then
    FPORT="$(scripts/pgcluster free-port)"
    hosts_toml="$(toml_hosts "$PGCLUSTER_HOSTS")"
    cat >"$CLUSTER_DIR/pgferry.toml" <<EOF
[proxy]
listen = "127.0.0.1:$FPORT"
pool_mode = "transaction"
default_pool_size = $POOL_SIZE
max_client_conn = 1000
auth_method = "scram-sha-256"

[[users]]
name = "app"
password = "secret"

[databases.app]
hosts = [$hosts_toml]
dbname = "app"
EOF
    log "starting pgferry on 127.0.0.1:$FPORT"
    "$PGFERRY_BIN" --config "$CLUSTER_DIR/pgferry.toml" >"$CLUSTER_DIR/pgferry.log" 2>&1 &
    PGFERRY_PID=$!
    echo "$PGFERRY_PID" >"$CLUSTER_DIR/pgferry.pid"
    wait_port "$FPORT" 20 "$PGFERRY_PID" || {
        tail -n 30 "$CLUSTER_DIR/pgferry.log" >&2 || true
        die "pgferry does not listen on $FPORT"
    }
    TARGETS+=(pgferry)
    PORT[pgferry]="$FPORT"
fi

for t in "${TARGETS[@]}"; do
    "$PSQL" -X -q -A -t -p "${PORT[$t]}" -c "SELECT 1" >/dev/null 2>"$CLUSTER_DIR/check-$t.err" ||
        {
            cat "$CLUSTER_DIR/check-$t.err" >&2
            die "cannot query app through $t (port ${PORT[$t]})"
        }
done

# ------------------------------------------------------------------ runs
mkdir -p "$RESULTS_DIR"
RAW="$RESULTS_DIR/latest-raw.log"
: >"$RAW"
declare -A TPS FAILED ERRORS
for w in $WORKLOADS; do
    for c in $CLIENTS; do
        for t in "${TARGETS[@]}"; do
            TPS["$w|$c|$t"]=""
            FAILED["$w|$c|$t"]=0
            ERRORS["$w|$c|$t"]=0
        done
    done
done

nt=${#TARGETS[@]}
total=$(($(wc -w <<<"$WORKLOADS") * $(wc -w <<<"$CLIENTS") * ROUNDS * nt))
n=0
log "running $total pgbench runs of ${DURATION}s (targets: ${TARGETS[*]})"
for w in $WORKLOADS; do
    read -r -a flags <<<"$(workload_flags "$w")"
    for c in $CLIENTS; do
        j="$THREADS"
        [ "$j" -gt "$c" ] && j="$c"
        scripts/pgcluster psql "$CLUSTER_DIR" 0 -XAtq -c CHECKPOINT >/dev/null
        for ((r = 0; r < ROUNDS; r++)); do
            for ((k = 0; k < nt; k++)); do
                t="${TARGETS[$(((k + r) % nt))]}"
                n=$((n + 1))
                set +e
                out="$("$PGBENCH" -n -p "${PORT[$t]}" -c "$c" -j "$j" -T "$DURATION" "${flags[@]}" 2>&1)"
                rc=$?
                set -e
                tps="$(sed -n 's/^tps = \([0-9.]*\) (without initial connection time).*/\1/p' <<<"$out" | head -n 1)"
                failed="$(sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' <<<"$out" | head -n 1)"
                key="$w|$c|$t"
                if [ -n "$tps" ]; then
                    TPS[$key]="${TPS[$key]} $tps"
                fi
                FAILED[$key]=$((FAILED[$key] + ${failed:-0}))
                if [ "$rc" != 0 ] || [ -z "$tps" ]; then
                    ERRORS[$key]=$((ERRORS[$key] + 1))
                    log "run failed ($t $w c=$c rc=$rc): $(grep -m1 -iE 'error|fatal|abort' <<<"$out" || echo 'no tps')"
                fi
                {
                    echo "===== round $((r + 1)) target=$t workload=$w clients=$c rc=$rc"
                    echo "$out"
                } >>"$RAW"
                log "[$n/$total] $w c=$c round $((r + 1)) $t: ${tps:-ERR} tps, failed ${failed:-?}"
            done
        done
    done
done

# ------------------------------------------------------------------ report
median() {
    printf '%s\n' "$@" | tr ' ' '\n' | awk 'NF' | sort -g | awk '{a[NR]=$1}
        END { if (NR == 0) print "-"; else if (NR % 2) printf "%.0f\n", a[(NR+1)/2];
              else printf "%.0f\n", (a[NR/2] + a[NR/2+1]) / 2 }'
}
ratio() {
    awk -v a="$1" -v b="$2" 'BEGIN { if (a == "-" || b == "-" || b + 0 == 0) print "-"; else printf "%.2f\n", a / b }'
}
cell_failed() { # failed count for target, with error-run count if any
    local key="$1" t="$2"
    if ! [[ " ${TARGETS[*]} " == *" $t "* ]]; then
        echo "-"
        return
    fi
    local s="${FAILED[$key|$t]}"
    [ "${ERRORS[$key|$t]}" != 0 ] && s="$s (${ERRORS[$key|$t]} err runs)"
    echo "$s"
}

rows=()
for w in $WORKLOADS; do
    for c in $CLIENTS; do
        key="$w|$c"
        md="$(median "${TPS[$key|direct]}")"
        mb="-"
        mf="-"
        [ "$SKIP_PGBOUNCER" != 1 ] && mb="$(median "${TPS[$key|pgbouncer]}")"
        [ "$SKIP_PGFERRY" != 1 ] && mf="$(median "${TPS[$key|pgferry]}")"
        fails="$(cell_failed "$key" direct)/$(cell_failed "$key" pgbouncer)/$(cell_failed "$key" pgferry)"
        rows+=("$w|$c|$md|$mb|$mf|$(ratio "$mf" "$mb")|$(ratio "$mf" "$md")|$fails")
    done
done

header="workload|clients|direct tps|pgbouncer tps|pgferry tps|pgferry/pgbouncer|pgferry/direct|failed d/b/f"
{
    printf '%s\n' "$header"
    printf '%s\n' "${rows[@]}"
} | column -t -s '|' -o '  '

pgv="$("$PG_BIN/postgres" --version)"
pbv="$("$PGBOUNCER" --version 2>/dev/null | head -n 1)"
{
    echo "# pgferry benchmark: direct vs PgBouncer vs pgferry"
    echo
    echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC'); machine: $(nproc) cores, $(uname -sr)"
    echo "- $pgv, $pbv; primary + $REPLICAS streaming replicas on 127.0.0.1 (fsync=off)"
    echo "- pgbench -s $SCALE; ${DURATION}s per run; $ROUNDS round(s), target order rotated per round; -j $THREADS; median TPS (without initial connection time)"
    echo "- poolers: transaction pooling, default_pool_size=$POOL_SIZE, max_client_conn=1000, scram-sha-256 (app/secret)"
    [ "$SKIP_PGFERRY" = 1 ] && echo "- pgferry skipped (SKIP_PGFERRY=1)"
    [ "$SKIP_PGBOUNCER" = 1 ] && echo "- PgBouncer skipped (SKIP_PGBOUNCER=1)"
    echo "- workloads: select-simple = \`-S -M simple\`, select-extended = \`-S -M extended\`, select-prepared = \`-S -M prepared\`, tpcb-like = \`-M simple\` (built-in TPC-B-like script)"
    echo
    echo "| ${header//|/ | } |"
    echo "|---|--:|--:|--:|--:|--:|--:|---|"
    for row in "${rows[@]}"; do
        echo "| ${row//|/ | } |"
    done
} >"$RESULTS_DIR/latest.md"
log "wrote $RESULTS_DIR/latest.md and $RAW"
