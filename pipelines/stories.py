"""Story linking: items that carry the same news grouped into stories led by their original.

`StoryLinker.link` puts one item into a story through a `StoryIndex`: its LSH band keys
find near-duplicate candidates, and its name keys (`pipelines.twins.fingerprint`, dated by
the item's UTC day) find the items of the day before, the same day and the day after that
share at least ``NAMES_SHARED`` of them. Another write-up of the event must share that many
to pass `same_story`'s names gate, and a ru/kk twin must share 4 or 5, so the name keys
find every such match (LSH finds only copies; an item without a time is found through LSH
only). Of those namesakes only ``MAX_NAMESAKES`` = 32 are re-checked, the ones that share
the rarest names (`pipelines.story_index.Lookup`): a common name ("Казахстан", "Токаев")
makes an item a namesake of hundreds, and re-checking them all made a link at 1,000,000
items in the window take 240 ms at p99. On the 618 articles of 18 Nov 2019 an item has a
median of 32 namesakes (p90 142, at most 371); every namesake that matched was among its
item's 16 best by that weight, and with the bound at 16 or 32 the 415 stories are the same
as unbounded (at 8, six items land elsewhere). Each candidate is re-checked exactly
(`are_twins` for a ru/kk pair, `same_story` otherwise, after the cheap names gate for a
candidate that LSH did not find, since a near duplicate is LSH's to find) and the item
joins every story it matches, so an item that bridges two stories merges them. A story's id
is the smallest item id among its members (every item starts as a story of its own and a
merge keeps the smaller id), so the stories do not depend on the order items arrive in or
on which of two processes links first. After each link the story is assembled again from
its members by the pure `assemble_story`:

- **original**: the earliest ``official`` item when the story has one (of an official
  crawl source, or at the site of an official body of the directory of organisations);
  otherwise the body the members cite (self-credits left out; a cited official body
  first, then the most cited, then by kind: international, agency, media): its earliest
  item when the story has one, else that body as an **external** original (name and
  domain, no item); otherwise the earliest item. A later official item or an item of the
  cited body takes the place of the previous original when it arrives. Bodies are crawl
  sources and entries of `pipelines.organisations` (resolved through one `AliasIndex`); a
  cited name no one knows that holds a domain ("исследование finprom.kz") counts by it.
- each member: its **cites** (`Citation`s of `find_citations`, minus credits to its own
  publisher such as "сообщает Caravan.kz" on caravan.kz); **lag_seconds** behind the
  original (None when the original is external or a time is missing); **similarity** to
  the reference text (the original item, or the earliest member when the original is
  external): the `StoryMatch.score` for one language, the `twin_score` for a ru/kk pair;
  its **chain** edge: the first configured source it credits (else the first name it
  credits), as the story's item of that source when there is one, else as the source; and
  **unattributed**. A lag is negative when a copy's page time is earlier than the
  original's (a wrong page time, or a release published late on the official site).
- **unattributed** means: a copy that cites no one at all (no phrase naming anyone but its
  own publisher, no link to a known site; photo credits do not count), whatever the
  original's kind, and that is not its original's publisher's own (other-language)
  edition, nor the report of a publisher whose own reporter tells the story in one of its
  items ("передает корреспондент Zakon.kz": Zakon.kz was there, and its Kazakh edition
  carries its report). Any credit, even to a name no one knows ("со ссылкой на пресс-службу
  ведомства"), counts as attribution: the flag accuses an outlet, so it is raised only
  when nothing in the text credits anyone.

What the item alone decides (band keys, name fingerprint, citations) comes computed by
the crawl's extraction workers when they fit (`pipelines.link_features`); the linker
computes it with the same function otherwise. `ItemFeatureCache` keeps those and the
`StoryFeatures` of `same_story` for recent items by id, so that re-checking candidates and
reassembling a story do not normalise, stem and search each member again at every link.

Measured (demo corpus, 85 articles, 27 verified groups): pairwise co-membership precision
1.0, recall 0.94 (82 of 87 pairs; the misses are pairs `same_story` or `are_twins` itself
rejects), 0.5 s for the corpus. On the 618 articles of 18 Nov 2019: 23 ms an item, 393
stories, 95 of them with two or more items. Joining is transitive, as a story must be when
an item bridges two: a developing event told in many short updates (the Kerch ships, the
Tbilisi protests, a football qualifier) chains into a thread of 12-17 items through
same-event matches; near duplicates alone do not chain like that.

Only known bodies (crawl sources, the directory) become external originals: unknown cited
names are too often people ("пишет Горелкин") or bodies described in words ("в
министерстве").

Reported sources (`link_view`, ``presswatch link --json``): the original's and each
credit's ``source`` is where the body publishes: a domain, or for a body on the shared
gov.kz host its entity path (``gov.kz/memleket/entities/qriim``); a credit to an unknown
name gives the name as written. Sources on one host are told apart by the path of their
``domains`` entry (``gov.kz/memleket/entities/minfin``).

Measured on the provenance dev set (tests/data/provenance, 83 items, 30 labelled
stories): original source 0.97 (29/30), cited source 0.96 (67/70), attribution phrase
recall 0.97 (68/70), unattributed precision and recall 1.0 (8/8)
(``tests/bench/bench_provenance.py``).

Publishers: two sources whose domains are a domain and its subdomain (zakon.kz and
kaz.zakon.kz) are one publisher: their credits to each other are self-credits and their
twins pass the same-publisher bar of `are_twins`. Equal domains (several ministries on
gov.kz) are not one publisher.
"""

