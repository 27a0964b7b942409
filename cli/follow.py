"""`chatapi follow`: a chat's events as JSON lines, the same events as its HTTP event stream.

{"event":"message.posted","id":3,"data":{...the message as POST returned it...}}
{"event":"chat.deleted","data":{"chat_id":1}}
"""

import json

from api.events import CHAT_DELETED, MESSAGE_POSTED
from api.schemas import MessageResponse
from cli.terminal import print_line
from domain.events import ChatDeleted
from domain.principals import LOCAL
from infrastructure.container import Container
from queries.follow_chat import FollowChat, FollowedEvent


def event_line(event: FollowedEvent) -> str:
    if isinstance(event, ChatDeleted):
        deleted = {"event": CHAT_DELETED, "data": {"chat_id": event.chat_id}}
        return json.dumps(deleted, separators=(",", ":"))
    data = MessageResponse.model_validate(event).model_dump_json()  # as HTTP renders it
    return f'{{"event":"{MESSAGE_POSTED}","id":{event.seq},"data":{data}}}'


def follow(container: Container, chat_id: int, after: int) -> None:
    """Print every event of the chat after `after`, one line each as it comes, until the chat
    is deleted. A missing chat or an `after` past its end raises before anything is printed."""
    for event in container.follow_chat()(FollowChat(chat_id=chat_id, after=after, principal=LOCAL)):
        # Flushed line by line: a pipe would otherwise hold events back in its buffer.
        print_line(event_line(event), flush=True)
