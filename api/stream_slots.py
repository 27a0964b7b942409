"""Event streams open per user in this process, so that one user (or one stolen token) cannot
take every one of MAX_STREAMS: at most MAX_STREAMS_PER_USER each, beyond which a new stream is
a 429. Services and the local caller are trusted with more (a bridge follows many chats):
MAX_STREAMS alone bounds them. One per app, used on its event loop only: no lock."""

from collections import Counter
from collections.abc import Callable

from domain.principals import Principal

Release = Callable[[], None]


def _nothing() -> None:
    """A slot that was never counted."""


class StreamSlots:
    def __init__(self, per_user: int) -> None:
        self._per_user = per_user
        self._open: Counter[str] = Counter()

    def open(self, principal: Principal) -> int:
        """How many streams the caller has open here."""
        return 0 if principal.user_id is None else self._open[principal.user_id]

    def take(self, principal: Principal) -> Release | None:
        """A slot for one more stream of this caller, and how to give it back (once, however
        often it is called); None if the caller has all of theirs open."""
        user_id = principal.user_id
        if user_id is None:
            return _nothing
        if self._open[user_id] >= self._per_user:
            return None
        self._open[user_id] += 1
        given_back = False

        def release() -> None:
            nonlocal given_back
            if given_back:
                return
            given_back = True
            self._open[user_id] -= 1
            if not self._open[user_id]:
                del self._open[user_id]  # nothing kept for a user with no stream

        return release