from __future__ import annotations

import logging
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from crawler.items import item_id
from crawler.urls import canonical_host
from pipelines.attribution import AliasIndex, Citation, find_citations, names_a_reporter
from pipelines.link_features import LinkFeatures, link_features
from pipelines.organisations import directory
from pipelines.similarity import (
    NAMES_SHARED,
    StoryFeatures,
    names_agree,
    same_story,
    same_story_features,
    story_features,
)
from pipelines.story_index import ItemSummary, Lookup, MemoryStoryIndex, StoryIndex
from pipelines.twins import TWIN_LANGUAGES, are_twins, twin_score
from pipelines.twins import fingerprint as name_fingerprint

if TYPE_CHECKING:
    from crawler.config import Organisation, Source

logger = logging.getLogger(__name__)

ORIGINAL = "original"
COPY = "copy"
SIMILARITY_DIGITS = 3
ONE_DAY = timedelta(days=1)
# Members whose credits are remembered (their texts are the cache's keys: ~10 MB of news)
CITATIONS_CACHED = 256
# Items whose linking features the linker keeps (`ItemFeatureCache`): the recent candidates
# and story members that each link reads again. A long text's shingles take up to ~1 MB.
FEATURES_CACHED = 512
# Namesakes (candidates found by their names, not by LSH) re-checked per link: those that
# share the rarest names with the item (see the module docstring). Each costs a read and a
# `same_story` (about 0.5 ms).
MAX_NAMESAKES = 32
# Among cited bodies cited equally often: the agency before the outlet that quotes it.
KIND_RANK = {"official": 0, "international": 1, "agency": 2, "media": 3}


# --- sources ----------------------------------------------------------------------------------


class SourceCatalog:
    """The configured sources and the directory of organisations as story assembly asks
    about them: kind, address, publisher.

    `organisations`: the directory's entries (default: the bundled directory,
    `pipelines.organisations.directory`); pass ``()`` for the crawl sources alone.
    """

    def __init__(
        self,
        sources: Iterable[Source],
        aliases: AliasIndex | None = None,
        organisations: Iterable[Organisation] | None = None,
    ) -> None:
        self.sources = {source.name: source for source in sources}
        if aliases is None:
            entries = directory() if organisations is None else organisations
            aliases = AliasIndex.from_sources(self.sources.values(), entries)
        self.aliases = aliases
        self._publisher: dict[str, str] = {name: name for name in self.sources}
        for a in self.sources.values():
            for b in self.sources.values():
                if any(da.endswith("." + db) for da in a.domains for db in b.domains):
                    self._unite(a.name, b.name)

    def _root(self, name: str) -> str:
        while self._publisher.get(name, name) != name:
            name = self._publisher[name]
        return name

    def _unite(self, a: str, b: str) -> None:
        root_a, root_b = self._root(a), self._root(b)
        if root_a != root_b:
            self._publisher[max(root_a, root_b)] = min(root_a, root_b)

    def publishers(self) -> list[set[str]]:
        """Groups of two or more sources that belong to one publisher."""
        groups: dict[str, set[str]] = {}
        for name in self.sources:
            groups.setdefault(self._root(name), set()).add(name)
        return [group for group in groups.values() if len(group) > 1]

    def publisher(self, key: str) -> str:
        """The publisher a source belongs to (its own name when it has no sister source)."""
        return self._root(key)

    def same_publisher(self, a: str | None, b: str | None) -> bool:
        return a is not None and b is not None and self._root(a) == self._root(b)

    def kind(self, key: str) -> str | None:
        """The kind of a crawl source (by name) or of a directory entry (by address)."""
        party = self.aliases.parties.get(key)
        return party.kind if party else None

    def domain(self, key: str) -> str | None:
        """Where a crawl source or directory entry publishes (gov.kz bodies: host and path)."""
        return self.aliases.address(key)

    def title(self, key: str) -> str:
        party = self.aliases.parties.get(key)
        return party.title if party else key

    def source_of_url(self, url: str) -> str:
        """The source or directory entry whose site holds `url` (on a shared host such as
        gov.kz, by the path), or the bare host when none does."""
        return self.aliases.source_of_url(url) or canonical_host(urlsplit(url).hostname or "")

    def key_of(self, summary: ItemSummary) -> str:
        """Whose item it is: its source when the catalog knows it, else the owner of its URL."""
        if summary.source in self.aliases.parties or not summary.url:
            return summary.source
        return self.aliases.source_of_url(summary.url) or summary.source


