"""Running workers in threads that start together, for the concurrency and load tests."""

import threading
import time
from collections.abc import Callable, Sequence

# Every thread of a test gives up after this long: a hang fails the test instead of the suite.
THREAD_TIMEOUT_SECONDS = 120.0


def run_in_threads(workers: Sequence[Callable[[], None]]) -> None:
    """Start every worker at once (behind a barrier), wait for all, re-raise the first error.

    A worker still running after THREAD_TIMEOUT_SECONDS fails the test.
    """
    barrier = threading.Barrier(len(workers))
    errors: list[BaseException] = []
    errors_lock = threading.Lock()

    def wrap(worker: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                barrier.wait(timeout=THREAD_TIMEOUT_SECONDS)
                worker()
            except BaseException as exc:
                with errors_lock:
                    errors.append(exc)

        return run

    threads = [threading.Thread(target=wrap(worker), daemon=True) for worker in workers]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + THREAD_TIMEOUT_SECONDS
    for thread in threads:
        thread.join(timeout=max(0.0, deadline - time.monotonic()))
    stuck = sum(thread.is_alive() for thread in threads)
    assert stuck == 0, f"{stuck} worker thread(s) still running after {THREAD_TIMEOUT_SECONDS} s"
    if errors:
        raise errors[0]
