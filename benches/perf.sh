#!/usr/bin/env bash
# perf.sh — the performance instrument of issue #8: one command, one cluster, direct
# PostgreSQL vs PgBouncer vs pgferry side by side, and docs/benchmarks.md regenerated.
#
# Usage: benches/perf.sh            (QUICK=1 benches/perf.sh for a short smoke run)
#   Starts a throwaway primary + 2 replicas (scripts/pgcluster), `pgbench -i -s $SCALE`,
#   PgBouncer and a release build of pgferry (both transaction pooling, pool size 20,
#   scram-sha-256, user app/secret), then runs every scenario below for ROUNDS rounds,
#   rotating the order of its targets each round:
#     latency     -S simple, 1 client: direct, PgBouncer, pgferry (added mean latency)
#     matrix      -S simple / -S -M extended / tpcb-like at 10 and 100 clients
#     prepared    -S -M prepared at 100 clients: direct vs pgferry (PgBouncer 1.18
#                 cannot run it in transaction mode)
#     route       -S simple at 100: pgferry route="primary" vs route="auto" (and route="auto"
#                 with the primary as the only host: the routing work alone)
#     ryw         tpcb-like at 100: route="auto" with read_your_writes off vs on
#     floor       -S simple at 10 and 100: PgBouncer, pgferry and the null forwarder
#                 (benches/floor/null_forwarder.rs: one epoll loop, each client paired
#                 with its own server connection, bytes passed on unread), the CPU per
#                 transaction that no proxy on this machine goes below
#     tail        -S simple, 1000 clients on a pool of 20, per-transaction log:
#                 p50/p99 latency and transactions per client (starvation); TAIL_DURATION
#                 seconds per run (default: DURATION, at least 15), and the percentiles
#                 are taken over the steady state (see benches/report.py); the pooler's CPU
#                 is also sampled from half to nine tenths of each run (tailcpu-*.txt), for a
#                 CPU per transaction without the logins
#   For each pooler run it reads utime+stime of the pooler process from /proc/PID/stat
#   before and after: CPU per transaction = delta / transactions.
#   Then `strace -c -f` on each pooler during one -S run at 100 clients (syscalls per
#   transaction, EAGAIN reads), and the idle-client memory probe (benches/idle_clients.py:
#   IDLE_CLIENTS trust-authenticated idle clients against a separate pgferry and PgBouncer,
#   RSS growth per client and RSS after they leave), then as many idle clients as
#   one pgferry can hold at once: 100,000, or what the open-files limit leaves room
#   for (the script raises it to 110,000 when it may, else to the hard limit). When one
#   process cannot hold 100,000, the 100,000 go to several pgferry processes sharing one
#   port (so_reuseport, with peering), each within the limit, and to as many probe
#   processes (idle_clients.py --shards).
#   benches/report.py turns the raw results into the ratio table against the targets,
#   benches/results/tps.svg and docs/benchmarks.md (with benches/results/failover-latest.md
#   appended; RUN_FAILOVER=1 reruns benches/failover.sh first).
#
# Environment:
#   ROUNDS=3 DURATION=10 (seconds per run); QUICK=1 means ROUNDS=2 DURATION=4, IDLE_CLIENTS=2000
#   SCALE=10 POOL_SIZE=20 THREADS=2 IDLE_CLIENTS=10000 TAIL_CLIENTS=1000
#   SCENARIOS="latency matrix prepared route ryw floor tail strace memory"  (any subset)
#   RESULTS_DIR=benches/results  DOC=docs/benchmarks.md (DOC= to skip writing it)
#   FEATURES=  cargo features of the pgferry build (e.g. mimalloc, jemalloc)
#   WORKERS=   pgferry's [proxy] workers (default: its own default, 1)
#   CACHE_UNNAMED=true  pgferry's [proxy] cache_unnamed_statements (off in pgferry's own
#              defaults; on here because issue #8's extended-protocol target is about it)
#   CPU_POLICY=batch  pgferry's [proxy] cpu_policy ("normal" in pgferry's own defaults;
#              "batch" here: SCHED_BATCH, for a pooler sharing a saturated 2-core box)
#   NICE=-5    pgferry's [proxy] nice (0 in pgferry's own defaults); PgBouncer is reniced to
#              the same value, so both poolers run at the same priority (needs root or
#              CAP_SYS_NICE; the nice values actually in effect go into the report)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# shellcheck source=benches/lib.sh
. benches/lib.sh

