"""SharedReads: the streams of a chat woken together share one read, never an older one."""

import asyncio
import time

import pytest

from api.shared_reads import SharedReads


class Fetches:
    """A fetch that counts its calls and finishes when the test releases it."""

    def __init__(self) -> None:
        self.calls = 0
        self.release = asyncio.Event()

    async def __call__(self) -> int:
        self.calls += 1
        call = self.calls
        await self.release.wait()
        return call


def test_streams_woken_before_a_read_started_share_it() -> None:
    async def scenario() -> None:
        reads: SharedReads[int] = SharedReads()
        fetch = Fetches()
        woken_at = time.monotonic()
        waiting = [
            asyncio.create_task(reads.read((1, 5, "local"), woken_at, fetch)) for _ in range(10)
        ]
        await asyncio.sleep(0)
        fetch.release.set()
        assert await asyncio.gather(*waiting) == [1] * 10
        assert fetch.calls == 1
        assert len(reads) == 0  # nothing kept once the read is done

    asyncio.run(scenario())


def test_a_stream_woken_after_a_read_started_gets_a_read_of_its_own() -> None:
    async def scenario() -> None:
        reads: SharedReads[int] = SharedReads()
        fetch = Fetches()
        first = asyncio.create_task(reads.read((1, 5, "local"), time.monotonic(), fetch))
        await asyncio.sleep(0.01)
        # Woken after the first read began: that read may predate the commit behind the hint.
        later = asyncio.create_task(reads.read((1, 5, "local"), time.monotonic(), fetch))
        await asyncio.sleep(0)
        fetch.release.set()
        assert (await first, await later) == (1, 2)
        assert fetch.calls == 2

    asyncio.run(scenario())


def test_other_pages_and_chats_are_read_apart() -> None:
    async def scenario() -> None:
        reads: SharedReads[int] = SharedReads()
        fetch = Fetches()
        woken_at = time.monotonic()
        keys = [(1, 5, "ann"), (1, 6, "ann"), (2, 5, "ann"), (1, 5, "bob")]
        waiting = [asyncio.create_task(reads.read(key, woken_at, fetch)) for key in keys]
        await asyncio.sleep(0)
        fetch.release.set()
        assert sorted(await asyncio.gather(*waiting)) == [1, 2, 3, 4]

    asyncio.run(scenario())


def test_a_stream_that_goes_away_does_not_cancel_the_others_read() -> None:
    async def scenario() -> None:
        reads: SharedReads[int] = SharedReads()
        fetch = Fetches()
        woken_at = time.monotonic()
        leaving = asyncio.create_task(reads.read((1, 5, "local"), woken_at, fetch))
        staying = asyncio.create_task(reads.read((1, 5, "local"), woken_at, fetch))
        await asyncio.sleep(0)
        leaving.cancel()
        fetch.release.set()
        assert await staying == 1
        assert fetch.calls == 1

    asyncio.run(scenario())


def test_a_failed_read_fails_every_stream_that_shared_it() -> None:
    async def scenario() -> None:
        reads: SharedReads[int] = SharedReads()

        async def failing() -> int:
            await asyncio.sleep(0)
            raise LookupError("chat gone")

        woken_at = time.monotonic()
        waiting = [reads.read((1, 5, "local"), woken_at, failing) for _ in range(3)]
        results = await asyncio.gather(*waiting, return_exceptions=True)
        assert all(isinstance(result, LookupError) for result in results)
        with pytest.raises(LookupError):
            await reads.read((1, 5, "local"), time.monotonic(), failing)

    asyncio.run(scenario())