# --- the assembled story ----------------------------------------------------------------------


@dataclass(frozen=True)
class Original:
    """A story's original: one of its items, or a cited source not collected (external)."""

    item: str | None
    source: str  # the source's name (for an item no source owns, its host)
    name: str  # what to show: the source's title, else its name
    domain: str | None
    published_at: str | None = None

    @property
    def external(self) -> bool:
        return self.item is None

    def to_dict(self) -> dict[str, Any]:
        return {
            "item": self.item,
            "source": self.source,
            "name": self.name,
            "domain": self.domain,
            "published_at": self.published_at,
            "external": self.external,
        }


@dataclass(frozen=True)
class ChainEdge:
    """Whom a member credits: the story's item of that source, or the source itself."""

    item: str | None
    source: str | None  # None when the credited name is not a configured source
    name: str

    def to_dict(self) -> dict[str, Any]:
        return {"item": self.item, "source": self.source, "name": self.name}


@dataclass(frozen=True)
class Member:
    item: str
    source: str
    role: str  # ORIGINAL or COPY
    published_at: str | None
    cites: tuple[Citation, ...]
    lag_seconds: float | None
    similarity: float
    unattributed: bool
    chain: ChainEdge | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "item": self.item,
            "source": self.source,
            "role": self.role,
            "published_at": self.published_at,
            "cites": [_citation_dict(c) for c in self.cites],
            "unattributed": self.unattributed,
            "lag_seconds": self.lag_seconds,
            "similarity": self.similarity,
            "chain": self.chain.to_dict() if self.chain else None,
        }


@dataclass(frozen=True)
class Story:
    id: str
    original: Original
    members: tuple[Member, ...]  # the original item first, then by time and id

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "original": self.original.to_dict(),
            "members": [member.to_dict() for member in self.members],
        }


@dataclass(frozen=True)
class StoryUpdate:
    """What linking one item did: the story it is in now and the stories that merged into it."""

    item: str
    story: Story
    new: bool  # False when the item had been linked before (nothing changed)
    joined: tuple[str, ...]  # the earlier stories the item matched, by their ids before it came
    absorbed: tuple[str, ...]  # ids that no longer exist, now `story` (merged or renamed)

    @property
    def merged(self) -> bool:
        """The item bridged stories: two or more earlier stories are now one."""
        return len(self.joined) > 1


def _citation_dict(citation: Citation) -> dict[str, Any]:
    return {
        "phrase": citation.phrase,
        "start": citation.start,
        "end": citation.end,
        "source": citation.source,
        "name": citation.name,
        "family": citation.family,
        "address": citation.address,
    }


