"""What the CLI prints on stdout: JSON lines, made safe for a terminal when they go to one.

A title or a text may hold characters that a terminal acts on instead of showing: C1
controls (U+0080-U+009F; U+009B is the CSI that starts an escape sequence on many) and the
bidirectional controls that reorder what follows them (U+202E shows `exe.txt` as `txt.exe`).
Printed to a terminal, they are written as JSON escapes (`\\u009b`): the line is still JSON
and means the same. To a pipe or a file, the line is left as it is, byte for byte what the
HTTP API sends.
"""

import re
import sys

# C1 controls, and every character with the Bidi_Control property.
TERMINAL_UNSAFE = re.compile("[\u0080-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def escaped(line: str) -> str:
    """`line` (JSON) with each character of TERMINAL_UNSAFE written as its JSON escape.

    In JSON text such a character can only be inside a string (the syntax is ASCII), and
    never right after the backslash of an escape (those are ASCII too): `\\uXXXX` in its place
    stands for the same character."""
    return TERMINAL_UNSAFE.sub(lambda match: f"\\u{ord(match[0]):04x}", line)


def print_line(line: str, flush: bool = False) -> None:
    """Print a JSON line on stdout: escaped if stdout is a terminal, else as it is."""
    print(escaped(line) if sys.stdout.isatty() else line, flush=flush)
