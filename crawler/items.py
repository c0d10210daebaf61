"""The record every stage passes along: one fetched article (`PressItem`)."""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from typing import Any


def item_id(canonical_url: str) -> str:
    """Stable id of an article: the same canonical URL gives the same id in every process.

    The scheme is left out, so the http and https addresses of one article share an id.
    """
    without_scheme = canonical_url.split(":", 1)[-1]
    return hashlib.sha1(without_scheme.encode("utf-8"), usedforsecurity=False).hexdigest()[:16]


def content_hash(text: str) -> str:
    """Hash of the cleaned body text; equal hashes mean the same text under another URL."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


@dataclass
class PressItem:
    """One article as collected from one source.

    Times are ISO 8601 strings with an offset (``2019-11-18T10:05:00+06:00``) so that the
    record is plain JSON at rest and on the wire.
    """

    url: str  # canonical URL (see crawler.urls.canonical_url)
    source: str  # name of the source in sources.yaml
    title: str
    text: str
    id: str = ""
    lead: str = ""
    published_at: str | None = None
    lang: str | None = None
    authors: list[str] = field(default_factory=list)
    links: list[str] = field(default_factory=list)  # outbound links found in the body
    content_hash: str = ""
    fetched_at: str = ""
    fetched_url: str = ""  # the URL as requested, before canonicalisation
    flags: list[str] = field(default_factory=list)  # e.g. "bad_encoding", "no_date"

    def __post_init__(self) -> None:
        if not self.id:
            self.id = item_id(self.url)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PressItem:
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})