def link_view(record: dict[str, Any]) -> dict[str, Any]:
    """The offline output of one story (`Story.to_dict()` record): the fields
    ``presswatch link --json`` prints, nothing more."""
    original = record["original"]
    return {
        "id": record["id"],
        "original": {
            "item": original["item"],
            "source": original["domain"] or original["source"] or original["name"],
        },
        "members": [
            {
                "item": member["item"],
                "role": member["role"],
                "cites": [
                    {
                        **{k: cite[k] for k in ("phrase", "start", "end")},
                        # where the cited body publishes, else the name as cited
                        "source": cite.get("address") or cite["source"] or cite["name"],
                    }
                    for cite in member["cites"]
                ],
                "unattributed": member["unattributed"],
                "lag_seconds": member["lag_seconds"],
                "similarity": member["similarity"],
            }
            for member in record["members"]
        ],
    }


# --- assembling -------------------------------------------------------------------------------


def _instant(published_at: str | None) -> datetime | None:
    if not published_at:
        return None
    try:
        published = datetime.fromisoformat(published_at)
    except ValueError:
        return None
    # Items carry offsets; a bare time is read as UTC rather than refused, as twins does.
    return published if published.tzinfo else published.replace(tzinfo=UTC)


def _name_keys(names: Iterable[str], day: date) -> list[str]:
    return [f"n:{day.isoformat()}:{name}" for name in names]


def _chronological(summary: ItemSummary) -> tuple[bool, float, str]:
    instant = _instant(summary.published_at)
    return (instant is None, instant.timestamp() if instant else 0.0, summary.id)


def _earliest(summaries: Iterable[ItemSummary]) -> ItemSummary:
    return min(summaries, key=_chronological)


def _others_cited(
    summary: ItemSummary, citations: Sequence[Citation], catalog: SourceCatalog
) -> list[Citation]:
    """Citations of anyone but the member's own publisher."""
    own = catalog.key_of(summary)
    return [c for c in citations if not catalog.same_publisher(c.source, own)]


def _choose_original(
    members: Sequence[ItemSummary], cites: dict[str, list[Citation]], catalog: SourceCatalog
) -> Original:
    official = [m for m in members if catalog.kind(catalog.key_of(m)) == "official"]
    if official:
        return _item_original(_earliest(official), catalog)
    citing: Counter[str] = Counter()
    for member in members:
        # an unknown name that holds a domain ("исследование finprom.kz") counts by it
        citing.update({c.source or c.address for c in cites[member.id]} - {None})
    if citing:
        # An official body cited first (outlets cite it, not it them); then the most cited;
        # among equals by kind (an agency before the outlet quoting it), then the key.
        cited = min(
            citing,
            key=lambda s: (
                catalog.kind(s) != "official",
                -citing[s],
                KIND_RANK.get(catalog.kind(s) or "", len(KIND_RANK)),
                s,
            ),
        )
        collected = [m for m in members if catalog.key_of(m) == cited]
        if collected:
            return _item_original(_earliest(collected), catalog)
        return Original(
            item=None,
            source=cited,
            name=catalog.title(cited),
            domain=catalog.domain(cited) or cited,
        )
    return _item_original(_earliest(members), catalog)


def _item_original(summary: ItemSummary, catalog: SourceCatalog) -> Original:
    key = catalog.key_of(summary)
    return Original(
        item=summary.id,
        source=summary.source,
        name=catalog.title(key),
        domain=catalog.domain(key) or canonical_host(urlsplit(summary.url).hostname or "") or None,
        published_at=summary.published_at,
    )


def _similarity(member: ItemSummary, reference: ItemSummary) -> float:
    if member.id == reference.id:
        return 1.0
    languages = {member.lang, reference.lang}
    if member.lang != reference.lang and languages == TWIN_LANGUAGES:
        return round(twin_score(member, reference), SIMILARITY_DIGITS)
    return round(same_story(member, reference).score, SIMILARITY_DIGITS)


def _chain(
    cited: Sequence[Citation], by_id: dict[str, ItemSummary], original: Original
) -> ChainEdge | None:
    if not cited:
        return None
    known = [c for c in cited if c.source is not None]
    first = known[0] if known else cited[0]
    if first.source is None:
        return ChainEdge(item=None, source=None, name=first.name)
    if original.item is not None and original.source == first.source:
        return ChainEdge(item=original.item, source=first.source, name=first.name)
    collected = [s for s in by_id.values() if s.source == first.source]
    target = _earliest(collected).id if collected else None
    return ChainEdge(item=target, source=first.source, name=first.name)


