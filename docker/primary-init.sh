#!/usr/bin/env bash
# primary-init.sh — run once by the postgres:15 image's entrypoint (from
# /docker-entrypoint-initdb.d) when the primary's data directory is created.
# Creates the same roles/database as scripts/pgcluster and a pg_hba.conf for the
# compose network. Not run on the dev machines (no Docker engine there).
set -euo pipefail

psql -v ON_ERROR_STOP=1 --username postgres --dbname postgres <<'SQL'
SET password_encryption = 'scram-sha-256';
CREATE ROLE replicator REPLICATION LOGIN PASSWORD 'replicator';
CREATE ROLE app LOGIN CREATEDB PASSWORD 'secret';
CREATE ROLE clearuser LOGIN PASSWORD 'clearpass';
CREATE ROLE trustuser LOGIN;
SET password_encryption = 'md5';
CREATE ROLE md5user LOGIN PASSWORD 'md5pass';
RESET password_encryption;
CREATE DATABASE app OWNER app;
GRANT ALL ON DATABASE app TO md5user, clearuser, trustuser;
\c app
GRANT ALL ON SCHEMA public TO md5user, clearuser, trustuser;
SQL

# The entrypoint restarts the server after the init scripts, which loads this.
cat >"$PGDATA/pg_hba.conf" <<'HBA'
# TYPE  DATABASE     USER        ADDRESS   METHOD
local   all          all                   trust
host    all          all         127.0.0.1/32 trust
host    replication  replicator  all       scram-sha-256
host    all          md5user     all       md5
host    all          clearuser   all       password
host    all          trustuser   all       trust
host    all          all         all       scram-sha-256
HBA
