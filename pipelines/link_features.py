"""What story linking needs of one item that the item alone decides, computed beside its parsing.

Linking an item (`pipelines.stories.StoryLinker.link`) reads of it its LSH band keys, its
name fingerprint and its citations; computing them costs several milliseconds of CPU (the
citations most), which in the crawl ran in the store thread, in the crawl process whose one
core bounds the crawl. The extraction workers (`crawler.pool`) compute them instead, as
`LinkFeatures`, and the portal spider carries them beside the item (`attach`, `take`): not
in it, so the store and the exports keep their shape. The linker takes them only when they
were computed from the same title, text and links, through an alias index built from the
same sources and organisations, by this version of the code (`LinkFeatures.fits`), and
computes them itself otherwise (offline ``presswatch link``, spooled items, tests): the
stories are the same either way.
"""

from __future__ import annotations

import hashlib
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from crawler.config import Organisation, Source, load_sources_file
from pipelines.attribution import AliasIndex, Citation, find_citations
from pipelines.organisations import directory
from pipelines.similarity import article_signature, band_keys
from pipelines.twins import fingerprint

# Raised whenever what a field holds changes: features of another version are not taken.
FEATURES_VERSION = 1


def inputs_digest(title: str, text: str, links: Sequence[str]) -> str:
    """A digest of what the features are computed from."""
    digest = hashlib.blake2b(digest_size=16)
    for part in (title, text, *links):
        digest.update(part.encode("utf-8", "surrogatepass"))
        digest.update(b"\0")
    return digest.hexdigest()


@dataclass(frozen=True)
class LinkFeatures:
    """The per-item parts of linking: band keys, name fingerprint, citations."""

    version: int
    inputs: str  # `inputs_digest` of the title, text and links
    aliases: str  # `AliasIndex.key` of the index the citations were resolved through
    bands: tuple[str, ...]
    names: frozenset[str]  # `pipelines.twins.fingerprint(title, text)`
    citations: tuple[Citation, ...]

    def fits(self, title: str, text: str, links: Sequence[str], aliases: AliasIndex) -> bool:
        """Whether these are the features of that item, as `aliases` would find them."""
        return (
            self.version == FEATURES_VERSION
            and bool(aliases.key)
            and self.aliases == aliases.key
            and self.inputs == inputs_digest(title, text, links)
        )


@dataclass(frozen=True)
class _Article:
    title: str
    text: str


def link_features(title: str, text: str, links: Sequence[str], aliases: AliasIndex) -> LinkFeatures:
    """The `LinkFeatures` of an item (the one function both workers and linker use)."""
    return LinkFeatures(
        version=FEATURES_VERSION,
        inputs=inputs_digest(title, text, links),
        aliases=aliases.key,
        bands=tuple(band_keys(article_signature(_Article(title, text)))),
        names=fingerprint(title, text),
        citations=tuple(find_citations(text, tuple(links), aliases)),
    )


# --- the catalog a worker resolves citations through -------------------------------------


@dataclass(frozen=True)
class CatalogSpec:
    """Where a worker finds the crawl's sources and organisations, small enough to go with
    every page: the sources file (None: the bundled one) and, when the crawling spider's
    source is not that file's namesake, that source as JSON (it takes its namesake's
    place, as `pipelines.syndication.crawl_sources` does)."""

    sources_file: str | None
    own_source: str = ""


def crawl_catalog(
    sources_file: str | None, own: Source | None = None
) -> tuple[list[Source], list[Organisation]]:
    """The sources and organisations a crawl links through (as the syndication pipeline
    reads them)."""
    loaded = load_sources_file(sources_file or None)
    sources = {source.name: source for source in loaded.sources}
    if own is not None:
        sources[own.name] = own
    return list(sources.values()), directory(loaded.organisations)


def crawl_catalog_spec(sources_file: str | None, own: Source) -> CatalogSpec:
    """The `CatalogSpec` of a crawl of `own` (one spec for every source of one file)."""
    loaded = load_sources_file(sources_file or None)
    namesake = next((s for s in loaded.sources if s.name == own.name), None)
    return CatalogSpec(sources_file or None, "" if namesake == own else own.model_dump_json())


# The alias indexes this process built, by spec (a worker's: a few per crawl process).
_built: dict[CatalogSpec, AliasIndex] = {}


def prepare_catalog(spec: CatalogSpec, aliases: AliasIndex) -> None:
    """Take `spec`'s index as the crawl process built it: building it from the files cost
    a worker a second (the directory's YAML) in which the crawl's first pages waited."""
    _built.setdefault(spec, aliases)


def catalog_aliases(spec: CatalogSpec) -> AliasIndex:
    """The alias index of `spec`, built once per process (a worker's life, a crawl's)."""
    index = _built.get(spec)
    if index is None:
        own = Source.model_validate_json(spec.own_source) if spec.own_source else None
        index = _built[spec] = AliasIndex.from_sources(*crawl_catalog(spec.sources_file, own))
    return index


# --- carried beside the item ----------------------------------------------------------------

# id(item) -> (a weak reference to the item, its features); an entry leaves with its item.
_beside: dict[int, tuple[weakref.ref[Any], LinkFeatures]] = {}


def attach(item: object, features: LinkFeatures) -> None:
    """Carry `features` beside `item` (the same object, through the item pipelines)."""
    key = id(item)
    _beside[key] = (weakref.ref(item, lambda _gone: _beside.pop(key, None)), features)


def take(item: object) -> LinkFeatures | None:
    """The features carried beside `item`, if any (they stay: a retried link reads them too)."""
    entry = _beside.get(id(item))
    if entry is None or entry[0]() is not item:
        return None
    return entry[1]
