"""The database server's clock as the event loop sees it: a request's deadline, which is in
the loop's time, in the server's, for a write's IN_TIME guard (infrastructure/plans.py).

Read on each connection as it is made, and again once the reading is READ_AGAIN_SECONDS
old: `clock_timestamp()` between two loop times, the server's time taken as at their
middle, give or take half the round trip. The guard's deadline is early by that error and
by MARGIN: for the commit and its answer to come back before the request stops waiting.

No synchronised clocks are assumed, only clocks that run at nearly the same rate between
two readings (NTP slews a clock by at most 0.05%: 30 ms a minute). A server clock stepped
forward since the reading makes the guard refuse a write in time; the loop then reads the
clock again and runs the write once more (LoopDatabase.write).
"""

from dataclasses import dataclass

MARGIN = 0.05  # seconds before the request's deadline that a write must be done by
READ_AGAIN_SECONDS = 60.0
# The server's time, as epoch seconds; in one round trip with nothing else.
QUERY = "SELECT extract(epoch FROM clock_timestamp())::float8"


@dataclass(frozen=True, slots=True)
class ServerClock:
    offset: float  # the server's epoch seconds less the loop's time, as read
    error: float  # half the round trip it was read in
    read_at: float  # the loop's time when it was read

    @classmethod
    def read(cls, sent: float, server_time: float, received: float) -> "ServerClock":
        """The clock from one reading: the query sent at `sent` (loop time), answered
        `server_time`, the answer received at `received`."""
        return cls(server_time - (sent + received) / 2, (received - sent) / 2, received)

    def deadline(self, loop_deadline: float) -> float:
        """`loop_deadline` in the server's epoch seconds, early by the error and MARGIN."""
        return loop_deadline + self.offset - self.error - MARGIN

    def is_old(self, now: float) -> bool:
        return now - self.read_at > READ_AGAIN_SECONDS