def _first_hand_publishers(
    members: Sequence[ItemSummary], found: dict[str, list[Citation]], catalog: SourceCatalog
) -> set[str]:
    """Publishers whose own reporter tells the story in one of their items ("передает
    корреспондент Zakon.kz"): they report it themselves, in every edition."""
    publishers = set()
    for member in members:
        own = catalog.key_of(member)
        if any(
            catalog.same_publisher(c.source, own) and names_a_reporter(member.text, c)
            for c in found[member.id]
        ):
            publishers.add(catalog.publisher(own))
    return publishers


@lru_cache(maxsize=CITATIONS_CACHED)
def _citations(text: str, links: tuple[str, ...], aliases: AliasIndex) -> list[Citation]:
    """`find_citations`, remembered: a story is assembled again each time an item joins it,
    and finding the credits of a long text (about 1 ms) for every member made each link
    cost as much as the story is long."""
    return find_citations(text, links, aliases)


def assemble_story(
    members: Iterable[ItemSummary],
    sources: Iterable[Source],
    aliases: AliasIndex | None = None,
    *,
    catalog: SourceCatalog | None = None,
    features: ItemFeatureCache | None = None,
) -> Story:
    """The story made of `members`: its original and each member's role, credits, lag,
    similarity, chain edge and unattributed flag (see the module docstring).
    `features`: where the members' citations and similarity features are remembered
    (the linker's); by default they are computed here (citations through a small cache)."""
    catalog = catalog or SourceCatalog(sources, aliases)
    citations: Callable[[ItemSummary], list[Citation]] = (
        features.citations
        if features is not None
        else lambda m: _citations(m.text, m.links, catalog.aliases)
    )
    similarity = features.similarity if features is not None else _similarity
    by_id = {m.id: m for m in members}
    if not by_id:
        message = "a story needs at least one member"
        raise ValueError(message)
    ordered = sorted(by_id.values(), key=_chronological)
    found = {m.id: citations(m) for m in ordered}
    cites = {m.id: _others_cited(m, found[m.id], catalog) for m in ordered}
    first_hand = _first_hand_publishers(ordered, found, catalog)
    original = _choose_original(ordered, cites, catalog)
    reference = by_id[original.item] if original.item else ordered[0]
    original_instant = _instant(reference.published_at) if original.item else None
    original_key = catalog.key_of(reference) if original.item else original.source
    assembled = []
    for summary in ordered:
        role = ORIGINAL if summary.id == original.item else COPY
        instant = _instant(summary.published_at)
        lag = (
            (instant - original_instant).total_seconds()
            if instant is not None and original_instant is not None
            else None
        )
        unattributed = (
            role == COPY
            and not cites[summary.id]
            and not catalog.same_publisher(catalog.key_of(summary), original_key)
            and catalog.publisher(catalog.key_of(summary)) not in first_hand
        )
        assembled.append(
            Member(
                item=summary.id,
                source=summary.source,
                role=role,
                published_at=summary.published_at,
                cites=tuple(cites[summary.id]),
                lag_seconds=lag,
                similarity=similarity(summary, reference),
                unattributed=unattributed,
                chain=_chain(cites[summary.id], by_id, original),
            )
        )
    assembled.sort(key=lambda m: m.role != ORIGINAL)  # stable: the rest stay chronological
    return Story(id=min(by_id), original=original, members=tuple(assembled))


# --- linking ------------------------------------------------------------------------------------


@dataclass
class _Known:
    """What the linker remembers of one item, each part computed when first asked for."""

    summary: ItemSummary
    names: frozenset[str] | None = None
    citations: list[Citation] | None = None
    bands: tuple[str, ...] | None = None
    story: StoryFeatures | None = None

    def holds(self, summary: ItemSummary) -> bool:
        mine = self.summary
        return (
            mine.title == summary.title
            and mine.text == summary.text
            and (mine.links == summary.links)
        )


