"""GET /chats/{id}'s document, as queries/get_chat_document.py writes it from the rows, is
byte for byte the JSON that ChatDetailResponse makes of GetChatHandler's DTO, for many
generated chats: titles and texts with quotes, backslashes, control characters and any
Unicode; times with and without a fraction; pages with and without older messages."""

import random
import re
from datetime import UTC, datetime, timedelta

import pytest
from dependency_injector import providers

from api.schemas import ChatDetailResponse
from commands.create_chat import CreateChat
from commands.post_message import PostMessage
from domain.errors import ChatNotFound
from domain.principals import LOCAL
from domain.rules import CONTROL_CHARACTERS
from infrastructure.container import Container
from queries.get_chat import GetChat

CHATS = 150
# Characters that JSON escapes one way or another, or that a careless writer would; the
# control characters the rules refuse are left out of what is posted.
TRICKY = '"\\/\n\r\t\x7f\u2028\u2029\ufeff é€😀 '
REFUSED = re.compile(f"[{CONTROL_CHARACTERS}]")


def text(rng: random.Random, longest: int) -> str:
    size = rng.randint(1, longest)
    palette = rng.choice([TRICKY, "abc xyz", TRICKY + "abcdefgh"])
    chars = [
        rng.choice(palette) if rng.random() < 0.8 else chr(rng.randint(1, 0x2FFF))
        for _ in range(size)
    ]
    drawn = REFUSED.sub("", "".join(chars))
    return drawn if drawn.strip() else "x" + drawn  # never blank: the rules refuse it


class Times:
    """The clock the handlers read: now whole seconds, now with a fraction."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self._now = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)

    def __call__(self) -> datetime:
        self._now += timedelta(seconds=self._rng.randint(0, 90000))
        fraction = self._rng.choice([0, 0, 1, 10, 999999, self._rng.randint(0, 999999)])
        return self._now.replace(microsecond=fraction)


def write_chats(
    container: Container, rng: random.Random, count: int, longest_text: int = 60
) -> list[int]:
    """`count` chats of 0 to 25 drawn messages, written at the drawn Times: their ids."""
    chats = []
    with container.clock.override(providers.Object(Times(rng))):
        create, post = container.create_chat(), container.post_message()
        for _ in range(count):
            chat = create(CreateChat(title=text(rng, 30).strip() or "t", principal=LOCAL))
            for _ in range(rng.choice([0, 1, 2, 5, 25])):
                post(
                    PostMessage(chat_id=chat.chat_id, text=text(rng, longest_text), principal=LOCAL)
                )
            chats.append(chat.chat_id)
    return chats


def test_the_document_is_the_dto_s_json(container: Container) -> None:
    chats = write_chats(container, random.Random(20261127), CHATS)
    get_chat, document = container.get_chat(), container.get_chat_document()
    compared = 0
    for chat_id in chats:
        for limit in (1, 3, 20):
            query = GetChat(chat_id, limit, principal=LOCAL)
            expected = ChatDetailResponse.model_validate(get_chat(query)).model_dump_json()
            assert document(query) == expected.encode(), (chat_id, limit)
            compared += 1
    assert compared == CHATS * 3


@pytest.mark.parametrize("chat_id", [1, 0, -1, 2**63])
def test_a_missing_chat_has_no_document(container: Container, chat_id: int) -> None:
    with pytest.raises(ChatNotFound):
        container.get_chat_document()(GetChat(chat_id, principal=LOCAL))
