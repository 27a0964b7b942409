"""Control characters: C0 (but tab, newline, carriage return) and C1 are refused in titles and
texts with a 422 naming the field, and nothing is stored; tab, newline and CR are kept.

They draw nothing, cost six bytes each once JSON-escaped (5,000 of U+0001 made a 3 MB page of
100), and C1's CSI (U+009B) drives terminals."""

import httpx
import pytest

from tests.api.helpers import Json, assert_validation_error, create_chat, get_chat

REFUSED = ["\x00", "\x01", "\x07", "\x08", "\x0b", "\x0c", "\x1b", "\x1f", "\x80", "\x85", "\x9b"]


@pytest.mark.parametrize("control", REFUSED, ids=[f"U+{ord(c):04X}" for c in REFUSED])
def test_a_control_character_in_a_text_is_refused(
    client: httpx.Client, chat: Json, control: str
) -> None:
    response = client.post(f"/chats/{chat['id']}/messages/", json={"text": f"a{control}b"})
    assert_validation_error(response, "body", "text")
    assert get_chat(client, chat["id"])["messages"] == []


@pytest.mark.parametrize("control", REFUSED, ids=[f"U+{ord(c):04X}" for c in REFUSED])
def test_a_control_character_in_a_title_is_refused(client: httpx.Client, control: str) -> None:
    response = client.post("/chats/", json={"title": f"a{control}b"})
    assert_validation_error(response, "body", "title")
    assert client.get("/chats/").json()["chats"] == []


def test_five_thousand_controls_are_one_422(client: httpx.Client, chat: Json) -> None:
    response = client.post(f"/chats/{chat['id']}/messages/", json={"text": "\x01" * 5000})
    assert_validation_error(response, "body", "text")


def test_tab_newline_and_carriage_return_are_kept(client: httpx.Client) -> None:
    text = "line one\r\nline two\tand a tab\n"
    chat = create_chat(client, "a\ttitle")
    posted = client.post(f"/chats/{chat['id']}/messages/", json={"text": text})
    assert posted.status_code == 201, posted.text
    assert get_chat(client, chat["id"])["messages"][0]["text"] == text
    assert chat["title"] == "a\ttitle"


def test_controls_that_are_whitespace_are_trimmed_from_a_title(client: httpx.Client) -> None:
    """str.strip() counts U+001C..U+001F and U+0085 as whitespace: trimmed, they are gone."""
    assert create_chat(client, "\x1c\x85 Plans \x1f")["title"] == "Plans"
