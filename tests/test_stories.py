"""Story linking: the original and each member's credits, late originals, merges, the index."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from itemadapter import ItemAdapter

import pipelines.stories as stories_module
from crawler.config import Source
from crawler.items import item_id
from pipelines.stories import (
    MAX_NAMESAKES,
    ORIGINAL,
    SourceCatalog,
    StoryLinker,
    _name_keys,
    assemble_story,
)
from pipelines.story_index import ItemSummary, MemoryStoryIndex
from tests.stories_data import AQSU, BAIKONUR, CARAVAN, PRIME, STEPPE, demo_items, demo_sources


@pytest.fixture(scope="module")
def sources() -> list[Source]:
    return demo_sources()


@pytest.fixture(scope="module")
def items() -> dict[str, dict[str, Any]]:
    return {item["id"]: item for item in demo_items()}


def test_baikonur_release_and_its_copies(sources, items) -> None:
    members = [ItemSummary.from_dict(items[i]) for i in BAIKONUR]
    story = assemble_story(members, sources)
    assert story.id == min(BAIKONUR)
    assert (story.original.item, story.original.source) == (PRIME, "primeminister")
    by_item = {m.item: m for m in story.members}
    assert story.members[0].item == PRIME
    assert by_item[PRIME].role == ORIGINAL
    assert by_item[PRIME].lag_seconds == 0
    for copy in (CARAVAN, STEPPE):
        member = by_item[copy]
        assert member.role == "copy"
        assert not member.unattributed
        assert member.cites[0].source == "primeminister"
        assert member.cites[0].phrase.startswith("со ссылкой на пресс-службу")
        text = items[copy]["text"]
        assert text[member.cites[0].start : member.cites[0].end] == member.cites[0].phrase
        # the outlet's own byline ("сообщает Caravan.kz") is not a credit
        assert all(c.source == "primeminister" for c in member.cites)
        assert member.chain is not None
        assert (member.chain.item, member.chain.source) == (PRIME, "primeminister")
    assert by_item[STEPPE].cites[-1].phrase.startswith("https://primeminister.kz/")
    aqsu = by_item[AQSU]
    assert aqsu.unattributed
    assert aqsu.cites == ()
    assert aqsu.chain is None
    for copy in (CARAVAN, STEPPE, AQSU):
        assert by_item[copy].lag_seconds > 0
        assert 0.5 < by_item[copy].similarity <= 1.0


def test_late_original_takes_the_place_of_the_external_one(sources, items) -> None:
    index = MemoryStoryIndex()
    linker = StoryLinker(index, sources)
    linker.link(items[CARAVAN])
    update = linker.link(items[AQSU])
    # the copies cite the PM's press service, configured but not collected yet
    original = update.story.original
    assert original.external
    assert (original.item, original.source, original.domain) == (
        None,
        "primeminister",
        "primeminister.kz",
    )
    assert all(m.role == "copy" and m.lag_seconds is None for m in update.story.members)
    # whatever the original's kind: the copy that credits no one is flagged, the other not
    assert {m.item: m.unattributed for m in update.story.members} == {CARAVAN: False, AQSU: True}

    update = linker.link(items[PRIME])
    assert update.new
    assert update.story.id == min(CARAVAN, AQSU, PRIME)
    assert update.story.original.item == PRIME
    assert {m.item: m.unattributed for m in update.story.members}[AQSU]
    assert all(m.lag_seconds > 0 for m in update.story.members if m.role == "copy")
    assert index.get_story(update.story.id) == update.story.to_dict()


def test_external_original_from_citations_alone(sources) -> None:
    text = (
        "Первый вице-премьер провёл переговоры о проекте «Байтерек» на космодроме, сообщает "
        "Steppe Times со ссылкой на пресс-службу Премьер-министра РК. " * 6
    )
    copies = [
        ItemSummary(id=f"copy-{n}", source=source, title="Переговоры", text=text, lang="ru")
        for n, source in enumerate(("steppe", "caravan"))
    ]
    story = assemble_story(copies, sources)
    assert story.original.external
    assert story.original.source == "primeminister"
    assert all(m.lag_seconds is None for m in story.members)
    chains = {m.item: m.chain for m in story.members}
    assert (chains["copy-0"].item, chains["copy-0"].source) == (None, "primeminister")
    # caravan's text says "сообщает Steppe Times": it took the text from steppe's item
    assert (chains["copy-1"].item, chains["copy-1"].source) == ("copy-0", "steppe")


def test_an_outlet_whose_reporter_was_there_is_not_unattributed(sources) -> None:
    event = "Аким открыл новую школу на шестьсот мест в микрорайоне Жулдыз. "
    members = [
        ItemSummary("a-steppe", "steppe", "Школа", event * 4, lang="ru", published_at=at)
        for at in ["2019-11-18T09:00:00+06:00"]
    ]
    for n, (source, byline) in enumerate(
        [
            ("caravan", "передает корреспондент Caravan.kz."),  # its own reporter
            ("zakon", "передает собственный корреспондент Zakon.kz."),
            ("zakon-kaz", "деп хабарлайды Zakon.kz."),  # the Kazakh edition of zakon's report
            ("aqsu", ""),  # no credit, no reporter
        ]
    ):
        members.append(
            ItemSummary(
                f"b-{n}-{source}",
                source,
                "Школа",
                event * 4 + byline,
                lang="kk" if source == "zakon-kaz" else "ru",
                published_at=f"2019-11-18T1{n}:00:00+06:00",
            )
        )
    story = assemble_story(members, sources)
    assert story.original.item == "a-steppe"
    flagged = {m.source: m.unattributed for m in story.members if m.role == "copy"}
    assert flagged == {"caravan": False, "zakon": False, "zakon-kaz": False, "aqsu": True}


def test_an_item_that_bridges_two_stories_merges_them(sources, items) -> None:
    first = items["ria/1561088279"]  # plane cabin video
    second = items["zakon/4995300-kazahstanskiy-armeets-stal-chempionom"]  # pankration
    bridge = {
        "id": "0-digest",
        "url": "https://example.org/digest",
        "title": "Главное за день",
        "text": f"{first['text']}\n\n{second['text']}",
        "lang": "ru",
        "published_at": "2019-11-18T23:00:00+06:00",
    }
    linker = StoryLinker(MemoryStoryIndex(), sources)
    a = linker.link(first)
    b = linker.link(second)
    assert a.story.id != b.story.id
    update = linker.link(bridge)
    assert update.merged
    assert set(update.joined) == {a.story.id, b.story.id}
    # the smaller id survives: the bridge's own
    assert update.story.id == "0-digest"
    assert set(update.absorbed) == {a.story.id, b.story.id}
    assert {m.item for m in update.story.members} == {first["id"], second["id"], "0-digest"}
    assert linker.index.story_ids() == ["0-digest"]


def test_linking_an_item_again_changes_nothing(sources, items) -> None:
    linker = StoryLinker(MemoryStoryIndex(), sources)
    first = linker.link(items[PRIME])
    linker.link(items[CARAVAN])
    again = linker.link(items[PRIME])
    assert first.new
    assert not again.new
    assert {m.item for m in again.story.members} == {PRIME, CARAVAN}


def test_russian_and_kazakh_twins_join_one_story(sources, items) -> None:
    linker = StoryLinker(MemoryStoryIndex(), sources)
    ru = linker.link(items["zakon/4995300-kazahstanskiy-armeets-stal-chempionom"])
    kk = linker.link(items["zakon-kaz/4995298-aza-standy-skeri-sportshy-pankration"])
    assert kk.story.id == min(ru.item, kk.item)
    assert len(kk.story.members) == 2


def test_summary_defaults_source_and_id_from_the_url(sources) -> None:
    linker = StoryLinker(MemoryStoryIndex(), sources)
    url = "https://kaz.zakon.kz/4995298-x.html"
    summary = linker.summary({"url": url, "title": "t", "text": "x"})
    assert (summary.id, summary.source) == (item_id(url), "zakon-kaz")
    assert linker.summary(
        {"url": "https://www.zakon.kz/1.html", "title": "", "text": ""}
    ).source == ("zakon")
    assert linker.summary({"url": "https://unknown.example/a", "title": "", "text": ""}).source == (
        "unknown.example"
    )
    with pytest.raises(ValueError, match="id or a url"):
        linker.summary({"title": "no address"})


def test_publishers_are_domains_and_their_subdomains(sources) -> None:
    catalog = SourceCatalog(sources)
    assert catalog.same_publisher("zakon", "zakon-kaz")
    assert not catalog.same_publisher("zakon", "nur")
    assert {"zakon", "zakon-kaz"} in catalog.publishers()


def test_index_merge_keeps_the_smaller_id_and_follows_pointers() -> None:
    index = MemoryStoryIndex()
    for story, member in (("b", "b"), ("c", "c"), ("a", "a")):
        index.join(story, member)
    assert index.merge("c", "b") == "b"
    assert index.merge("b", "a") == "a"
    # a process that still holds "c" lands in the survivor
    assert index.join("c", "late") == "a"
    assert index.members("c") == {"a", "b", "c", "late"}
    assert index.story_of("late") == "a"
    assert index.story_ids() == ["a"]
    index.add_keys("a", ["k1", "k2"])
    index.add_keys("b", ["k1"])
    assert index.candidates(["k1", "k2"], at_least=2) == {"a"}
    assert index.candidates(["k1"]) == {"a", "b"}


def test_a_link_rechecks_only_the_namesakes_that_share_the_rarest_names(sources) -> None:
    """A common name makes an item a namesake of hundreds: only MAX_NAMESAKES are read."""
    index = MemoryStoryIndex()
    linker = StoryLinker(index, sources)
    item = {
        "url": "https://caravan.kz/news/baikonur-1",
        "source": "caravan",
        "title": "Токаев и Мамин обсудили Байконур в Астане",
        "text": "Токаев и Мамин обсудили Байконур в Астане с Роскосмосом.",
        "published_at": "2019-11-18T10:00:00+06:00",
        "lang": "ru",
    }
    names = linker.features.names(linker.summary(item))
    day = date(2019, 11, 18)
    for n in range(MAX_NAMESAKES + 20):
        filler = ItemSummary(id=f"filler{n:03d}", source="steppe", title="Другое", text="Другое.")
        index.put_item(filler)
        index.add_keys(filler.id, _name_keys(names, day))
    read: list[int] = []
    get_items = index.get_items
    index.get_items = lambda ids: read.append(len(list(ids))) or get_items(ids)  # type: ignore[method-assign]
    linker.link(item)
    assert read[0] == MAX_NAMESAKES  # then the story's own members, to assemble it


UNBOUNDED = 10**9  # namesakes re-checked: all of them


def _stories(items: list[dict[str, Any]], sources: Any) -> set[frozenset[str]]:
    linker = StoryLinker(MemoryStoryIndex(), sources)
    for item in items:
        linker.link(item)
    groups: dict[str | None, set[str]] = {}
    for item in items:
        item_key = linker.summary(item).id
        groups.setdefault(linker.index.story_of(item_key), set()).add(item_key)
    return {frozenset(group) for group in groups.values()}


def test_the_namesake_bound_leaves_the_demo_stories_as_they_were(
    sources, items, monkeypatch: pytest.MonkeyPatch
) -> None:
    bounded = _stories(list(items.values()), sources)
    monkeypatch.setattr(stories_module, "MAX_NAMESAKES", UNBOUNDED)
    assert _stories(list(items.values()), sources) == bounded


def test_the_namesake_bound_leaves_a_real_news_day_as_it_was(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The 618 articles of 18 Nov 2019: an item has up to 371 namesakes, 32 re-checked."""
    bench = pytest.importorskip("tests.bench.bench_stories")
    if not bench.NEWS_DAY.is_dir():
        pytest.skip(f"{bench.NEWS_DAY} is not on this machine")
    identify = bench.language_identifier()
    items = [
        dict(ItemAdapter(bench.load_news_doc(path, identify)).items())
        for path in sorted(bench.NEWS_DAY.iterdir())
    ]
    items.sort(key=lambda item: (item.get("published_at") or "", item["url"]))
    bounded = _stories(items, [])
    monkeypatch.setattr(stories_module, "MAX_NAMESAKES", UNBOUNDED)
    assert _stories(items, []) == bounded
