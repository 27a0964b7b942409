"""The history page's and the chat list's documents, as queries/get_history.py and
queries/list_chats.py write them from the rows, are byte for byte the JSON that
HistoryResponse and ChatListResponse make of the handlers' DTOs, for many generated chats
(titles and texts with quotes, backslashes, control characters and any Unicode; times with
and without a fraction; first, middle and last pages). The chat's own document:
test_chat_document.py."""

import random

from api.schemas import ChatListResponse, HistoryResponse
from domain.principals import LOCAL
from infrastructure.container import Container
from queries.get_history import GetHistory
from queries.list_chats import ListChats
from tests.integration.test_chat_document import write_chats

CHATS = 60


def test_history_and_list_documents_are_the_dtos_json(container: Container) -> None:
    # Texts longer than the list's preview (100 characters).
    chats = write_chats(container, random.Random(20261207), CHATS, longest_text=150)

    history, history_document = container.get_history(), container.get_history_document()
    pages = 0
    for chat_id in chats:
        for limit in (1, 3, 20):
            query = GetHistory(chat_id, None, limit, principal=LOCAL)
            while True:
                dto = history(query)
                expected = HistoryResponse.model_validate(dto).model_dump_json().encode()
                assert history_document(query) == expected, (chat_id, limit)
                pages += 1
                if dto.next_before is None:
                    break
                query = GetHistory(chat_id, dto.next_before, limit, principal=LOCAL)
    assert pages > CHATS * 3

    listing, list_document = container.list_chats(), container.list_chats_document()
    for limit in (1, 7, 100):
        page = ListChats(limit, None, principal=LOCAL)
        seen = 0
        while True:
            listed = listing(page)
            expected = ChatListResponse.model_validate(listed).model_dump_json().encode()
            assert list_document(page) == expected, (limit, page.cursor)
            seen += len(listed.chats)
            if listed.next_cursor is None:
                break
            page = ListChats(limit, listed.next_cursor, principal=LOCAL)
        assert seen == CHATS