if [ "${QUICK:-0}" = 1 ]; then
    ROUNDS="${ROUNDS:-2}"
    DURATION="${DURATION:-4}"
    IDLE_CLIENTS="${IDLE_CLIENTS:-2000}"
fi
ROUNDS="${ROUNDS:-3}"
DURATION="${DURATION:-10}"
SCALE="${SCALE:-10}"
POOL_SIZE="${POOL_SIZE:-20}"
THREADS="${THREADS:-2}"
IDLE_CLIENTS="${IDLE_CLIENTS:-10000}"
TAIL_CLIENTS="${TAIL_CLIENTS:-1000}"
NICE="${NICE:--5}"
# pgbench's -T includes logging the clients in: 1000 SCRAM logins take seconds, so
# the tail runs are longer than the others to leave a steady state to measure.
TAIL_DURATION="${TAIL_DURATION:-$((DURATION > 15 ? DURATION : 15))}"
SCENARIOS="${SCENARIOS:-latency matrix prepared route ryw floor tail strace memory}"
RESULTS_DIR="${RESULTS_DIR:-$ROOT/benches/results}"
DOC="${DOC-$ROOT/docs/benchmarks.md}"

log() { echo "perf: $*" >&2; }
die() {
    log "error: $*"
    exit 1
}
want() { [[ " $SCENARIOS " == *" $1 "* ]]; }

PG_BIN="${PG_BIN:-/usr/lib/postgresql/15/bin}"
PGBENCH="$PG_BIN/pgbench"
PSQL="$PG_BIN/psql"
PGBOUNCER="$(command -v pgbouncer || echo /usr/sbin/pgbouncer)"
CLK_TCK="$(getconf CLK_TCK)"
# 1000 pgbench clients, 10k idle clients, and as many as 100,000 idle clients
# held at once: every process here needs the fds. Raising the hard limit needs
# CAP_SYS_RESOURCE; without it the soft limit goes up to the hard one.
ulimit -n 110000 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
FD_LIMIT="$(ulimit -n)"

cpu_ticks() { # utime + stime of a process (all threads), in clock ticks
    awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"
}

# sample_cpu PID DELAY SPAN OUT: after DELAY seconds, then SPAN seconds later, one line
# "epoch-microseconds cpu-ticks" of PID each (the pooler's CPU over the tail runs'
# steady state; report.py counts the transactions that ended between the two)
sample_cpu() {
    sleep "$2"
    echo "$(date +%s%6N) $(cpu_ticks "$1")" >"$4"
    sleep "$3"
    echo "$(date +%s%6N) $(cpu_ticks "$1")" >>"$4"
}

FEATURES="${FEATURES:-}"
log "cargo build --release ${FEATURES:+--features $FEATURES}"
cargo build --release ${FEATURES:+--features "$FEATURES"} >&2
PGFERRY_BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/pgferry"
[ -x "$PGFERRY_BIN" ] || die "$PGFERRY_BIN not built"
cargo build --release --example null_forwarder >&2
FLOOR_BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/examples/null_forwarder"

