#!/bin/sh
# The roles of the chatapi database, neither of them a superuser:
#
# - $CHATAPI_OWNER_USER (password $CHATAPI_OWNER_PASSWORD) owns the database $POSTGRES_DB
#   and its schema, public, and so every table the migrations make: the migrate service
#   connects as it.
# - $CHATAPI_APP_USER (password $CHATAPI_APP_PASSWORD) may connect, and read and write rows:
#   SELECT, INSERT, UPDATE and DELETE on the tables and views, USAGE on the sequences,
#   nothing else (no CREATE, ALTER, DROP, TRUNCATE, REFERENCES or TRIGGER). The api serves
#   as it. Default privileges grant it the same on whatever the owner makes later, so a new
#   migration needs no grant of its own.
#
# docker-compose.yml mounts it in the db service's /docker-entrypoint-initdb.d/, so the
# postgres image runs it once, when it creates the cluster in an empty volume. On a volume
# made before then, run it once by hand (it can run again, changing nothing but the two
# passwords, set to the environment's):
#   docker compose exec -u postgres db sh /docker-entrypoint-initdb.d/roles.sh
# (a volume made when the compose file had POSTGRES_USER=chatapi: add -e POSTGRES_USER=chatapi
# after `exec`). It hands the owner whatever the schema already holds: the tables a superuser
# migrated before.
#
# PUBLIC (every role) loses CONNECT and TEMPORARY on the database and CREATE on the schema:
# only the superuser and these two roles get in (the replication role never connects to a
# database), and only the owner creates anything.
#
# POSIX sh. The image sources a .sh that is not executable instead of running it, so there
# is no `exit` and no `set -u` here, which would end or change its entrypoint.
set -e

# The names and passwords go to psql in its environment, never on a command line (which
# `ps` shows to anyone in the container): \getenv, psql 15 and up, reads them.
psql -v ON_ERROR_STOP=1 --no-psqlrc --quiet --username "${POSTGRES_USER:-postgres}" \
    --dbname "${POSTGRES_DB:-${POSTGRES_USER:-postgres}}" <<'EOSQL'
\set owner ''
\set owner_password ''
\set app ''
\set app_password ''
\getenv owner CHATAPI_OWNER_USER
\getenv owner_password CHATAPI_OWNER_PASSWORD
\getenv app CHATAPI_APP_USER
\getenv app_password CHATAPI_APP_PASSWORD
-- Refuse what would leave a role without a password, or make the two roles one.
SELECT :'owner' <> '' AND :'app' <> '' AND :'owner' <> :'app'
    AND :'owner_password' <> '' AND :'app_password' <> '' AS given \gset
\if :given
\else
    \warn 'primary-roles.sh: CHATAPI_OWNER_USER and CHATAPI_APP_USER (two names) and their passwords CHATAPI_OWNER_PASSWORD and CHATAPI_APP_PASSWORD must be set'
    SELECT 1 / 0 AS refused;
\endif

SELECT format('CREATE ROLE %I', :'owner')
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'owner') \gexec
SELECT format('CREATE ROLE %I', :'app')
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'app') \gexec
ALTER ROLE :"owner" WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS
    PASSWORD :'owner_password';
ALTER ROLE :"app" WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS
    PASSWORD :'app_password';

SELECT current_database() AS database \gset
ALTER DATABASE :"database" OWNER TO :"owner";
REVOKE ALL ON DATABASE :"database" FROM PUBLIC;
GRANT CONNECT ON DATABASE :"database" TO :"app";

-- PostgreSQL 15 gives public to pg_database_owner (the owner above) and no CREATE to PUBLIC:
-- said again, for a cluster that came from an older version.
ALTER SCHEMA public OWNER TO :"owner";
REVOKE ALL ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO :"app";

-- What the schema already holds becomes the owner's: tables first (their sequences go with
-- them), then views, then any sequence left. Each query is read before its statements run.
SELECT format('ALTER TABLE %I.%I OWNER TO %I', n.nspname, c.relname, :'owner')
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'f')
    AND c.relowner <> (SELECT oid FROM pg_roles WHERE rolname = :'owner') \gexec
SELECT format('ALTER TABLE %I.%I OWNER TO %I', n.nspname, c.relname, :'owner')
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'public' AND c.relkind IN ('v', 'm')
    AND c.relowner <> (SELECT oid FROM pg_roles WHERE rolname = :'owner') \gexec
SELECT format('ALTER SEQUENCE %I.%I OWNER TO %I', n.nspname, c.relname, :'owner')
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'public' AND c.relkind = 'S'
    AND c.relowner <> (SELECT oid FROM pg_roles WHERE rolname = :'owner') \gexec

-- The app's rights on what is there now...
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO :"app";
GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO :"app";
-- ...and on what the owner makes from now on (the migrations).
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner" IN SCHEMA public
    GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO :"app";
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner" IN SCHEMA public
    GRANT USAGE ON SEQUENCES TO :"app";
EOSQL
