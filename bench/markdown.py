"""The pieces the report's pages are made of: tables, times, CPU shares, sections."""

import math
from collections.abc import Iterable, Sequence

ALIGN = {"l": "---", "r": "---:", "c": ":---:"}


def table(headings: Sequence[str], align: str, rows: Iterable[Sequence[object]]) -> str:
    """A markdown table; `align` has a letter per column: l(eft), r(ight) or c(entre)."""
    rule = "|" + "|".join(ALIGN[letter] for letter in align) + "|"
    lines = ["| " + " | ".join(map(str, cells)) + " |" for cells in [headings, *rows]]
    return "\n".join([lines[0], rule, *lines[1:]])


def ms(value: float) -> str:
    if math.isinf(value):
        return "never"  # a delivery that did not arrive
    return "n/a" if math.isnan(value) else f"{value:.2f} ms"


def pct(value: float) -> str:
    """CPU in % of one core: idle figures need a decimal, loaded ones do not."""
    return f"{value:.1f}%" if value < 10 else f"{value:.0f}%"


def section(title: str, *blocks: str) -> str:
    return "\n\n".join([f"### {title}", *blocks])