CLUSTER_DIR=""
PIDS=()
cleanup() {
    trap - EXIT INT TERM
    local p
    for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    if [ -n "$CLUSTER_DIR" ]; then
        scripts/pgcluster stop "$CLUSTER_DIR" >/dev/null 2>&1 || true
    fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

eval "$(scripts/pgcluster start --replicas 2 --owner-pid $$)"
# shellcheck disable=SC2153 # set by the eval above
CLUSTER_DIR="$PGCLUSTER_DIR"
PRIMARY_PORT="$PGCLUSTER_PRIMARY_PORT"
export PGPASSWORD=secret PGUSER=app PGHOST=127.0.0.1 PGSSLMODE=disable

log "pgbench -i -s $SCALE"
"$PGBENCH" -i -q -s "$SCALE" -p "$PRIMARY_PORT" -d app >"$CLUSTER_DIR/pgbench-init.log" 2>&1 ||
    die "pgbench -i failed: $(tail -n 5 "$CLUSTER_DIR/pgbench-init.log")"
for _ in $(seq 1 600); do
    behind="$(scripts/pgcluster psql "$CLUSTER_DIR" 0 -XAtq -c \
        "SELECT count(*) FROM pg_stat_replication WHERE replay_lsn IS NULL OR replay_lsn < pg_current_wal_lsn()")"
    [ "$behind" = 0 ] && break
    sleep 0.1
done

# ------------------------------------------------------------------ poolers
# at_nice PID NAME: renice a process without a `nice` setting of its own to pgferry's.
at_nice() {
    [ "$NICE" = 0 ] && return 0
    renice -n "$NICE" -p "$1" >/dev/null 2>&1 || log "cannot renice $2 to $NICE"
}

start_pgbouncer() { # start_pgbouncer NAME AUTH_TYPE MAX_CLIENTS -> sets BPORT_<NAME>, BPID_<NAME>
    local name="$1" auth="$2" maxc="$3" dir="$CLUSTER_DIR/pgbouncer-$1" port pid
    mkdir -p "$dir"
    port="$(scripts/pgcluster free-port)"
    printf '"app" "secret"\n' >"$dir/userlist.txt"
    cat >"$dir/pgbouncer.ini" <<EOF
[databases]
app = host=127.0.0.1 port=$PRIMARY_PORT dbname=app

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $port
unix_socket_dir = $dir
auth_type = $auth
auth_file = $dir/userlist.txt
pool_mode = transaction
default_pool_size = $POOL_SIZE
max_client_conn = $maxc
ignore_startup_parameters = extra_float_digits
logfile = $dir/pgbouncer.log
pidfile = $dir/pgbouncer.pid
EOF
    [ "$(id -u)" = 0 ] && chown -R postgres:postgres "$dir"
    # runuser starts PgBouncer with the postgres user's soft fd limit (1024 here):
    # too few for 1000 clients, let alone the idle-client test.
    as_pg sh -c 'ulimit -n "$(ulimit -Hn)" && exec "$0" "$@"' "$PGBOUNCER" -d "$dir/pgbouncer.ini" >&2 || die "pgbouncer $name failed: $(tail -n 5 "$dir/pgbouncer.log")"
    wait_port "$port" 20 || die "pgbouncer $name does not listen on $port"
    # The daemon may listen a moment before its pidfile is written.
    local tries=0
    while [ ! -s "$dir/pgbouncer.pid" ] && [ "$tries" -lt 50 ]; do
        sleep 0.1
        tries=$((tries + 1))
    done
    pid="$(cat "$dir/pgbouncer.pid")" || die "pgbouncer $name wrote no pidfile"
    # The same priority as pgferry's `nice` (PgBouncer has no setting for it).
    at_nice "$pid" PgBouncer
    BOUNCER_NICE="$(ps -o ni= -p "$pid" | tr -d ' ')"
    printf -v "BPORT_$name" '%s' "$port"
    printf -v "BPID_$name" '%s' "$pid"
}

# The [[users]] entry and the route = "primary" database `app` of every pgferry
# config here (app_sections HOSTS_TOML).
app_sections() {
    cat <<EOF
[[users]]
name = "app"
password = "secret"

[databases.app]
hosts = [$1]
dbname = "app"
route = "primary"
EOF
}

start_pgferry() { # start_pgferry NAME AUTH_METHOD MAX_CLIENTS -> sets FPORT_<NAME>, FPID_<NAME>
    local name="$1" auth="$2" maxc="$3" cfg="$CLUSTER_DIR/pgferry-$1.toml" port pid hosts
    port="$(scripts/pgcluster free-port)"
    hosts="$(toml_hosts "$PGCLUSTER_HOSTS")"
    cat >"$cfg" <<EOF
[proxy]
listen = "127.0.0.1:$port"
pool_mode = "transaction"
default_pool_size = $POOL_SIZE
max_client_conn = $maxc
auth_method = "$auth"
${WORKERS:+workers = $WORKERS}
cache_unnamed_statements = ${CACHE_UNNAMED:-true}
cpu_policy = "${CPU_POLICY:-batch}"
nice = $NICE

$(app_sections "$hosts")

[databases.app_auto]
hosts = [$hosts]
dbname = "app"
route = "auto"
read_your_writes = false

[databases.app_ryw]
hosts = [$hosts]
dbname = "app"
route = "auto"
read_your_writes = true

# route = "auto" with the primary as the only host: every select is
# classified and routed, and falls back to the primary (pgferry's routing
# work alone, without the replicas competing for the same cores)
[databases.app_auto_local]
hosts = ["127.0.0.1:$PRIMARY_PORT"]
dbname = "app"
route = "auto"
read_your_writes = false
EOF
    "$PGFERRY_BIN" --config "$cfg" >"$CLUSTER_DIR/pgferry-$name.log" 2>&1 &
    pid=$!
    PIDS+=("$pid")
    wait_port "$port" 20 "$pid" || die "pgferry $name does not listen: $(tail -n 5 "$CLUSTER_DIR/pgferry-$name.log")"
    FERRY_NICE="$(ps -o ni= -p "$pid" | tr -d ' ')"
    printf -v "FPORT_$name" '%s' "$port"
    printf -v "FPID_$name" '%s' "$pid"
}

# start_pgferry_peers COUNT MAX_CLIENTS_EACH -> PEERS_PORT, PEERS_PIDS (comma-separated):
# COUNT pgferry processes on one port (so_reuseport), each with its own peer_listen
# address and the whole [peers] table, trust authentication, connection logs off.
start_pgferry_peers() {
    local count="$1" maxc="$2" port hosts table="" k cfg pid
    local -a own
    port="$(scripts/pgcluster free-port)"
    hosts="$(toml_hosts "$PGCLUSTER_HOSTS")"
    for k in $(seq 1 "$count"); do
        own[k]="$(scripts/pgcluster free-port)"
        table+="$k = \"127.0.0.1:${own[k]}\""$'\n'
    done
    PEERS_PIDS=""
    for k in $(seq 1 "$count"); do
        cfg="$CLUSTER_DIR/pgferry-peer$k.toml"
        cat >"$cfg" <<EOF
[proxy]
listen = "127.0.0.1:$port"
so_reuseport = true
peer_id = $k
peer_listen = "127.0.0.1:${own[k]}"
pool_mode = "transaction"
default_pool_size = 2
max_client_conn = $maxc
auth_method = "trust"
log_connections = false
log_disconnections = false

$(app_sections "$hosts")

[peers]
$table
EOF
        "$PGFERRY_BIN" --config "$cfg" >"$CLUSTER_DIR/pgferry-peer$k.log" 2>&1 &
        pid=$!
        PIDS+=("$pid")
        wait_port "${own[k]}" 20 "$pid" || die "pgferry peer $k does not listen: $(tail -n 5 "$CLUSTER_DIR/pgferry-peer$k.log")"
        PEERS_PIDS+="${PEERS_PIDS:+,}$pid"
    done
    PEERS_PORT="$port"
}

start_pgbouncer main scram-sha-256 $((TAIL_CLIENTS + 100))
start_pgferry main scram-sha-256 $((TAIL_CLIENTS + 100))
# The floor: the null forwarder in front of the primary, at the poolers' priority.
FLOOR_PORT="$(scripts/pgcluster free-port)"
"$FLOOR_BIN" "127.0.0.1:$FLOOR_PORT" "127.0.0.1:$PRIMARY_PORT" >"$CLUSTER_DIR/null-forwarder.log" 2>&1 &
FLOOR_PID=$!
PIDS+=("$FLOOR_PID")
wait_port "$FLOOR_PORT" 20 "$FLOOR_PID" || die "null_forwarder does not listen: $(tail -n 5 "$CLUSTER_DIR/null-forwarder.log")"
at_nice "$FLOOR_PID" "the null forwarder"

# target name -> port, database, pooler pid (empty for direct)
declare -A PORT=([direct]="$PRIMARY_PORT" [pgbouncer]="$BPORT_main" [pgferry]="$FPORT_main"
    [pgferry-auto]="$FPORT_main" [pgferry-ryw]="$FPORT_main" [pgferry-auto-local]="$FPORT_main"
    [floor]="$FLOOR_PORT")
declare -A DB=([direct]=app [pgbouncer]=app [pgferry]=app [pgferry-auto]=app_auto [pgferry-ryw]=app_ryw
    [pgferry-auto-local]=app_auto_local [floor]=app)
declare -A PID=([direct]="" [pgbouncer]="$BPID_main" [pgferry]="$FPID_main"
    [pgferry-auto]="$FPID_main" [pgferry-ryw]="$FPID_main" [pgferry-auto-local]="$FPID_main"
    [floor]="$FLOOR_PID")
for t in "${!PORT[@]}"; do
    "$PSQL" -X -q -A -t -p "${PORT[$t]}" -d "${DB[$t]}" -c "SELECT 1" >/dev/null ||
        die "cannot query through $t"
done

mkdir -p "$RESULTS_DIR"
RAW="$RESULTS_DIR/perf-raw.log"
TSV="$RESULTS_DIR/perf-results.tsv"
: >"$RAW"
printf 'scenario\tworkload\tclients\ttarget\tround\ttps\ttx\tlat_ms\tcpu_s\n' >"$TSV"

workload_flags() {
    case "$1" in
    select-simple) echo "-S -M simple" ;;
    select-extended) echo "-S -M extended" ;;
    select-prepared) echo "-S -M prepared" ;;
    tpcb-like) echo "-M simple" ;;
    esac
}