class ItemFeatureCache:
    """The per-item features linking reads (band keys, names, citations, `StoryFeatures`),
    of the last ``size`` items asked about, by id: a link re-checks its candidates and
    reassembles its story from the members, and each of them would otherwise be normalised,
    shingled, stemmed and searched for credits again at every link. An entry counts only
    for the same title, text and links (`_Known.holds`). Features computed by the workers
    (`LinkFeatures`) are taken when they fit the item and this catalog; otherwise the same
    function computes them here."""

    def __init__(self, aliases: AliasIndex, size: int = FEATURES_CACHED) -> None:
        self.aliases = aliases
        self.size = size
        self._known: OrderedDict[str, _Known] = OrderedDict()

    def _entry(self, summary: ItemSummary) -> _Known:
        known = self._known.get(summary.id)
        if known is None or not known.holds(summary):
            known = _Known(summary)
            self._known[summary.id] = known
            if len(self._known) > self.size:
                self._known.popitem(last=False)
        else:
            self._known.move_to_end(summary.id)
        return known

    def give(self, summary: ItemSummary, given: LinkFeatures | None) -> bool:
        """Take the workers' features of `summary` when they fit; True when taken."""
        if given is None or not given.fits(
            summary.title, summary.text, summary.links, self.aliases
        ):
            return False
        known = self._entry(summary)
        known.bands, known.names = given.bands, given.names
        known.citations = list(given.citations)
        return True

    def _compute(self, known: _Known) -> None:
        summary = known.summary
        computed = link_features(summary.title, summary.text, summary.links, self.aliases)
        known.bands, known.names = computed.bands, computed.names
        known.citations = list(computed.citations)

    def bands(self, summary: ItemSummary) -> tuple[str, ...]:
        known = self._entry(summary)
        if known.bands is None:
            self._compute(known)
        assert known.bands is not None
        return known.bands

    def names(self, summary: ItemSummary) -> frozenset[str]:
        known = self._entry(summary)
        if known.names is None:
            known.names = name_fingerprint(summary.title, summary.text)
        return known.names

    def citations(self, summary: ItemSummary) -> list[Citation]:
        known = self._entry(summary)
        if known.citations is None:
            known.citations = find_citations(summary.text, summary.links, self.aliases)
        return known.citations

    def story(self, summary: ItemSummary) -> StoryFeatures:
        known = self._entry(summary)
        if known.story is None:
            known.story = story_features(summary, self.names(summary))
        return known.story

    def same_story(self, a: ItemSummary, b: ItemSummary) -> bool:
        return same_story_features(self.story(a), self.story(b)).same

    def are_twins(self, a: ItemSummary, b: ItemSummary, publishers: Sequence[set[str]]) -> bool:
        names = (self.names(a), self.names(b))
        return are_twins(a, b, publishers=publishers, names=names)

    def similarity(self, member: ItemSummary, reference: ItemSummary) -> float:
        """`_similarity` from the remembered features."""
        if member.id == reference.id:
            return 1.0
        languages = {member.lang, reference.lang}
        if member.lang != reference.lang and languages == TWIN_LANGUAGES:
            names = (self.names(member), self.names(reference))
            return round(twin_score(member, reference, names), SIMILARITY_DIGITS)
        score = same_story_features(self.story(member), self.story(reference)).score
        return round(score, SIMILARITY_DIGITS)


