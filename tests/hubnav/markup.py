"""Reading the hub's HTML in tests (stdlib only): the links of a page with their ancestors,
so a test can ask "which links are in the nav bar's Flightbase entry" or "in the Services menu"."""

from __future__ import annotations

from dataclasses import dataclass
from html.parser import HTMLParser

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


@dataclass(frozen=True)
class Element:
    tag: str
    attrs: dict
    text: str
    ancestors: tuple  # (tag, id, class, index) of each enclosing element, outermost first

    def within(self, *, id: str | None = None, cls: str | None = None) -> bool:
        return any((id is None or a[1] == id) and (cls is None or cls in a[2].split()) for a in self.ancestors)


class _Parser(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack: list[tuple] = []  # (tag, id, class, index)
        self.open: list[dict] = []  # elements being read, with their text so far
        self.elements: list[Element] = []
        self.count = 0

    def handle_starttag(self, tag, attrs):
        attrs = {k: (v or "") for k, v in attrs}
        if tag in VOID:
            self.elements.append(Element(tag, attrs, "", tuple(self.stack)))
            return
        self.count += 1
        self.open.append({"tag": tag, "attrs": attrs, "text": [], "ancestors": tuple(self.stack)})
        self.stack.append((tag, attrs.get("id", ""), attrs.get("class", ""), self.count))

    def handle_endtag(self, tag):
        if tag in VOID:
            return
        # close up to the matching tag (tolerates unclosed elements, as browsers do)
        for depth in range(len(self.stack) - 1, -1, -1):
            if self.stack[depth][0] == tag:
                while len(self.stack) > depth:
                    self.stack.pop()
                    item = self.open.pop()
                    text = " ".join("".join(item["text"]).split())
                    self.elements.append(Element(item["tag"], item["attrs"], text, item["ancestors"]))
                    if self.open:
                        self.open[-1]["text"].append(text + " ")
                return

    def handle_data(self, data):
        if self.open:
            self.open[-1]["text"].append(data)


def elements(html: str) -> list[Element]:
    parser = _Parser()
    parser.feed(html)
    parser.close()
    return parser.elements


def find(html: str, tag: str | None = None, **attrs) -> list[Element]:
    """Elements by tag and exact attribute values (``cls=`` matches one class among several)."""
    cls = attrs.pop("cls", None)
    return [e for e in elements(html) if (tag is None or e.tag == tag)
            and all(e.attrs.get(k) == v for k, v in attrs.items())
            and (cls is None or cls in e.attrs.get("class", "").split())]


def nav_menu(html: str, label: str) -> dict[str, str]:
    """The entries (text -> href) of the nav bar's dropdown whose toggle reads ``label``."""
    all_ = elements(html)
    toggles = [e for e in all_ if e.tag == "a" and "dropdown-toggle" in e.attrs.get("class", "") and e.text == label
               and e.within(id="thenavbar")]
    assert len(toggles) == 1, f"{len(toggles)} nav bar menus named {label!r}"
    menu = toggles[0].ancestors[-1]  # the li.dropdown holding the toggle and its menu
    return {e.text: e.attrs.get("href", "") for e in all_
            if e.tag == "a" and "dropdown-item" in e.attrs.get("class", "") and menu in e.ancestors}
