"""One writer per chat per process: the task that sends the chat's news to its streams.

A commit wakes the chat's writer once, however many streams follow the chat. The writer
takes the news (this process's committed messages as they were handed over, or else one read
of the chat, as the service), encodes each event once, and writes the same bytes to every
stream it serves, coalescing whatever arrived together into one chunk per stream. A write
never waits: a stream whose client stopped reading is left behind (api/live/stream.py), and
dropped once a send has waited STREAM_SEND_TIMEOUT. The same timer, one per chat, sends the
heartbeats, reads the chat now and then all the same (a safety net: news never depends on a
hint alone), and ends streams whose token expired.

A stream joins the writer once its own reads have brought it to the chat's end. It may find
the writer ahead (the writer sent it the news since, kept in a short history), at the same
place, or behind (the stream waits for the writer to get there); a stream the history no
longer covers reads on by itself.
"""

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Iterable, Sequence

from api.live import sse
from api.live.news import UNAVAILABLE, News, NewsReader, Piece, committed
from api.live.stream import Outcome, Stream, body
from domain.errors import ChatNotFound
from domain.events import MessagePosted
from domain.principals import LOCAL

log = logging.getLogger("chatapi")

# The events a writer keeps for streams that join late or fell behind.
HISTORY = 64
# More committed messages than this between two deliveries: read instead of keeping them.
MAX_ARRIVALS = 256


