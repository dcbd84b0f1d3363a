#!/usr/bin/env bash
# failover.sh — failover drill: what pgbench clients see when the primary dies, through
# pgferry and through PgBouncer.
#
# Usage: benches/failover.sh
#   For every target in TARGETS, on a fresh cluster each time (scripts/pgcluster: node0
#   primary + 2 streaming replicas):
#     1. `pgbench -i -s $SCALE` on the primary (user app/secret, database app) and a small
#        table failover_probe for the write probe; waits until the replicas replayed it.
#     2. starts the target: PgBouncer pointing at the primary's port, or pgferry with
#        hosts = all three nodes (both: transaction pooling, pool size POOL_SIZE,
#        max_client_conn 1000, scram-sha-256, as benches/compare.sh does; pgferry also
#        gets health_interval = "200ms" and failover_timeout = "30s" when its
#        `--check` accepts them).
#     3. runs `pgbench -c $CLIENTS -j 2 -T $DURATION -P 1 --max-tries=10 -n -M simple`
#        (built-in TPC-B-like script; plus --failures-detailed --verbose-errors when
#        supported) through the target.
#     4. at T=$KILL_AT s kills node0 (`pgcluster node DIR 0 kill`, pg_ctl stop -m
#        immediate); $PROMOTE_DELAY s later promotes node1 (`pg_ctl promote -w`) and
#        repoints node2 at it (`follow 1`). Neither pooler is reconfigured or restarted:
#        PgBouncer keeps pointing at node0, as users run it today.
#     5. right after the promotion a separate loop tries an INSERT through the target
#        (one psql per attempt, 50 ms between attempts) until one succeeds or
#        WRITE_TIMEOUT s pass: "promotion -> first successful write".
#     6. parses pgbench's output: distinct aborted clients ("client N aborted ..."),
#        failed / retried transactions, total retries, transactions processed, and the
#        per-second progress lines (throughput timeline). -P lines come from pgbench's
#        thread 0 only, so seconds without one are filled (marked N*) from the
#        per-transaction log (-l) of all threads.
#   Prints a markdown summary (one row per target, then the timelines side by side),
#   also written to benches/results/failover-latest.md; raw output per target in
#   benches/results/failover-raw-<target>.log.
#
# Environment:
#   DURATION=30 (pgbench -T)  KILL_AT=8 (s after pgbench starts)  PROMOTE_DELAY=2 (s after the kill)
#   TARGETS="pgferry pgbouncer"  CLIENTS=20  THREADS=2  SCALE=5  POOL_SIZE=20
#   WRITE_TIMEOUT=20 (s, write probe)  WRITE_INTERVAL_MS=50  WRITE_ATTEMPT_TIMEOUT=5 (s per psql)
#   GRACE=30 (pgbench is killed if still running DURATION+GRACE s after its start)
#   PGFERRY_BIN (default target/release/pgferry, built with cargo unless SKIP_BUILD=1)
#   RESULTS_DIR=benches/results
# Everything this script starts (pgbench, the write probe, the pooler, the cluster) is
# stopped on exit, even on Ctrl-C.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# shellcheck source=benches/lib.sh
. benches/lib.sh

DURATION="${DURATION:-30}"
DURATION="${DURATION%s}"
KILL_AT="${KILL_AT:-8}"
KILL_AT="${KILL_AT%s}"
PROMOTE_DELAY="${PROMOTE_DELAY:-2}"
PROMOTE_DELAY="${PROMOTE_DELAY%s}"
TARGETS="${TARGETS:-pgferry pgbouncer}"
CLIENTS="${CLIENTS:-20}"
THREADS="${THREADS:-2}"
SCALE="${SCALE:-5}"
POOL_SIZE="${POOL_SIZE:-20}"
WRITE_TIMEOUT="${WRITE_TIMEOUT:-20}"
WRITE_INTERVAL_MS="${WRITE_INTERVAL_MS:-50}"
WRITE_ATTEMPT_TIMEOUT="${WRITE_ATTEMPT_TIMEOUT:-5}"
GRACE="${GRACE:-30}"
SKIP_BUILD="${SKIP_BUILD:-0}"
RESULTS_DIR="${RESULTS_DIR:-$ROOT/benches/results}"
REPLICAS=2 # node1 is promoted, node2 follows it

log() { echo "failover: $*" >&2; }
die() {
    log "error: $*"
    exit 1
}

for v in DURATION KILL_AT PROMOTE_DELAY CLIENTS THREADS SCALE POOL_SIZE WRITE_TIMEOUT \
    WRITE_INTERVAL_MS WRITE_ATTEMPT_TIMEOUT GRACE; do
    [[ "${!v}" =~ ^[0-9]+$ ]] || die "$v must be a whole number (got '${!v}')"
