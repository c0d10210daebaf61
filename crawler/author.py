"""trafilatura's author search, with its XPaths written in plain XPath 1.0.

trafilatura matches classes and ids with EXSLT regular expressions (``re:test``), which
lxml answers by calling Python's `re` for every element of the page: its author search
took 1.2 ms a page, more than reading the whole article body through a template. Every
regular expression there is an alternation of literals, some anchored at the start, so
``contains()`` and ``starts-with()`` say the same thing in C. The steps are trafilatura's
own (`extract_author`): drop comments, sidebars, dates and figures from a copy of the
page, then take the first short text the author XPaths find.

`tests/test_extract.py` checks that each XPath here selects exactly what trafilatura's
selects on every golden page, and that trafilatura's still read as they did when these
were written: an upgrade that changes them fails there, not silently here.
"""

from __future__ import annotations

from copy import deepcopy
from typing import TYPE_CHECKING

from lxml.etree import XPath
from trafilatura.htmlprocessing import prune_unwanted_nodes
from trafilatura.json_metadata import normalize_authors
from trafilatura.metadata import extract_metainfo

if TYPE_CHECKING:
    from lxml.html import HtmlElement


def _any(function: str, attribute: str, *literals: str) -> str:
    return "(" + " or ".join(f"{function}(@{attribute}, '{lit}')" for lit in literals) + ")"


# trafilatura.xpaths.AUTHOR_XPATHS, in the same order
AUTHOR_XPATHS = [
    XPath(
        "//*[self::a or self::address or self::div or self::link or self::p or self::span"
        " or self::strong][@rel='author' or @id='author' or @class='author'"
        " or @itemprop='author name' or rel='me' or @data-testid='AuthorCard'"
        " or @data-testid='AuthorURL' or "
        + _any("contains", "class", "authorname", "author-name", "AuthorName", "authorName")
        + "]|//author"
    ),
    XPath(
        "//*[self::a or self::div or self::h3 or self::h4 or self::p or self::span]["
        "@class='byline' or @class='username' or @class='byl' or @class='BBL'"
        " or contains(@itemprop, 'author') or "
        + _any("contains", "id", "author", "zuozhe", "bianji", "xiaobian")
        + " or "
        + _any(
            "contains",
            "class",
            "author",
            "channel-name",
            "zuozhe",
            "bianji",
            "xiaobian",
            "submitted-by",
            "posted-by",
            "journalist-name",
        )
        + "]"
    ),
    XPath(
        "//*[contains(@data-component, 'Byline') or contains(@itemprop, 'author') or "
        + _any("contains", "id", "Author", "author")
        + " or "
        + _any("contains", "class", "Author", "author", "screenname", "writer", "Byline", "byline")
        + "]"
    ),
]

# trafilatura.xpaths.AUTHOR_DISCARD_XPATHS, in the same order
AUTHOR_DISCARD_XPATHS = [
    XPath(
        ".//*[self::a or self::div or self::section or self::span]["
        "@id='comments' or @class='comments' or @class='title' or @class='date' or "
        + _any("starts-with", "id", "comments")
        + " or "
        + _any("contains", "id", "commentlist", "comment-list", "ProductReviews")
        + " or "
        + _any("starts-with", "class", "Comments", "comments")
        + " or "
        + _any(
            "contains",
            "class",
            "commentlist",
            "comments-list",
            "sidebar",
            "is-hidden",
            "quote",
            "embedly-instagram",
            "article-share",
            "article-support",
            "print",
            "category",
            "meta-date",
            "meta-reviewer",
        )
        + " or contains(@data-component, 'Figure')]"
    ),
    XPath("//time|//figure"),
]


def page_author(tree: HtmlElement) -> str | None:
    """The page's author(s) as trafilatura's `extract_author` finds them."""
    subtree = prune_unwanted_nodes(deepcopy(tree), AUTHOR_DISCARD_XPATHS)
    author = extract_metainfo(subtree, AUTHOR_XPATHS, len_limit=120)
    return normalize_authors(None, author) if author else None
