#!/bin/sh
# The entrypoint of db-replica, the hot standby of deploy/compose.replica.yml, in place of
# the postgres image's (which would run initdb in the empty volume): the first time, when
# $PGDATA holds no cluster, it copies the primary's with pg_basebackup; then it runs its
# command, `postgres`, which starts as a hot standby streaming the primary's WAL.
#
# Environment: PGDATA; PRIMARY_HOST (and PGPORT, else 5432); REPLICATION_USER and
# REPLICATION_PASSWORD, the role deploy/primary-replication.sh made on the primary.
# POSIX sh, run as the postgres user (the service's `user:`).
set -eu

if [ ! -s "$PGDATA/PG_VERSION" ]; then
    # The copy is made beside PGDATA and renamed into place once whole: a copy cut short
    # (the container stopped mid-way) is never started as a cluster, only made again.
    # PGDATA is a directory in the volume, not its mount point, for that.
    partial="$PGDATA.partial"
    rm -rf "$partial"
    if [ -e "$PGDATA" ]; then
        rmdir "$PGDATA" # an empty directory only: with anything in it, this stops here
    fi

    tries=60
    until pg_isready --quiet --host "$PRIMARY_HOST"; do
        tries=$((tries - 1))
        if [ "$tries" -le 0 ]; then
            echo "standby: the primary at $PRIMARY_HOST never answered" >&2
            exit 1
        fi
        sleep 1
    done

    echo "standby: copying the primary at $PRIMARY_HOST into $PGDATA" >&2
    # -R writes standby.signal and primary_conninfo (the password included), so postgres
    # starts as a standby that streams from the primary; -X stream brings the WAL written
    # during the copy with it; --checkpoint=fast starts the copy at once.
    if ! PGPASSWORD="$REPLICATION_PASSWORD" pg_basebackup --host "$PRIMARY_HOST" \
        --username "$REPLICATION_USER" --pgdata "$partial" \
        -R -X stream --checkpoint=fast; then
        echo "standby: pg_basebackup failed. A primary whose volume predates" \
            "deploy/primary-replication.sh has no replication role: run it once with" \
            "docker compose exec -u postgres db sh /docker-entrypoint-initdb.d/replication.sh" >&2
        exit 1
    fi
    mv "$partial" "$PGDATA"
fi

exec "$@"
