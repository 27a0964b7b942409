"""The CLI's lines for a terminal: the characters a terminal acts on, as JSON escapes."""

import io
import json
import sys

import pytest

from cli.terminal import TERMINAL_UNSAFE, escaped, print_line

C1 = [chr(code) for code in range(0x80, 0xA0)]
BIDI = [
    "\u061c",
    "\u200e",
    "\u200f",
    *map(chr, range(0x202A, 0x202F)),
    *map(chr, range(0x2066, 0x206A)),
]
KEPT = [
    "a",
    "é",
    "ß",
    "€",
    "😀",
    "\u00a0",
    "\u2028",
    "\u200b",
    "\u202f",
    "\u2065",
    "\u206a",
    "\x7f",
]


@pytest.mark.parametrize("char", C1 + BIDI, ids=lambda char: f"U+{ord(char):04X}")
def test_each_unsafe_character_becomes_its_json_escape(char: str) -> None:
    line = json.dumps({"text": f"a{char}b"}, ensure_ascii=False)
    assert char in line

    shown = escaped(line)

    assert shown == line.replace(char, f"\\u{ord(char):04x}")
    assert shown.isascii()
    assert json.loads(shown) == json.loads(line)


def test_everything_else_is_left_as_it_is() -> None:
    line = json.dumps({"text": "".join(KEPT), "n": 1}, ensure_ascii=False)
    assert escaped(line) == line
    assert not any(TERMINAL_UNSAFE.search(char) for char in KEPT)


@pytest.mark.parametrize(
    "text",
    [
        "\\\u009b",  # a backslash before it: escaped as \\ in JSON, then the character
        '"\u202e"',
        "\u009b[31mred\u009b[0m \u202etxt.exe",
        "\\u009b",  # the six characters, not the control: left alone
    ],
)
def test_the_line_stays_json_that_means_the_same(text: str) -> None:
    line = json.dumps({"title": text, "messages": [{"text": text}]}, ensure_ascii=False)
    shown = escaped(line)
    assert json.loads(shown) == json.loads(line)
    assert TERMINAL_UNSAFE.search(shown) is None


class FakeStdout(io.StringIO):
    def __init__(self, tty: bool) -> None:
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


@pytest.mark.parametrize("tty", [True, False], ids=["terminal", "pipe"])
def test_only_a_terminal_gets_the_escapes(monkeypatch: pytest.MonkeyPatch, tty: bool) -> None:
    stdout = FakeStdout(tty)
    monkeypatch.setattr(sys, "stdout", stdout)
    line = '{"text":"\u009b\u202e"}'

    print_line(line)

    assert stdout.getvalue() == (escaped(line) if tty else line) + "\n"
