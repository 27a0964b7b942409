"""Hints for live delivery: "chat N has news", within a process and across processes.

A hint carries no data and promises nothing: what it wakes reads the database, so a lost or
late hint costs latency, never an event.

- LocalHints (local.py): the chats followed on one event loop, woken from any thread.
- HintChannel (channel.py): one thread and one connection per process, NOTIFY and LISTEN.
- Publisher (publisher.py): the two together, as the unit of work and the streams use them.
- BlockingHints (blocking.py): a channel that wakes one chat's blocking follower instead.
"""

from infrastructure.hints.channel import HintChannel
from infrastructure.hints.local import LocalHints
from infrastructure.hints.publisher import POLL_INTERVAL, Publisher, open_publisher

__all__ = ["POLL_INTERVAL", "HintChannel", "LocalHints", "Publisher", "open_publisher"]
