"""This process's committed messages, handed to its streams with the wake-up (LocalHints).

A stream sends them without a read only when they continue its seq exactly and nothing else
woke it; in every other case `take` answers None and the stream reads from the database.
"""

import asyncio
import threading
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from domain.events import MessagePosted
from infrastructure.hints.local import MAX_ARRIVALS, LocalHints, Subscription

CHAT = 7
OTHER_CHAT = 8
AT = datetime(2026, 11, 27, tzinfo=UTC)


def posted(seq: int, chat_id: int = CHAT) -> MessagePosted:
    return MessagePosted(1000 * chat_id + seq, chat_id, seq, f"m{seq}", AT)


def seqs(messages: list[MessagePosted] | None) -> list[int] | None:
    return None if messages is None else [message.seq for message in messages]


async def delivered() -> None:
    """Until the loop has run what was published (publish schedules one call onto it)."""
    for _ in range(3):
        await asyncio.sleep(0)


Test = Callable[[LocalHints, Subscription], Awaitable[None]]


def scenario(test: Test) -> None:
    async def main() -> None:
        hints = LocalHints()
        hints.attach(asyncio.get_running_loop())
        with hints.subscribe(CHAT) as subscription:
            await test(hints, subscription)

    asyncio.run(main())


def test_messages_that_continue_the_seq_are_handed_over_in_seq_order() -> None:
    async def test(hints: LocalHints, subscription: Subscription) -> None:
        # Two handler threads committed seq 5 and 4 and published in the other order.
        hints.publish([CHAT], {CHAT: [posted(5)]})
        hints.publish([CHAT], {CHAT: [posted(4)]})
        await delivered()
        assert await subscription.wait(1.0)
        assert seqs(subscription.take(3)) == [4, 5]
        assert subscription.take(5) is None  # taken once: nothing new means a read

    scenario(test)


def test_messages_the_stream_has_already_are_dropped() -> None:
    async def test(hints: LocalHints, subscription: Subscription) -> None:
        hints.publish([CHAT], {CHAT: [posted(3), posted(4), posted(5)]})
        await delivered()
        assert seqs(subscription.take(4)) == [5]

    scenario(test)


def test_a_gap_means_a_read() -> None:
    async def test(hints: LocalHints, subscription: Subscription) -> None:
        # Seq 4 was committed but its publish has not come (or came from another process).
        hints.publish([CHAT], {CHAT: [posted(5)]})
        await delivered()
        assert subscription.take(3) is None
        # The late one then comes on its own: it continues the seq of a stream that read.
        hints.publish([CHAT], {CHAT: [posted(4)]})
        await delivered()
        assert subscription.take(5) == []

    scenario(test)


def test_a_hint_without_messages_means_a_read_even_with_messages_handed_over() -> None:
    async def test(hints: LocalHints, subscription: Subscription) -> None:
        hints.publish([CHAT], {CHAT: [posted(4)]})
        hints.publish([CHAT])  # another process's post (seq 5, say), or a delete
        await delivered()
        assert subscription.take(3) is None
        hints.publish([CHAT])
        hints.publish([CHAT], {CHAT: [posted(6)]})
        await delivered()
        assert subscription.take(5) is None

    scenario(test)


def test_wake_all_means_a_read() -> None:
    async def test(hints: LocalHints, subscription: Subscription) -> None:
        hints.publish([CHAT], {CHAT: [posted(4)]})
        await delivered()
        hints.wake_all()
        await delivered()
        assert subscription.take(3) is None

    scenario(test)


def test_messages_of_other_chats_are_not_handed_over() -> None:
    async def test(hints: LocalHints, subscription: Subscription) -> None:
        hints.publish([CHAT, OTHER_CHAT], {OTHER_CHAT: [posted(4, OTHER_CHAT)], CHAT: [posted(4)]})
        await delivered()
        assert seqs(subscription.take(3)) == [4]

    scenario(test)


def test_a_stream_that_falls_far_behind_reads_instead_of_keeping_them() -> None:
    async def test(hints: LocalHints, subscription: Subscription) -> None:
        hints.publish([CHAT], {CHAT: [posted(seq) for seq in range(1, MAX_ARRIVALS + 1)]})
        await delivered()
        hints.publish([CHAT], {CHAT: [posted(MAX_ARRIVALS + 1)]})
        await delivered()
        assert subscription.take(0) is None

    scenario(test)


def test_messages_published_from_many_threads_are_all_handed_over() -> None:
    async def test(hints: LocalHints, subscription: Subscription) -> None:
        threads = [
            threading.Thread(target=hints.publish, args=([CHAT], {CHAT: [posted(seq)]}))
            for seq in range(1, 101)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        await delivered()
        assert seqs(subscription.take(0)) == list(range(1, 101))

    scenario(test)
