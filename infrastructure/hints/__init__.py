"""Hints for live delivery: "chat N has news", within a process and across processes.

A hint carries no data and promises nothing: a stream woken by one reads the database from its
own seq, so a lost or late hint costs latency, never an event.

- LocalHints (local.py): the subscriptions of one event loop, woken from any thread.
- HintSender (sender.py): batched NOTIFYs after commit, from one thread per process.
- HintListener (listener.py): one LISTEN connection per process, read by the event loop.
- Publisher (publisher.py): the three together, as the unit of work and the streams use them.
"""

from infrastructure.hints.listener import HintListener
from infrastructure.hints.local import LocalHints
from infrastructure.hints.publisher import POLL_INTERVAL, Publisher, open_publisher
from infrastructure.hints.sender import HintSender

__all__ = [
    "POLL_INTERVAL",
    "HintListener",
    "HintSender",
    "LocalHints",
    "Publisher",
    "open_publisher",
]