done
[ "$CLIENTS" -ge 1 ] || die "CLIENTS must be at least 1"
[ "$DURATION" -ge 1 ] || die "DURATION must be at least 1"
[ "$WRITE_ATTEMPT_TIMEOUT" -ge 1 ] || die "WRITE_ATTEMPT_TIMEOUT must be at least 1"
read -r -a TARGET_LIST <<<"$TARGETS"
[ ${#TARGET_LIST[@]} -gt 0 ] || die "TARGETS is empty"
for t in "${TARGET_LIST[@]}"; do
    case "$t" in pgferry | pgbouncer) ;; *) die "unknown target '$t' (pgferry pgbouncer)" ;; esac
done
if [ "$KILL_AT" -ge "$DURATION" ]; then
    log "warning: KILL_AT=$KILL_AT >= DURATION=$DURATION: the primary dies after pgbench ends"
elif [ $((KILL_AT + PROMOTE_DELAY)) -ge "$DURATION" ]; then
    log "warning: promotion (KILL_AT+PROMOTE_DELAY=$((KILL_AT + PROMOTE_DELAY))s) is not before the end of the run (DURATION=$DURATION)"
fi

scripts/install-deps
PG_BIN="${PG_BIN:-/usr/lib/postgresql/15/bin}"
PGBENCH="$PG_BIN/pgbench"
PSQL="$PG_BIN/psql"
PGBOUNCER="$(command -v pgbouncer || echo /usr/sbin/pgbouncer)"

now_ms() { date +%s%3N; }
ms_to_s() { printf '%d.%03d' $(($1 / 1000)) $(($1 % 1000)); }
sleep_until_ms() { # sleep_until_ms EPOCH_MS
    local d=$(($1 - $(now_ms)))
    if [ "$d" -gt 0 ]; then sleep "$(ms_to_s "$d")"; fi
}

# ------------------------------------------------------------------ pgferry binary
PGFERRY_NOTE=""
if [[ " ${TARGET_LIST[*]} " == *" pgferry "* ]]; then
    PGFERRY_BIN="${PGFERRY_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/release/pgferry}"
    if [ "$SKIP_BUILD" != 1 ]; then
        log "cargo build --release"
        if ! cargo build --release >&2; then
            [ -x "$PGFERRY_BIN" ] || die "cargo build --release failed and there is no $PGFERRY_BIN"
            PGFERRY_NOTE="cargo build --release failed; used the existing binary"
            log "warning: $PGFERRY_NOTE $PGFERRY_BIN"
        fi
    fi
    [ -x "$PGFERRY_BIN" ] || die "$PGFERRY_BIN not found (build it or set PGFERRY_BIN)"
fi

PGBENCH_OPTS=(-n -M simple -c "$CLIENTS" -j "$((THREADS < CLIENTS ? THREADS : CLIENTS))"
    -T "$DURATION" -P 1 --max-tries=10)
pgbench_help="$("$PGBENCH" --help 2>&1 || true)"
for o in --failures-detailed --verbose-errors; do
    if grep -q -- "$o" <<<"$pgbench_help"; then PGBENCH_OPTS+=("$o"); fi
done
HAVE_FOLLOW=0
pgcluster_help="$(scripts/pgcluster --help 2>&1 || true)" # usage exits 2
if grep -q ' follow ' <<<"$pgcluster_help"; then HAVE_FOLLOW=1; fi

export PGPASSWORD=secret PGUSER=app PGDATABASE=app PGHOST=127.0.0.1 PGSSLMODE=disable
export PGCONNECT_TIMEOUT=2

