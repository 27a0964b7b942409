"""One writer per chat (api/live/writer.py): what each of the chat's streams is sent.

Over a chat kept in memory (its messages and membership changes, read as the service would),
with streams whose sends are recorded, and can be made to wait as on a client that stopped
reading. Every stream must get each event once, in order, with no gap, from the position it
joined at; a stream that cannot keep up must not hold the others up.
"""

import asyncio
import gc
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest

from api.live import sse
from api.live.news import News, NewsReader, Piece, committed
from api.live.stream import Outcome, Stream
from api.live.writer import HISTORY, MAX_ARRIVALS, ChatWriter, continuing
from domain.errors import ChatNotFound
from domain.events import MessagePosted
from domain.principals import LOCAL, Principal, user

CHAT = 7
AT = datetime(2026, 12, 7, tzinfo=UTC)
SEND_TIMEOUT = 0.2
HEARTBEAT = 0.1


def posted(seq: int) -> MessagePosted:
    return MessagePosted(1000 + seq, CHAT, seq, f"m{seq}", AT)


@dataclass
class Chat:
    """The chat as the service's reads see it: messages by seq, and membership changes."""

    last_seq: int = 0
    changes: list[tuple[int, str]] = field(default_factory=list)  # (seq before, removed user)
    deleted: bool = False
    reads: int = 0

    def post(self, count: int = 1) -> list[MessagePosted]:
        messages = [posted(self.last_seq + n) for n in range(1, count + 1)]
        self.last_seq += count
        return messages

    def remove(self, user_id: str) -> None:
        self.changes.append((self.last_seq, user_id))

    async def read(self, chat_id: int, after: int, members: int | None, _: Principal) -> News:
        self.reads += 1
        await asyncio.sleep(0)
        if self.deleted:
            raise ChatNotFound(chat_id)
        position = len(self.changes) if members is None else members
        pieces: list[Piece] = []
        for seq in range(after + 1, self.last_seq + 1):
            for number, (before, user_id) in enumerate(self.changes, start=1):
                if before == seq - 1 and number > position:
                    pieces.append(removal(seq - 1, number, user_id))
            pieces += committed([posted(seq)], position)
        for number, (before, user_id) in enumerate(self.changes, start=1):
            if before == self.last_seq and number > position and before >= after:
                pieces.append(removal(before, number, user_id))
        return News(tuple(pieces), self.last_seq, len(self.changes), at_end=True)


def removal(seq: int, position: int, user_id: str) -> Piece:
    return Piece(seq, position, sse.member_removed(CHAT, user_id), False, user_id)


class Client:
    """A stream's far end: what it was sent, and a switch that makes its sends wait."""

    def __init__(self, stream: Stream) -> None:
        self.stream = stream
        self.received = b""
        self.reading: asyncio.Future[None] | None = None
        stream.send = self.send

    async def send(self, message: Any) -> None:
        if self.reading is not None:
            await self.reading
        self.received += message["body"]

    def stop_reading(self) -> None:
        self.reading = asyncio.get_running_loop().create_future()

    def read_again(self) -> None:
        assert self.reading is not None
        self.reading.set_result(None)
        self.reading = None

    def seqs(self) -> list[int]:
        lines = self.received.decode().split("\r\n")
        return [int(line[4:]) for line in lines if line.startswith("id: ")]


class Fixture:
    def __init__(self) -> None:
        self.chat = Chat()
        # The writer reads the chat through it as through a NewsReader.
        news = cast(NewsReader, self.chat)
        self.writer = ChatWriter(CHAT, news, HEARTBEAT, SEND_TIMEOUT, lambda: 60.0)

    def open(self, principal: Principal = LOCAL) -> Client:
        stream = Stream(CHAT, principal, asyncio.get_running_loop())
        self.writer.add(stream)
        return Client(stream)

    async def join(self, client: Client, after: int, members: int = 0) -> bool:
        client.stream.after, client.stream.member_position = after, members
        return self.writer.join(client.stream)


async def settled() -> None:
    for _ in range(10):
        await asyncio.sleep(0)