# run_one SCENARIO WORKLOAD CLIENTS TARGET ROUND [extra pgbench args...]
run_one() {
    local sc="$1" w="$2" c="$3" t="$4" r="$5" j="$THREADS" out rc tps tx lat c0=0 c1=0 cpu=""
    shift 5
    [ "$j" -gt "$c" ] && j="$c"
    read -r -a flags <<<"$(workload_flags "$w")"
    local pid="${PID[$t]}"
    [ -n "$pid" ] && c0="$(cpu_ticks "$pid")"
    set +e
    out="$("$PGBENCH" -n -p "${PORT[$t]}" -c "$c" -j "$j" -T "${RUN_DURATION:-$DURATION}" "${flags[@]}" "$@" "${DB[$t]}" 2>&1)"
    rc=$?
    set -e
    [ -n "$pid" ] && c1="$(cpu_ticks "$pid")" && cpu="$(awk -v a="$c0" -v b="$c1" -v hz="$CLK_TCK" 'BEGIN { printf "%.3f", (b - a) / hz }')"
    tps="$(sed -n 's/^tps = \([0-9.]*\) (without initial connection time).*/\1/p' <<<"$out" | head -n 1)"
    tx="$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' <<<"$out" | head -n 1)"
    lat="$(sed -n 's/^latency average = \([0-9.]*\) ms.*/\1/p' <<<"$out" | head -n 1)"
    {
        echo "===== $sc round $r target=$t workload=$w clients=$c rc=$rc cpu_s=$cpu"
        echo "$out"
    } >>"$RAW"
    if [ "$rc" != 0 ] || [ -z "$tps" ]; then
        log "run failed ($sc $t $w c=$c rc=$rc): $(grep -m1 -iE 'error|fatal|abort' <<<"$out" || echo 'no tps')"
    fi
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$sc" "$w" "$c" "$t" "$r" "${tps:--}" "${tx:--}" \
        "${lat:--}" "${cpu:--}" >>"$TSV"
    log "$sc $w c=$c round $r $t: ${tps:-ERR} tps, cpu ${cpu:--} s"
}

