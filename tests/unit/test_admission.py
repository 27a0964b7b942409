"""Admission: a chat's turns, thread tokens and deadlines, and what is left once they are done."""

import asyncio
import threading
from collections.abc import Callable, Coroutine
from typing import Any

import anyio
import pytest
from anyio import to_thread

from api.admission import CHAT_BUSY, NO_THREAD, TIMED_OUT, Admission, Busy, Call, ChatTurns
from infrastructure.caller import CallerGone, ensure_awaited

FAR = 60.0  # seconds: a deadline no scenario here reaches


def run(scenario: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(scenario())


def later(seconds: float) -> float:
    return anyio.current_time() + seconds


# --- ChatTurns ------------------------------------------------------------------------------


def test_at_most_per_chat_writes_of_a_chat_at_once_and_nothing_left_after() -> None:
    async def scenario() -> None:
        turns = ChatTurns(2)
        inside = most = 0

        async def write() -> None:
            nonlocal inside, most
            assert await turns.enter(7, later(FAR))
            inside += 1
            most = max(most, inside)
            await asyncio.sleep(0.001)
            inside -= 1
            turns.leave(7)

        await asyncio.gather(*(write() for _ in range(20)))
        assert most == 2
        assert len(turns) == 0

    run(scenario)


def test_turns_are_taken_in_order_of_arrival() -> None:
    async def scenario() -> None:
        turns = ChatTurns(1)
        order: list[int] = []

        async def write(n: int) -> None:
            assert await turns.enter(1, later(FAR))
            order.append(n)
            await asyncio.sleep(0)
            turns.leave(1)

        tasks = []
        for n in range(10):
            tasks.append(asyncio.create_task(write(n)))
            await asyncio.sleep(0)  # each arrives after the previous one
        await asyncio.gather(*tasks)
        assert order == list(range(10))

    run(scenario)


def test_other_chats_do_not_wait_for_a_full_one() -> None:
    async def scenario() -> None:
        turns = ChatTurns(1)
        assert await turns.enter(1, later(FAR))
        assert await asyncio.wait_for(turns.enter(2, later(FAR)), 0.5)
        assert len(turns) == 2
        turns.leave(1)
        turns.leave(2)
        assert len(turns) == 0

    run(scenario)


def test_a_wait_past_its_deadline_gives_up_and_leaves_nothing() -> None:
    async def scenario() -> None:
        turns = ChatTurns(1)
        assert await turns.enter(3, later(FAR))
        waited = anyio.current_time()
        results = await asyncio.gather(*(turns.enter(3, later(0.05)) for _ in range(5)))
        assert results == [False] * 5
        assert 0.04 <= anyio.current_time() - waited < 1.0
        assert len(turns) == 1  # the holder's
        turns.leave(3)
        assert len(turns) == 0

    run(scenario)


def test_a_cancelled_wait_leaves_nothing_and_passes_no_turn_on() -> None:
    async def scenario() -> None:
        turns = ChatTurns(1)
        assert await turns.enter(4, later(FAR))
        waiting = asyncio.create_task(turns.enter(4, later(FAR)))
        await asyncio.sleep(0.01)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        turns.leave(4)
        assert len(turns) == 0
        assert await turns.enter(4, later(FAR))  # the chat's turn is free again
        turns.leave(4)
        assert len(turns) == 0

    run(scenario)


# --- Call: its thread token and turn go back exactly once, whatever the order ---------------


class Releases:
    def __init__(self) -> None:
        self.count = 0

    def __call__(self) -> None:
        self.count += 1


def test_a_call_answered_releases_once() -> None:
    async def scenario() -> None:
        release = Releases()
        call = Call(lambda n: n + 1, 1, release)
        assert await to_thread.run_sync(call) == 2
        call.finished()
        assert release.count == 1

    run(scenario)


def test_a_call_abandoned_before_its_thread_started_never_runs() -> None:
    async def scenario() -> None:
        release = Releases()
        ran: list[int] = []
        call = Call(ran.append, 1, release)
        assert not call.abandon()  # no statement to cancel
        assert release.count == 1  # at once: no thread holds anything
        with pytest.raises(CallerGone):
            await to_thread.run_sync(call)
        await asyncio.sleep(0.01)
        assert ran == []
        assert release.count == 1

    run(scenario)


def test_a_call_abandoned_while_running_releases_when_its_thread_returns() -> None:
    async def scenario() -> None:
        release = Releases()
        started, go_on = threading.Event(), threading.Event()
        outcome: list[str] = []

        def command(_: None) -> None:
            started.set()
            go_on.wait(5)
            try:
                ensure_awaited()  # what UnitOfWork.commit asks before it commits
            except CallerGone:
                outcome.append("rolled back")
            else:
                outcome.append("committed")

        call = Call(command, None, release)
        running = asyncio.ensure_future(to_thread.run_sync(call))
        await to_thread.run_sync(started.wait, 5)
        assert not call.abandon()  # it holds no connection: nothing to cancel
        assert release.count == 0  # the thread still holds its token
        go_on.set()
        await running
        await asyncio.sleep(0.01)  # the release is scheduled on the loop by the thread
        assert release.count == 1
        assert outcome == ["rolled back"]

    run(scenario)


def test_a_call_abandoned_after_its_thread_returned_releases_once() -> None:
    async def scenario() -> None:
        release = Releases()
        call = Call(lambda n: n, 1, release)
        await to_thread.run_sync(call)
        call.abandon()  # the deadline won the race against the result
        await asyncio.sleep(0.01)
        assert release.count == 1

    run(scenario)


# --- Admission --------------------------------------------------------------------------------


def blocked_until(event: threading.Event) -> Callable[[int], int]:
    def handler(n: int) -> int:
        event.wait(10)
        return n

    return handler


def test_no_thread_free_within_the_wait_is_busy_and_tokens_all_come_back() -> None:
    async def scenario() -> None:
        threads = to_thread.current_default_thread_limiter()
        threads.total_tokens = 2
        admission = Admission(thread_wait=0.1, request_timeout=FAR, writes_per_chat=2)
        free = threading.Event()
        holding = [asyncio.create_task(admission.run(blocked_until(free), n)) for n in range(2)]
        await asyncio.sleep(0.05)
        waited = anyio.current_time()
        with pytest.raises(Busy, match=NO_THREAD):
            await admission.run(lambda n: n, 3)
        assert 0.09 <= anyio.current_time() - waited < 1.0
        free.set()
        assert await asyncio.gather(*holding) == [0, 1]
        assert threads.borrowed_tokens == 0
        assert await admission.run(lambda n: n, 4) == 4

    run(scenario)


def test_a_handler_past_the_deadline_is_busy_and_keeps_its_token_and_turn_until_it_returns() -> (
    None
):
    async def scenario() -> None:
        threads = to_thread.current_default_thread_limiter()
        admission = Admission(thread_wait=FAR, request_timeout=0.1, writes_per_chat=1)
        free = threading.Event()
        with pytest.raises(Busy, match=TIMED_OUT):
            await admission.run(blocked_until(free), 1, chat_id=9)
        assert threads.borrowed_tokens == 1
        assert len(admission.turns) == 1
        # The chat's one turn is still taken: another write of it waits, then gives up.
        admission.thread_wait = 0.05
        with pytest.raises(Busy, match=CHAT_BUSY):
            await admission.run(lambda n: n, 2, chat_id=9)
        free.set()
        for _ in range(100):
            if threads.borrowed_tokens == 0 and len(admission.turns) == 0:
                break
            await asyncio.sleep(0.01)
        assert (threads.borrowed_tokens, len(admission.turns)) == (0, 0)
        assert await admission.run(lambda n: n, 3, chat_id=9) == 3

    run(scenario)


def test_a_handlers_error_gives_everything_back() -> None:
    async def scenario() -> None:
        threads = to_thread.current_default_thread_limiter()
        admission = Admission(thread_wait=FAR, request_timeout=FAR, writes_per_chat=1)

        def broken(_: int) -> int:
            raise ValueError("a bug")

        with pytest.raises(ValueError, match="a bug"):
            await admission.run(broken, 1, chat_id=5)
        assert (threads.borrowed_tokens, len(admission.turns)) == (0, 0)

    run(scenario)
