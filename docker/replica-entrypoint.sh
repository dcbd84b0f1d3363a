#!/usr/bin/env bash
# replica-entrypoint.sh — entrypoint of the replica services in docker-compose.yml:
# clones the primary with `pg_basebackup -R` on first start, then hands over to the
# postgres:15 image's own entrypoint, which runs the server as a hot standby.
# Env: PRIMARY_HOST (default primary), REPLICA_NAME (cluster_name), PGDATA.
set -euo pipefail

PRIMARY_HOST="${PRIMARY_HOST:-primary}"
REPLICA_NAME="${REPLICA_NAME:-replica}"
export PGDATA="${PGDATA:-/var/lib/postgresql/data}"

if [ ! -s "$PGDATA/PG_VERSION" ]; then
    echo "replica-entrypoint: waiting for $PRIMARY_HOST" >&2
    until pg_isready -q -h "$PRIMARY_HOST" -p 5432 -U replicator; do sleep 1; done
    mkdir -p "$PGDATA"
    chown postgres:postgres "$PGDATA"
    chmod 0700 "$PGDATA"
    echo "replica-entrypoint: pg_basebackup from $PRIMARY_HOST" >&2
    gosu postgres env PGPASSWORD=replicator \
        pg_basebackup -R -X stream -c fast -h "$PRIMARY_HOST" -p 5432 -U replicator -D "$PGDATA"
fi

# max_connections must be >= the primary's (300) or a hot standby refuses to start.
exec docker-entrypoint.sh postgres -c hot_standby=on -c max_connections=300 \
    -c cluster_name="$REPLICA_NAME"
