# shellcheck shell=bash
# lib.sh — helpers shared by the benchmark scripts (sourced, not run).

# as_pg CMD...: runs CMD as the postgres user when we are root (initdb and
# PgBouncer refuse root), as ourselves otherwise.
as_pg() {
    if [ "$(id -u)" = 0 ]; then
        (cd / && runuser -u postgres -- "$@")
    else
        "$@"
    fi
}

# wait_port PORT SECONDS [PID]: waits until 127.0.0.1:PORT accepts a
# connection; fails after SECONDS, or as soon as PID (if given) has exited.
wait_port() {
    local port="$1" secs="$2" pid="${3:-}" i
    for ((i = 0; i < secs * 10; i++)); do
        if (exec 9<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            return 0
        fi
        if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then
            return 1
        fi
        sleep 0.1
    done
    return 1
}

# toml_hosts "h1:p1,h2:p2": the list as a TOML array body, "h1:p1", "h2:p2".
toml_hosts() {
    printf '%s\n' "$1" | tr ',' '\n' | sed 's/.*/"&"/' | paste -sd, - | sed 's/,/, /g'
}