class StoryLinker:
    """Links items into stories through a `StoryIndex` (see the module docstring)."""

    def __init__(
        self,
        index: StoryIndex,
        sources: Iterable[Source],
        organisations: Iterable[Organisation] | None = None,
    ) -> None:
        self.index = index
        self.catalog = SourceCatalog(sources, organisations=organisations)
        self._publishers = self.catalog.publishers()
        self.features = ItemFeatureCache(self.catalog.aliases)
        self.features_taken = 0  # links that took the workers' features (`link`)

    def summary(self, item: dict[str, Any]) -> ItemSummary:
        """The summary of an item dict; a missing id comes from the URL, a missing source
        from the URL's host (the configured source owning it, else the host itself)."""
        url = item.get("url") or ""
        identifier = item.get("id") or (item_id(url) if url else "")
        if not identifier:
            message = f"an item needs an id or a url to be linked: {sorted(item)}"
            raise ValueError(message)
        return ItemSummary(
            id=identifier,
            source=item.get("source") or self.catalog.source_of_url(url),
            title=item.get("title") or "",
            text=item.get("text") or "",
            url=url,
            lead=item.get("lead") or "",
            lang=item.get("lang"),
            published_at=item.get("published_at"),
            links=tuple(item.get("links") or ()),
        )

    def link(
        self,
        item: dict[str, Any],
        *,
        resume: bool = False,
        features: LinkFeatures | None = None,
    ) -> StoryUpdate:
        """Put `item` into its story (joining and merging as it matches) and reassemble it.

        `resume`: an earlier link of this item may have stopped partway (the store went
        down), leaving it in a story but with its keys or merges missing; every step is
        done again, which is safe since each one is idempotent.
        `features`: the item's `LinkFeatures` as the extraction workers computed them;
        taken when they fit the item, else computed here (the stories are the same).
        """
        summary = self.summary(item)
        if self.features.give(summary, features):
            self.features_taken += 1
        bands = list(self.features.bands(summary))
        names = self.features.names(summary)
        own_keys: list[str] = list(bands)
        lookups = [Lookup(bands, 1)]
        instant = _instant(summary.published_at)
        if instant is not None:
            day = instant.astimezone(UTC).date()
            own_keys += _name_keys(names, day)
            around = [
                key for shift in (-1, 0, 1) for key in _name_keys(names, day + shift * ONE_DAY)
            ]
            # the item finds itself among them, first
            lookups.append(Lookup(around, NAMES_SHARED, MAX_NAMESAKES + 1))
        # Written and joined before candidates are read, in one step: of two similar items
        # linked at the same moment by two processes, at least one sees the other, already
        # in a story.
        index = self.index
        entry = index.enter(summary, own_keys, lookups, again=resume)
        if not entry.new:
            story = self._assemble(entry.story)
            return StoryUpdate(summary.id, story, new=False, joined=(story.id,), absorbed=())
        story_id = entry.story
        copies = entry.found[0] - {summary.id}
        namesakes = entry.found[1] - copies - {summary.id} if len(entry.found) > 1 else set()
        found = index.get_items(sorted(copies | namesakes))
        matched = [
            candidate_id
            for candidate_id, candidate in sorted(found.items())
            if self._related(summary, names, candidate, copy=candidate_id in copies)
        ]
        # Read together: a merge below moves only the stories it names, so a match's story
        # read before them is where the match is, unless that story was merged into ours.
        their_stories = index.stories_of(matched) if matched else {}
        earlier: set[str] = set()
        ours = {story_id}  # the stories ours is made of so far
        for candidate in matched:
            other_story = their_stories.get(candidate)
            if other_story is None or other_story in ours:
                continue
            earlier.add(other_story)
            ours.add(other_story)
            story_id = index.merge(story_id, other_story)
        story = self._assemble(story_id)
        if len(earlier) > 1:
            logger.info("item %s merged stories %s into %s", summary.id, sorted(earlier), story.id)
        return StoryUpdate(
            summary.id,
            story,
            new=True,
            joined=tuple(sorted(earlier)),
            absorbed=tuple(sorted(earlier - {story.id})),
        )

    def _related(
        self, summary: ItemSummary, names: frozenset[str], candidate: ItemSummary, *, copy: bool
    ) -> bool:
        """Whether `summary` and `candidate` are one story. A candidate found only by its names
        is settled by the cheap checks first: a ru/kk pair can only be twins, and another
        write-up must pass the names gate of `same_story` (about 3 ms a pair) anyway."""
        if {summary.lang, candidate.lang} == TWIN_LANGUAGES:
            if self.features.are_twins(summary, candidate, self._publishers):
                return True
            if not copy:
                return False
        elif not copy:
            theirs = self.features.names(candidate)
            if not names_agree(len(names & theirs), min(len(names), len(theirs))):
                return False
        return self.features.same_story(summary, candidate)

    def _assemble(self, story_id: str) -> Story:
        members = self.index.story_items(story_id)
        story = assemble_story(members.values(), (), catalog=self.catalog, features=self.features)
        self.index.put_story(story.id, story.to_dict())
        return story


def link_items(
    items: Iterable[dict[str, Any]],
    sources: Iterable[Source],
    organisations: Iterable[Organisation] | None = None,
) -> dict[str, Any]:
    """Link `items` offline (the pipeline's code over a `MemoryStoryIndex`) and return
    ``{"stories": [...]}`` in the shape of `link_view`, every item in exactly one story.
    `organisations`: the directory (default: the bundled one)."""
    linker = StoryLinker(MemoryStoryIndex(), sources, organisations)
    latest: dict[str, Story] = {}
    for item in items:
        update = linker.link(item)
        for gone in update.absorbed:
            del latest[gone]
        latest[update.story.id] = update.story
    return {"stories": [link_view(latest[story_id].to_dict()) for story_id in sorted(latest)]}
