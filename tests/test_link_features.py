"""Linking features computed in the extraction workers: same stories as the linker's own."""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import pytest
import yaml

from crawler.items import PressItem
from crawler.pool import ParseOptions, parse_page
from pipelines.link_features import (
    CatalogSpec,
    LinkFeatures,
    attach,
    catalog_aliases,
    crawl_catalog,
    link_features,
    take,
)
from pipelines.stories import StoryLinker
from pipelines.storing import item_dict
from pipelines.story_index import MemoryStoryIndex
from tests.stories_data import demo_items, demo_sources

if TYPE_CHECKING:
    from collections.abc import Iterable
    from pathlib import Path

    from crawler.config import Organisation, Source


@pytest.fixture(scope="module")
def catalog(tmp_path_factory: pytest.TempPathFactory) -> CatalogSpec:
    """The demo sources as a crawl reads them: a sources file, and one of them crawling."""
    path: Path = tmp_path_factory.mktemp("catalog") / "sources.yaml"
    entries = [source.model_dump(mode="json", exclude_defaults=True) for source in demo_sources()]
    path.write_text(yaml.safe_dump({"sources": entries}, allow_unicode=True), encoding="utf-8")
    return CatalogSpec(str(path), demo_sources()[0].model_dump_json())


def worker_features(item: dict[str, Any], spec: CatalogSpec) -> LinkFeatures:
    """What an extraction worker computes of a page's item (in a process of its own)."""
    return link_features(item["title"], item["text"], item["links"], catalog_aliases(spec))


def link_all(
    items: Iterable[dict[str, Any]],
    sources: list[Source],
    organisations: list[Organisation],
    features: dict[str, LinkFeatures | None],
) -> tuple[dict[str, dict[str, Any]], int]:
    """The final stories (full records) and how many links took the given features."""
    linker = StoryLinker(MemoryStoryIndex(), sources, organisations)
    latest: dict[str, dict[str, Any]] = {}
    for item in items:
        update = linker.link(item, features=features.get(item["id"]))
        for gone in update.absorbed:
            latest.pop(gone, None)
        latest[update.story.id] = update.story.to_dict()
    return latest, linker.features_taken


@pytest.fixture(scope="module")
def computed(catalog: CatalogSpec) -> dict[str, LinkFeatures | None]:
    items = demo_items()
    context = multiprocessing.get_context("forkserver")
    with ProcessPoolExecutor(1, mp_context=context) as worker:
        found = worker.map(worker_features, items, [catalog] * len(items))
        return {item["id"]: features for item, features in zip(items, found, strict=True)}


def test_stories_are_the_same_with_the_workers_features(
    catalog: CatalogSpec, computed: dict[str, LinkFeatures | None]
) -> None:
    own = demo_sources()[0]
    sources, organisations = crawl_catalog(catalog.sources_file, own)
    items = demo_items()
    with_features, taken = link_all(items, sources, organisations, computed)
    without, not_taken = link_all(items, sources, organisations, {})
    assert (taken, not_taken) == (len(items), 0)
    assert with_features == without  # members, originals, cites, flags, lags, similarity
    assert any(len(story["members"]) > 2 for story in without.values())
    assert any(m["unattributed"] for story in without.values() for m in story["members"])


def test_features_that_do_not_fit_are_computed_again(
    catalog: CatalogSpec, computed: dict[str, LinkFeatures | None]
) -> None:
    own = demo_sources()[0]
    sources, organisations = crawl_catalog(catalog.sources_file, own)
    items = demo_items()
    ids = [item["id"] for item in items]
    shifted = {this: computed[other] for this, other in zip(ids, ids[1:] + ids[:1], strict=True)}
    other_catalog = {i: replace(f, aliases="another") for i, f in computed.items() if f}
    old = {i: replace(f, version=0) for i, f in computed.items() if f}
    without, _ = link_all(items, sources, organisations, {})
    for features in (shifted, other_catalog, old):
        stories, taken = link_all(items, sources, organisations, features)
        assert (stories, taken) == (without, 0)


PAGE = (
    "<html><head><title>Минфин</title></head><body><article><h1>Минфин о плане</h1>"
    + "<p>Министерство финансов сообщило о новом плане развития отрасли, "
    "сообщает Caravan.kz со ссылкой на пресс-службу ведомства.</p>" * 5 + "</article></body></html>"
).encode()


def test_a_worker_computes_the_features_when_the_crawl_links(catalog: CatalogSpec) -> None:
    page = parse_page(PAGE, "utf-8", "https://minfin.example/a", ParseOptions(catalog=catalog))
    assert page.link == link_features(page.title, page.text, page.links, catalog_aliases(catalog))
    assert page.link.citations, "the credit to Caravan.kz"
    assert parse_page(PAGE, "utf-8", "https://minfin.example/a", ParseOptions()).link is None


def test_features_go_beside_the_item_not_in_it(
    computed: dict[str, LinkFeatures | None],
) -> None:
    item = PressItem(url="https://caravan.kz/a", source="caravan", title="T", text="x")
    features = next(iter(computed.values()))
    assert features is not None
    before = item_dict(item)
    attach(item, features)
    assert take(item) is features
    assert item_dict(item) == before
    assert item.to_dict() == before
    other = PressItem(url="https://caravan.kz/b", source="caravan", title="T", text="x")
    assert take(other) is None