# ------------------------------------------------------------------ cleanup
CLUSTER_DIR=""
PGFERRY_PID=""
PGBENCH_PID=""
PROBE_PID=""
stop_run() { # stop everything the current drill started; safe to call twice
    local pid
    for pid in "$PGBENCH_PID" "$PROBE_PID" "$PGFERRY_PID"; do
        [ -n "$pid" ] || continue
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "$PGBENCH_PID" "$PROBE_PID" "$PGFERRY_PID"; do
        [ -n "$pid" ] || continue
        for _ in $(seq 1 30); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    PGBENCH_PID="" PROBE_PID="" PGFERRY_PID=""
    if [ -n "$CLUSTER_DIR" ]; then
        # also stops PgBouncer (and pgferry) through their pid files in the cluster dir
        scripts/pgcluster stop "$CLUSTER_DIR" >/dev/null 2>&1 || true
        CLUSTER_DIR=""
    fi
}
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    stop_run
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ------------------------------------------------------------------ write probe
# probe_writes PORT TARGET START_MS OUTFILE: from START_MS on, one INSERT through the
# target per attempt (WRITE_INTERVAL_MS between attempts) until one succeeds or
# WRITE_TIMEOUT s pass. Writes one line per attempt and a final
# "RESULT ok DONE_MS NODE_PORT ATTEMPTS" or "RESULT none - - ATTEMPTS".
# Runs in the background; on TERM it stops its running psql.
probe_writes() {
    local port="$1" target="$2" start="$3" out="$4"
    local deadline=$((start + WRITE_TIMEOUT * 1000)) n=0 t1 t2 left att rc child="" tmp="$out.attempt"
    trap '[ -n "$child" ] && kill -TERM "$child" 2>/dev/null; exit 143' TERM
    : >"$out"
    while :; do
        t1="$(now_ms)"
        left=$((deadline - t1))
        if [ "$left" -le 0 ]; then
            echo "RESULT none - - $n" >>"$out"
            return 0
        fi
        att=$((WRITE_ATTEMPT_TIMEOUT * 1000))
        [ "$left" -lt "$att" ] && att="$left"
        n=$((n + 1))
        timeout -k 1 "$(ms_to_s "$att")" "$PSQL" -X -q -A -t -v ON_ERROR_STOP=1 -p "$port" \
            -c "INSERT INTO failover_probe (target) VALUES ('$target') RETURNING inet_server_port()" \
            >"$tmp" 2>&1 &
        child=$!
        wait "$child" && rc=0 || rc=$?
        child=""
        t2="$(now_ms)"
        if [ "$rc" = 0 ]; then
            echo "attempt $n +$((t1 - start))ms..+$((t2 - start))ms: ok, served by port $(tr -d '\n' <"$tmp")" >>"$out"
            echo "RESULT ok $t2 $(tr -dc 0-9 <"$tmp") $n" >>"$out"
            return 0
        fi
        [ "$rc" = 124 ] && echo "(attempt timed out after $(ms_to_s "$att")s)" >>"$tmp"
        echo "attempt $n +$((t1 - start))ms..+$((t2 - start))ms: rc=$rc $(tr '\n' ' ' <"$tmp" | cut -c1-300)" >>"$out"
        sleep "$(ms_to_s "$WRITE_INTERVAL_MS")"
    done
}

# ------------------------------------------------------------------ results per target
mkdir -p "$RESULTS_DIR"
declare -A LOST STALLED FAILED RETRIED RETRIES PROCESSED FIRSTWRITE RECONF NOTES RUNTIME
declare -A TL AGG TXLOG EVENT END_SEC KILL_REL PROMOTE_REL PROMOTE_TOOK FOLLOWED
MAXSEC=0

add_event() { # add_event TARGET SECOND TEXT
    local k="$1|$2"
    EVENT[$k]="${EVENT[$k]:+${EVENT[$k]}, }$3"
}
rel_sec() { # second of pgbench's progress line covering EPOCH_MS (line "N s" covers (N-1, N])
    local d=$(($1 - $2))
    [ "$d" -lt 0 ] && d=0
    echo $(((d + 999) / 1000))
}

