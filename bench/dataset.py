"""The benchmark's data, loaded with set-based SQL (generate_series, INSERT ... SELECT).

Ids are given explicitly, so every benchmark knows where its chats are:

    chats 1..1000        1,000 messages each; their messages interleave (id 1 is chat 1's
                         first, id 2 chat 2's first, ...), as if all were active at once
    chat 1001            1,000,000 messages (the big chat)
    chat 1002            10 messages (the small chat)
    chats 1003..         the DELETE pool: 3 messages each, each chat deleted once

A message's created_at grows with its id (1 ms apart), so within a chat it grows with id,
as the service guarantees. The read model is then built by the service's own
rebuild_read_models, and the tables are VACUUM ANALYZEd and CHECKPOINTed so that neither
autovacuum nor a checkpoint of the load lands in the middle of a measurement.
"""

import time
from dataclasses import dataclass

from sqlalchemy import Connection, Engine, text

from infrastructure.rebuild import rebuild_read_models

CHAT_COUNT = 1000
MESSAGES_PER_CHAT = 1000
BIG_CHAT = 1001
BIG_CHAT_MESSAGES = 1_000_000
SMALL_CHAT = 1002
SMALL_CHAT_MESSAGES = 10
POOL_FIRST = 1003
POOL_MESSAGES = 3
CHAT_OF_SIZE = {SMALL_CHAT_MESSAGES: SMALL_CHAT, MESSAGES_PER_CHAT: 1, BIG_CHAT_MESSAGES: BIG_CHAT}

EPOCH = "2025-01-01 00:00:00+00"

INSERT_CHATS = text(
    """
    INSERT INTO chats (id, title, created_at)
    SELECT c, 'Benchmark chat ' || c, timestamptz :epoch + c * interval '1 microsecond'
    FROM generate_series(CAST(:first AS bigint), CAST(:last AS bigint)) AS c
    """
)

# {chat} and {seq} are trusted expressions below, computing a message's chat and its place in
# that chat from its id g.
INSERT_MESSAGES = """
    INSERT INTO messages (id, chat_id, seq, text, created_at)
    SELECT g, {chat}, {seq},
           'Benchmark message ' || g || ': the quick brown fox jumps over the lazy dog.',
           timestamptz :epoch + interval '1 hour' + g * interval '1 millisecond'
    FROM generate_series(CAST(:first AS bigint), CAST(:last AS bigint)) AS g
"""
# ids 1..1,000,000: chats 1, 2, ..., 1000, 1, ...
INTERLEAVED = (f"(g - 1) % {CHAT_COUNT} + 1", f"(g - 1) / {CHAT_COUNT} + 1")
ONE_CHAT = ("CAST(:chat AS bigint)", "g - :first + 1")
# 3 in a row per chat
POOL_CHAT = (
    f"CAST(:chat AS bigint) + (g - :first) / {POOL_MESSAGES}",
    f"(g - :first) % {POOL_MESSAGES} + 1",
)


@dataclass
class Dataset:
    chats: int
    messages: int
    pool_first: int
    pool_last: int
    insert_s: float
    rebuild_s: float
    vacuum_s: float
    total_s: float


def _insert_messages(
    connection: Connection, chat: tuple[str, str], first: int, last: int, chat_id: int = 0
) -> None:
    connection.execute(
        text(INSERT_MESSAGES.format(chat=chat[0], seq=chat[1])),
        {"epoch": EPOCH, "first": first, "last": last, "chat": chat_id},
    )


def _insert_pool(connection: Connection, first_chat: int, count: int, first_message: int) -> int:
    """Adds `count` pool chats from `first_chat` on; returns the last message id used."""
    last_chat = first_chat + count - 1
    connection.execute(INSERT_CHATS, {"epoch": EPOCH, "first": first_chat, "last": last_chat})
    last_message = first_message + count * POOL_MESSAGES - 1
    _insert_messages(connection, POOL_CHAT, first_message, last_message, first_chat)
    connection.execute(
        text(f"UPDATE chats SET last_seq = {POOL_MESSAGES} WHERE id BETWEEN :first AND :last"),
        {"first": first_chat, "last": last_chat},
    )
    return last_message


NEXT_MESSAGE_ID = (
    "SELECT CASE WHEN is_called THEN last_value + 1 ELSE last_value END FROM messages_id_seq"
)


def _reset_sequences(connection: Connection) -> None:
    """Point the id sequences past the ids given explicitly, for the service's inserts."""
    for table in ("chats", "messages"):
        connection.execute(
            text(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                f"(SELECT max(id) FROM {table}))"
            )
        )


