"""A stdout nobody reads any more (`chatapi show 1 | true`, `chatapi follow 1 | head -n 2`):
the command stops there, quietly, as other tools do when their reader goes away.

Python ignores SIGPIPE, so a write to a pipe whose reader has gone raises BrokenPipeError.
As the Python docs advise for it: stdout is then pointed at /dev/null, or the flush of what is
still buffered at exit would raise again (printed as "Exception ignored", exit status 120).
"""

import os
import select
import sys
from collections.abc import Callable

EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, as a shell reports a command its reader has left

# What a pipe's write end reports once its reader is gone (POLLERR), or a socket or
# terminal once hung up (POLLHUP). poll() reports both whatever events are asked for.
READER_GONE = select.POLLERR | select.POLLHUP


def exit_quietly_on_closed_stdout(command: Callable[[], int]) -> int:
    """`command`'s exit status, or EXIT_BROKEN_PIPE with nothing on stderr if stdout's
    reader went away before all of its output was written."""
    try:
        try:
            return command()
        finally:
            # Now, not at exit: the interpreter's own flush could only report the failure.
            sys.stdout.flush()
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE


def reader_gone(fd: int) -> bool:
    """Whether `fd` (a pipe, a socket, a terminal) has lost its reader; does not block. A
    file, /dev/null or a pipe still read answers False."""
    poller = select.poll()
    poller.register(fd, 0)
    return any(events & READER_GONE for _, events in poller.poll(0))
