#!/bin/sh
# The primary's side of streaming replication, for the hot standby of
# deploy/compose.replica.yml: a role that may replicate ($REPLICATION_USER, with
# $REPLICATION_PASSWORD) and a pg_hba.conf line letting it in from the compose network.
#
# docker-compose.yml mounts it in the db service's /docker-entrypoint-initdb.d/, so the
# postgres image runs it once, when it creates the cluster in an empty volume. On a volume
# made before then, run it once by hand (it can run again, changing nothing):
#   docker compose exec -u postgres db sh /docker-entrypoint-initdb.d/replication.sh
#
# The image's own pg_hba.conf line, `host all all all scram-sha-256`, lets in no standby:
# `all` in the database column does not match replication connections. `samenet` is any
# address of the subnets the server's own interfaces are on: in the container, the compose
# network (db publishes no port).
#
# POSIX sh. The image sources a .sh that is not executable instead of running it, so there
# is no `exit` and no `set -u` here, which would end or change its entrypoint.
set -e

# The name and password go to psql in its environment, never on a command line (which `ps`
# shows to anyone in the container): \getenv, psql 15 and up, reads them.
psql -v ON_ERROR_STOP=1 --no-psqlrc --username "${POSTGRES_USER:-postgres}" --dbname postgres \
    <<'EOSQL'
\set replication_user ''
\set replication_password ''
\getenv replication_user REPLICATION_USER
\getenv replication_password REPLICATION_PASSWORD
SELECT :'replication_user' <> '' AND :'replication_password' <> '' AS given \gset
\if :given
\else
    \warn 'primary-replication.sh: REPLICATION_USER and REPLICATION_PASSWORD must be set'
    SELECT 1 / 0 AS refused;
\endif
SELECT format('CREATE ROLE %I', :'replication_user')
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'replication_user') \gexec
ALTER ROLE :"replication_user" WITH LOGIN REPLICATION PASSWORD :'replication_password';
EOSQL

replication_hba="host replication $REPLICATION_USER samenet scram-sha-256"
if ! grep -qxF "$replication_hba" "$PGDATA/pg_hba.conf"; then
    printf '%s\n' "$replication_hba" >>"$PGDATA/pg_hba.conf"
fi
# Read at once by a running server; at the image's first start, by the one it starts next.
psql -v ON_ERROR_STOP=1 --no-psqlrc --username "${POSTGRES_USER:-postgres}" --dbname postgres \
    --quiet --tuples-only --command 'SELECT pg_reload_conf()' >/dev/null