def scenario(test: Callable[[Fixture], Awaitable[None]]) -> None:
    """Runs the test on a loop of its own; an error in the writer's task fails it too."""
    errors: list[dict[str, Any]] = []

    async def main() -> None:
        asyncio.get_running_loop().set_exception_handler(lambda _, context: errors.append(context))
        fixture = Fixture()
        try:
            await test(fixture)
        finally:
            fixture.writer.close()
        await settled()
        gc.collect()  # a failed task nobody awaited reports its error as it goes

    asyncio.run(main())
    assert errors == []


def test_this_process_commits_go_out_in_seq_order_without_a_read() -> None:
    async def test(f: Fixture) -> None:
        clients = [f.open() for _ in range(3)]
        for client in clients:
            assert await f.join(client, 0)
        first, second = f.chat.post(2)
        # Two handler threads committed seq 1 and 2 and handed them over in the other order.
        f.writer.wake([second])
        f.writer.wake([first])
        await settled()
        assert [client.seqs() for client in clients] == [[1, 2]] * 3
        assert f.chat.reads == 0

    scenario(test)


def test_a_gap_or_news_from_elsewhere_means_a_read() -> None:
    async def test(f: Fixture) -> None:
        client = f.open()
        assert await f.join(client, 0)
        f.chat.post(2)
        f.writer.wake([posted(2)])  # seq 1 not handed over (yet)
        await settled()
        assert (client.seqs(), f.chat.reads) == ([1, 2], 1)
        f.chat.post()
        f.writer.wake(None)  # another process's commit
        await settled()
        assert (client.seqs(), f.chat.reads) == ([1, 2, 3], 2)
        f.writer.wake([posted(1), posted(3)])  # late: the stream has them
        await settled()
        assert (client.seqs(), f.chat.reads) == ([1, 2, 3], 2)

    scenario(test)


def test_more_arrivals_than_kept_mean_a_read() -> None:
    assert continuing([posted(n) for n in range(2, 5)], 1) == [posted(n) for n in range(2, 5)]
    assert continuing([posted(3)], 1) is None
    assert continuing(None, 1) is None

    async def test(f: Fixture) -> None:
        client = f.open()
        assert await f.join(client, 0)
        f.writer.wake(None)
        await asyncio.sleep(0)  # a read in flight: commits handed over meanwhile are kept
        messages = f.chat.post(MAX_ARRIVALS + 1)
        for message in messages[:MAX_ARRIVALS]:
            f.writer.wake([message])
        assert f.writer._arrivals is not None
        f.writer.wake([messages[-1]])
        assert f.writer._arrivals is None  # one too many: not kept, the read finds them
        await settled()
        assert client.seqs() == list(range(1, MAX_ARRIVALS + 2))
        assert f.chat.reads == 2  # the one in flight, and the one instead of the arrivals

    scenario(test)


def test_a_stream_that_joins_behind_gets_what_it_missed_from_the_history() -> None:
    async def test(f: Fixture) -> None:
        early, late = f.open(), f.open()
        assert await f.join(early, 0)
        for message in f.chat.post(3):
            f.writer.wake([message])
        await settled()
        assert await f.join(late, 1)  # its read ended at seq 1
        f.writer.wake(f.chat.post())
        await settled()
        assert early.seqs() == [1, 2, 3, 4]
        assert late.seqs() == [2, 3, 4]

    scenario(test)


def test_a_stream_beyond_the_history_reads_on_by_itself() -> None:
    async def test(f: Fixture) -> None:
        early, late = f.open(), f.open()
        assert await f.join(early, 0)
        for message in f.chat.post(HISTORY + 2):
            f.writer.wake([message])
            await settled()
        assert not await f.join(late, 1)
        assert await f.join(late, 2)

    scenario(test)


def test_a_stream_ahead_of_the_writer_waits_for_it_and_gets_no_duplicate() -> None:
    async def test(f: Fixture) -> None:
        first, ahead = f.open(), f.open()
        assert await f.join(first, 0)
        f.chat.post(3)  # committed; its hint not here yet
        assert await f.join(ahead, 2)  # its own read saw up to seq 2
        await settled()
        assert first.seqs() == [1, 2, 3]
        assert ahead.seqs() == [3]

    scenario(test)


