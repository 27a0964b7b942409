"""The paged reads' starting points: real cursors, found once before their wrk runs.

Cursors are opaque. The chat list's deep page starts at a `next_cursor` the service handed
out, got by walking the list CHAT_LIST_DEPTH chats in. The history's deep page starts at the
message HISTORY_BACK messages back in the big chat, found with SQL (an OFFSET, fine here and
never in the service), its cursor made by the service's own encoder. Every page is read once
before it is measured: a page that is not a full one would not measure what it says.
"""

import json
from typing import Any
from urllib.parse import quote

from sqlalchemy import Engine, text

from bench import server
from bench.config import BenchError
from bench.dataset import BIG_CHAT
from bench.results import Paging
from queries.cursors import HistoryPosition, encode_history

CHAT_LIST_DEPTH = 20_000  # chats listed before the chat list's deep page
HISTORY_BACK = 900_000  # messages of the big chat newer than its deep page's cursor message
PAGE_LIMIT = 20  # the measured pages' size
WALK_LIMIT = 100  # the largest page, to walk the chat list in few requests
# Endpoint names, in the order they are measured.
CHATS_FIRST, CHATS_DEEP = "chats_first", "chats_deep"
HISTORY_NEWEST, HISTORY_DEEP = "history_newest", "history_deep"

MESSAGE_BACK = text(
    "SELECT id, seq FROM messages WHERE chat_id = :chat ORDER BY seq DESC OFFSET :back LIMIT 1"
)


def chats_path(cursor: str | None = None, limit: int = PAGE_LIMIT) -> str:
    path = f"/chats/?limit={limit}"
    return path if cursor is None else f"{path}&cursor={quote(cursor, safe='')}"


def history_path(chat: int, before: str | None = None, limit: int = PAGE_LIMIT) -> str:
    path = f"/chats/{chat}/messages/?limit={limit}"
    return path if before is None else f"{path}&before={quote(before, safe='')}"


def _get_json(base_url: str, path: str) -> dict[str, Any]:
    response = server.request(base_url, "GET", path)
    if response.status != 200:
        raise BenchError(f"GET {path} answered {response.status}: {response.body[:200]!r}")
    payload: dict[str, Any] = json.loads(response.body)
    return payload


def walk_chat_list(base_url: str, depth: int) -> tuple[str, int]:
    """The `next_cursor` after `depth` chats (or the deepest one, on a shorter list).

    Returns it with the number of chats listed before the page it starts.
    """
    cursor: str | None = None
    listed = 0
    while listed < depth:
        page = _get_json(base_url, chats_path(cursor, min(WALK_LIMIT, depth - listed)))
        next_cursor = page.get("next_cursor")
        if next_cursor is None:
            break  # the last page: the deepest page reachable is the one `cursor` starts
        listed += len(page["chats"])
        cursor = next_cursor
    if cursor is None:
        raise BenchError("the chat list has a single page: there is no deep page to measure")
    return cursor, listed


def message_back(engine: Engine, chat: int, back: int) -> tuple[int, int]:
    """The id and seq of the message with `back` newer messages in the chat."""
    with engine.connect() as connection:
        found = connection.execute(MESSAGE_BACK, {"chat": chat, "back": back}).first()
    if found is None:
        raise BenchError(f"chat {chat} has no message {back:,} back")
    return int(found.id), int(found.seq)


def _check_full(base_url: str, path: str, items: str) -> None:
    count = len(_get_json(base_url, path)[items])
    if count != PAGE_LIMIT:
        raise BenchError(f"GET {path} answered {count} {items}, not a full page of {PAGE_LIMIT}")


def find(base_url: str, engine: Engine) -> Paging:
    """The cursors and paths of the four paged runs, each page checked to be a full one."""
    with engine.connect() as connection:
        chats = int(connection.scalar(text("SELECT count(*) FROM chat_views")) or 0)
    chat_cursor, depth = walk_chat_list(base_url, CHAT_LIST_DEPTH)
    message_id, seq = message_back(engine, BIG_CHAT, HISTORY_BACK)
    history_cursor = encode_history(HistoryPosition(BIG_CHAT, seq))
    paths = {
        CHATS_FIRST: chats_path(),
        CHATS_DEEP: chats_path(chat_cursor),
        HISTORY_NEWEST: history_path(BIG_CHAT),
        HISTORY_DEEP: history_path(BIG_CHAT, history_cursor),
    }
    for name, path in paths.items():
        _check_full(base_url, path, "chats" if name.startswith("chats") else "messages")
    return Paging(
        chats=chats,
        chat_list_depth=depth,
        chat_list_cursor=chat_cursor,
        history_chat=BIG_CHAT,
        history_back=HISTORY_BACK,
        history_message_id=message_id,
        history_cursor=history_cursor,
        paths=paths,
    )


def labels(paging: Paging) -> dict[str, str]:
    """Each paged run's label, by endpoint name, in the order they are measured."""
    chat = paging.history_chat
    return {
        CHATS_FIRST: f"GET /chats/?limit={PAGE_LIMIT}, first page",
        CHATS_DEEP: f"GET /chats/?limit={PAGE_LIMIT}, {paging.chat_list_depth:,} chats in",
        HISTORY_NEWEST: f"GET /chats/{chat}/messages/?limit={PAGE_LIMIT}, newest",
        HISTORY_DEEP: f"GET /chats/{chat}/messages/?limit={PAGE_LIMIT}, "
        f"{paging.history_back:,} back",
    }