# scenario NAME WORKLOAD CLIENTS "TARGETS" [extra pgbench args...]: ROUNDS rounds, rotated
scenario() {
    local sc="$1" w="$2" c="$3" r k
    read -r -a ts <<<"$4"
    shift 4
    local nt=${#ts[@]}
    scripts/pgcluster psql "$CLUSTER_DIR" 0 -XAtq -c CHECKPOINT >/dev/null
    for ((r = 1; r <= ROUNDS; r++)); do
        for ((k = 0; k < nt; k++)); do
            run_one "$sc" "$w" "$c" "${ts[$(((k + r) % nt))]}" "$r" "$@"
        done
    done
}

if want latency; then scenario latency select-simple 1 "direct pgbouncer pgferry"; fi
if want matrix; then
    for w in select-simple select-extended tpcb-like; do
        for c in 10 100; do scenario matrix "$w" "$c" "direct pgbouncer pgferry"; done
    done
fi
if want prepared; then scenario prepared select-prepared 100 "direct pgferry"; fi
if want route; then scenario route select-simple 100 "pgferry pgferry-auto pgferry-auto-local"; fi
if want ryw; then scenario ryw tpcb-like 100 "pgferry-auto pgferry-ryw"; fi
if want floor; then
    for c in 10 100; do scenario floor select-simple "$c" "pgbouncer pgferry floor"; done
fi
if want tail; then
    # per-transaction logs: latency percentiles and transactions per client
    rm -f "$CLUSTER_DIR"/tail-* "$RESULTS_DIR"/tailcpu-*
    for ((r = 1; r <= ROUNDS; r++)); do
        for t in pgbouncer pgferry; do
            # the middle of the run (after the logins, before the end): from half
            # of it to nine tenths
            sample_cpu "${PID[$t]}" "$(awk -v d="$TAIL_DURATION" 'BEGIN { print d / 2 }')" \
                "$(awk -v d="$TAIL_DURATION" 'BEGIN { print d * 0.4 }')" "$RESULTS_DIR/tailcpu-$t-$r.txt" &
            sampler=$!
            RUN_DURATION="$TAIL_DURATION" run_one tail select-simple "$TAIL_CLIENTS" "$t" "$r" -l \
                --log-prefix="$CLUSTER_DIR/tail-$t-$r"
            wait "$sampler" || true
            cat "$CLUSTER_DIR"/tail-"$t"-"$r".* >"$RESULTS_DIR/tail-$t-$r.log" 2>/dev/null || true
            rm -f "$CLUSTER_DIR"/tail-"$t"-"$r".*
        done
    done
fi

# ------------------------------------------------------------------ syscalls
if want strace; then
    for t in pgbouncer pgferry; do
        pid="${PID[$t]}"
        strace -c -f -p "$pid" -o "$RESULTS_DIR/strace-$t.txt" 2>/dev/null &
        spid=$!
        sleep 1
        out="$("$PGBENCH" -n -p "${PORT[$t]}" -c 100 -j "$THREADS" -T "$DURATION" -S -M simple app 2>&1 || true)"
        kill -INT "$spid" 2>/dev/null || true
        wait "$spid" 2>/dev/null || true
        tx="$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' <<<"$out" | head -n 1)"
        echo "${tx:-0}" >"$RESULTS_DIR/strace-$t.tx"
        log "strace $t: ${tx:-?} transactions"
    done
fi

# ------------------------------------------------------------------ idle-client memory
if want memory; then
    start_pgbouncer idle trust $((IDLE_CLIENTS + 200))
    start_pgferry idle trust $((IDLE_CLIENTS + 200))
    for t in pgbouncer pgferry; do
        if [ "$t" = pgbouncer ]; then port="$BPORT_idle" pid="$BPID_idle"; else port="$FPORT_idle" pid="$FPID_idle"; fi
        log "memory: $IDLE_CLIENTS idle clients through $t"
        python3 benches/idle_clients.py --port "$port" --pid "$pid" --count "$IDLE_CLIENTS" \
            --sources 8 >"$RESULTS_DIR/memory-$t.json" ||
            log "memory probe against $t reported failures: $(cat "$RESULTS_DIR/memory-$t.json")"
    done
    # The same, for clients that ran one query before going idle.
    log "memory: $IDLE_CLIENTS idle clients through pgferry, after one query each"
    python3 benches/idle_clients.py --port "$FPORT_idle" --pid "$FPID_idle" --count "$IDLE_CLIENTS" \
        --sources 8 --query "SELECT 1" >"$RESULTS_DIR/worked-pgferry.json" ||
        log "memory probe (after a query) reported failures: $(cat "$RESULTS_DIR/worked-pgferry.json")"
    # The most idle clients one pgferry holds at once: 100,000, or what the fd
    # limit leaves room for (each client is a socket in pgferry and in the probe).
    crowd=$((FD_LIMIT - 1000))
    [ "$crowd" -gt 100000 ] && crowd=100000
    rm -f "$RESULTS_DIR/crowd-pgferry.json"
    if [ "$crowd" -gt "$IDLE_CLIENTS" ]; then
        start_pgferry crowd trust $((crowd + 200))
        log "memory: $crowd idle clients through pgferry at once"
        python3 benches/idle_clients.py --port "$FPORT_crowd" --pid "$FPID_crowd" --count "$crowd" \
            --sources 8 >"$RESULTS_DIR/crowd-pgferry.json" ||
            log "crowd probe reported failures: $(cat "$RESULTS_DIR/crowd-pgferry.json")"
        kill "$FPID_crowd" 2>/dev/null || true
    fi
    # 100,000 at once over several processes on one port when one cannot hold them:
    # each pgferry process and each probe process stays within the open-files limit
    # (the kernel spreads the clients over the processes; each gets a margin).
    # At most 16 processes (a limit under about 8,000 is left out): each keeps
    # monitor and server connections to every node, within Postgres'
    # max_connections.
    rm -f "$RESULTS_DIR/peers-pgferry.json"
    if [ "$crowd" -lt 100000 ] && [ "$crowd" -ge 7813 ]; then
        each=$((crowd * 4 / 5))
        procs=$(((100000 + each - 1) / each))
        shards=$(((100000 + crowd - 1) / crowd))
        start_pgferry_peers "$procs" "$crowd"
        log "memory: 100000 idle clients through $procs pgferry processes on one port ($shards probe processes)"
        python3 benches/idle_clients.py --port "$PEERS_PORT" --pid "$PEERS_PIDS" --count 100000 \
            --sources 16 --shards "$shards" >"$RESULTS_DIR/peers-pgferry.json" ||
            log "100,000-client probe reported failures: $(cat "$RESULTS_DIR/peers-pgferry.json")"
        IFS=, read -ra peer_pids <<<"$PEERS_PIDS"
        kill "${peer_pids[@]}" 2>/dev/null || true
    fi
fi

if [ "${RUN_FAILOVER:-0}" = 1 ]; then benches/failover.sh >&2; fi

python3 benches/report.py --results "$RESULTS_DIR" --doc "$DOC" \
    --meta "date=$(date -u '+%Y-%m-%d %H:%M UTC')" \
    --meta "machine=$(nproc) cores, $(uname -sr)" \
    --meta "postgres=$("$PG_BIN/postgres" --version)" \
    --meta "pgbouncer=$("$PGBOUNCER" --version 2>/dev/null | head -n 1)" \
    --meta "rounds=$ROUNDS" --meta "duration=$DURATION" --meta "scale=$SCALE" \
    --meta "pool=$POOL_SIZE" --meta "threads=$THREADS" --meta "idle=$IDLE_CLIENTS" --meta "fdlimit=$FD_LIMIT" \
    --meta "tail=$TAIL_CLIENTS" --meta "tail_duration=$TAIL_DURATION" --meta "features=${FEATURES:-none}" --meta "workers=${WORKERS:-default}" --meta "cache_unnamed_statements=${CACHE_UNNAMED:-true}" --meta "cpu_policy=${CPU_POLICY:-batch}" --meta "nice=${FERRY_NICE:-?}" --meta "bouncer_nice=${BOUNCER_NICE:-?}"
