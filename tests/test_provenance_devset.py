"""The provenance dev set (tests/data/provenance/) is well-formed, and its scoring is right."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from crawler.config import load_sources
from pipelines.stories import link_items
from scheduler.item_lines import read_items
from tests.provenance_score import (
    ITEMS_FILE,
    assert_provenance_bar,
    load_items,
    load_labels,
    same_source,
    score,
    source_domains,
)

GOV = "gov.kz/memleket/entities/"
MIN_STORIES = 30
PRESSWATCH = str(Path(sys.executable).with_name("presswatch"))
# Each family the dev set must cover, as a test on the labels.
FAMILIES = {
    "prime minister": lambda cited, flags: "primeminister.kz" in cited,
    "akorda": lambda cited, flags: "akorda.kz" in cited,
    "elbasy.kz": lambda cited, flags: "elbasy.kz" in cited,
    "kazhydromet": lambda cited, flags: "kazhydromet.kz" in cited,
    "mvd / police": lambda cited, flags: GOV + "qriim" in cited,
    "other ministry": lambda cited, flags: {GOV + "mfa", GOV + "ecogeo", GOV + "moa"} <= cited,
    "knb": lambda cited, flags: "knb.kz" in cited,
    "akimat": lambda cited, flags: {GOV + "astana", GOV + "karaganda", GOV + "aqmola"} <= cited,
    "kazinform": lambda cited, flags: "inform.kz" in cited,
    "ria": lambda cited, flags: "ria.ru" in cited,
    "sputnik": lambda cited, flags: "sputniknews.kz" in cited,
    "credits no one": lambda cited, flags: flags.count(True) >= 5,
}


@pytest.fixture(scope="module")
def items() -> list[dict[str, Any]]:
    return load_items()


@pytest.fixture(scope="module")
def labels() -> dict[str, Any]:
    return load_labels()


@pytest.fixture(scope="module")
def by_id(items) -> dict[str, dict[str, Any]]:
    return {item["id"]: item for item in items}


def copies(labels):
    for key, story in labels["stories"].items():
        for item_id, copy in story["copies"].items():
            yield key, item_id, copy


def perfect(labels, by_id, name_of=lambda domain: domain) -> dict[str, Any]:
    """What a linker that agrees with every label would print (``link_view`` shape)."""
    stories = []
    for story in labels["stories"].values():
        members = []
        for item_id in story["members"]:
            copy = story["copies"].get(item_id, {"cites": [], "unattributed": False})
            text = by_id[item_id]["text"]
            cites = [
                {
                    "phrase": c["phrase"],
                    "start": text.find(c["phrase"]),
                    "end": text.find(c["phrase"]) + len(c["phrase"]),
                    "source": name_of(c["source"]),
                }
                for c in copy["cites"]
            ]
            members.append({"item": item_id, "cites": cites, "unattributed": copy["unattributed"]})
        original = {
            "item": story["original"]["item"],
            "source": name_of(story["original"]["source"]),
        }
        stories.append({"id": min(story["members"]), "original": original, "members": members})
    return {"stories": stories}


# --- the data ---------------------------------------------------------------------------------


def test_items_are_what_presswatch_link_reads(items) -> None:
    read = list(read_items(ITEMS_FILE))
    assert read == items
    assert len({item["id"] for item in items}) == len(items)
    configured = {source.name for source in load_sources()}
    for item in items:
        assert datetime.fromisoformat(item["published_at"]).tzinfo is not None, item["id"]
        assert item["lang"] in ("ru", "kk"), item["id"]
        assert item["source"] in configured or "." in item["source"], item["id"]
        assert item["id"].startswith(item["source"] + "/"), item["id"]
        assert item["title"], item["id"]
        assert item["text"], item["id"]
        assert item["url"].startswith("http"), item["id"]


def test_every_labelled_item_exists_once(labels, by_id) -> None:
    members = [m for story in labels["stories"].values() for m in story["members"]]
    assert len(members) == len(set(members)), "an item is in two stories"
    assert set(members) == set(by_id), "items.jsonl holds exactly the labelled items"
    for key, story in labels["stories"].items():
        original = story["original"]["item"]
        assert original is None or original in story["members"], key
        assert set(story["copies"]) == set(story["members"]) - {original}, key
        assert story["original"]["source"], key
        assert story["note"], key


def test_every_phrase_is_verbatim_in_its_item(labels, by_id) -> None:
    for key, item_id, copy in copies(labels):
        for credit in copy["cites"]:
            assert credit["source"], (key, item_id)
            assert credit["phrase"] in by_id[item_id]["text"], (key, item_id, credit["phrase"])


def test_an_unattributed_copy_credits_no_one(labels) -> None:
    for key, item_id, copy in copies(labels):
        assert not (copy["unattributed"] and copy["cites"]), (key, item_id)


def test_enough_stories_of_two_or_more(labels) -> None:
    multi = [s for s in labels["stories"].values() if len(s["members"]) >= 2]
    assert len(multi) >= MIN_STORIES
    assert labels["about"], "say how the stories were labelled"


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_family_is_covered(labels, family) -> None:
    cited = {c["source"] for _, _, copy in copies(labels) for c in copy["cites"]}
    cited |= {s["original"]["source"] for s in labels["stories"].values()}
    flags = [copy["unattributed"] for _, _, copy in copies(labels)]
    assert FAMILIES[family](cited, flags)


# --- the scoring ------------------------------------------------------------------------------


def test_source_names_map_to_the_domains_labels_use() -> None:
    domains = source_domains(load_sources())
    assert domains["zakon"] == "zakon.kz"
    assert domains["zakon-kaz"] == "kaz.zakon.kz"
    assert domains["kazinform"] == "inform.kz"
    assert domains["gov-almaty"] == GOV + "almaty"
    assert domains["gov-minfin"] == GOV + "minfin"


def test_organisations_are_compared_not_domain_spellings() -> None:
    # the labels keep Sputnik's 2019 domain; the directory knows it as a former one
    domains = source_domains(load_sources())
    assert same_source("sputniknews.kz", ["sputnik.kz"], domains)
    assert same_source("sputnik.kz", ["www.sputniknews.kz"], domains)
    assert not same_source("sputniknews.kz", ["ria.ru", None], domains)


def test_a_prediction_that_agrees_with_the_labels_scores_one(labels, items, by_id) -> None:
    sources = load_sources()
    scores = score(perfect(labels, by_id), labels, items, sources)
    assert scores.figures() == dict.fromkeys(scores.figures(), 1.0)
    assert scores.misses == []
    assert_provenance_bar(scores)


def test_configured_source_names_score_as_their_domains(labels, items, by_id) -> None:
    sources = load_sources()
    name_of = {domain: name for name, domain in source_domains(sources).items()}
    linked = perfect(labels, by_id, lambda domain: name_of.get(domain, domain))
    assert any(s["original"]["source"] == "primeminister" for s in linked["stories"])
    assert score(linked, labels, items, sources).figures()["original_source_accuracy"] == 1.0


def test_a_prediction_that_credits_no_one_scores_zero(labels, items) -> None:
    sources = load_sources()
    alone = {
        "stories": [
            {
                "id": item["id"],
                "original": {"item": item["id"], "source": "nobody.example"},
                "members": [{"item": item["id"], "cites": [], "unattributed": True}],
            }
            for item in items
        ]
    }
    scores = score(alone, labels, items, sources)
    figures = scores.figures()
    assert figures["original_source_accuracy"] == 0.0
    assert figures["cited_source_accuracy"] == figures["phrase_recall"] == 0.0
    assert figures["unattributed_recall"] == 1.0
    assert figures["unattributed_precision"] < 0.2
    assert scores.together.hits == 0
    with pytest.raises(AssertionError, match=re.escape("original_source_accuracy 0.000 < 0.9")):
        assert_provenance_bar(scores)


def test_presswatch_link_json_is_scored_like_link_items(labels, items) -> None:
    run = subprocess.run(
        [PRESSWATCH, "link", str(ITEMS_FILE), "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    assert "Traceback" not in run.stderr
    sources = load_sources()
    from_cli = score(json.loads(run.stdout), labels, items, sources)
    in_process = score(link_items(items, sources), labels, items, sources)
    assert from_cli.figures() == in_process.figures()
    assert from_cli.misses == in_process.misses


def test_provenance_reaches_the_bar(labels, items) -> None:
    sources = load_sources()
    assert_provenance_bar(score(link_items(items, sources), labels, items, sources))