class ChatWriter:
    def __init__(
        self,
        chat_id: int,
        news: NewsReader,
        heartbeat: float,
        send_timeout: float,
        read_interval: Callable[[], float],
    ) -> None:
        self.chat_id = chat_id
        self._news = news
        self._heartbeat = heartbeat
        self._send_timeout = send_timeout
        self._read_interval = read_interval  # shorter while hints from elsewhere cannot come
        self._loop = asyncio.get_running_loop()
        self.streams: set[Stream] = set()  # every stream of the chat here, caught up or not
        self._live: set[Stream] = set()  # those the writer sends to: at its position
        self._parked: set[Stream] = set()  # those ahead of it, until it gets there
        # Where the writer is: None until a stream joins (it starts from the stream's).
        self.after: int | None = None
        self.member_position = 0
        self._history: deque[Piece] = deque(maxlen=HISTORY)
        self._history_from = (0, 0)  # the position before its oldest piece
        self.deleted = False
        # News not yet taken: woken, and this process's messages since (None: read).
        self._woken = False
        self._woken_at = 0.0
        self._arrivals: list[MessagePosted] | None = []
        self._task: asyncio.Task[None] | None = None
        now = self._loop.time()
        self._next_beat = now + heartbeat
        self._last_read = now
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = float("inf")

    # -- from LocalHints, on the loop -------------------------------------------------------

    def wake(self, arrivals: Sequence[MessagePosted] | None = None) -> None:
        self._woken = True
        self._woken_at = self._loop.time()
        taken = self._arrivals
        if arrivals is None or taken is None or len(taken) + len(arrivals) > MAX_ARRIVALS:
            self._arrivals = None
        else:
            taken.extend(arrivals)
        # This process's commits, and nothing else, with no read in flight: sent now.
        if self._task is None and not self.deleted and not self._deliver_arrivals():
            self._start()

    # -- from the streams ---------------------------------------------------------------------

    def add(self, stream: Stream) -> None:
        self.streams.add(stream)
        stream.on_wait = self._send_waits
        if self._timer is None:
            self._arm(min(self._next_beat, self._last_read + self._read_interval()))
        self._arm(stream.expires_at)

    def remove(self, stream: Stream) -> None:
        self.streams.discard(stream)
        self._live.discard(stream)
        self._parked.discard(stream)
        self._forget_if_idle()

    def join(self, stream: Stream) -> bool:
        """The stream is at the chat's end as its last read found it: True if the writer
        takes it on from there (now, or once the writer gets there); False if it must read on
        by itself."""
        if self.deleted:
            self._finish(stream, sse.chat_deleted(self.chat_id))
            return True
        if self.after is None:  # the first: the writer starts where it is
            self.after, self.member_position = stream.after, stream.member_position
            self._history_from = (self.after, self.member_position)
            if self._woken_at >= stream.read_began:  # news its read may have missed
                self.wake(None)
        if stream.after > self.after or stream.member_position > self.member_position:
            self._parked.add(stream)
            self.wake(None)  # the news that stream has seen is on its way here: read it
            return True
        return self._serve(stream)

    # -- the writer's task --------------------------------------------------------------------

    def _start(self) -> None:
        if self._task is None and self.after is not None and not self.deleted:
            self._task = self._loop.create_task(self._run())

    async def _run(self) -> None:
        try:
            while self._woken and not self.deleted and (self._live or self._parked):
                if self._deliver_arrivals():
                    continue
                self._woken, self._arrivals = False, []
                news = await self._read()
                if news is None:
                    self._delete()
                    return
                self._deliver(news.pieces, news.after, news.member_position)
                if not news.at_end:
                    self._woken = True  # a full page: read on at once
        finally:
            self._task = None
            self._forget_if_idle()

    def _deliver_arrivals(self) -> bool:
        """Sends the messages handed over since the last delivery if they follow on from the
        writer's position with nothing else to read; False if the writer must read."""
        if self.after is None:
            return False
        following = continuing(self._arrivals, self.after)
        if following is None:
            return False
        self._woken, self._arrivals = False, []
        self._deliver(committed(following, self.member_position))
        return True

    async def _read(self) -> News | None:
        """The news after the writer's position; None once the chat is gone. Waits out
        database outages (the requests failing meanwhile log them)."""
        while True:
            assert self.after is not None
            self._last_read = self._loop.time()
            # The next read all the same: sooner while hints from elsewhere cannot come.
            self._arm(self._last_read + self._read_interval())
            try:
                return await self._news.read(self.chat_id, self.after, self.member_position, LOCAL)
            except ChatNotFound:
                return None
            except UNAVAILABLE:
                await asyncio.sleep(1.0)

    def _deliver(
        self, pieces: Sequence[Piece], after: int | None = None, member_position: int = 0
    ) -> None:
        assert self.after is not None
        before = (self.after, self.member_position)
        if pieces:
            self._remember(pieces)
            self.after = max(self.after or 0, pieces[-1].seq)
            self.member_position = max(self.member_position, pieces[-1].member_position)
        # A read's position may pass its pieces (nothing was new to the service).
        self.after = max(self.after or 0, after or 0)
        self.member_position = max(self.member_position, member_position)
        if pieces:
            chunk = body(b"".join(piece.data for piece in pieces))
            removals = any(piece.removed_user for piece in pieces)
            for stream in tuple(self._live):
                if stream.sending is not None:  # still on an earlier send: left behind
                    self._live.discard(stream)
                    stream.after, stream.member_position = before
                    stream.fall_behind()
                elif removals and stream.user_id is not None:
                    self._send(stream, pieces)
                else:
                    stream.write(chunk)
        for stream in tuple(self._parked):
            if stream.after <= self.after and stream.member_position <= self.member_position:
                self._parked.discard(stream)
                if not self._serve(stream):
                    stream.fall_behind()
        self._forget_if_idle()

    def _forget_if_idle(self) -> None:
        """With no stream to send to, the writer stops following the chat: the next stream to
        join starts it again from where that stream is. Not while its task runs (a read in
        flight ends at the writer's position): the task forgets it as it ends."""
        if not self._live and not self._parked and self._task is None:
            self.after = None
            self._history.clear()

    def _serve(self, stream: Stream) -> bool:
        """Sends a stream at or behind the writer what it has not had, from the history, and
        takes it on; False if the history does not reach back to it."""
        assert self.after is not None
        since, members_since = self._history_from
        if stream.after < since or stream.member_position < members_since:
            return False
        news = [p for p in self._history if p.is_news_to(stream.after, stream.member_position)]
        if news and not self._send(stream, news):
            return True  # ended by a removal
        stream.after, stream.member_position = self.after, self.member_position
        self._live.add(stream)
        return True

    def _send(self, stream: Stream, pieces: Iterable[Piece]) -> bool:
        """Writes the pieces to one stream, up to its user's removal if they are removed (the
        stream then ends: False)."""
        chunk: list[bytes] = []
        for piece in pieces:
            chunk.append(piece.data)
            if piece.removed_user is not None and piece.removed_user == stream.user_id:
                self._live.discard(stream)
                self._finish(stream, b"".join(chunk))
                return False
        stream.write(body(b"".join(chunk)))
        return True

    def _remember(self, pieces: Sequence[Piece]) -> None:
        for piece in pieces:
            if len(self._history) == HISTORY:
                oldest = self._history[0]
                self._history_from = (oldest.seq, oldest.member_position)
            self._history.append(piece)

    def _delete(self) -> None:
        """The chat is gone: `chat.deleted` to every stream that has caught up, which ends."""
        self.deleted = True
        farewell = sse.chat_deleted(self.chat_id)
        for stream in tuple(self._live | self._parked):
            self._finish(stream, farewell)
        self._live.clear()
        self._parked.clear()

    @staticmethod
    def _finish(stream: Stream, last: bytes) -> None:
        stream.write(body(last))
        stream.end(Outcome.FINISHED)

    # -- the timer: heartbeats, reads now and then, deadlines -----------------------------------

    def _arm(self, at: float | None) -> None:
        """Make sure the timer fires by `at`."""
        if at is None or at >= self._timer_at:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = at
        self._timer = self._loop.call_at(at, self._tick)

    def _tick(self) -> None:
        self._timer, self._timer_at = None, float("inf")
        if not self.streams:
            return
        now = self._loop.time()
        next_at = [self._tick_beat(now), self._tick_read(now)]
        oldest = now - self._send_timeout
        for stream in self.streams:
            if stream.outcome is not None:
                continue
            if stream.sending is not None:
                if stream.send_began <= oldest:
                    log.warning(
                        "event stream of chat %d: a send waited %s s on a subscriber that "
                        "stopped reading; disconnected",
                        self.chat_id,
                        self._send_timeout,
                    )
                    self._drop(stream, Outcome.CUT)
                    continue
                next_at.append(stream.send_began + self._send_timeout)
            if stream.expires_at is not None:
                if stream.expires_at <= now:  # back with a new token and Last-Event-ID
                    self._drop(stream, Outcome.FINISHED)
                    continue
                next_at.append(stream.expires_at)
        self._forget_if_idle()
        self._arm(min(next_at))

    def _drop(self, stream: Stream, outcome: Outcome) -> None:
        self._live.discard(stream)
        self._parked.discard(stream)
        stream.end(outcome)

    def _tick_beat(self, now: float) -> float:
        if now >= self._next_beat:
            self._next_beat = now + self._heartbeat
            beat = body(sse.heartbeat())
            for stream in self._live:
                if stream.sending is None:
                    stream.write(beat)
        return self._next_beat

    def _tick_read(self, now: float) -> float:
        interval = self._read_interval()
        if now >= self._last_read + interval:
            self._last_read = now
            self.wake(None)
        return self._last_read + interval

    def _send_waits(self, stream: Stream) -> None:
        """A stream's send has to wait: its deadline goes on the timer."""
        self._arm(stream.send_began + self._send_timeout)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._task is not None:
            self._task.cancel()


def continuing(arrivals: Sequence[MessagePosted] | None, after: int) -> list[MessagePosted] | None:
    """The messages handed over that follow seq `after`, if they follow on from it with no
    gap (each commit hands its messages over after it committed, in any order between
    threads); None when the writer must read: a commit not handed over (yet), or news that
    came with none."""
    if arrivals is None:
        return None
    following = sorted((m for m in arrivals if m.seq > after), key=lambda m: m.seq)
    for expected, message in enumerate(following, start=after + 1):
        if message.seq != expected:
            return None
    return following
