"""A fake clock for the container's `clock` provider."""

import threading
from datetime import UTC, datetime, timedelta

START = datetime(2031, 3, 4, 5, 6, 7, 890123, tzinfo=UTC)
ONE_SECOND = timedelta(seconds=1)


class StepClock:
    """Aware UTC times `step` apart: negative goes back, 0 stands still until a test moves
    `now` by hand. Keeps every reading; safe across threads."""

    def __init__(self, start: datetime = START, step: timedelta = ONE_SECOND) -> None:
        self.now = start  # the next reading
        self.step = step
        self.readings: list[datetime] = []
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            reading = self.now
            self.now = reading + self.step
            self.readings.append(reading)
            return reading
