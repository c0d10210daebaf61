"""Learned body templates: where a source's pages keep the article, so most skip trafilatura.

trafilatura finds the body of any page, at about 7 ms of CPU; reading an element already
known to hold it costs about one. A source's article pages share a layout, so:

- a worker that ran trafilatura on a page can look for the elements that give the same
  text (`find_body_template`) and name them by tag, id and class, which the next page of
  the same layout has too;
- the spider's `TemplateLearner` adopts that template once `learn_after` pages in a row
  name the same one, then has the workers read pages through it (`read_template`);
- now and then a page is read by trafilatura again and the template looked for anew (a
  check: after 10 pages, then 20, then every 40 while checks pass): a page that names
  another template, or none, drops it and learning starts over. A page the template
  finds no article on is read by trafilatura.

A template is an XPath made only of tags, ids and classes, never positions: positions
differ from page to page, and a template that named them would be right on the page it
was learned from and wrong on the next.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Literal

from lxml import etree

if TYPE_CHECKING:
    from lxml.html import HtmlElement

# Share of the text (in characters, paragraph by paragraph) that the template's text and
# trafilatura's must have in common.
AGREEMENT = 0.98
# Elements whose whole text is a paragraph of trafilatura's text mark the body.
BODY_BLOCKS = etree.XPath("//p|//li|//h2|//h3|//h4|//blockquote|//td|//pre|//div[not(p|div|li)]")
BODY_BLOCK_MIN_CHARS = 20
# A page whose article is shorter than this teaches nothing about where articles sit.
MIN_BODY_CHARS = 200
# An id with a digit names one article ("post-12345"), not the layout.
ARTICLE_SPECIFIC_ID = re.compile(r"\d")

Event = Literal["learned", "checked", "dropped"]


def text_agreement(first: str, second: str) -> float:
    """Dice overlap of the two texts' paragraphs (lines, repeats counted), each weighed by
    its length: 1.0 for the same paragraphs, in any order."""
    a, b = Counter(first.split("\n")), Counter(second.split("\n"))
    total = sum(len(line) * n for line, n in (a + b).items())
    common = sum(len(line) * n for line, n in (a & b).items())
    return 2 * common / total if total else 1.0


@lru_cache(maxsize=64)
def compiled(template: str) -> etree.XPath:
    return etree.XPath(template)


def read_template(tree: HtmlElement, template: str) -> list[HtmlElement]:
    """The elements `template` names in this page, in page order."""
    return list(compiled(template)(tree))


def find_body_template(tree: HtmlElement, body_text: str) -> str | None:
    """A template naming the elements of `tree` that hold `body_text` (trafilatura's text
    of this page, a paragraph a line), or None when no element can be named by tag, id
    and class alone.

    The caller checks that the template's text agrees with `body_text` (`AGREEMENT`):
    this only says where the text lies.
    """
    if len(body_text) < MIN_BODY_CHARS:
        return None
    lines = set(body_text.split("\n"))
    blocks = [
        element
        for element in BODY_BLOCKS(tree)
        if len(text := " ".join(element.text_content().split())) >= BODY_BLOCK_MIN_CHARS
        and text in lines
    ]
    container = _common_ancestor(blocks)
    if container is None:
        return None
    base = _named_path(container)
    if base is None:
        return None
    # The container's children that hold body text, when the rest is furniture (a title,
    # a share bar, related links) and every one of them can be named.
    holders = {_child_of(container, block) for block in blocks} - {None}
    children = [child for child in container if isinstance(child.tag, str)]
    if len(holders) == len(children):
        return base
    names = [_name(child) for child in children if child in holders]
    if any(name is None for name in names):
        return base
    return " | ".join(dict.fromkeys(f"{base}/{name}" for name in names))


def _common_ancestor(elements: list[HtmlElement]) -> HtmlElement | None:
    if not elements:
        return None
    chains = [[*reversed(list(element.iterancestors())), element] for element in elements]
    common = None
    for level in zip(*chains, strict=False):
        if any(element is not level[0] for element in level):
            break
        common = level[0]
    return common


def _child_of(container: HtmlElement, element: HtmlElement) -> HtmlElement | None:
    """The child of `container` that `element` lies in (None: `element` is the container)."""
    for node in (element, *element.iterancestors()):
        if node.getparent() is container:
            return node
    return None


def _name(element: HtmlElement) -> str | None:
    """The element as an XPath step by tag and id or class; None when it has neither."""
    element_id = element.get("id")
    if element_id and not ARTICLE_SPECIFIC_ID.search(element_id) and '"' not in element_id:
        return f'{element.tag}[@id="{element_id}"]'
    classes = element.get("class")
    if classes and '"' not in classes:
        return f'{element.tag}[@class="{classes}"]'
    return None


def _named_path(element: HtmlElement) -> str | None:
    """An XPath to `element` from its nearest named ancestor-or-self, by tags below it:
    ``//article[@class="post"]/div/div``; None when it names more than `element` here."""
    steps: list[str] = []
    for node in (element, *element.iterancestors()):
        name = _name(node)
        if name is not None:
            path = "//" + "/".join([name, *reversed(steps)])
            found = compiled(path)(element.getroottree())
            return path if len(found) == 1 and found[0] is element else None
        steps.append(node.tag)
    return None


@dataclass
class TemplateLearner:
    """One source's template, as its crawl learns and checks it (in the spider, which sees
    every page of the source; workers see single pages).

    `plan` says how to read the next page; `observe` takes what the worker found. A check
    costs a trafilatura run, so each one passed doubles the pages to the next, from
    `check_every` up to `max_check_every`. A source whose pages teach no template
    (`patience` pages in a row) is looked at again only every `check_every`-th page:
    looking costs a millisecond or two a page.
    """

    learn_after: int = 3
    check_every: int = 10
    max_check_every: int = 40
    patience: int = 10
    template: str | None = None
    _candidate: str | None = None
    _streak: int = 0
    _fruitless: int = 0
    _pages: int = 0  # since the last check, or the last look for a template
    _interval: int = 0  # pages between checks now; 0: check_every

    def plan(self) -> tuple[str | None, bool]:
        """(the template to read the next page through, whether to run trafilatura and
        look for the template on it)."""
        self._pages += 1
        due = self._pages >= (self._interval or self.check_every)
        if due:
            self._pages = 0
        if self.template is None:
            return None, due or self._fruitless < self.patience
        return self.template, due

    def observe(self, asked: str | None, found: str | None) -> Event | None:
        """Take the template `found` on a page that trafilatura read, planned with the
        template `asked`; returns what changed."""
        if asked is not None:
            if asked != self.template:  # planned before the template changed
                return None
            if found == asked:
                self._interval = min(2 * (self._interval or self.check_every), self.max_check_every)
                return "checked"
            self.template, self._candidate, self._streak, self._interval = None, None, 0, 0
            return "dropped"
        self._fruitless = self._fruitless + 1 if found is None else 0
        if found is None or found != self._candidate:
            self._candidate, self._streak = found, int(found is not None)
        else:
            self._streak += 1
        if self.template is None and self._candidate and self._streak >= self.learn_after:
            self.template, self._pages, self._interval = self._candidate, 0, 0
            return "learned"
        return None

    def remember(self, template: str | None) -> None:
        """Start from a template an earlier crawl ended with: its first page is a check."""
        if template:
            self.template, self._pages = template, self.check_every - 1
