"""sources.yaml: the bundled file loads; every broken file is refused with file:line: field."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from crawler.config import ConfigError, load_sources

GOOD = """\
sources:
  - name: akorda
    kind: official
    domains: [akorda.kz]
    discovery:
      feeds: [https://www.akorda.kz/ru/rss]
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "sources.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def test_bundled_sources_load() -> None:
    sources = load_sources()
    names = {s.name for s in sources}
    assert {
        "akorda",
        "primeminister",
        "kazinform",
        "tengrinews",
        "zakon",
        "nur",
        "caravan",
    } <= names
    kinds = {s.kind for s in sources}
    assert kinds == {"official", "agency", "media"}
    assert all(s.aliases for s in sources)
    assert all(s.timezone == "Asia/Almaty" for s in sources)


def test_a_good_file_gives_typed_sources(tmp_path: Path) -> None:
    (source,) = load_sources(write(tmp_path, GOOD))
    assert source.name == "akorda"
    assert source.poll_seconds == 15 * 60
    assert source.owns("www.akorda.kz")
    assert not source.owns("notakorda.kz")


@pytest.mark.parametrize(
    ("replace", "by", "expected"),
    [
        ("kind: official", "kind: portal", ":3: sources[0].kind: Input should be"),
        ("domains: [akorda.kz]", "domains: [https://akorda.kz/ru]", ":4: sources[0].domains"),
        (
            "    discovery:\n      feeds: [https://www.akorda.kz/ru/rss]\n",
            "    discovery: {}\n",
            ":5: sources[0].discovery: give at least one of feeds, sitemaps or listings",
        ),
        (
            "kind: official",
            "kind: official\n    poll: soon",
            ":4: sources[0].poll: 'soon' is not a duration",
        ),
        (
            "kind: official",
            "kind: official\n    timezone: Mars/Base",
            ":4: sources[0].timezone: unknown time zone",
        ),
        (
            "kind: official",
            "kind: official\n    colour: red",
            ":4: sources[0].colour: Extra inputs",
        ),
        ("  - name: akorda\n", "  - kind2: x\n    name: akorda\n", ":2: sources[0].kind2"),
        (
            "feeds: [https://www.akorda.kz/ru/rss]",
            "listings: [{url: 'https://akorda.kz', link_pattern: '(unclosed'}]",
            ":6: sources[0].discovery.listings[0].link_pattern: not a valid regular expression",
        ),
        (
            "feeds: [https://www.akorda.kz/ru/rss]",
            "listings:\n        - url: https://akorda.kz\n          link_pattern: '/news/'\n"
            "          next_pattern: '^https://akorda\\.kz/(\\w+)/\\1$'",
            ":9: sources[0].discovery.listings[0].next_pattern: a backreference (\\1, (?P=name)) "
            "cannot run in linear time",
        ),
        ("name: akorda", "name: Akorda Office", ":2: sources[0].name: String should match"),
        ("domains: [akorda.kz]", "domains: [akorda.kz\n", "not valid YAML"),
    ],
)
def test_broken_files_name_file_line_and_field(
    tmp_path: Path, replace: str, by: str, expected: str
) -> None:
    assert replace in GOOD
    path = write(tmp_path, GOOD.replace(replace, by))
    with pytest.raises(ConfigError) as refused:
        load_sources(path)
    message = str(refused.value)
    assert message.startswith(str(path))
    assert expected in message


def test_duplicate_names_are_refused(tmp_path: Path) -> None:
    body = GOOD + GOOD.split("sources:\n", 1)[1]
    with pytest.raises(ConfigError, match="used twice"):
        load_sources(write(tmp_path, body))


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_sources(tmp_path / "nope.yaml")
