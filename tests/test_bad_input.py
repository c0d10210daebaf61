"""Bad input to the installed `presswatch` command (RELIABILITY.md I1, I2, I5, I8).

Every case is refused with exit 2 and a message naming the file and line, the field or
option, or the fix; never a traceback, never exit 0, never an empty store made by mistake.
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from crawler.yamlfile import MAX_YAML_BYTES, MAX_YAML_DEPTH
from scheduler.item_lines import MAX_FILE_BYTES, MAX_LINE_BYTES, ItemFileError, read_items

PRESSWATCH = str(Path(sys.executable).with_name("presswatch"))

SOURCE = """\
sources:
  - name: gov
    kind: official
    domains: [gov.kz]
    discovery:
      feeds: [https://gov.kz/rss]
"""
RULES = """\
channels:
  console: "console://"
rules:
  - name: baikonur
    terms: [Байконур]
    channels: [console]
"""
ITEM = {"id": "a", "title": "Байконур", "text": "Текст о Байконуре."}
GOOD_LINE = json.dumps(ITEM, ensure_ascii=False) + "\n"
BILLION_LAUGHS = "".join(
    f"{name}: &{name} [{', '.join([f'*{prev}'] * 9)}]\n"
    for prev, name in zip("abcdefgh", "bcdefghi", strict=True)
)


def presswatch(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200"}
    env.pop("PRESSWATCH_STORE", None)
    return subprocess.run(
        [PRESSWATCH, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def assert_refused(done: subprocess.CompletedProcess[str], *expected: str) -> None:
    assert done.returncode == 2, (done.returncode, done.stdout[-2000:], done.stderr[-2000:])
    assert "Traceback" not in done.stderr + done.stdout
    assert done.stderr.startswith("error: "), done.stderr
    for fragment in expected:
        assert fragment in done.stderr, done.stderr


def jsonl(*lines: str | bytes) -> bytes:
    return b"".join(line if isinstance(line, bytes) else line.encode() for line in lines)


# (case id, the file's content, what the error must say)
ITEM_FILES = [
    ("array", jsonl(GOOD_LINE, "[1, 2]\n"), ":2: expected a JSON object (an item), got an array"),
    ("number", jsonl("\n", "42\n"), ":2: expected a JSON object (an item), got a number"),
    ("string", jsonl('"Байконур"\n'), ":1: expected a JSON object (an item), got a string"),
    ("not json", jsonl("{broken\n"), ":1: not JSON"),
    ("invalid utf-8", jsonl(b'{"id": "a", "title": "\xff"}\n'), ":1: not UTF-8 (byte 0xff"),
    (
        "title a number",
        jsonl('{"id": "a", "title": 5}\n'),
        ":1: title: Input should be a valid string, not 5",
    ),
    (
        "text a list",
        jsonl('{"id": "a", "text": ["x"]}\n'),
        ":1: text: Input should be a valid string",
    ),
    (
        "links a string",
        jsonl('{"id": "a", "links": "https://x.kz"}\n'),
        ":1: links: Input should be a valid list",
    ),
    (
        "date not a date",
        jsonl('{"id": "a", "published_at": "вчера"}\n'),
        ":1: published_at: not an ISO 8601 time",
    ),
    ("no id or url", jsonl('{"title": "Байконур"}\n'), ":1: an item needs an id or a url"),
    ("nested too deep", jsonl("[" * 100_000 + "]" * 100_000 + "\n"), ":1: JSON nested too deep"),
]


@pytest.mark.parametrize("command", ["link", "match"])
@pytest.mark.parametrize(
    ("content", "expected"),
    [case[1:] for case in ITEM_FILES],
    ids=[case[0] for case in ITEM_FILES],
)
def test_a_bad_items_file_is_refused_by_file_and_line(
    tmp_path: Path, command: str, content: bytes, expected: str
) -> None:
    (tmp_path / "items.jsonl").write_bytes(content)
    done = presswatch(command, "items.jsonl", "--json", cwd=tmp_path)
    assert_refused(done, "items.jsonl" + expected)


def test_an_endless_line_of_items_is_refused_unread(tmp_path: Path) -> None:
    with (tmp_path / "items.jsonl").open("wb") as items:
        items.truncate(MAX_LINE_BYTES + 10)  # sparse: no newline in sight
    for command in ("link", "match"):
        done = presswatch(command, "items.jsonl", cwd=tmp_path)
        assert_refused(done, f"items.jsonl:1: a line over {MAX_LINE_BYTES:,} bytes")


def test_link_refuses_a_file_of_items_over_its_limit_unread(tmp_path: Path) -> None:
    with (tmp_path / "items.jsonl").open("wb") as items:
        items.truncate(MAX_FILE_BYTES + 1)  # sparse, judged by its size before reading
    done = presswatch("link", "items.jsonl", cwd=tmp_path)
    assert_refused(done, f"items.jsonl: {MAX_FILE_BYTES + 1:,} bytes or more, over the")


def test_a_file_of_items_over_the_limit_is_refused_with_its_size(tmp_path: Path) -> None:
    path = tmp_path / "items.jsonl"
    path.write_text(GOOD_LINE * 3, encoding="utf-8")
    size = path.stat().st_size
    with pytest.raises(
        ItemFileError, match=rf"items\.jsonl: {size:,} bytes or more, over the 100-byte"
    ):
        list(read_items(path, max_file_bytes=100))
    assert len(list(read_items(path))) == 3


def test_good_items_still_pass(tmp_path: Path) -> None:
    (tmp_path / "items.jsonl").write_text(GOOD_LINE + "\n", encoding="utf-8")
    matched = presswatch("match", "items.jsonl", "--json", cwd=tmp_path)
    assert matched.returncode == 0, matched.stderr
    assert json.loads(matched.stdout)["rules"] == ["baikonur"]
    linked = presswatch("link", "items.jsonl", "--json", cwd=tmp_path)
    assert linked.returncode == 0, linked.stderr


# (case id, YAML content, what the error must say); each read as sources.yaml and rules.yaml
YAML_FILES = [
    (
        "deep nesting",
        "sources: " + "[" * 100_000 + "]" * 100_000,
        f":1: not valid YAML: nested deeper than {MAX_YAML_DEPTH} levels",
    ),
    (
        "billion laughs",
        f"a: &a [{', '.join(['lol'] * 9)}]\n{BILLION_LAUGHS}sources: *i",
        ":6: not valid YAML: aliases expand this to more than",
    ),
    (
        "recursive alias",
        "a: &a [*a]\nsources: []\n",
        ":1: not valid YAML: an alias refers to itself",
    ),
    (
        "latin-1",
        "sources:\n  - name: caf\xe9\n".encode("latin-1"),
        ":2: not UTF-8 text (byte 0xe9); save the file as UTF-8",
    ),
    ("binary", b"\x89PNG\r\n\x1a\n" + bytes(range(256)), ":1: not UTF-8 text (byte 0x89)"),
    (
        "control character",
        "sources:\n  - name: a\x00b\n",
        ":2: not valid YAML: the control character U+0000 is not allowed",
    ),
    (
        "python tag",
        "sources: !!python/object/apply:os.system [id]\n",
        ":1: not valid YAML: could not determine a constructor",
    ),
]


def refusal_of(tmp_path: Path, kind: str, content: str | bytes) -> subprocess.CompletedProcess[str]:
    """What `presswatch` says of `content` as a sources file or as a rules file."""
    path = tmp_path / "f.yaml"
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    if kind == "sources":
        return presswatch("sources", "--sources", "f.yaml", cwd=tmp_path)
    (tmp_path / "items.jsonl").write_text(GOOD_LINE, encoding="utf-8")
    return presswatch("match", "--rules", "f.yaml", "items.jsonl", cwd=tmp_path)


@pytest.mark.parametrize("kind", ["sources", "rules"])
@pytest.mark.parametrize(
    ("content", "expected"),
    [case[1:] for case in YAML_FILES],
    ids=[case[0] for case in YAML_FILES],
)
def test_a_hostile_yaml_file_is_refused_by_file_and_line(
    tmp_path: Path, kind: str, content: str | bytes, expected: str
) -> None:
    done = refusal_of(tmp_path, kind, content)
    assert_refused(done, "f.yaml" + expected)
    assert len(done.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("kind", "content", "expected"),
    [
        (
            "sources",
            SOURCE + "    kind: media\n",
            ":7: not valid YAML: duplicate key 'kind' (first given at line 3)",
        ),
        (
            "rules",
            RULES + "    terms: [Байтерек]\n",
            ":7: not valid YAML: duplicate key 'terms' (first given at line 5)",
        ),
        (
            "rules",
            RULES.replace("channels:\n", "channels:\n  console: 'json://x'\n", 1),
            ":3: not valid YAML: duplicate key 'console' (first given at line 2)",
        ),
    ],
)
def test_a_duplicate_key_is_refused_with_both_lines(
    tmp_path: Path, kind: str, content: str, expected: str
) -> None:
    assert_refused(refusal_of(tmp_path, kind, content), "f.yaml" + expected)


def test_an_oversized_config_file_is_refused_with_its_size(tmp_path: Path) -> None:
    with (tmp_path / "sources.yaml").open("wb") as big:
        big.write(SOURCE.encode())
        big.truncate(2 * MAX_YAML_BYTES)
    done = presswatch("sources", "--sources", "sources.yaml", cwd=tmp_path)
    assert_refused(
        done, f"sources.yaml: {2 * MAX_YAML_BYTES:,} bytes, over the {MAX_YAML_BYTES:,}-byte limit"
    )


def test_merge_keys_may_override_what_they_merge(tmp_path: Path) -> None:
    merged = SOURCE.replace(
        "    kind: official\n", "    <<: {kind: media, title: Gov}\n    kind: official\n"
    )
    (tmp_path / "sources.yaml").write_text(merged, encoding="utf-8")
    done = presswatch("sources", "--sources", "sources.yaml", "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["kind"] == "official"


@pytest.mark.parametrize(
    ("discovery", "expected"),
    [
        (
            "feeds: [tengrinews.kz/rss]",
            "feeds[0]: 'tengrinews.kz/rss' has no scheme: add https:// (https://tengrinews.kz/rss)",
        ),
        (
            "sitemaps: ['//gov.kz/map.xml']",
            "sitemaps[0]: '//gov.kz/map.xml' has no scheme: add https:// (https://gov.kz/map.xml)",
        ),
        (
            "listings: [{url: 'www.x.kz:8080/news', link_pattern: /n/}]",
            "listings[0].url: 'www.x.kz:8080/news' has no scheme: add https://",
        ),
        (
            "json_api: [{url: 'ftp://gov.kz/api'}]",
            "json_api[0].url: 'ftp://gov.kz/api': scheme 'ftp' is not http or https",
        ),
        ("feeds: ['https:///rss']", "feeds[0]: 'https:///rss' has no host"),
    ],
)
def test_a_source_url_without_a_scheme_is_refused_with_the_fix(
    tmp_path: Path, discovery: str, expected: str
) -> None:
    source = SOURCE.replace("feeds: [https://gov.kz/rss]", discovery)
    (tmp_path / "sources.yaml").write_text(source, encoding="utf-8")
    done = presswatch("sources", "--sources", "sources.yaml", cwd=tmp_path)
    assert_refused(done, "sources.yaml:6: sources[0].discovery." + expected)


@pytest.mark.parametrize("command", ["items", "export"])
@pytest.mark.parametrize(("option", "value"), [("--since", "x"), ("--until", "2024-13-01")])
def test_a_bad_time_option_names_the_option_and_the_format(
    tmp_path: Path, command: str, option: str, value: str
) -> None:
    done = presswatch(command, option, value, "--store", "sqlite:///pw.db", cwd=tmp_path)
    assert_refused(done, f"{option} {value!r} is not an ISO 8601 date or time", "2024-05-01")


READING = [["items"], ["show", "x"], ["export"], ["stories"], ["status"], ["alerts"]]


@pytest.mark.parametrize(
    "command",
    [*READING, ["crawl", "akorda"], ["demo"], ["demo", "--serve"], ["run"]],
    ids=" ".join,
)
def test_a_store_in_a_missing_directory_is_refused_and_not_made(
    tmp_path: Path, command: list[str]
) -> None:
    done = presswatch(*command, "--store", "sqlite:///nope/dir/x.db", cwd=tmp_path)
    assert_refused(done, "the directory 'nope/dir' of the SQLite store", "mkdir -p nope/dir")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", READING, ids=" ".join)
def test_reading_a_store_that_does_not_exist_says_so(tmp_path: Path, command: list[str]) -> None:
    done = presswatch(*command, "--store", "sqlite:///pw.db", cwd=tmp_path)
    assert_refused(done, "no SQLite store at 'pw.db'", "presswatch crawl")
    assert list(tmp_path.iterdir()) == []


def gzip_bomb(path: Path, inflated: int) -> None:
    """`inflated` bytes of HTML in gzip members of 16 MiB each: ratio about 1,000:1."""
    member = gzip.compress(b"<p>" + b"a" * (16 * 1024 * 1024 - 3), compresslevel=9)
    with path.open("wb") as bomb:
        bomb.write(gzip.compress(b"<html><body>"))
        for _ in range(inflated // (16 * 1024 * 1024)):
            bomb.write(member)


def test_extract_refuses_a_gzip_bomb_within_the_download_limit(tmp_path: Path) -> None:
    from crawler.settings import DOWNLOAD_MAXSIZE

    bomb = tmp_path / "page.html.gz"
    gzip_bomb(bomb, 2 * 1024**3)
    assert bomb.stat().st_size < 3 * 1024 * 1024
    with (tmp_path / "out").open("w") as out, (tmp_path / "err").open("w") as err:
        child = subprocess.Popen([PRESSWATCH, "extract", str(bomb)], stdout=out, stderr=err)
        # wait4 gives this child's own peak memory (KiB on Linux), not any other child's.
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
    done = subprocess.CompletedProcess(
        child.args, child.returncode, (tmp_path / "out").read_text(), (tmp_path / "err").read_text()
    )
    assert_refused(done, f"page.html.gz: inflates to more than {DOWNLOAD_MAXSIZE:,} bytes")
    assert usage.ru_maxrss * 1024 < 512 * 1024 * 1024  # inflating it whole took 16.8 GB


def test_extract_refuses_an_oversized_or_broken_page(tmp_path: Path) -> None:
    from crawler.settings import DOWNLOAD_MAXSIZE

    with (tmp_path / "big.html").open("wb") as big:
        big.truncate(DOWNLOAD_MAXSIZE + 1)
    done = presswatch("extract", "big.html", cwd=tmp_path)
    assert_refused(done, f"big.html: {DOWNLOAD_MAXSIZE + 1:,} bytes, over {DOWNLOAD_MAXSIZE:,}")
    (tmp_path / "cut.html.gz").write_bytes(gzip.compress(b"<p>" * 1000)[:40])
    done = presswatch("extract", "cut.html.gz", cwd=tmp_path)
    assert_refused(done, "cut.html.gz: not a readable gzip file")
