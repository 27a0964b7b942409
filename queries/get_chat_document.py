"""GET /chats/{id} as the bytes of its response: the rows GetChatHandler reads, written
straight into the JSON document, byte for byte what ChatDetailResponse would make of the
DTO (tests/integration/test_chat_document.py proves it over many generated chats).

The HTTP path's hottest read, so it skips what it does not need: SQLAlchemy's execution and
row processing (the statement runs through the driver's cursor, infrastructure/
driver_reads.py), the DTOs, and pydantic's validation and serialisation. Scripts keep
GetChatHandler and its DTOs. (Letting PostgreSQL write the JSON instead cost the database
more than it saved here: docs/performance.md.)
"""

from json.encoder import encode_basestring
from typing import Any

from domain.errors import ChatNotFound
from infrastructure.consistency import checked
from infrastructure.plans import Read
from infrastructure.read_targets import PlannedQuery
from queries.cursors import HistoryPosition, encode_history
from queries.documents import json_time, message_json
from queries.get_chat import CHAT_WITH_LAST_MESSAGES, MESSAGE, GetChat, chat_params
from queries.visibility import members_only


def chat_document(chat_id: int, rows: list[tuple[Any, ...]]) -> bytes:
    """The document of CHAT_WITH_LAST_MESSAGES's rows: the chat's, then its messages'."""
    title, created_at, message_count, last_message_at = rows[0][:MESSAGE]
    messages = [
        message_json(chat_id, message_id, seq, text, at, author)
        for message_id, seq, text, at, author in (row[MESSAGE:] for row in rows[1:])
    ]
    # The count and the messages come from one snapshot, so this is exact.
    older = ""
    if messages and message_count > len(messages):
        cursor = encode_history(HistoryPosition(chat_id, rows[1][MESSAGE + 1]))
        older = f',"next_before":"{cursor}"'
    return (
        f'{{"id":{chat_id},"title":{encode_basestring(title)},'
        f'"created_at":{json_time(created_at)},"message_count":{message_count},'
        f'"last_message_at":{json_time(last_message_at)},'
        f'"messages":[{",".join(messages)}]{older}}}'
    ).encode()


class GetChatDocumentHandler(PlannedQuery[GetChat, bytes]):
    """A chat with its last messages, as the JSON bytes of GET /chats/{chat_id}."""

    def plan(self, query: GetChat) -> Read[bytes]:
        """The statement and what its rows make, to be run here or on the event loop."""
        statement = CHAT_WITH_LAST_MESSAGES[members_only(query.principal)]

        def document(rows: list[tuple[Any, ...]]) -> bytes:
            if not rows:
                raise ChatNotFound(query.chat_id)
            return chat_document(query.chat_id, rows)

        return Read(statement, chat_params(query), document, checked(query.consistency_token))