def test_a_client_that_stops_reading_holds_nobody_up_and_catches_up_after() -> None:
    async def test(f: Fixture) -> None:
        slow, others = f.open(), [f.open() for _ in range(3)]
        for client in [slow, *others]:
            assert await f.join(client, 0)
        slow.stop_reading()
        for message in f.chat.post(5):
            f.writer.wake([message])
            await settled()
        assert [client.seqs() for client in others] == [[1, 2, 3, 4, 5]] * 3
        assert slow.stream.sending is not None  # seq 1's send waits
        waiting = asyncio.ensure_future(slow.stream.wait())
        await settled()
        assert not waiting.done()
        slow.read_again()
        assert await waiting is None  # left behind: it catches up by itself from what it had
        assert (slow.seqs(), slow.stream.after) == ([1], 1)
        assert await f.join(slow, slow.stream.after)  # from the history
        assert slow.seqs() == [1, 2, 3, 4, 5]

    scenario(test)


def test_a_client_that_never_reads_is_cut_after_the_send_timeout() -> None:
    async def test(f: Fixture) -> None:
        stuck, reader = f.open(), f.open()
        for client in (stuck, reader):
            assert await f.join(client, 0)
        stuck.stop_reading()
        f.writer.wake(f.chat.post())
        await settled()
        assert await asyncio.wait_for(stuck.stream.wait(), SEND_TIMEOUT * 5) is Outcome.CUT
        assert stuck.stream.sending is None  # its send given up
        f.writer.wake(f.chat.post())
        await settled()
        assert reader.seqs() == [1, 2]

    scenario(test)


def test_a_removed_user_gets_the_removal_and_their_stream_ends() -> None:
    async def test(f: Fixture) -> None:
        ann, bob, service = f.open(user("ann")), f.open(user("bob")), f.open()
        for client in (ann, bob, service):
            assert await f.join(client, 0)
        f.chat.post()
        f.chat.remove("ann")
        f.chat.post()
        f.writer.wake(None)
        await settled()
        assert ann.stream.outcome is Outcome.FINISHED
        assert ann.seqs() == [1]
        assert b"member.removed" in ann.received
        assert bob.seqs() == service.seqs() == [1, 2]
        assert b"member.removed" in bob.received

    scenario(test)


def test_a_deleted_chat_ends_every_stream_with_chat_deleted() -> None:
    async def test(f: Fixture) -> None:
        clients = [f.open() for _ in range(2)]
        for client in clients:
            assert await f.join(client, 0)
        f.chat.deleted = True
        f.writer.wake(None)
        await settled()
        for client in clients:
            assert client.stream.outcome is Outcome.FINISHED
            assert client.received == sse.chat_deleted(CHAT)
        late = f.open()
        assert await f.join(late, 0)
        assert late.received == sse.chat_deleted(CHAT)

    scenario(test)


def test_heartbeats_come_from_the_writer_and_an_expired_token_ends_its_stream() -> None:
    async def test(f: Fixture) -> None:
        expiring = user("ann", datetime.now(UTC) + timedelta(seconds=HEARTBEAT * 3))
        lasting, ending = f.open(), f.open(expiring)
        for client in (lasting, ending):
            assert await f.join(client, 0)
        assert await asyncio.wait_for(ending.stream.wait(), HEARTBEAT * 10) is Outcome.FINISHED
        await asyncio.sleep(HEARTBEAT * 2)
        assert lasting.received.count(b": ping - ") >= 3

    scenario(test)


@pytest.mark.parametrize("seqs", [[1, 2, 4], [2, 3]])
def test_continuing_needs_every_seq_from_after(seqs: Sequence[int]) -> None:
    assert continuing([posted(seq) for seq in seqs], 0) is None


def test_streams_that_leave_during_a_read_leave_the_writer_as_it_was_before_any() -> None:
    async def test(f: Fixture) -> None:
        client = f.open()
        assert await f.join(client, 0)
        f.chat.post()
        f.writer.wake(None)
        await asyncio.sleep(0)  # the read in flight
        f.writer.remove(client.stream)
        await settled()
        assert (client.seqs(), f.writer.after) == ([], None)
        newcomer = f.open()
        assert await f.join(newcomer, 1)
        f.writer.wake(f.chat.post())
        await settled()
        assert newcomer.seqs() == [2]

    scenario(test)