run_target() {
    local t="$1"
    local raw="$RESULTS_DIR/failover-raw-$t.log"
    : >"$raw"
    NOTES[$t]=""
    log "===== $t: starting a fresh cluster"
    local env_lines
    env_lines="$(scripts/pgcluster start --replicas "$REPLICAS" --owner-pid $$)" || die "scripts/pgcluster start failed"
    unset PGCLUSTER_DIR PGCLUSTER_PRIMARY_PORT PGCLUSTER_HOSTS
    eval "$env_lines"
    # shellcheck disable=SC2153 # set by the eval above
    CLUSTER_DIR="$PGCLUSTER_DIR"
    local primary_port="$PGCLUSTER_PRIMARY_PORT"

    log "$t: pgbench -i -s $SCALE"
    "$PGBENCH" -i -q -s "$SCALE" -p "$primary_port" >"$CLUSTER_DIR/pgbench-init.log" 2>&1 ||
        {
            tail -n 20 "$CLUSTER_DIR/pgbench-init.log" >&2
            die "pgbench -i failed"
        }
    "$PSQL" -X -q -v ON_ERROR_STOP=1 -p "$primary_port" -c \
        "CREATE TABLE failover_probe (id bigserial PRIMARY KEY, at timestamptz NOT NULL DEFAULT clock_timestamp(), target text NOT NULL)" >&2
    log "$t: waiting for the replicas to replay the initial data"
    local behind=""
    for _ in $(seq 1 600); do
        behind="$(scripts/pgcluster psql "$CLUSTER_DIR" 0 -XAtq -c \
            "SELECT $REPLICAS - count(*) FILTER (WHERE replay_lsn >= pg_current_wal_lsn()) FROM pg_stat_replication")"
        [ "$behind" = 0 ] && break
        sleep 0.1
    done
    [ "$behind" = 0 ] || die "replicas did not catch up after pgbench -i"

    # ---- the target
    local port cfg_note=""
    if [ "$t" = pgbouncer ]; then
        local bdir="$CLUSTER_DIR/pgbouncer"
        mkdir -p "$bdir"
        port="$(scripts/pgcluster free-port)"
        printf '"app" "secret"\n' >"$bdir/userlist.txt"
        cat >"$bdir/pgbouncer.ini" <<EOF
[databases]
app = host=127.0.0.1 port=$primary_port dbname=app

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $port
unix_socket_dir = $bdir
auth_type = scram-sha-256
auth_file = $bdir/userlist.txt
pool_mode = transaction
default_pool_size = $POOL_SIZE
max_client_conn = 1000
ignore_startup_parameters = extra_float_digits
logfile = $bdir/pgbouncer.log
pidfile = $bdir/pgbouncer.pid
EOF
        [ "$(id -u)" = 0 ] && chown -R postgres:postgres "$bdir"
        { echo "===== pgbouncer.ini"; cat "$bdir/pgbouncer.ini"; } >>"$raw"
        log "$t: starting PgBouncer on 127.0.0.1:$port (-> node0 at $primary_port)"
        if ! as_pg "$PGBOUNCER" -d "$bdir/pgbouncer.ini" >&2 || ! wait_port "$port" 20; then
            tail -n 20 "$bdir/pgbouncer.log" >&2 || true
            NOTES[$t]="PgBouncer did not start"
            return 0
        fi
        RECONF[$t]="no: keeps pointing at node0 (as deployed today)"
    else
        port="$(scripts/pgcluster free-port)"
        local hosts_toml cfg="$CLUSTER_DIR/pgferry.toml" opt key check
        hosts_toml="$(toml_hosts "$PGCLUSTER_HOSTS")"
        local -a optional=('health_interval = "200ms"' 'failover_timeout = "30s"') accepted=()
        write_cfg() {
            {
                echo "[proxy]"
                echo "listen = \"127.0.0.1:$port\""
                echo 'pool_mode = "transaction"'
                echo "default_pool_size = $POOL_SIZE"
                echo "max_client_conn = 1000"
                echo 'auth_method = "scram-sha-256"'
                for opt in "$@"; do echo "$opt"; done
                printf '\n[[users]]\nname = "app"\npassword = "secret"\n\n[databases.app]\n'
                echo "hosts = [$hosts_toml]"
                echo 'dbname = "app"'
            } >"$cfg"
        }
        # keep only the optional keys this pgferry build accepts
        write_cfg "${optional[@]}"
        check="$("$PGFERRY_BIN" --config "$cfg" --check 2>&1)" || true
        for opt in "${optional[@]}"; do
            key="${opt%% =*}"
            if grep -q "proxy\.$key: unknown key" <<<"$check"; then
                cfg_note="${cfg_note:+$cfg_note; }\`$key\` not accepted by this build (left out)"
            else
                accepted+=("$opt")
            fi
        done
        write_cfg ${accepted[@]+"${accepted[@]}"}
        if ! check="$("$PGFERRY_BIN" --config "$cfg" --check 2>&1)"; then
            echo "$check" >&2
            die "pgferry --check rejects $cfg"
        fi
        { echo "===== pgferry.toml"; cat "$cfg"; } >>"$raw"
        log "$t: starting pgferry on 127.0.0.1:$port (hosts $PGCLUSTER_HOSTS)"
        "$PGFERRY_BIN" --config "$cfg" >"$CLUSTER_DIR/pgferry.log" 2>&1 &
        PGFERRY_PID=$!
        echo "$PGFERRY_PID" >"$CLUSTER_DIR/pgferry.pid"
        if ! wait_port "$port" 20 "$PGFERRY_PID"; then
            tail -n 30 "$CLUSTER_DIR/pgferry.log" >&2 || true
            NOTES[$t]="pgferry did not start"
            return 0
        fi
        RECONF[$t]="no: config lists all 3 hosts, finds the primary itself"
        [ -n "$cfg_note" ] && NOTES[$t]="$cfg_note"
    fi

    # the target must serve a write before the drill starts
    local ok=0
    for _ in $(seq 1 50); do
        if "$PSQL" -X -q -A -t -p "$port" -c "INSERT INTO failover_probe (target) VALUES ('$t-setup')" \
            >/dev/null 2>"$CLUSTER_DIR/check.err"; then
            ok=1
            break
        fi
        sleep 0.2
    done
    if [ "$ok" != 1 ]; then
        cat "$CLUSTER_DIR/check.err" >&2
        NOTES[$t]="${NOTES[$t]:+${NOTES[$t]}; }no write through $t before the drill: $(head -n 1 "$CLUSTER_DIR/check.err")"
        return 0
    fi

    # ---- the drill
    local out="$CLUSTER_DIR/pgbench.out" err="$CLUSTER_DIR/pgbench.err" probe="$CLUSTER_DIR/probe.log"
    {
        echo "===== settings: DURATION=$DURATION KILL_AT=$KILL_AT PROMOTE_DELAY=$PROMOTE_DELAY CLIENTS=$CLIENTS SCALE=$SCALE POOL_SIZE=$POOL_SIZE"
        echo "===== cluster: $PGCLUSTER_HOSTS (node0 primary); target port $port"
        echo "===== pgbench ${PGBENCH_OPTS[*]} -l -p $port"
    } >>"$raw"
    log "$t: pgbench ${PGBENCH_OPTS[*]} (kill node0 at ${KILL_AT}s, promote node1 ${PROMOTE_DELAY}s later)"
    local t0 kill_ms promote_start promote_ms rc
    t0="$(now_ms)"
    # -l: per-transaction log, to count completions per second over all threads (see below).
    # Not --aggregate-interval: pgbench 15 then dies with "unexpected error status" at the
    # end of a thread whose first client aborted on an SQL error.
    "$PGBENCH" "${PGBENCH_OPTS[@]}" -l --log-prefix="$CLUSTER_DIR/pgbench_tx" -p "$port" >"$out" 2>"$err" &
    PGBENCH_PID=$!

    sleep_until_ms $((t0 + KILL_AT * 1000))
    kill_ms="$(now_ms)"
    log "$t: killing node0 (+$(ms_to_s $((kill_ms - t0)))s)"
    scripts/pgcluster node "$CLUSTER_DIR" 0 kill >>"$raw" 2>&1 ||
        NOTES[$t]="${NOTES[$t]:+${NOTES[$t]}; }node0 kill returned non-zero"

    sleep_until_ms $((kill_ms + PROMOTE_DELAY * 1000))
    promote_start="$(now_ms)"
    scripts/pgcluster node "$CLUSTER_DIR" 1 promote >>"$raw" 2>&1 ||
        NOTES[$t]="${NOTES[$t]:+${NOTES[$t]}; }node1 promote returned non-zero"
    promote_ms="$(now_ms)"
    probe_writes "$port" "$t" "$promote_ms" "$probe" &
    PROBE_PID=$!
    log "$t: node1 promoted (+$(ms_to_s $((promote_ms - t0)))s, pg_ctl promote took $((promote_ms - promote_start)) ms); write probe started"
    FOLLOWED[$t]="no (pgcluster has no follow)"
    if [ "$HAVE_FOLLOW" = 1 ]; then
        if scripts/pgcluster node "$CLUSTER_DIR" 2 follow 1 >>"$raw" 2>&1; then
            FOLLOWED[$t]="yes"
        else
            FOLLOWED[$t]="failed"
            NOTES[$t]="${NOTES[$t]:+${NOTES[$t]}; }node2 follow 1 failed"
        fi
    fi
    {
        echo "===== events (epoch ms): pgbench start $t0, node0 killed $kill_ms, promote started $promote_start, node1 promoted $promote_ms"
        echo "node1 pg_is_in_recovery after promote: $(scripts/pgcluster psql "$CLUSTER_DIR" 1 -XAtq -c 'SELECT pg_is_in_recovery()' 2>&1)"
    } >>"$raw"

    # ---- wait for pgbench (killed if it overstays) and the probe
    local limit=$((t0 + (DURATION + GRACE) * 1000)) killed=0
    while kill -0 "$PGBENCH_PID" 2>/dev/null; do
        if [ "$(now_ms)" -ge "$limit" ]; then
            log "$t: pgbench still running $((DURATION + GRACE))s after its start; killing it"
            killed=1
            kill -TERM "$PGBENCH_PID" 2>/dev/null || true
            sleep 2
            kill -KILL "$PGBENCH_PID" 2>/dev/null || true
            break
        fi
        sleep 0.2
    done
    wait "$PGBENCH_PID" && rc=0 || rc=$?
    local end_ms
    end_ms="$(now_ms)"
    PGBENCH_PID=""
    wait "$PROBE_PID" || true
    PROBE_PID=""

    # ---- parse
    pick() { sed -n "s/^$1: \([0-9][0-9]*\).*/\1/p" "$out" | head -n 1; }
    PROCESSED[$t]="$(pick 'number of transactions actually processed')"
    FAILED[$t]="$(pick 'number of failed transactions')"
    RETRIED[$t]="$(pick 'number of transactions retried')"
    RETRIES[$t]="$(pick 'total number of retries')"
    # (grep finds nothing when no client aborted: keep pipefail from failing the assignment)
    LOST[$t]="$({ grep -oE 'client [0-9]+ (script [0-9]+ )?aborted' "$err" || true; } | awk '{print $2}' | sort -un | wc -l)"
    RUNTIME[$t]="$(awk -v ms=$((end_ms - t0)) 'BEGIN { printf "%.1f", ms / 1000 }')s, exit $rc"
    [ "$killed" = 1 ] && RUNTIME[$t]="${RUNTIME[$t]} (killed after $((DURATION + GRACE))s)"
    if [ -z "${PROCESSED[$t]}" ]; then
        if [ "$killed" = 1 ]; then
            NOTES[$t]="${NOTES[$t]:+${NOTES[$t]}; }pgbench printed no summary: it was still running $((DURATION + GRACE))s after its start and was killed"
        else
            NOTES[$t]="${NOTES[$t]:+${NOTES[$t]}; }pgbench printed no summary: $(grep -v 'aborted' "$err" | grep -m1 -E 'error|fatal' | cut -c1-200 || true)"
        fi
    fi
    if grep -q 'Run was aborted' "$err"; then
        NOTES[$t]="${NOTES[$t]:+${NOTES[$t]}; }pgbench: \"Run was aborted; the above results are incomplete\""
    fi
    local reasons
    reasons="$(grep -E 'client [0-9]+ (script [0-9]+ )?aborted' "$err" |
        sed -E 's/^pgbench: (error: )?//; s/^client [0-9]+ //; s/ +/ /g' | cut -c1-240 |
        sort | uniq -c | sort -rn | head -n 3 | awk '{ n = $1; $1 = ""; printf "%s%d× `%s`", (NR > 1 ? ", " : ""), n, substr($0, 2) }' || true)"
    [ -n "$reasons" ] && NOTES[$t]="${NOTES[$t]:+${NOTES[$t]}; }abort reasons: $reasons"

    local res status done_ms wport tries
    res="$({ grep '^RESULT' "$probe" || true; } | tail -n 1)"
    read -r _ status done_ms wport tries <<<"${res:-RESULT none - - ?}"
    if [ "$status" = ok ]; then
        local node="?"
        local i p
        for i in 0 1 2; do
            p="$(scripts/pgcluster port "$CLUSTER_DIR" "$i" 2>/dev/null || true)"
            [ "$p" = "$wport" ] && node="node$i"
        done
        FIRSTWRITE[$t]="$((done_ms - promote_ms)) ms ($node, attempt $tries)"
    else
        FIRSTWRITE[$t]="none within ${WRITE_TIMEOUT}s ($tries attempts)"
    fi
    KILL_REL[$t]="$(ms_to_s $((kill_ms - t0)))"
    PROMOTE_REL[$t]="$(ms_to_s $((promote_ms - t0)))"
    PROMOTE_TOOK[$t]="$((promote_ms - promote_start))"
    add_event "$t" "$(rel_sec "$kill_ms" "$t0")" "node0 killed"
    add_event "$t" "$(rel_sec "$promote_ms" "$t0")" "node1 promoted"
    [ "$status" = ok ] && add_event "$t" "$(rel_sec "$done_ms" "$t0")" "first write"
    END_SEC[$t]="$(rel_sec "$end_ms" "$t0")"
    add_event "$t" "${END_SEC[$t]}" "pgbench exited"

    local sec tps
    while read -r sec tps; do
        TL["$t|$sec"]="$tps"
        [ "$sec" -gt "$MAXSEC" ] && MAXSEC="$sec"
    done < <(sed -n 's/^progress: \([0-9.]*\) s, \([0-9.]*\) tps.*/\1 \2/p' "$err" | awk '{printf "%d %.0f\n", $1 + 0.5, $2}')
    # Per-thread transaction logs (client tx_no latency_us|failure script epoch_s epoch_us
    # [retries]): successful transactions per second of completion, counted from pgbench's
    # launch, over all threads. -P 1 lines come from thread 0 only and stop once all of
    # thread 0's clients have aborted.
    local -a tx_files=()
    local f
    for f in "$CLUSTER_DIR"/pgbench_tx.*; do [ -f "$f" ] && tx_files+=("$f"); done
    TXLOG[$t]=0
    if [ ${#tx_files[@]} -gt 0 ]; then
        TXLOG[$t]=1
        awk -v t0="$t0" '$3 ~ /^[0-9]+$/ && NF >= 6 {
                    ms = $5 * 1000 + int($6 / 1000) - t0
                    if (ms < 0) ms = 0
                    n[int(ms / 1000) + 1]++
                }
                END { for (s in n) print s, n[s] }' "${tx_files[@]}" | sort -n >"$CLUSTER_DIR/tx-per-second"
        while read -r sec tps; do
            AGG["$t|$sec"]="$tps"
            [ "$sec" -gt "$MAXSEC" ] && MAXSEC="$sec"
        done <"$CLUSTER_DIR/tx-per-second"
        # clients that completed a transaction after the promotion
        awk -v k="$promote_ms" '$3 ~ /^[0-9]+$/ && NF >= 6 && $5 * 1000 + int($6 / 1000) >= k { print $1 }' \
            "${tx_files[@]}" | sort -u >"$CLUSTER_DIR/clients-after-promote"
    else
        : >"$CLUSTER_DIR/clients-after-promote"
    fi
    # stalled: neither aborted nor completed any transaction after the promotion
    { grep -oE 'client [0-9]+ (script [0-9]+ )?aborted' "$err" || true; } | awk '{print $2}' | sort -u >"$CLUSTER_DIR/clients-aborted"
    STALLED[$t]="$(seq 0 $((CLIENTS - 1)) | sort -u | comm -23 - "$CLUSTER_DIR/clients-aborted" |
        comm -23 - "$CLUSTER_DIR/clients-after-promote" | wc -l)"

    # ---- raw log
    {
        echo "===== pgbench rc=$rc runtime ${RUNTIME[$t]}"
        echo "===== pgbench stdout"
        cat "$out"
        echo "===== pgbench stderr"
        cat "$err"
        echo "===== successful transactions per second (all threads, from pgbench -l; second N = (N-1, N] after launch)"
        cat "$CLUSTER_DIR/tx-per-second" 2>/dev/null || true
        echo "===== write probe (ms relative to the end of pg_ctl promote)"
        cat "$probe"
        if [ "$t" = pgferry ]; then
            echo "===== pgferry log (last 400 lines)"
            tail -n 400 "$CLUSTER_DIR/pgferry.log" || true
        else
            echo "===== pgbouncer log (last 400 lines)"
            tail -n 400 "$CLUSTER_DIR/pgbouncer/pgbouncer.log" || true
        fi
        echo "===== node1 log (last 40 lines)"
        tail -n 40 "$CLUSTER_DIR/node1.log" || true
    } >>"$raw"
    log "$t: lost ${LOST[$t]}/$CLIENTS clients, failed ${FAILED[$t]:-?}, processed ${PROCESSED[$t]:-?}, first write: ${FIRSTWRITE[$t]}"
}

