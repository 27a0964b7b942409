"""A message posted by another process, the `chatapi post` command, reaches an open stream.

On PostgreSQL the command's hint (sent after its commit, before it exits) reaches the
server's LISTEN connection; on SQLite, which has no way to carry it between processes, the
server's streams poll once a second. Either way the message arrives within a few seconds.
"""

import time
from pathlib import Path

from tests.integration.test_cli import chatapi, succeeded
from tests.live.processes import serving
from tests.live.subscribers import Subscriber
from tests.support.servers import new_client

POSTS = 2
# A stream's own timer reads only every HEARTBEAT seconds: within ARRIVAL_SECONDS, only a
# hint or SQLite's polling can have brought the message.
HEARTBEAT = "60"
ARRIVAL_SECONDS = 3.0  # from the command's exit


def test_a_message_posted_by_the_cli_reaches_an_open_stream(
    database_url: str, tmp_path: Path
) -> None:
    with (
        serving(database_url, tmp_path, STREAM_HEARTBEAT=HEARTBEAT) as server,
        new_client(server.base_url) as http,
    ):
        created = http.post("/chats/", json={"title": "from a shell"})
        assert created.status_code == 201, created.text
        chat_id = created.json()["id"]
        with Subscriber(server.base_url, chat_id) as subscriber:
            printed = []
            for number in range(1, POSTS + 1):
                result = chatapi(database_url, "post", str(chat_id), f"from the CLI {number}")
                deadline = time.monotonic() + ARRIVAL_SECONDS
                printed.append(succeeded(result))
                subscriber.wait_for_messages(number, deadline)

            assert subscriber.seqs() == list(range(1, POSTS + 1))
            # The message as the command printed it, which is as HTTP returns it.
            assert [event.json() for event in subscriber.messages()] == printed
            assert subscriber.error is None, subscriber.error
