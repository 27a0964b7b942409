"""SIGTERM with event streams open: `chatapi serve` ends every stream cleanly and exits promptly.

A stream never ends by itself, so a server that waited for its open responses to finish would
never stop. Each client sees its response finished properly (the last chunk of the body, not
a cut connection), so a browser reconnects, and resumes, on the next server.
"""

import time
from pathlib import Path

from tests.live.processes import ServeProcess, serving
from tests.live.subscribers import open_on_every_worker
from tests.support.servers import new_client

STREAMS = 5  # at least; with WORKERS=2, more if need be until both workers hold one
EXIT_SECONDS = 5.0
DELIVERY_SECONDS = 5.0


def assert_streams_end_cleanly_on_sigterm(server: ServeProcess, workers: int) -> None:
    with new_client(server.base_url) as http:
        created = http.post("/chats/", json={"title": "shutting down"})
        assert created.status_code == 201, created.text
        chat_id = created.json()["id"]
        subscribers = open_on_every_worker(server, chat_id, STREAMS, workers)
        try:
            posted = http.post(f"/chats/{chat_id}/messages/", json={"text": "still here"})
            assert posted.status_code == 201, posted.text
            deadline = time.monotonic() + DELIVERY_SECONDS
            for subscriber in subscribers:
                subscriber.wait_for_messages(1, deadline)

            stopping = time.monotonic()
            server.terminate()
            status = server.wait(EXIT_SECONDS)
            exited_after = time.monotonic() - stopping
            assert status is not None, f"still running {EXIT_SECONDS} s after SIGTERM"
            assert status == 0, server.output()  # stopped as asked, with WORKERS=1 too
            for subscriber in subscribers:
                # Ended by the time the process was gone: finished, not cut, not hanging.
                assert subscriber.wait_until_done(time.monotonic() + 1.0), "still open"
                assert subscriber.error is None, (subscriber.error, server.output())
                assert subscriber.ended
                assert [event.json() for event in subscriber.messages()] == [posted.json()]
        finally:
            for subscriber in subscribers:
                subscriber.close()
    output = server.output()
    assert output.count("Application shutdown complete") == workers, output
    assert "Traceback" not in output, output
    assert exited_after < EXIT_SECONDS


def test_sigterm_ends_open_streams_cleanly(database_url: str, tmp_path: Path) -> None:
    with serving(database_url, tmp_path) as server:
        assert_streams_end_cleanly_on_sigterm(server, workers=1)


def test_sigterm_ends_open_streams_on_every_worker_cleanly(
    postgres_url: str, tmp_path: Path
) -> None:
    with serving(postgres_url, tmp_path, WORKERS="2") as server:
        assert_streams_end_cleanly_on_sigterm(server, workers=2)