def _vacuum_analyze(engine: Engine) -> None:
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text("VACUUM ANALYZE chats, messages, chat_views"))
        connection.execute(text("CHECKPOINT"))


def load(engine: Engine, pool_size: int) -> Dataset:
    """Fill an empty, migrated database; returns what was loaded and how long it took."""
    started = time.perf_counter()
    big_first = CHAT_COUNT * MESSAGES_PER_CHAT + 1
    small_first = big_first + BIG_CHAT_MESSAGES
    pool_message_first = small_first + SMALL_CHAT_MESSAGES
    with engine.begin() as connection:
        # Every row is consistent by construction: skip the per-row foreign-key triggers
        # (a superuser-only switch, for this transaction only).
        connection.execute(text("SET LOCAL session_replication_role = replica"))
        connection.execute(INSERT_CHATS, {"epoch": EPOCH, "first": 1, "last": SMALL_CHAT})
        _insert_messages(connection, INTERLEAVED, 1, big_first - 1)
        _insert_messages(connection, ONE_CHAT, big_first, small_first - 1, BIG_CHAT)
        _insert_messages(connection, ONE_CHAT, small_first, pool_message_first - 1, SMALL_CHAT)
        last_message = _insert_pool(connection, POOL_FIRST, pool_size, pool_message_first)
        _reset_sequences(connection)
        connection.execute(
            text(
                "UPDATE chats SET last_seq = counted.seq FROM (SELECT chat_id, max(seq) AS seq "
                "FROM messages GROUP BY chat_id) AS counted WHERE chats.id = counted.chat_id"
            )
        )
    inserted = time.perf_counter()
    rebuild_read_models(engine)
    rebuilt = time.perf_counter()
    _vacuum_analyze(engine)
    done = time.perf_counter()
    return Dataset(
        chats=SMALL_CHAT + pool_size,
        messages=last_message,
        pool_first=POOL_FIRST,
        pool_last=POOL_FIRST + pool_size - 1,
        insert_s=inserted - started,
        rebuild_s=rebuilt - inserted,
        vacuum_s=done - rebuilt,
        total_s=done - started,
    )


def extend_pool(engine: Engine, dataset: Dataset, count: int) -> float:
    """Adds `count` chats right after the pool (no chat may have been created since)."""
    started = time.perf_counter()
    with engine.begin() as connection:
        highest = connection.scalar(text("SELECT max(id) FROM chats"))
        if highest is not None and highest > dataset.pool_last:
            raise RuntimeError("chats were created after the pool; it cannot grow in place")
        # Past every id handed out so far, deleted messages' included.
        first_message = int(connection.scalar(text(NEXT_MESSAGE_ID)) or 1)
        connection.execute(text("SET LOCAL session_replication_role = replica"))
        _insert_pool(connection, dataset.pool_last + 1, count, first_message)
        _reset_sequences(connection)
    rebuild_read_models(engine)
    _vacuum_analyze(engine)
    dataset.pool_last += count
    dataset.chats += count
    return time.perf_counter() - started


SET_MESSAGE_IDS = text("SELECT setval(pg_get_serial_sequence('messages', 'id'), :last)")


def add_big_chat(engine: Engine) -> tuple[int, float]:
    """A new chat of BIG_CHAT_MESSAGES messages, loaded as the big chat is, with its read
    model row (the service's own rebuild): for the scenarios that delete one each. Returns
    its id and the seconds it took, VACUUM ANALYZE and CHECKPOINT included."""
    started = time.perf_counter()
    with engine.begin() as connection:
        connection.execute(text("SET LOCAL session_replication_role = replica"))
        chat_id = int(
            connection.scalar(text("SELECT nextval(pg_get_serial_sequence('chats', 'id'))"))
        )
        connection.execute(INSERT_CHATS, {"epoch": EPOCH, "first": chat_id, "last": chat_id})
        # Past every id handed out so far, deleted messages' included.
        first = int(connection.scalar(text(NEXT_MESSAGE_ID)) or 1)
        last = first + BIG_CHAT_MESSAGES - 1
        _insert_messages(connection, ONE_CHAT, first, last, chat_id)
        connection.execute(SET_MESSAGE_IDS, {"last": last})
        connection.execute(
            text("UPDATE chats SET last_seq = :seq WHERE id = :chat"),
            {"seq": BIG_CHAT_MESSAGES, "chat": chat_id},
        )
    rebuild_read_models(engine)
    _vacuum_analyze(engine)
    return chat_id, time.perf_counter() - started
