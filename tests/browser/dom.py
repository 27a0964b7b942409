"""A small DOM tree built from the HTML that Chromium dumps, and the queries the tests need."""

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser

# Elements that never have a closing tag, so never become the parent of what follows.
VOID_ELEMENTS = frozenset(
    {
        "area",
        "base",
        "br",
        "col",
        "embed",
        "hr",
        "img",
        "input",
        "link",
        "meta",
        "source",
        "track",
        "wbr",
    }
)


@dataclass(eq=False)
class Element:
    tag: str
    attrs: dict[str, str] = field(default_factory=dict)
    children: "list[Element | str]" = field(default_factory=list)
    parent: "Element | None" = None

    @property
    def classes(self) -> set[str]:
        return set(self.attrs.get("class", "").split())

    def text(self) -> str:
        """The text of the element and its descendants, whitespace collapsed."""
        return " ".join("".join(self._texts()).split())

    def _texts(self) -> Iterator[str]:
        for child in self.children:
            if isinstance(child, str):
                yield child
            else:
                yield from child._texts()

    def elements(self) -> "Iterator[Element]":
        """Every descendant element, in document order."""
        for child in self.children:
            if isinstance(child, Element):
                yield child
                yield from child.elements()

    def find_all(self, matches: "Callable[[Element], bool]") -> "list[Element]":
        return [element for element in self.elements() if matches(element)]

    def find(self, matches: "Callable[[Element], bool]") -> "Element | None":
        return next((element for element in self.elements() if matches(element)), None)

    def next_element(self) -> "Element | None":
        """The element right after this one among its parent's children."""
        if self.parent is None:
            return None
        siblings = [child for child in self.parent.children if isinstance(child, Element)]
        position = next(i for i, sibling in enumerate(siblings) if sibling is self)
        return siblings[position + 1] if position + 1 < len(siblings) else None


def has_class(name: str) -> Callable[[Element], bool]:
    return lambda element: name in element.classes


def is_tag(tag: str) -> Callable[[Element], bool]:
    return lambda element: element.tag == tag


class _TreeBuilder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Element("#document")
        self._open = [self.root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        parent = self._open[-1]
        element = Element(tag, {name: value or "" for name, value in attrs}, parent=parent)
        parent.children.append(element)
        if tag not in VOID_ELEMENTS:
            self._open.append(element)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in VOID_ELEMENTS:
            self._open.pop()

    def handle_endtag(self, tag: str) -> None:
        # Close the nearest open element of that name, and whatever is still open inside it.
        for depth in range(len(self._open) - 1, 0, -1):
            if self._open[depth].tag == tag:
                del self._open[depth:]
                return

    def handle_data(self, data: str) -> None:
        self._open[-1].children.append(data)


def parse(html: str) -> Element:
    builder = _TreeBuilder()
    builder.feed(html)
    builder.close()
    return builder.root