for t in "${TARGET_LIST[@]}"; do
    run_target "$t"
    log "$t: stopping pooler and cluster"
    stop_run
done

# ------------------------------------------------------------------ report
dash() { if [ -n "${1:-}" ]; then echo "$1"; else echo "-"; fi; }
REPORT="$RESULTS_DIR/failover-latest.md"
pgv="$("$PG_BIN/postgres" --version)"
pbv="$("$PGBOUNCER" --version 2>/dev/null | head -n 1)"
fv=""
[ -n "${PGFERRY_BIN:-}" ] && fv="$("$PGFERRY_BIN" --version 2>/dev/null | head -n 1) (binary built $(date -u -r "$PGFERRY_BIN" '+%Y-%m-%d %H:%M UTC'))"
{
    echo "# Failover drill: pgferry vs PgBouncer"
    echo
    echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC'); machine: $(nproc) cores, $(uname -sr)"
    echo "- $pgv; $pbv${fv:+; $fv}${PGFERRY_NOTE:+ ($PGFERRY_NOTE)}"
    echo "- per target a fresh cluster: node0 primary + 2 streaming replicas on 127.0.0.1 (fsync=off), \`pgbench -i -s $SCALE\`"
    echo "- load: \`pgbench ${PGBENCH_OPTS[*]}\` (built-in TPC-B-like script) through the target; poolers: transaction pooling, pool size $POOL_SIZE, max_client_conn 1000, scram-sha-256"
    echo "- drill: ${KILL_AT}s after pgbench starts node0 is killed (\`pg_ctl stop -m immediate\`); ${PROMOTE_DELAY}s later node1 is promoted (\`pg_ctl promote -w\`; its end is the promotion time) and node2 is repointed at node1. Neither pooler is reconfigured or restarted."
    echo "- promotion → first write: from the end of \`pg_ctl promote\`, one \`psql -c 'INSERT …'\` through the target per attempt (${WRITE_INTERVAL_MS} ms between attempts, at most ${WRITE_ATTEMPT_TIMEOUT}s each) until one succeeds or ${WRITE_TIMEOUT}s pass; the time is when the successful attempt returned"
    echo "- clients lost: distinct pgbench clients that printed \`client N aborted …\`. pgbench retries only serialization/deadlock errors (--max-tries); any other error (a lost connection, 08006, 57P01, …) aborts the client for the rest of the run. *stalled* = clients that neither aborted nor completed a transaction after the promotion (e.g. still waiting inside the pooler when pgbench stopped)"
    echo
    echo "| target | pooler reconfigured | clients lost (of $CLIENTS) | failed tx | retried tx / retries | tx processed | promotion → first write | pgbench ran |"
    echo "|---|---|--:|--:|--:|--:|---|---|"
    for t in "${TARGET_LIST[@]}"; do
        lost="$(dash "${LOST[$t]:-}")"
        [ "${STALLED[$t]:-0}" -gt 0 ] && lost="$lost (+${STALLED[$t]} stalled)"
        echo "| $t | $(dash "${RECONF[$t]:-}") | $lost | $(dash "${FAILED[$t]:-}") | $(dash "${RETRIED[$t]:-}") / $(dash "${RETRIES[$t]:-}") | $(dash "${PROCESSED[$t]:-}") | $(dash "${FIRSTWRITE[$t]:-}") | $(dash "${RUNTIME[$t]:-}") |"
    done
    echo
    for t in "${TARGET_LIST[@]}"; do
        echo "- $t: node0 killed at +${KILL_REL[$t]:-?}s, node1 promoted at +${PROMOTE_REL[$t]:-?}s (\`pg_ctl promote\` took ${PROMOTE_TOOK[$t]:-?} ms), node2 follows node1: ${FOLLOWED[$t]:-?}${NOTES[$t]:+; ${NOTES[$t]}}"
    done
    echo
    echo "## Throughput timeline (pgbench -P 1)"
    echo
    echo "tps per second of the run (the line \"progress: N s\" covers second N); \`N*\` = no progress line for that second (pgbench prints them from thread 0 only, which stops reporting once all of its clients have aborted), so N is the number of transactions all threads completed in that second, counted from pgbench's per-transaction log (\`-l\`; if pgbench had to be killed, its last unflushed log lines are missing); \`-\` = no data for that second; \`ended\` = pgbench had exited (with -T it exits early once every client has aborted)."
    echo
    hdr="| second |"
    sep="|--:|"
    for t in "${TARGET_LIST[@]}"; do
        hdr="$hdr $t tps |"
        sep="$sep--:|"
    done
    echo "$hdr events |"
    echo "$sep---|"
    # rows up to DURATION+1; a pgbench that overstayed (stalled clients, killed after
    # GRACE) only has its later events listed below the table
    last=$((DURATION + 1))
    late=()
    for t in "${TARGET_LIST[@]}"; do
        for k in "${!EVENT[@]}"; do
            [[ "$k" == "$t|"* ]] || continue
            s="${k#*|}"
            [ "$s" -gt "$last" ] && late+=("$t: ${EVENT[$k]} in second $s")
        done
    done
    for ((s = 1; s <= last; s++)); do
        row="| $s |"
        evs=()
        for t in "${TARGET_LIST[@]}"; do
            if [ -n "${TL[$t|$s]:-}" ]; then
                row="$row ${TL[$t|$s]} |"
            elif [ -n "${END_SEC[$t]:-}" ] && [ "$s" -le "${END_SEC[$t]}" ] && [ "${TXLOG[$t]:-0}" = 1 ]; then
                row="$row ${AGG[$t|$s]:-0}* |"
            elif [ -n "${END_SEC[$t]:-}" ] && [ "$s" -gt "${END_SEC[$t]}" ]; then
                row="$row ended |"
            else
                row="$row - |"
            fi
            evs+=("${EVENT[$t|$s]:-}")
        done
        ev=""
        same=1
        for e in "${evs[@]}"; do [ "$e" = "${evs[0]}" ] || same=0; done
        if [ "$same" = 1 ]; then
            ev="${evs[0]}"
        else
            for i in "${!TARGET_LIST[@]}"; do
                [ -n "${evs[$i]}" ] && ev="${ev:+$ev; }${TARGET_LIST[$i]}: ${evs[$i]}"
            done
        fi
        echo "$row $ev |"
    done
    if [ ${#late[@]} -gt 0 ]; then
        echo
        echo "After second $last: $(printf '%s; ' "${late[@]}" | sed 's/; $//')."
    fi
    echo
    # shellcheck disable=SC2016 # literal backticks for markdown
    echo "Raw output: $(for t in "${TARGET_LIST[@]}"; do printf '`%s` ' "benches/results/failover-raw-$t.log"; done)"
} >"$REPORT"
cat "$REPORT"
log "wrote $REPORT"
