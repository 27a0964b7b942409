"""The consistency token: the primary's WAL position after a write, as clients hold it.

It is PostgreSQL's own text form of an LSN (`16/B374D848`); clients treat it as opaque.
A read that brings it back is served by a replica only once the replica has replayed that
position (infrastructure/read_targets.py). SQLite has no token: writes return none, and a
token sent to it is checked for its form, then ignored.
"""

import re

from domain.errors import InvalidInput

HEADER = "Consistency-Token"
PATTERN = r"^[0-9A-Fa-f]{1,8}/[0-9A-Fa-f]{1,8}$"
_FORM = re.compile(PATTERN)
# The header as a read takes it: a token, or empty for none (a client that has not written
# yet may send the header empty rather than leave it out).
HEADER_PATTERN = r"^(?:[0-9A-Fa-f]{1,8}/[0-9A-Fa-f]{1,8})?$"

# After the commit, on the connection that made it: a position at or past the end of its
# commit record, and one a replica will get. A synchronous commit (on, local, remote_*) has
# flushed its record before returning, so the flush position is past it, and flushed WAL is
# what standbys are sent. An asynchronous one (off) may not be flushed yet: the insert
# position is past it, but so may be other sessions' records that no commit has flushed, which
# a replica only gets at the next flush (the WAL writer's, within wal_writer_delay): reads
# with such tokens may wait that long, or REPLICA_WAIT, then read from the primary.
POSITION_AFTER_COMMIT = (
    "SELECT (CASE current_setting('synchronous_commit') WHEN 'off' "
    "THEN pg_current_wal_insert_lsn() ELSE pg_current_wal_flush_lsn() END)::text"
)
# True when the primary has written the token's position: a token from a response of this
# database. A made-up one past it ("FFFFFFFF/FFFFFFFF") would have every read wait
# REPLICA_WAIT for a position no replica can reach.
NOT_AHEAD = "SELECT pg_current_wal_insert_lsn() >= %(token)s::pg_lsn"
# True once this server shows everything up to the token; a primary (not in recovery) has
# no replay position and always does.
HAS_REPLAYED = "SELECT coalesce(pg_last_wal_replay_lsn() >= %(token)s::pg_lsn, true)"


def checked(token: str | None) -> str | None:
    """`token` if it has a token's form, None for none (or an empty one), else InvalidInput
    (a 422)."""
    if not token:
        return None
    if not _FORM.match(token):
        raise InvalidInput(HEADER, "not a consistency token (as a write's response gave it)")
    return token
