#!/bin/sh
# Makes the env files docker-compose.yml reads, every secret in them fresh and random, each
# file readable by you only. Once, before the first `docker compose up`, from anywhere:
#
#   sh deploy/make-env-files.sh
#
# They go beside this script (or into the directory given as its one argument), where
# .gitignore and .dockerignore keep them out of git and out of the image's build:
#
#   chatapi.env   the api's, read by migrate too: AUTH_JWT_SECRET and AUTH_KEY_PEPPER
#                 (deploy/chatapi.env.example says what each is), and PGPASSWORD, the
#                 password of chatapi_app, the role the api serves as
#   migrate.env   migrate's, read after chatapi.env: PGPASSWORD, the password of
#                 chatapi_owner, the role owning the schema
#   postgres.env  db's and db-replica's: POSTGRES_PASSWORD (the superuser's), the passwords of
#                 the two roles above (CHATAPI_OWNER_PASSWORD, CHATAPI_APP_PASSWORD), which db
#                 creates them with, and REPLICATION_PASSWORD (the standby's role)
#
# Each service gets the files it needs and no more: the api never holds the owner's nor the
# superuser's password. A password is written in two files (a role's in postgres.env, and
# in the env file of the service connecting as it): made here, the two always agree.
#
# It never replaces a file: db creates its roles with these passwords when its volume is new,
# and keeps them; new ones would lock the services out. To change one later, README,
# "Production-like: Docker Compose".
#
# Values are 64 hex digits (32 random bytes): nothing an env file, a URL or a shell would
# need quoted. POSIX sh; od and tr read /dev/urandom.
set -eu

directory=${1:-$(dirname -- "$0")}
files="chatapi.env migrate.env postgres.env"
for file in $files; do
    if [ -e "$directory/$file" ]; then
        echo "make-env-files: $directory/$file exists: nothing written (see the README to change a secret)" >&2
        exit 1
    fi
done

random() {
    value=$(od -An -vtx1 -N32 /dev/urandom | tr -d ' \n')
    if [ "${#value}" -ne 64 ]; then
        echo "make-env-files: could not read 32 random bytes from /dev/urandom" >&2
        exit 1
    fi
    printf '%s' "$value"
}

jwt_secret=$(random)
key_pepper=$(random)
app_password=$(random)
owner_password=$(random)
superuser_password=$(random)
replication_password=$(random)

umask 077
# Written whole under a temporary name, then renamed: never a file cut short.
partial="$directory/.make-env-files.$$"
mkdir "$partial"
trap 'rm -rf "$partial"' EXIT
trap 'exit 1' HUP INT TERM

cat >"$partial/chatapi.env" <<EOF
# The api's (and migrate's) secrets, made by deploy/make-env-files.sh.
# deploy/chatapi.env.example says what each is; other settings may be added.
AUTH_JWT_SECRET=$jwt_secret
AUTH_KEY_PEPPER=$key_pepper
# The password of chatapi_app, the role the api serves as (libpq reads PGPASSWORD).
PGPASSWORD=$app_password
EOF

cat >"$partial/migrate.env" <<EOF
# migrate's, over chatapi.env, made by deploy/make-env-files.sh.
# The password of chatapi_owner, the role owning the schema (libpq reads PGPASSWORD).
PGPASSWORD=$owner_password
EOF

cat >"$partial/postgres.env" <<EOF
# db's and db-replica's, made by deploy/make-env-files.sh. db sets these passwords when it
# creates its cluster (an empty volume) and keeps them: changing one here changes nothing.
# The superuser's, postgres: no service connects as it.
POSTGRES_PASSWORD=$superuser_password
# chatapi_owner's and chatapi_app's: as PGPASSWORD in migrate.env and chatapi.env.
CHATAPI_OWNER_PASSWORD=$owner_password
CHATAPI_APP_PASSWORD=$app_password
# replicator's, the role a hot standby copies and streams as.
REPLICATION_PASSWORD=$replication_password
EOF

# ln, unlike mv, never replaces a file that appeared meanwhile.
for file in $files; do
    ln "$partial/$file" "$directory/$file"
done
for file in $files; do
    echo "make-env-files: wrote $directory/$file" >&2
done
